//! Backups over the real stack: `POST /backups` / `GET /backups` against PostgreSQL and the S3
//! server, restore (round trip, and a tampered backup changing nothing), and the scheduled event
//! through the backup function's dispatch.

use axum::http::StatusCode;
use ragbot::lambda::{dispatch, Triggers};
use ragbot_tests::{repo_root, TestApp, TestDb};
use serde_json::Value;

/// Two documents with chunks, and a conversation with two messages, for `tenant` (written as the
/// schema owner; the vectors are arbitrary but distinct).
async fn fill(app: &TestApp, tenant: &str) {
    let c = TestDb::connect(&app.db.migrator_url).await;
    c.execute(
        "WITH d AS (
             INSERT INTO documents (tenant, title, source, source_key, content_sha256, mime, status, metadata, chunk_count)
             SELECT $1, 'Doc ' || i, 'api', 'api:' || $1 || ':' || i, 'sha' || i, 'text/plain', 'ready',
                    jsonb_build_object('team', 'ops', 'n', i), 3
             FROM generate_series(1, 2) i RETURNING id, tenant)
         INSERT INTO chunks (document_id, tenant, ordinal, text, question, answer, metadata, embedding, embedding_model, token_count)
         SELECT d.id, d.tenant, o, 'Chunk ' || o || ' about backups and \"quotes\" ünïcode',
                CASE WHEN o = 0 THEN 'How are backups kept?' END, CASE WHEN o = 0 THEN 'For 30 days.' END,
                jsonb_build_object('o', o),
                (SELECT array_agg(sin(o * 384 + k + random()))::real[]::vector FROM generate_series(1, 384) k),
                'sentence-transformers/all-MiniLM-L6-v2', 12
         FROM d, generate_series(0, 2) o",
        &[&tenant],
    )
    .await
    .expect("documents and chunks");
    c.execute(
        "WITH conv AS (INSERT INTO conversations (tenant, subject, title) VALUES ($1, 'user-1', 'Backups')
                       RETURNING id, tenant)
         INSERT INTO messages (conversation_id, tenant, role, content, citations, provider, model, latency_ms)
         SELECT id, tenant, r, 'message ' || r, '[{\"chunk\": 1}]'::jsonb, 'extractive', 'none', 7
         FROM conv, unnest(ARRAY['user', 'assistant']) r",
        &[&tenant],
    )
    .await
    .expect("conversation");
}

/// Every backed-up column of every row of `tenant`, as text, in a stable order.
async fn snapshot(app: &TestApp, tenant: &str) -> Vec<String> {
    let c = TestDb::connect(&app.db.migrator_url).await;
    let mut out = Vec::new();
    for sql in [
        "SELECT row_to_json(x)::text FROM (SELECT id, title, source, source_key, content_sha256, status, metadata, chunk_count, created_at, updated_at FROM documents WHERE tenant = $1 ORDER BY id) x",
        "SELECT row_to_json(x)::text FROM (SELECT id, document_id, ordinal, text, question, answer, metadata, embedding::text, embedding_model, token_count, tsv::text, created_at FROM chunks WHERE tenant = $1 ORDER BY id) x",
        "SELECT row_to_json(x)::text FROM (SELECT id, subject, title, created_at FROM conversations WHERE tenant = $1 ORDER BY id) x",
        "SELECT row_to_json(x)::text FROM (SELECT id, conversation_id, role, content, citations, provider, latency_ms, created_at FROM messages WHERE tenant = $1 ORDER BY id) x",
    ] {
        for row in c.query(sql, &[&tenant]).await.expect("snapshot") {
            out.push(row.get(0));
        }
    }
    out
}

#[tokio::test]
async fn backup_then_restore_gives_back_exactly_the_tenants_rows() {
    let app = TestApp::spawn().await;
    fill(&app, "acme").await;
    fill(&app, "globex").await;
    let before = snapshot(&app, "acme").await;
    assert_eq!(before.len(), 2 + 6 + 1 + 2);
    let admin = app.token("ops", "acme", &["admin"]);

    let r = app.call("POST", "/backups", Some(&admin), None).await;
    r.assert_status(StatusCode::CREATED);
    let manifest = r.json();
    assert_eq!(manifest["tenant"], "acme");
    assert_eq!(
        manifest["counts"],
        serde_json::json!({"documents": 2, "chunks": 6, "conversations": 1, "messages": 2})
    );
    let key = manifest["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("backups/acme/") && key.ends_with(".jsonl.gz"));

    // Listed, newest first; another tenant's admin sees none of it.
    let second = app.call("POST", "/backups", Some(&admin), None).await;
    second.assert_status(StatusCode::CREATED);
    let list = app.call("GET", "/backups", Some(&admin), None).await;
    list.assert_status(StatusCode::OK);
    let listed: Vec<String> = list.json()["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|m| m["key"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        listed,
        vec![
            second.json()["key"].as_str().unwrap().to_string(),
            key.clone()
        ]
    );
    let other = app.token("ops", "globex", &["admin"]);
    let theirs = app.call("GET", "/backups", Some(&other), None).await.json();
    assert_eq!(theirs["backups"], serde_json::json!([]));

    // Lose and change data, then restore: exactly the backed-up rows come back (ids, embeddings,
    // metadata, timestamps; the generated tsvector too), and globex is untouched.
    let globex = snapshot(&app, "globex").await;
    let c = TestDb::connect(&app.db.migrator_url).await;
    c.batch_execute(
        "DELETE FROM documents WHERE tenant = 'acme' AND title = 'Doc 1';
         UPDATE chunks SET text = 'changed' WHERE tenant = 'acme';
         DELETE FROM conversations WHERE tenant = 'acme';",
    )
    .await
    .expect("damage");
    assert_ne!(snapshot(&app, "acme").await, before);
    let restored = app.state.backups().restore(&key).await.expect("restore");
    assert_eq!(restored.counts.chunks, 6);
    assert_eq!(snapshot(&app, "acme").await, before);
    assert_eq!(snapshot(&app, "globex").await, globex);
}

#[tokio::test]
async fn a_tampered_backup_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    fill(&app, "acme").await;
    let manifest = app
        .state
        .backups()
        .create(&ragbot::auth::Tenant::parse("acme").unwrap())
        .await
        .expect("backup");
    let c = TestDb::connect(&app.db.migrator_url).await;
    c.batch_execute("DELETE FROM conversations WHERE tenant = 'acme'")
        .await
        .expect("change");
    let before = snapshot(&app, "acme").await;

    // Different bytes under the backup's key: the checksum no longer matches.
    app.state
        .aws
        .s3
        .put_object()
        .bucket(&app.state.aws.backups_bucket)
        .key(&manifest.key)
        .body(b"not a backup".to_vec().into())
        .send()
        .await
        .expect("overwrite");
    let err = app
        .state
        .backups()
        .restore(&manifest.key)
        .await
        .expect_err("tampered backup");
    assert!(err.to_string().contains("sha256"), "{err}");
    assert_eq!(snapshot(&app, "acme").await, before);

    let missing = app
        .state
        .backups()
        .restore("backups/acme/nope.jsonl.gz")
        .await
        .expect_err("missing backup");
    assert!(missing.to_string().contains("no backup"), "{missing}");
}

#[tokio::test]
async fn the_schedule_backs_up_every_tenant_and_only_the_backup_function_takes_it() {
    let app = TestApp::spawn().await;
    fill(&app, "acme").await;
    fill(&app, "globex").await;
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("events/backup-schedule.json"))
            .expect("events/backup-schedule.json"),
    )
    .expect("event JSON");

    let out = dispatch(
        app.router.clone(),
        &app.state,
        Triggers::Backup,
        event.clone(),
        Default::default(),
    )
    .await
    .expect("scheduled backup");
    let tenants: Vec<&str> = out["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter_map(|m| m["tenant"].as_str())
        .collect();
    assert_eq!(tenants, vec!["acme", "globex"]);
    for t in ["acme", "globex"] {
        let list = app
            .state
            .backups()
            .list(&ragbot::auth::Tenant::parse(t).unwrap(), 10)
            .await
            .expect("list");
        assert_eq!(list.len(), 1, "{t}");
        assert_eq!(list[0].counts.chunks, 6);
    }

    // The embed function must not start backups on a misrouted schedule.
    let refused = dispatch(
        app.router.clone(),
        &app.state,
        Triggers::S3,
        event,
        Default::default(),
    )
    .await
    .expect_err("embed refuses schedules");
    assert!(
        refused.to_string().contains("scheduled events"),
        "{refused}"
    );
}

#[tokio::test]
async fn only_admins_back_up() {
    let app = TestApp::spawn().await;
    let user = app.token("u1", "acme", &["user"]);
    for method in ["GET", "POST"] {
        let r = app.call(method, "/backups", Some(&user), None).await;
        r.assert_status(StatusCode::FORBIDDEN);
        let r = app.call(method, "/backups", None, None).await;
        r.assert_status(StatusCode::UNAUTHORIZED);
    }
    let admin = app.token("ops", "acme", &["admin"]);
    let r = app.call("GET", "/backups", Some(&admin), None).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["backups"], serde_json::json!([]));
}
