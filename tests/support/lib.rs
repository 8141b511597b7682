//! Test harness for integration tests against the real local stack started by `make test`
//! (`infra/local/test.sh`): PostgreSQL + pgvector, s3s-fs and DynamoDB Local on free ports.
//!
//! Every [`TestApp`] gets its own database (bootstrapped and migrated with the production code),
//! its own buckets and its own DynamoDB table, so tests run in parallel without sharing state.

pub mod llm;
pub mod pdf;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
};

use axum::{body::Body, Router};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use ragbot::{
    config::{DatabaseConfig, TlsMode},
    store, AppState, Config,
};
use tower::ServiceExt;

/// Installs a process-wide subscriber that is interested in every callsite, once. Without one,
/// tracing caches "never" for callsites first hit on a thread with no subscriber, and tests that
/// capture logs with a thread-local subscriber (`set_default`) lose spans when tests run in
/// parallel.
pub fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

/// Log lines captured from a thread-local JSON subscriber (the same layer the functions use).
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures the JSON logs of this thread until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::prelude::*;
        init_tracing();
        let writer = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::registry()
                .with(ragbot::telemetry::json_layer(move || writer.clone())),
        )
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().map(|v| v.clone()).unwrap_or_default()).expect("UTF-8 logs")
    }
}

/// A variable exported by the test stack; a clear message when tests are run outside `make test`.
pub fn stack_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with `make test` (it starts the local stack)")
    })
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Replaces user:password of a postgres:// URL.
pub fn url_with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL has a scheme");
    let (_, host) = rest.split_once('@').expect("URL has credentials");
    format!("{scheme}://{user}:{password}@{host}")
}

// Role DDL is cluster-wide: serialise bootstraps of parallel tests in this process.
pub static BOOTSTRAP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where a test's database lives.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub admin_url: String,
    pub name: String,
    pub app_url: String,
    pub migrator_url: String,
}

impl TestDb {
    /// A fresh database on the cluster behind `admin_url`, bootstrapped and migrated.
    pub async fn create(admin_url: &str) -> TestDb {
        let name = format!("t_{}", short_id());
        let migrator_pw = stack_env("RAGBOT_MIGRATOR_PASSWORD");
        let app_pw = stack_env("RAGBOT_APP_PASSWORD");
        {
            let _guard = BOOTSTRAP.lock().await;
            store::bootstrap(&store::BootstrapSpec {
                admin_url: admin_url.to_string(),
                admin_password: None,
                database: name.clone(),
                migrator_password: migrator_pw.clone(),
                app_password: app_pw.clone(),
                tls: TlsMode::Disable,
                connect_retry_budget: std::time::Duration::ZERO,
            })
            .await
            .expect("bootstrap test database");
        }
        let db_url = store::with_database(admin_url, &name);
        let db = TestDb {
            admin_url: admin_url.to_string(),
            migrator_url: url_with_user(&db_url, store::MIGRATOR_ROLE, &migrator_pw),
            app_url: url_with_user(&db_url, store::APP_ROLE, &app_pw),
            name,
        };
        store::migrate(&DatabaseConfig::for_url(&db.migrator_url, TlsMode::Disable))
            .await
            .expect("migrate test database");
        db
    }

    pub async fn connect(url: &str) -> tokio_postgres::Client {
        store::connect_once(&DatabaseConfig::for_url(url, TlsMode::Disable))
            .await
            .expect("connect")
    }
}

/// Options for [`TestApp::spawn_with`].
#[derive(Default)]
pub struct Options {
    /// Use this cluster instead of the shared test cluster (e.g. a [`PrivatePostgres`]).
    pub admin_url: Option<String>,
    /// Extra or overriding configuration variables.
    pub env: HashMap<String, String>,
    /// Serve this existing database instead of a new one (a second configuration of one app).
    pub database: Option<TestDb>,
}

/// The app as Lambda and the dev server run it, over its own database, buckets and table.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        init_tracing();
        let admin_url = opts
            .admin_url
            .unwrap_or_else(|| stack_env("RAGBOT_PG_ADMIN_URL"));
        let db = match opts.database {
            Some(db) => db,
            None => TestDb::create(&admin_url).await,
        };
        let id = short_id();
        let mut vars: HashMap<String, String> = HashMap::from([
            ("RAGBOT_ENV".into(), "test".into()),
            ("DATABASE_URL".into(), db.app_url.clone()),
            ("DOCUMENTS_BUCKET".into(), format!("docs-{id}")),
            ("BACKUPS_BUCKET".into(), format!("backups-{id}")),
            ("FAILED_EVENTS_BUCKET".into(), format!("failed-{id}")),
            ("STATE_TABLE".into(), format!("state-{id}")),
            ("RAGBOT_CREATE_LOCAL_RESOURCES".into(), "true".into()),
            ("DATABASE_CONNECT_TIMEOUT_MS".into(), "2000".into()),
            ("DATABASE_CONNECT_RETRY_MS".into(), "0".into()),
            // Tests that need the model opt in with EMBEDDING_PROVIDER=local.
            ("EMBEDDING_PROVIDER".into(), "none".into()),
        ]);
        vars.extend(opts.env);
        let config =
            Config::from_lookup(|k| vars.get(k).cloned().or_else(|| std::env::var(k).ok()))
                .expect("test configuration");
        let state = AppState::init(config).await.expect("app state");
        let router = ragbot::http::app(ragbot::http::all_routes(), state.clone());
        TestApp { router, state, db }
    }

    /// A token signed with the app's configured secret, issuer and audience.
    pub fn token(&self, sub: &str, tenant: &str, roles: &[&str]) -> String {
        let roles: Vec<ragbot::auth::Role> = roles
            .iter()
            .map(|r| ragbot::auth::Role::parse(r).expect("known role"))
            .collect();
        ragbot::auth::mint_token(
            &self.state.config.auth,
            sub,
            &ragbot::auth::Tenant::parse(tenant).expect("tenant"),
            &roles,
            std::time::Duration::from_secs(600),
        )
        .expect("mint token")
    }

    /// `router` (this app's, or it merged with more) on a real local port, as `ragbot dev` serves
    /// it, for clients that need real HTTP (streams, browsers, other languages' SDKs).
    pub async fn serve(router: Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .ok();
        });
        addr
    }

    /// `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    /// Rows of `table` across every tenant (as the schema owner, bypassing row-level security).
    pub async fn count_rows(&self, table: &str) -> i64 {
        let c = TestDb::connect(&self.db.migrator_url).await;
        c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0)
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).expect("request"))
            .await
    }

    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        TestResponse::from(
            self.router
                .clone()
                .oneshot(req)
                .await
                .expect("infallible router"),
        )
        .await
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub async fn from<B>(resp: Response<B>) -> TestResponse
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes().to_vec();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) {
        assert_eq!(
            self.status,
            expected,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A PostgreSQL instance of the test's own (for tests that stop and start the server), made with
/// the same script as the stack. Stopped and removed on drop.
pub struct PrivatePostgres {
    dir: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let dir = std::env::temp_dir().join(format!("ragbot-private-pg-{}", short_id()));
        let pg = PrivatePostgres { dir };
        pg.stack(&["pg-up"]);
        pg
    }

    fn stack(&self, args: &[&str]) {
        let script = repo_root().join("infra/local/stack.sh");
        let status = Command::new("bash")
            .arg(&script)
            .args(args)
            .arg(&self.dir)
            .status()
            .expect("run stack.sh");
        assert!(status.success(), "stack.sh {args:?} failed");
    }

    pub fn admin_url(&self) -> String {
        let read = |f: &str| {
            std::fs::read_to_string(self.dir.join(f))
                .expect("stack file")
                .trim()
                .to_string()
        };
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            read("pg-password"),
            read("pg-port")
        )
    }

    pub fn stop(&self) {
        self.stack(&["pg-stop"]);
    }

    /// The postmaster's process id (to freeze it with SIGSTOP, as a database that holds new
    /// connections without answering).
    pub fn postmaster_pid(&self) -> String {
        let home = std::fs::read_to_string(self.dir.join("pg-home")).expect("pg-home");
        std::fs::read_to_string(std::path::Path::new(home.trim()).join("data/postmaster.pid"))
            .expect("postmaster.pid")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    pub fn start_again(&self) {
        self.stack(&["pg-start"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stack(&["pg-stop"]);
        if let Ok(home) = std::fs::read_to_string(self.dir.join("pg-home")) {
            let _ = std::fs::remove_dir_all(home.trim());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The model directory installed by `make test`.
pub fn model_dir() -> PathBuf {
    PathBuf::from(stack_env("EMBEDDING_MODEL_DIR"))
}

/// `(text, reference embedding)` pairs from sentence-transformers
/// (`../shared/reference/minilm_reference.jsonl`, or `RAGBOT_REFERENCE_DIR`).
pub fn reference_embeddings() -> Vec<(String, Vec<f32>)> {
    let dir = std::env::var("RAGBOT_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("../shared/reference"));
    let path = dir.join("minilm_reference.jsonl");
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("reference line is JSON");
            let text = v["text"].as_str().expect("text").to_string();
            let emb = v["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect();
            (text, emb)
        })
        .collect()
}
