//! The API layer over the real stack: authentication, roles, tenants, rate limits, request limits,
//! request ids, CORS and the OpenAPI document.

use std::{collections::HashMap, sync::Arc};

use axum::body::Body;
use http::{Request, StatusCode};
use ragbot_tests::{Captured, Options, TestApp, TestDb, TestResponse};
use serde_json::{json, Value};

fn qa(title: &str) -> Value {
    json!({
        "document_title": title,
        "question_answer_data": [
            {"question": "What are the opening hours?", "answer": "9 to 5 on weekdays."},
            {"question": "Where is the office?", "answer": "Main Street 1."}
        ]
    })
}

async fn with_model(env: &[(&str, &str)]) -> TestApp {
    let mut vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.entry("EMBEDDING_PROVIDER".into())
        .or_insert_with(|| "local".into());
    TestApp::spawn_with(Options {
        env: vars,
        ..Default::default()
    })
    .await
}

fn assert_error(resp: &TestResponse, status: StatusCode, code: &str, needle: &str) {
    resp.assert_status(status);
    let body = resp.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
    let id = body["error"]["request_id"].as_str().unwrap_or_default();
    assert!(!id.is_empty(), "request id in the body");
    assert_eq!(
        resp.header("x-request-id"),
        Some(id),
        "same id in header and body"
    );
}

#[tokio::test]
async fn missing_expired_forged_and_unsigned_tokens_get_401() {
    let app = TestApp::spawn().await;
    let r = app.call("GET", "/documents", None, None).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing bearer token",
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    let r = app.call("GET", "/documents", Some("not-a-jwt"), None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "malformed");

    let auth = &app.state.config.auth;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |exp: u64, iss: &str| {
        json!({"sub": "u", "roles": ["admin"], "iss": iss, "aud": auth.audience, "exp": exp})
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let secret = auth.jwt_secret.clone().expect("test secret");
    let issuer = auth.issuer.clone().expect("test issuer");

    let expired = ragbot::auth::mint_hs256(&secret, &claims(now - 3600, &issuer)).unwrap();
    let r = app.call("GET", "/documents", Some(&expired), None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "expired");

    let forged = ragbot::auth::mint_hs256(&"f".repeat(40), &claims(now + 600, &issuer)).unwrap();
    let r = app.call("GET", "/documents", Some(&forged), None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "signature");

    let wrong_iss = ragbot::auth::mint_hs256(&secret, &claims(now + 600, "evil")).unwrap();
    let r = app.call("GET", "/documents", Some(&wrong_iss), None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "issuer");

    // alg: none with otherwise valid claims.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&Value::Object(claims(now + 600, &issuer)).to_string())
    );
    let r = app.call("GET", "/documents", Some(&unsigned), None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "algorithm");

    let good = app.token("u", "acme", &["admin"]);
    app.call("GET", "/documents", Some(&good), None)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn roles_are_enforced_and_denials_write_nothing() {
    let app = TestApp::spawn().await;
    let user = app.token("u", "acme", &["user"]);
    let nobody = app.token("n", "acme", &[]);
    let r = app
        .call("POST", "/embed/qa", Some(&user), Some(qa("t")))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", "admin");
    let r = app.call("GET", "/documents", Some(&nobody), None).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", "admin");
    assert_eq!(app.count_rows("documents").await, 0);
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_documents_through_any_route() {
    let app = with_model(&[]).await;
    let a = app.token("alice", "tenant-a", &["admin"]);
    let b = app.token("bob", "tenant-b", &["admin"]);

    let r = app
        .call("POST", "/embed/qa", Some(&a), Some(qa("Handbook")))
        .await;
    r.assert_status(StatusCode::CREATED);
    let a_doc = r.json()["document_id"].as_str().unwrap().to_string();

    // B lists nothing, cannot read or delete A's document by id.
    let r = app.call("GET", "/documents", Some(&b), None).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["documents"], json!([]));
    let r = app
        .call("GET", &format!("/documents/{a_doc}"), Some(&b), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", &a_doc);
    let r = app
        .call("DELETE", &format!("/documents/{a_doc}"), Some(&b), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", &a_doc);

    // The same title in B is B's own document; A's is untouched.
    let r = app
        .call(
            "POST",
            "/agents/embed-data/",
            Some(&b),
            Some(qa("Handbook")),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    let b_doc = r.json()["document_id"].as_str().unwrap().to_string();
    assert_ne!(a_doc, b_doc);
    let r = app
        .call("GET", &format!("/documents/{a_doc}"), Some(&a), None)
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["chunk_count"], 2);
    let r = app.call("GET", "/documents", Some(&a), None).await;
    let listed: Vec<String> = r.json()["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, vec![a_doc.clone()]);

    // A deletes its own; B's survives.
    app.call("DELETE", &format!("/documents/{a_doc}"), Some(&a), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.call("GET", &format!("/documents/{b_doc}"), Some(&b), None)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        app.count_rows("chunks").await,
        2,
        "only B's two chunks remain"
    );
}

#[tokio::test]
async fn row_level_security_scopes_the_app_role_even_without_a_where_clause() {
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let owner = TestDb::connect(&db.migrator_url).await;
    owner
        .batch_execute(
            "INSERT INTO documents (tenant, title, source, source_key, content_sha256, mime)
             VALUES ('a', 'A doc', 'api', 'ka', 's', 'text/plain'),
                    ('b', 'B doc', 'api', 'kb', 's', 'text/plain')",
        )
        .await
        .unwrap();
    let app = TestDb::connect(&db.app_url).await;
    let count = |sql: &'static str| {
        let app = &app;
        async move { app.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM documents").await,
        0,
        "no tenant set: no rows"
    );
    app.batch_execute("BEGIN; SELECT set_config('ragbot.tenant', 'a', true)")
        .await
        .unwrap();
    assert_eq!(count("SELECT count(*) FROM documents").await, 1);
    assert_eq!(
        count("SELECT count(*) FROM documents WHERE tenant = 'b'").await,
        0,
        "b's rows are invisible to a"
    );
    let err = app
        .batch_execute(
            "INSERT INTO documents (tenant, title, source, source_key, content_sha256, mime)
             VALUES ('b', 'sneaky', 'api', 'k2', 's', 'text/plain')",
        )
        .await
        .expect_err("a cannot write b's rows");
    let msg = err
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("row-level security"), "{err:?}");
    app.batch_execute("ROLLBACK").await.unwrap();
    app.batch_execute(
        "BEGIN; SELECT set_config('ragbot.tenant', 'a', true); DELETE FROM documents; COMMIT",
    )
    .await
    .unwrap();
    let left: i64 = owner
        .query_one("SELECT count(*) FROM documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1, "an unqualified DELETE only removed a's row");
}

#[tokio::test]
async fn api_gateway_authorizer_claims_are_used_without_a_token() {
    let app = TestApp::spawn().await;
    let event =
        std::fs::read_to_string(ragbot_tests::repo_root().join("events/documents-list.json"))
            .expect("sample event");
    let req = lambda_http::request::from_str(&event).expect("API Gateway v2 event");
    let r = app.send(req.map(|b| Body::from(b.to_vec()))).await;
    r.assert_status(StatusCode::OK);
    // The event's request id is API Gateway's.
    assert_eq!(r.header("x-request-id"), Some("Jn7bAhVrIAMEVeQ="));

    // A user (not admin) per the authorizer is denied.
    let event = event.replace("[admin user]", "[user]");
    let req = lambda_http::request::from_str(&event).expect("event");
    let r = app.send(req.map(|b| Body::from(b.to_vec()))).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", "admin");
}

#[tokio::test]
async fn es256_tokens_verify_against_a_jwks_served_over_http() {
    use aws_lc_rs::{
        rand::SystemRandom, signature::EcdsaKeyPair, signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};

    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("EC key");
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("JWK from key");
    jwk.common.key_id = Some("key-1".into());
    let jwks = json!({"keys": [jwk]}).to_string();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = "https://cognito-idp.local/pool";
    tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || async move { jwks.clone() }),
        );
        axum::serve(listener, router).await.ok();
    });
    let app = TestApp::spawn_with(Options {
        env: HashMap::from([
            (
                "JWT_JWKS_URL".into(),
                format!("http://{addr}/.well-known/jwks.json"),
            ),
            ("JWT_ISSUER".into(), issuer.into()),
            ("JWT_AUDIENCE".into(), "client-123".into()),
        ]),
        ..Default::default()
    })
    .await;
    let now = jsonwebtoken::get_current_timestamp();
    let sign = |kid: &str| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        // A Cognito access token: client_id instead of aud, groups as the roles.
        let claims = json!({"sub": "c-1", "iss": issuer, "client_id": "client-123", "exp": now + 600,
                            "cognito:groups": ["admin"], "custom:tenant": "acme"});
        jsonwebtoken::encode(&h, &claims, &key).expect("sign")
    };
    app.call("GET", "/documents", Some(&sign("key-1")), None)
        .await
        .assert_status(StatusCode::OK);
    let r = app
        .call("GET", "/documents", Some(&sign("key-2")), None)
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "unknown key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_holds_under_parallel_requests() {
    let app = TestApp::spawn_with(Options {
        env: HashMap::from([("RATE_LIMIT_ADMIN".into(), "5".into())]),
        ..Default::default()
    })
    .await;
    let token = app.token("burst", "acme", &["admin"]);
    let app = Arc::new(app);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (app, token) = (app.clone(), token.clone());
        set.spawn(async move { app.call("GET", "/documents", Some(&token), None).await });
    }
    let mut ok = 0;
    let mut limited = 0;
    while let Some(r) = set.join_next().await {
        let r = r.expect("task");
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let retry: u64 = r
                    .header("retry-after")
                    .expect("Retry-After")
                    .parse()
                    .unwrap();
                assert!((1..=86_400).contains(&retry), "{retry}");
                assert_eq!(r.json()["error"]["code"], "rate_limited");
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    assert_eq!((ok, limited), (5, 19), "exactly the limit got through");
    // Another principal has its own counter.
    let other = app.token("calm", "acme", &["admin"]);
    app.call("GET", "/documents", Some(&other), None)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn unreachable_rate_limit_counters_fail_open_by_default_and_closed_on_request() {
    let dead = [
        (
            "AWS_ENDPOINT_URL_DYNAMODB".to_string(),
            "http://127.0.0.1:9".to_string(),
        ),
        (
            "RAGBOT_CREATE_LOCAL_RESOURCES".to_string(),
            "false".to_string(),
        ),
        ("RATE_LIMIT_USER".to_string(), "1".to_string()),
        ("RATE_LIMIT_ADMIN".to_string(), "1".to_string()),
        ("RATE_LIMIT_TIMEOUT_MS".to_string(), "500".to_string()),
    ];
    let open = TestApp::spawn_with(Options {
        env: HashMap::from(dead.clone()),
        ..Default::default()
    })
    .await;
    let token = open.token("u", "acme", &["admin"]);
    for _ in 0..3 {
        open.call("GET", "/documents", Some(&token), None)
            .await
            .assert_status(StatusCode::OK);
    }
    let mut env = HashMap::from(dead);
    env.insert("RATE_LIMIT_ON_ERROR".into(), "closed".into());
    let closed = TestApp::spawn_with(Options {
        env,
        ..Default::default()
    })
    .await;
    let r = closed.call("GET", "/documents", Some(&token), None).await;
    assert_error(
        &r,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "rate limiter",
    );
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_write_nothing() {
    let app = with_model(&[("MAX_BODY_BYTES", "2048")]).await;
    let t = app.token("admin", "acme", &["admin"]);

    let r = app
        .send(
            Request::post("/embed/qa")
                .header("authorization", format!("Bearer {t}"))
                .header("content-type", "text/plain")
                .body(Body::from(qa("x").to_string()))
                .unwrap(),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/json",
    );

    let r = app
        .send(
            Request::post("/embed/qa")
                .header("authorization", format!("Bearer {t}"))
                .header("content-type", "application/json")
                .body(Body::from("{\"document_title\": "))
                .unwrap(),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "malformed_json",
        "malformed JSON",
    );

    let missing = json!({"document_title": "t", "question_answer_data": [{"question": "q"}]});
    let r = app.call("POST", "/embed/qa", Some(&t), Some(missing)).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "question_answer_data[0]",
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("answer"));

    let empty =
        json!({"document_title": "t", "question_answer_data": [{"question": "q", "answer": " "}]});
    let r = app.call("POST", "/embed/qa", Some(&t), Some(empty)).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "question_answer_data[0].answer",
    );

    let big = json!({"document_title": "t", "question_answer_data": [{"question": "q", "answer": "a".repeat(4096)}]});
    let r = app.call("POST", "/embed/qa", Some(&t), Some(big)).await;
    assert_error(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "MAX_BODY_BYTES",
    );

    let r = app.call("GET", "/documents?limit=0", Some(&t), None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed", "limit");
    let r = app
        .call("GET", "/documents/not-a-uuid", Some(&t), None)
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "not a document id",
    );

    assert_eq!(app.count_rows("documents").await, 0);
    assert_eq!(app.count_rows("chunks").await, 0);
}

#[tokio::test]
async fn the_request_id_is_in_the_error_body_the_header_and_every_log_line() {
    let app = TestApp::spawn().await;
    let logs = Captured::default();
    let _guard = logs.install();

    let user = app.token("u", "acme", &["user"]);
    let r = app
        .send(
            Request::get("/documents")
                .header("authorization", format!("Bearer {user}"))
                .header("x-request-id", "trace-me-42")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", "admin");
    assert_eq!(r.json()["error"]["request_id"], "trace-me-42");

    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(
        lines.len() >= 2,
        "at least the rejection and the completion: {text}"
    );
    for line in &lines {
        assert_eq!(line["span"]["request_id"], "trace-me-42", "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["tenant"] == "acme" && l["span"]["subject"] == "u"),
        "the principal is on the span: {text}"
    );
    assert!(!text.contains(&user), "the token never reaches the logs");
}

#[tokio::test]
async fn cors_preflight_is_answered_for_allowed_origins() {
    let app = TestApp::spawn_with(Options {
        env: HashMap::from([(
            "CORS_ALLOWED_ORIGINS".into(),
            "https://app.example.com".into(),
        )]),
        ..Default::default()
    })
    .await;
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/embed/qa")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let r = app.send(preflight("https://app.example.com")).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = app.send(preflight("https://evil.example.com")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn every_served_route_is_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let r = app.get("/openapi.json").await;
    r.assert_status(StatusCode::OK);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let paths = doc["paths"].as_object().expect("paths");
    for expected in [
        "/health",
        "/health/db",
        "/health/ready",
        "/openapi.json",
        "/embed/qa",
        "/agents/embed-data/",
        "/documents",
        "/documents/{id}",
    ] {
        assert!(
            paths.contains_key(expected),
            "{expected} missing from the document"
        );
    }
    // Every documented operation reaches a handler (not the unknown-route/method fallbacks).
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let uri = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
            let r = app.call(&method.to_uppercase(), &uri, None, None).await;
            let code = if r.body.is_empty() {
                Value::Null
            } else {
                r.json()["error"]["code"].clone()
            };
            assert!(
                code != "method_not_allowed"
                    && !(r.status == StatusCode::NOT_FOUND
                        && r.json()["error"]["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("no route"))),
                "{method} {path} is documented but not served: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    // And nothing is served around the document: routes are only added through utoipa-axum's
    // `routes!`, which documents them. A plain `.route(` would bypass it.
    for dir in ["shared/src", "functions"] {
        for file in rust_files(&ragbot_tests::repo_root().join(dir)) {
            let src = std::fs::read_to_string(&file).unwrap();
            assert!(
                !src.contains(".route(\"") && !src.contains(".route_service("),
                "{} adds a route that the OpenAPI document does not know",
                file.display()
            );
        }
    }
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// An RS256 signing key and an HTTP server that serves its JWKS (as Cognito's
/// `/.well-known/jwks.json`), answering 500 while `broken` is set; counts the fetches.
struct Issuer {
    key: jsonwebtoken::EncodingKey,
    url: String,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl Issuer {
    async fn start() -> Issuer {
        use aws_lc_rs::{
            rand::SystemRandom, signature::EcdsaKeyPair, signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        };
        use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey};
        use std::sync::atomic::Ordering;
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("EC key");
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("JWK from key");
        jwk.common.key_id = Some("key-1".into());
        let jwks = json!({"keys": [jwk]}).to_string();
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (f, b) = (fetches.clone(), broken.clone());
        tokio::spawn(async move {
            let router = axum::Router::new().route(
                "/.well-known/jwks.json",
                axum::routing::get(move || {
                    let (jwks, f, b) = (jwks.clone(), f.clone(), b.clone());
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        if b.load(Ordering::SeqCst) {
                            (StatusCode::INTERNAL_SERVER_ERROR, String::new())
                        } else {
                            (StatusCode::OK, jwks)
                        }
                    }
                }),
            );
            axum::serve(listener, router).await.ok();
        });
        Issuer {
            key,
            url: format!("http://{addr}/.well-known/jwks.json"),
            fetches,
            broken,
        }
    }

    fn env(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env = HashMap::from([
            ("JWT_JWKS_URL".to_string(), self.url.clone()),
            ("JWT_ISSUER".to_string(), COGNITO_ISSUER.to_string()),
            ("JWT_AUDIENCE".to_string(), COGNITO_CLIENT.to_string()),
        ]);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, &self.key).expect("sign")
    }
}

const COGNITO_ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI";
const COGNITO_CLIENT: &str = "4hpf2a9ir0example0client";

/// The claims of a Cognito access token as the user pool issues it: no audience (`client_id`
/// instead), no custom attributes, groups as `cognito:groups`.
fn cognito_access_token(extra: Value) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    let mut c = json!({
        "sub": "a1b2c3d4-0000-4000-8000-00000000abcd",
        "cognito:groups": ["admin"],
        "iss": COGNITO_ISSUER,
        "version": 2,
        "client_id": COGNITO_CLIENT,
        "origin_jti": "0b1c2d3e-0000-4000-8000-000000000001",
        "event_id": "5e6f7a8b-0000-4000-8000-000000000002",
        "token_use": "access",
        "scope": "openid email",
        "auth_time": now - 5,
        "exp": now + 3600,
        "iat": now - 5,
        "jti": "9c8d7e6f-0000-4000-8000-000000000003",
        "username": "a1b2c3d4-0000-4000-8000-00000000abcd"
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

/// The claims of a Cognito ID token: `aud` is the client, custom attributes are included.
fn cognito_id_token(extra: Value) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    let mut c = json!({
        "sub": "a1b2c3d4-0000-4000-8000-00000000abcd",
        "cognito:groups": ["admin"],
        "email_verified": true,
        "iss": COGNITO_ISSUER,
        "cognito:username": "a1b2c3d4-0000-4000-8000-00000000abcd",
        "origin_jti": "0b1c2d3e-0000-4000-8000-000000000001",
        "aud": COGNITO_CLIENT,
        "event_id": "5e6f7a8b-0000-4000-8000-000000000002",
        "token_use": "id",
        "auth_time": now - 5,
        "exp": now + 3600,
        "iat": now - 5,
        "jti": "9c8d7e6f-0000-4000-8000-000000000004",
        "email": "ana@example.com"
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

#[tokio::test]
async fn cognito_tokens_without_a_tenant_are_refused_unless_the_deployment_is_single_tenant() {
    let issuer = Issuer::start().await;
    let app = TestApp::spawn_with(Options {
        env: issuer.env(&[("EMBEDDING_PROVIDER", "local")]),
        ..Default::default()
    })
    .await;
    app.call(
        "POST",
        "/embed/qa",
        Some(&app.token("admin", "acme", &["admin"])),
        Some(qa("Acme")),
    )
    .await
    .assert_status(StatusCode::CREATED);

    // What Cognito issues without the stack's pre-token-generation trigger: no tenant at all.
    let bare = issuer.sign("key-1", &cognito_access_token(json!({})));
    let r = app.call("GET", "/documents", Some(&bare), None).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "names no tenant",
    );
    // The same through the HTTP API's authorizer (claims in the request context).
    let event =
        std::fs::read_to_string(ragbot_tests::repo_root().join("events/documents-list.json"))
            .unwrap()
            .replace(r#""tenant": "acme","#, "");
    let req = lambda_http::request::from_str(&event).expect("event");
    let r = app.send(req.map(|b| Body::from(b.to_vec()))).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "names no tenant",
    );

    // With the trigger, the access token carries `tenant`; an ID token carries `custom:tenant`.
    for token in [
        issuer.sign("key-1", &cognito_access_token(json!({"tenant": "acme"}))),
        issuer.sign("key-1", &cognito_id_token(json!({"custom:tenant": "acme"}))),
    ] {
        let r = app.call("GET", "/documents", Some(&token), None).await;
        r.assert_status(StatusCode::OK);
        assert_eq!(r.json()["documents"][0]["title"], "Acme", "{}", r.json());
    }
    // Another tenant's token sees none of acme's documents.
    let other = issuer.sign("key-1", &cognito_access_token(json!({"tenant": "globex"})));
    let r = app.call("GET", "/documents", Some(&other), None).await;
    assert_eq!(r.json()["documents"], json!([]));

    // A single-tenant deployment says so explicitly, and then a bare token is its tenant's.
    let single = TestApp::spawn_with(Options {
        env: issuer.env(&[("TENANCY", "single"), ("TENANT_CODE", "acme")]),
        database: Some(app.db.clone()),
        ..Default::default()
    })
    .await;
    let r = single.call("GET", "/documents", Some(&bare), None).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["documents"][0]["title"], "Acme");
}

#[tokio::test]
async fn an_unreachable_jwks_is_not_fetched_again_for_every_token() {
    use std::sync::atomic::Ordering;
    let issuer = Issuer::start().await;
    issuer.broken.store(true, Ordering::SeqCst);
    let app = TestApp::spawn_with(Options {
        env: issuer.env(&[]),
        ..Default::default()
    })
    .await;
    let at_start = issuer.fetches.load(Ordering::SeqCst);
    assert_eq!(at_start, 1, "fetched once at start-up");
    let token = issuer.sign("key-1", &cognito_access_token(json!({"tenant": "acme"})));
    let calls = (0..8).map(|_| app.call("GET", "/documents", Some(&token), None));
    for r in futures_util::future::join_all(calls).await {
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "unknown key");
    }
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        at_start,
        "a failed fetch is not repeated for each token"
    );
    // Once the issuer is back and the negative cache has run out, the key is found.
    issuer.broken.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(10_200)).await;
    app.call("GET", "/documents", Some(&token), None)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), at_start + 1);
}
