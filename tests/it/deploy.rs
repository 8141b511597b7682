//! The migrate function's custom-resource handler against the real PostgreSQL: it sets up a
//! database from nothing, and always answers CloudFormation at the ResponseURL.

use std::sync::{Arc, Mutex};

use ragbot::{
    config::TlsMode,
    deploy::{self, handle_custom_resource_with, MigrateSettings},
    store,
};
use ragbot_tests::{stack_env, url_with_user, TestDb};
use serde_json::{json, Value};

async fn response_sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/cfn-response",
        axum::routing::put(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str::<Value>(&body).unwrap());
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cfn-response", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (url, got)
}

#[tokio::test]
async fn the_custom_resource_sets_up_a_database_and_answers_cloudformation() {
    let admin_url = stack_env("RAGBOT_PG_ADMIN_URL");
    let name = format!("cfn_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db_url = store::with_database(&admin_url, &name);
    let migrator_pw = stack_env("RAGBOT_MIGRATOR_PASSWORD");
    let app_pw = stack_env("RAGBOT_APP_PASSWORD");
    let settings = MigrateSettings {
        admin_url: admin_url.clone(),
        admin_password: None,
        database: name.clone(),
        // Without a password in the URL: it comes from the secret, as in AWS.
        migrator_url: url_with_user(&db_url, store::MIGRATOR_ROLE, "x").replace(":x@", "@"),
        migrator_password: migrator_pw,
        app_password: app_pw.clone(),
        tls: TlsMode::Disable,
        // Long enough to wait for a resuming database; a refused password still fails at once.
        connect_retry_budget: std::time::Duration::from_secs(30),
    };
    let (url, got) = response_sink().await;
    let event = json!({
        "RequestType": "Create", "ResponseURL": url, "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/ragbot/1",
        "RequestId": "req-1", "LogicalResourceId": "DatabaseSchema", "ResourceType": "Custom::DatabaseSchema",
    });
    let _guard = ragbot_tests::BOOTSTRAP.lock().await;
    let out = handle_custom_resource_with(&event, Ok(settings.clone()), None)
        .await
        .unwrap();
    assert_eq!(out["Status"], "SUCCESS", "{out}");
    let answered = got.lock().unwrap().clone();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["Status"], "SUCCESS");
    assert_eq!(answered[0]["RequestId"], "req-1");
    assert_eq!(answered[0]["LogicalResourceId"], "DatabaseSchema");
    // The app role can now use the schema.
    let app = TestDb::connect(&url_with_user(&db_url, store::APP_ROLE, &app_pw)).await;
    let n: i64 = app
        .query_one("SELECT count(*) FROM chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // An update re-runs idempotently; a failure is still answered (FAILED, with the reason).
    let update = json!({"RequestType": "Update", "ResponseURL": url, "PhysicalResourceId": "ragbot-database-schema"});
    let out = handle_custom_resource_with(&update, Ok(settings.clone()), None)
        .await
        .unwrap();
    assert_eq!(out["Status"], "SUCCESS");
    let mut broken = settings.clone();
    broken.admin_url = url_with_user(&admin_url, "postgres", "wrong-password");
    let started = std::time::Instant::now();
    let out = handle_custom_resource_with(&update, Ok(broken), None)
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a refused password is not retried"
    );
    assert_eq!(out["Status"], "FAILED");
    assert!(
        out["Reason"].as_str().unwrap().contains("password"),
        "{out}"
    );
    assert_eq!(got.lock().unwrap().len(), 3);
    // Set-up that would outlast the invocation is abandoned before its deadline and answered.
    let out = handle_custom_resource_with(
        &update,
        Ok(settings.clone()),
        Some(std::time::Instant::now() + deploy::ANSWER_MARGIN / 2),
    )
    .await
    .unwrap();
    assert_eq!(out["Status"], "FAILED", "{out}");
    assert!(
        out["Reason"].as_str().unwrap().contains("time limit"),
        "{out}"
    );
    let answered = got.lock().unwrap().clone();
    assert_eq!(answered.len(), 4);
    assert_eq!(answered[3]["Status"], "FAILED");
    // With time left, the same update succeeds.
    let out = handle_custom_resource_with(
        &update,
        Ok(settings),
        Some(std::time::Instant::now() + deploy::ANSWER_MARGIN * 4),
    )
    .await
    .unwrap();
    assert_eq!(out["Status"], "SUCCESS", "{out}");
    let out = handle_custom_resource_with(
        &json!({"RequestType": "Delete", "ResponseURL": url}),
        Err("unused".into()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out["Status"], "SUCCESS",
        "delete keeps the data and succeeds"
    );
}

#[tokio::test]
async fn the_set_up_waits_for_a_database_that_is_still_starting() {
    // Aurora resuming from 0 ACU (or created moments ago) refuses connections for a while.
    let pg = ragbot_tests::PrivatePostgres::start();
    let admin_url = pg.admin_url();
    pg.stop();
    let settings = MigrateSettings {
        admin_url: admin_url.clone(),
        admin_password: None,
        database: "ragbot".into(),
        migrator_url: store::with_database(
            &url_with_user(&admin_url, store::MIGRATOR_ROLE, "x"),
            "ragbot",
        )
        .replace(":x@", "@"),
        migrator_password: stack_env("RAGBOT_MIGRATOR_PASSWORD"),
        app_password: stack_env("RAGBOT_APP_PASSWORD"),
        tls: TlsMode::Disable,
        connect_retry_budget: std::time::Duration::from_secs(60),
    };
    let event = json!({"RequestType": "Create", "StackId": "s", "RequestId": "r", "LogicalResourceId": "DatabaseSchema"});
    let started = std::time::Instant::now();
    let setup =
        tokio::spawn(async move { handle_custom_resource_with(&event, Ok(settings), None).await });
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(!setup.is_finished(), "still waiting for the database");
    let _pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    let out = setup.await.unwrap().unwrap();
    assert_eq!(out["Status"], "SUCCESS", "{out}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(4));
}

/// Runs openssl in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-made CA (`<name>-ca.crt` / `.key`) in `dir`.
fn make_ca(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let key = format!("{name}-ca.key");
    let crt = format!("{name}-ca.crt");
    let subject = format!("/CN={name} test CA");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
            "-keyout", &key, "-out", &crt,
        ],
    );
    dir.join(crt)
}

/// `server.crt` / `server.key` for localhost and 127.0.0.1, signed by the CA `ca`.
fn sign_server_cert(dir: &std::path::Path, ca: &str) {
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    let (ca_crt, ca_key) = (format!("{ca}-ca.crt"), format!("{ca}-ca.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// Debian's PostgreSQL (the pgserver wheel's is built without SSL) serving TLS with the given
/// certificate on a free port, in a throwaway directory; stopped on drop.
struct TlsPostgres {
    child: std::process::Child,
    port: u16,
}

impl TlsPostgres {
    fn start(dir: &std::path::Path) -> TlsPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's postgresql package (make test installs it)")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("postgres").exists())
            .expect("a postgres binary under /usr/lib/postgresql");
        let as_pg = |program: &std::path::Path| {
            let mut c = if nix_is_root() {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                std::process::Command::new(program)
            };
            c.current_dir(dir);
            c
        };
        let data = dir.join("data");
        let ok = as_pg(&bin.join("initdb"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
            ])
            .output()
            .expect("initdb");
        assert!(
            ok.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = as_pg(&bin.join("postgres"))
            .args(["-D", data.to_str().unwrap()])
            .args([
                "-c",
                &format!("port={port}"),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .args(["-c", &format!("unix_socket_directories={}", dir.display())])
            .args(["-c", "ssl=on"])
            .args([
                "-c",
                &format!("ssl_cert_file={}", dir.join("server.crt").display()),
            ])
            .args([
                "-c",
                &format!("ssl_key_file={}", dir.join("server.key").display()),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("postgres.log")).unwrap())
            .spawn()
            .expect("postgres");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        TlsPostgres { child, port }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn direct_tls_connections_verify_the_server_against_the_ca_file_and_refuse_another() {
    use ragbot::config::DatabaseConfig;
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ragbot-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let good_ca = make_ca(&dir, "good");
    let other_ca = make_ca(&dir, "other");
    sign_server_cert(&dir, "good");
    // The server's key must belong to the user PostgreSQL runs as, and be private to it.
    for f in ["server.key", "server.crt"] {
        let path = dir.join(f);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if nix_is_root() {
            let ok = std::process::Command::new("chown")
                .args(["postgres", path.to_str().unwrap()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown postgres");
        }
    }
    // initdb runs in `dir` as the postgres user, and creates `data` itself.
    let pg = TlsPostgres::start(&dir);

    let url = format!("postgres://postgres@localhost:{}/postgres", pg.port);
    let config = |ca: Option<&std::path::Path>| {
        let mut c = DatabaseConfig::for_url(&url, TlsMode::Require);
        c.ca_file = ca.map(std::path::Path::to_path_buf);
        c
    };
    // Verified against the CA file: the connection is TLS (the server says so).
    let client = store::connect_once(&config(Some(&good_ca)))
        .await
        .expect("TLS with the right CA");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the session is encrypted");
    // The pool (what the functions use) verifies the same way.
    let pool = ragbot::store::Store::new(&config(Some(&good_ca))).unwrap();
    let _pooled = pool.client().await.expect("pooled TLS connection");

    // Another CA, or none (only public roots and the RDS bundle): refused, and at once.
    for ca in [Some(other_ca.as_path()), None] {
        let started = std::time::Instant::now();
        let mut c = config(ca);
        c.connect_retry_budget = std::time::Duration::from_secs(20);
        let Err(err) = store::connect_once(&c).await else {
            panic!("an unverified server is refused");
        };
        let text = err.to_string().to_lowercase();
        assert!(
            text.contains("certificate") || text.contains("unknownissuer"),
            "{err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "a certificate that does not verify is not retried"
        );
    }
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn the_rds_ca_bundle_is_the_pinned_registry_package_and_every_certificate_loads() {
    let bundle = ragbot::store::RDS_CA_BUNDLE;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &bundle[..])
        .collect::<Result<_, _>>()
        .expect("PEM certificates");
    assert!(certs.len() >= 100, "{} certificates", certs.len());
    let roots = ragbot::store::trust_roots(None).unwrap();
    assert!(
        roots.len() >= webpki_roots::TLS_SERVER_ROOTS.len() + 100,
        "the RDS roots are trusted: {} roots",
        roots.len()
    );
    // The checked-in file is what infra/rds-ca/update.sh pinned (its sha256).
    let script =
        std::fs::read_to_string(ragbot_tests::repo_root().join("infra/rds-ca/update.sh")).unwrap();
    let pinned = script
        .lines()
        .find_map(|l| l.strip_prefix("SHA256="))
        .expect("a pinned sha256");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bundle);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, pinned);
}

#[test]
fn passwords_in_the_event_win_over_the_environment() {
    // The stack passes them in the event (read at run time); the environment is the local way.
    let event = json!({"RequestType": "Create", "Passwords": {"admin": "a-pw", "migrator": "m-pw", "app": "p-pw"}});
    let s = MigrateSettings::for_event(&event).unwrap();
    assert_eq!(s.admin_password.as_deref(), Some("a-pw"));
    assert_eq!(s.migrator_password, "m-pw");
    assert_eq!(s.app_password, "p-pw");
    let s = MigrateSettings::for_event(&json!({"RequestType": "Create"})).unwrap();
    assert_eq!(s.migrator_password, stack_env("RAGBOT_MIGRATOR_PASSWORD"));
}
