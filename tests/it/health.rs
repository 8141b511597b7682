use std::{
    future::IntoFuture,
    time::{Duration, Instant},
};

use axum::body::Body;
use http::{Request, StatusCode};
use ragbot_tests::{repo_root, Options, PrivatePostgres, TestApp, TestResponse};
use tower::ServiceExt;

#[tokio::test]
async fn liveness_reports_version_without_io() {
    let app = TestApp::spawn().await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status, StatusCode::OK);
    let body = resp.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    assert!(resp.header("x-request-id").is_some_and(|id| !id.is_empty()));
}

/// `GET path` with an admin token: public health routes show admins the detail.
async fn admin_get(app: &TestApp, path: &str) -> TestResponse {
    let token = app.token("ops", "default", &["admin"]);
    app.call("GET", path, Some(&token), None).await
}

#[tokio::test]
async fn database_health_reports_pgvector_and_latency() {
    let app = TestApp::spawn().await;
    // Anyone sees the status and latency, not what the server runs.
    let public = app.get("/health/db").await;
    public.assert_status(StatusCode::OK);
    let body = public.json();
    assert_eq!(body["status"], "ok");
    assert!(body["latency_ms"].as_f64().is_some(), "{body}");
    for field in ["database", "database_name", "pgvector"] {
        assert!(body[field].is_null(), "{field} is not public: {body}");
    }
    // A user token is not enough for the detail.
    let user = app.token("u", "default", &["user"]);
    let body = app
        .call("GET", "/health/db", Some(&user), None)
        .await
        .json();
    assert!(body["pgvector"].is_null(), "{body}");

    let resp = admin_get(&app, "/health/db").await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["pgvector"], "0.8.2");
    assert!(
        body["database"]
            .as_str()
            .is_some_and(|d| d.starts_with("PostgreSQL 18")),
        "{body}"
    );
    assert_eq!(body["database_name"], app.db.name.as_str());
    assert!(
        body["latency_ms"]
            .as_f64()
            .is_some_and(|l| (0.0..5000.0).contains(&l)),
        "{body}"
    );
    assert!(body.get("error").is_none());
}

#[tokio::test]
async fn database_health_goes_503_when_postgres_stops_and_recovers_when_it_returns() {
    let pg = PrivatePostgres::start();
    let app = TestApp::spawn_with(Options {
        admin_url: Some(pg.admin_url()),
        ..Default::default()
    })
    .await;

    let resp = app.get("/health/db").await;
    resp.assert_status(StatusCode::OK);

    pg.stop();
    let started = Instant::now();
    let resp = app.get("/health/db").await;
    let took = started.elapsed();
    resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        took < Duration::from_secs(5) + Duration::from_millis(500),
        "answered after {took:?}"
    );
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["status"], "unavailable");
    // The public answer names no host, port or driver error; an admin reads the real one.
    assert_eq!(body["error"], ragbot::health::REDACTED_ERROR, "{body}");
    assert!(body["pgvector"].is_null());
    let admin = admin_get(&app, "/health/db").await.json();
    let error = admin["error"].as_str().unwrap_or_default();
    assert!(
        !error.is_empty() && error != ragbot::health::REDACTED_ERROR,
        "{admin}"
    );

    // Readiness reports the database down too.
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["checks"]["database"]["status"], "unavailable");

    pg.start_again();
    // The pool drops the dead connection (verified recycling) and reconnects.
    let resp = admin_get(&app, "/health/db").await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.json()["pgvector"], "0.8.2");
}

#[tokio::test]
async fn readiness_reaches_s3_and_dynamodb() {
    let app = TestApp::spawn().await;
    let resp = app.get("/health/ready").await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["status"], "ready");
    for dep in ["database", "s3", "dynamodb"] {
        assert_eq!(body["checks"][dep]["status"], "ok", "{dep}: {body}");
        assert!(
            body["checks"][dep]["latency_ms"].as_f64().is_some(),
            "{dep}: {body}"
        );
    }
    assert_eq!(body["checks"]["embedder"]["status"], "not configured");

    // The buckets and table were really created on the servers (not assumed).
    let aws = &app.state.aws;
    aws.s3
        .head_bucket()
        .bucket(&aws.documents_bucket)
        .send()
        .await
        .expect("documents bucket exists");
    let table = aws
        .dynamodb
        .describe_table()
        .table_name(&aws.state_table)
        .send()
        .await
        .expect("table exists");
    assert_eq!(
        table.table().and_then(|t| t.table_name()),
        Some(aws.state_table.as_str())
    );
}

#[tokio::test]
async fn readiness_reports_a_missing_bucket_and_table() {
    // Point at resources that do not exist and do not create them: the servers must say so.
    let app = TestApp::spawn_with(Options {
        env: [
            ("RAGBOT_CREATE_LOCAL_RESOURCES", "false"),
            ("DOCUMENTS_BUCKET", "no-such-bucket-ragbot"),
            ("STATE_TABLE", "no-such-table-ragbot"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Default::default()
    })
    .await;
    let public = app.get("/health/ready").await.json();
    assert_eq!(public["checks"]["s3"]["status"], "unavailable", "{public}");
    assert_eq!(
        public["checks"]["dynamodb"]["error"],
        ragbot::health::REDACTED_ERROR
    );
    let resp = admin_get(&app, "/health/ready").await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["s3"]["status"], "unavailable", "{body}");
    assert_eq!(
        body["checks"]["dynamodb"]["status"], "unavailable",
        "{body}"
    );
    assert!(
        body["checks"]["dynamodb"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("DescribeTable")),
        "{body}"
    );
}

/// The same handler behind a Lambda event (API Gateway HTTP API v2) gives the same response.
#[tokio::test]
async fn health_through_a_lambda_event_matches_the_direct_response() {
    let app = TestApp::spawn().await;
    for (file, path) in [
        ("health-db.json", "/health/db"),
        ("health-ready.json", "/health/ready"),
        ("health.json", "/health"),
    ] {
        let event =
            std::fs::read_to_string(repo_root().join("events").join(file)).expect("event file");
        let req = lambda_http::request::from_str(&event).expect("a valid API Gateway v2 event");
        assert_eq!(req.uri().path(), path);
        let via_lambda =
            TestResponse::from(app.router.clone().oneshot(req).await.expect("router")).await;
        let direct = app.get(path).await;

        assert_eq!(
            via_lambda.status,
            StatusCode::OK,
            "{file}: {}",
            String::from_utf8_lossy(&via_lambda.body)
        );
        assert_eq!(via_lambda.status, direct.status, "{file}");
        assert_eq!(
            via_lambda.header("cache-control"),
            direct.header("cache-control"),
            "{file}"
        );
        let (a, b) = (via_lambda.json(), direct.json());
        assert_eq!(a["status"], b["status"], "{file}");
        assert_eq!(keys(&a), keys(&b), "{file}");
        if path == "/health/db" {
            assert_eq!(a["status"], "ok");
            assert_eq!(a["pgvector"], b["pgvector"], "{file}");
        }
        // The request id is API Gateway's.
        let expected = serde_json::from_str::<serde_json::Value>(&event).unwrap()["requestContext"]
            ["requestId"]
            .clone();
        assert_eq!(
            via_lambda.header("x-request-id"),
            expected.as_str(),
            "{file}"
        );
    }
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn unknown_routes_get_the_error_envelope_with_the_request_id() {
    let app = TestApp::spawn().await;
    let req = Request::get("/nope")
        .header("x-request-id", "req-from-client-42")
        .body(Body::empty())
        .unwrap();
    let resp = app.send(req).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.header("x-request-id"), Some("req-from-client-42"));
    let body = resp.json();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "req-from-client-42");
    assert!(body["error"]["message"].as_str().unwrap().contains("/nope"));

    let resp = app
        .send(Request::post("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
    let body = resp.json();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert_eq!(
        resp.header("x-request-id"),
        body["error"]["request_id"].as_str()
    );
}

/// The dev server path: the same router served over a real TCP socket.
#[tokio::test]
async fn dev_server_serves_health_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app.router.clone()).into_future());

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let token = app.token("ops", "default", &["admin"]);
    stream
        .write_all(
            format!("GET /health/db HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    server.abort();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("cache-control: no-store"),
        "{raw}"
    );
    assert!(raw.contains("\"pgvector\":\"0.8.2\""), "{raw}");
}

/// A server that accepts connections and never answers (a hung dependency).
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn aws_calls_to_a_hung_endpoint_fail_within_their_timeout() {
    let endpoint = black_hole().await;
    let settings = ragbot::Config::from_lookup(|k| match k {
        "AWS_ENDPOINT_URL_S3" | "AWS_ENDPOINT_URL_DYNAMODB" => Some(endpoint.clone()),
        "AWS_S3_TIMEOUT_MS" | "AWS_DYNAMODB_TIMEOUT_MS" => Some("600".into()),
        "RAGBOT_ENV" => Some("test".into()),
        "DATABASE_URL" => Some("postgres://x@127.0.0.1:1/x".into()),
        _ => std::env::var(k).ok(),
    })
    .unwrap()
    .aws;
    let aws = ragbot::aws::AwsClients::new(&settings).await;
    for (name, call) in [
        (
            "s3",
            Box::pin(aws.ping_s3()) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>,
        ),
        ("dynamodb", Box::pin(aws.ping_dynamodb())),
    ] {
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(10), call).await;
        let took = started.elapsed();
        let err = outcome
            .unwrap_or_else(|_| panic!("{name}: the call hung for 10 s"))
            .expect_err("a black hole answers nothing");
        assert!(
            took < Duration::from_secs(3),
            "{name}: failed after {took:?}: {err}"
        );
    }
}

#[tokio::test]
async fn every_transaction_has_a_statement_timeout_and_a_failed_begin_does_not_poison_the_pool() {
    let app = TestApp::spawn_with(Options {
        env: [
            ("DATABASE_STATEMENT_TIMEOUT_MS", "400"),
            ("DATABASE_LONG_STATEMENT_TIMEOUT_MS", "5000"),
            ("DATABASE_POOL_SIZE", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Default::default()
    })
    .await;
    let tenant = ragbot::auth::Tenant::parse("acme").unwrap();
    let store = &app.state.store;
    let tx = store.begin(&tenant).await.unwrap();
    let shown: String = tx.query("SHOW statement_timeout", &[]).await.unwrap()[0].get(0);
    assert_eq!(shown, "400ms");
    let started = Instant::now();
    let err = tx
        .query("SELECT pg_sleep(3)", &[])
        .await
        .expect_err("cancelled by the statement timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.to_string().contains("statement timeout"), "{err}");
    drop(tx);
    let long = store.begin_long(&tenant).await.unwrap();
    let shown: String = long.query("SHOW statement_timeout", &[]).await.unwrap()[0].get(0);
    assert_eq!(shown, "5s");
    long.commit().await.unwrap();

    // BEGIN succeeds, the rest of its batch fails: that connection (the pool's only one) must not
    // be handed to the next caller in its aborted transaction.
    let Err(err) = store.begin_with(&tenant, &[("work_mem", "lots")]).await else {
        panic!("an invalid setting fails the batch");
    };
    assert!(err.to_string().contains("work_mem"), "{err}");
    let tx = store.begin(&tenant).await.expect("a clean connection");
    let one: i32 = tx.query("SELECT 1", &[]).await.unwrap()[0].get(0);
    assert_eq!(one, 1);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn the_first_request_while_the_database_comes_back_waits_for_it_or_gets_503_with_retry_after()
{
    let pg = PrivatePostgres::start();
    let env = |retry_ms: &str| {
        [
            ("DATABASE_CONNECT_RETRY_MS", retry_ms),
            ("DATABASE_CONNECT_TIMEOUT_MS", "1000"),
            ("HEALTH_DEPENDENCY_TIMEOUT_MS", "1500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let patient = TestApp::spawn_with(Options {
        admin_url: Some(pg.admin_url()),
        env: env("20000"),
        ..Default::default()
    })
    .await;
    let hasty = TestApp::spawn_with(Options {
        admin_url: Some(pg.admin_url()),
        env: env("2000"),
        database: Some(patient.db.clone()),
    })
    .await;
    let t = patient.token("ops", "acme", &["admin"]);
    patient
        .call("GET", "/documents", Some(&t), None)
        .await
        .assert_status(StatusCode::OK);

    // The database goes away, as Aurora does when it pauses; it is back 10 s after the request.
    pg.stop();
    let started = Instant::now();
    let pg = std::sync::Arc::new(pg);
    let restart = {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(10));
            pg.start_again();
        })
    };
    // Meanwhile a request whose retry budget is short gets a clear 503 saying when to retry.
    let r = hasty.call("GET", "/documents", Some(&t), None).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "answered after {:?}",
        started.elapsed()
    );
    r.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("starting"));
    // The patient one waits for the database and answers, well inside API Gateway's 30 s.
    let r = patient.call("GET", "/documents", Some(&t), None).await;
    let took = started.elapsed();
    r.assert_status(StatusCode::OK);
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(25),
        "took {took:?}"
    );
    restart.await.unwrap();

    // A database that holds connections without answering (resuming) makes readiness `starting`.
    let pid = pg.postmaster_pid();
    let admin = ragbot_tests::TestDb::connect(&pg.admin_url()).await;
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .await
        .unwrap();
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let ready = patient.get("/health/ready").await;
    signal("-CONT");
    ready.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let body = ready.json();
    assert_eq!(body["status"], "starting", "{body}");
    assert_eq!(ready.header("retry-after"), Some("5"));
    assert_eq!(body["checks"]["database"]["status"], "starting", "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = patient.get("/health/ready").await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json()["status"], "ready");
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {:?}", r.json());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
