//! The embed function over the real stack: every format through `POST /documents`, S3 events
//! (redelivered, concurrent, removed, URL-encoded keys, sidecar metadata), atomic replacement,
//! and bad input writing nothing.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::body::Body;
use http::{Request, StatusCode};
use ragbot::aws::notify_local::{s3_event, LocalNotifier};
use ragbot_tests::{pdf::pdf_with_pages, Options, TestApp, TestDb, TestResponse};
use serde_json::{json, Value};

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        env: HashMap::from([("EMBEDDING_PROVIDER".into(), "local".into())]),
        ..Default::default()
    })
    .await
}

async fn upload(
    app: &TestApp,
    token: &str,
    name: &str,
    content_type: &str,
    body: Vec<u8>,
) -> TestResponse {
    app.send(
        Request::post(format!("/documents?name={name}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

/// The nearest chunk to `query` in `tenant`, by SQL (cosine distance), as the schema owner.
async fn nearest(app: &TestApp, tenant: &str, query: &str) -> (String, Value, uuid::Uuid) {
    let embedder = app.state.embedder.clone().expect("embedder");
    let q = embedder
        .embed(&[query])
        .await
        .expect("embed query")
        .remove(0);
    let db = TestDb::connect(&app.db.migrator_url).await;
    let row = db
        .query_one(
            "SELECT text, metadata, document_id FROM chunks WHERE tenant = $1 ORDER BY embedding <=> $2 LIMIT 1",
            &[&tenant, &pgvector::Vector::from(q)],
        )
        .await
        .expect("nearest chunk");
    (row.get(0), row.get(1), row.get(2))
}

async fn chunk_count(app: &TestApp, doc: &str) -> i64 {
    let db = TestDb::connect(&app.db.migrator_url).await;
    let id = uuid::Uuid::parse_str(doc).unwrap();
    db.query_one("SELECT count(*) FROM chunks WHERE document_id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn every_format_ingests_and_is_found_by_nearest_neighbour() {
    let app = app().await;
    let t = app.token("admin", "acme", &["admin"]);
    let long_md = format!(
        "# Handbook\nWelcome.\n\n## Travel policy\n{}\n\n## Holidays\nEmployees get thirty days of paid leave per year.",
        "Trains are preferred over planes for trips under six hours. ".repeat(40)
    );
    let cases: Vec<(&str, &str, Vec<u8>, &str, &str)> = vec![
        ("notes.txt", "text/plain", b"The cafeteria serves vegetarian lunch every Thursday.".to_vec(),
         "when is vegetarian lunch", "vegetarian lunch"),
        ("handbook.md", "text/markdown", long_md.into_bytes(), "how many vacation days do employees get", "thirty days"),
        ("page.html", "text/html",
         b"<html><head><title>Parking</title><script>var secret='do not index';</script></head><body><h1>Parking</h1><p>Visitors park in garage B on level two.</p></body></html>".to_vec(),
         "where can visitors park", "garage B"),
        ("faq.csv", "text/csv", b"question,answer\nHow do I reset my password?,Use the self-service portal at id.example.com.\nWho approves expenses?,Your line manager.\n".to_vec(),
         "reset password", "self-service portal"),
        ("people.csv", "text/csv", b"name,team,room\nAda,Compilers,4.12\nGrace,Languages,2.01\n".to_vec(),
         "which room is Grace in", "Grace"),
        ("qa.json", "application/json",
         json!({"document_title": "IT", "question_answer_data": [{"question": "Is there guest wifi?", "answer": "Yes, network Guest with the daily code."}]}).to_string().into_bytes(),
         "guest wifi", "daily code"),
        ("report.pdf", "application/pdf",
         pdf_with_pages(&["Quarterly report.\nRevenue grew in the north region.", "Appendix.\nThe fire assembly point is the north car park."]),
         "where is the fire assembly point", "assembly point"),
    ];
    for (name, ct, body, query, needle) in cases {
        let r = upload(&app, &t, name, ct, body).await;
        r.assert_status(StatusCode::CREATED);
        let doc = r.json()["document_id"].as_str().unwrap().to_string();
        assert!(r.json()["chunks"].as_u64().unwrap() >= 1, "{name}");
        let (text, metadata, doc_id) = nearest(&app, "acme", query).await;
        assert_eq!(doc_id.to_string(), doc, "{name}: nearest chunk is {text:?}");
        assert!(text.contains(needle), "{name}: {text:?}");
        match name {
            "handbook.md" => assert_eq!(metadata["headings"], json!(["Handbook", "Holidays"])),
            "report.pdf" => assert_eq!(metadata["page"], 2),
            "page.html" => assert!(!text.contains("do not index")),
            _ => {}
        }
    }
    // The long markdown section was split; every chunk fits the model's window.
    let db = TestDb::connect(&app.db.migrator_url).await;
    let max: i32 = db
        .query_one("SELECT max(token_count) FROM chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(max <= 200, "largest chunk {max} tokens");
    let docs = app
        .call("GET", "/documents?source=api", Some(&t), None)
        .await
        .json();
    assert_eq!(docs["documents"].as_array().unwrap().len(), 7);
    let html = docs["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mime"] == "text/html")
        .unwrap();
    assert_eq!(html["title"], "Parking");
}

#[tokio::test]
async fn multipart_uploads_work_and_reuploads_are_no_ops() {
    let app = app().await;
    let t = app.token("admin", "acme", &["admin"]);
    let boundary = "XBOUNDARYX";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"menu.txt\"\r\nContent-Type: text/plain\r\n\r\nSoup of the day is tomato.\r\n--{boundary}--\r\n"
    );
    let send = || {
        app.send(
            Request::post("/documents")
                .header("authorization", format!("Bearer {t}"))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(body.clone()))
                .unwrap(),
        )
    };
    let first = send().await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.json()["title"], "menu.txt");
    let again = send().await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.json()["change"], "unchanged");
    assert_eq!(again.json()["document_id"], first.json()["document_id"]);
    // The file is in the documents bucket under the tenant's prefix.
    let obj = app
        .state
        .aws
        .s3
        .get_object()
        .bucket(&app.state.aws.documents_bucket)
        .key("tenants/acme/uploads/menu.txt")
        .send()
        .await
        .expect("stored upload");
    assert_eq!(obj.content_length(), Some(26));
}

#[tokio::test]
async fn bad_uploads_get_clear_errors_and_store_nothing() {
    let app = app().await;
    let t = app.token("admin", "acme", &["admin"]);
    let r = upload(
        &app,
        &t,
        "photo.png",
        "image/png",
        vec![0x89, b'P', b'N', b'G'],
    )
    .await;
    r.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("txt, md, html, csv, json or pdf"));
    let r = upload(
        &app,
        &t,
        "broken.pdf",
        "application/pdf",
        b"%PDF-1.7 this is not really a pdf".to_vec(),
    )
    .await;
    r.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("PDF"));
    let r = upload(&app, &t, "empty.txt", "text/plain", b"   \n".to_vec()).await;
    r.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let r = upload(
        &app,
        &t,
        "bad.json",
        "application/json",
        br#"{"title": "no pairs"}"#.to_vec(),
    )
    .await;
    r.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let r = upload(&app, &t, "latin1.txt", "text/plain", b"caf\xe9".to_vec()).await;
    r.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count_rows("documents").await, 0);
    let listed = app
        .state
        .aws
        .s3
        .list_objects_v2()
        .bucket(&app.state.aws.documents_bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing stored in S3");
}

async fn put_object(app: &TestApp, key: &str, body: &[u8], content_type: &str) {
    app.state
        .aws
        .s3
        .put_object()
        .bucket(&app.state.aws.documents_bucket)
        .key(key)
        .content_type(content_type)
        .body(body.to_vec().into())
        .send()
        .await
        .expect("put object");
}

async fn deliver(app: &TestApp, event: Value) -> Value {
    ragbot::lambda::dispatch(
        app.router.clone(),
        &app.state,
        ragbot::lambda::Triggers::S3,
        event,
        Default::default(),
    )
    .await
    .expect("S3 event handled")
}

#[tokio::test]
async fn redelivered_and_concurrent_s3_events_leave_one_copy() {
    let app = app().await;
    let bucket = app.state.aws.documents_bucket.clone();
    let key = "tenants/acme/policies/Leave Policy ünïcode.md";
    let text = format!(
        "# Leave\n{}",
        "Annual leave must be requested two weeks ahead. ".repeat(30)
    );
    put_object(&app, key, text.as_bytes(), "text/markdown").await;
    let event = s3_event(
        "ObjectCreated:Put",
        &bucket,
        key,
        Some("etag-1"),
        text.len() as i64,
    );
    assert!(event["Records"][0]["s3"]["object"]["key"]
        .as_str()
        .unwrap()
        .contains("Leave+Policy+%C3%BC"));

    let first = deliver(&app, event.clone()).await;
    assert_eq!(first["records"][0]["result"], "ingested", "{first}");
    assert_eq!(first["records"][0]["key"], key, "the key was URL-decoded");
    assert_eq!(first["records"][0]["tenant"], "acme");
    let again = deliver(&app, event.clone()).await;
    assert_eq!(again["records"][0]["result"], "duplicate", "{again}");

    // A new version, delivered by two concurrent invocations.
    let text2 = format!(
        "# Leave\n{}",
        "Annual leave must be requested three weeks ahead. ".repeat(30)
    );
    put_object(&app, key, text2.as_bytes(), "text/markdown").await;
    let event2 = s3_event(
        "ObjectCreated:Put",
        &bucket,
        key,
        Some("etag-2"),
        text2.len() as i64,
    );
    let app = Arc::new(app);
    let (a, b) = tokio::join!(deliver(&app, event2.clone()), deliver(&app, event2.clone()));
    let mut results = vec![
        a["records"][0]["result"].as_str().unwrap().to_string(),
        b["records"][0]["result"].as_str().unwrap().to_string(),
    ];
    results.sort();
    assert_eq!(results, vec!["duplicate", "ingested"]);

    let db = TestDb::connect(&app.db.migrator_url).await;
    let docs: i64 = db
        .query_one("SELECT count(*) FROM documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(docs, 1);
    let stale: i64 = db
        .query_one(
            "SELECT count(*) FROM chunks WHERE text LIKE '%two weeks%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let fresh: i64 = db
        .query_one("SELECT count(*) FROM chunks", &[])
        .await
        .unwrap()
        .get(0);
    let doc_chunks: i32 = db
        .query_one("SELECT chunk_count FROM documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        (stale, fresh as i32),
        (0, doc_chunks),
        "exactly one copy of the new version"
    );
    assert!(
        doc_chunks >= 2,
        "the document was split: {doc_chunks} chunks"
    );

    // ObjectRemoved (sent once the object is gone) removes the document and its chunks.
    app.state
        .aws
        .s3
        .delete_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let removed = deliver(
        &app,
        s3_event("ObjectRemoved:Delete", &bucket, key, None, 0),
    )
    .await;
    assert_eq!(removed["records"][0]["result"], "removed");
    assert_eq!(app.count_rows("chunks").await, 0);
    assert_eq!(app.count_rows("documents").await, 0);
}

#[tokio::test]
async fn a_failure_midway_leaves_the_previous_version_intact() {
    let app = app().await;
    let t = app.token("admin", "acme", &["admin"]);
    let r = upload(
        &app,
        &t,
        "rules.txt",
        "text/plain",
        b"Version one: doors close at 8 pm.".to_vec(),
    )
    .await;
    r.assert_status(StatusCode::CREATED);
    let doc = r.json()["document_id"].as_str().unwrap().to_string();

    // Inject a failure inside the write transaction, after the old chunks are deleted: a trigger
    // that rejects any chunk mentioning EXPLODE.
    let owner = TestDb::connect(&app.db.migrator_url).await;
    owner
        .batch_execute(
            "CREATE FUNCTION explode() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.text LIKE '%EXPLODE%' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER explode BEFORE INSERT ON chunks FOR EACH ROW EXECUTE FUNCTION explode();",
        )
        .await
        .unwrap();
    let r = upload(
        &app,
        &t,
        "rules.txt",
        "text/plain",
        b"Version two: EXPLODE.".to_vec(),
    )
    .await;
    assert!(r.status.is_server_error(), "{r:?}");

    let d = app
        .call("GET", &format!("/documents/{doc}"), Some(&t), None)
        .await
        .json();
    assert_eq!(d["status"], "ready");
    assert_eq!(
        d["content_sha256"],
        ragbot::ingest::sha256_hex(b"Version one: doors close at 8 pm.")
    );
    assert_eq!(chunk_count(&app, &doc).await, 1);
    let (text, _, _) = nearest(&app, "acme", "when do doors close").await;
    assert!(text.starts_with("Version one"), "{text}");
}

#[tokio::test]
async fn bad_s3_objects_mark_the_document_failed_with_the_reason() {
    let app = app().await;
    let bucket = app.state.aws.documents_bucket.clone();
    put_object(&app, "scan.pdf", b"%PDF-1.5 truncated", "application/pdf").await;
    let r = deliver(
        &app,
        s3_event("ObjectCreated:Put", &bucket, "scan.pdf", Some("e1"), 18),
    )
    .await;
    assert_eq!(r["records"][0]["result"], "failed", "{r}");
    let t = app.token("admin", "default", &["admin"]);
    let docs = app
        .call("GET", "/documents?status=failed", Some(&t), None)
        .await
        .json();
    let d = &docs["documents"][0];
    assert_eq!(d["title"], "scan.pdf");
    assert!(d["failure_reason"].as_str().unwrap().contains("PDF"), "{d}");
    assert_eq!(app.count_rows("chunks").await, 0);
}

#[tokio::test]
async fn sidecar_metadata_reaches_the_document_and_its_chunks() {
    let app = app().await;
    let bucket = app.state.aws.documents_bucket.clone();
    let key = "tenants/acme/hr/benefits.txt";
    put_object(
        &app,
        &format!("{key}.metadata.json"),
        br#"{"metadataAttributes": {"title": "Benefits 2026", "department": "hr"}}"#,
        "application/json",
    )
    .await;
    put_object(
        &app,
        key,
        b"Dental care is covered up to 1000 euros a year.",
        "text/plain",
    )
    .await;
    let r = deliver(
        &app,
        s3_event("ObjectCreated:Put", &bucket, key, Some("e1"), 47),
    )
    .await;
    assert_eq!(r["records"][0]["result"], "ingested", "{r}");
    let t = app.token("admin", "acme", &["admin"]);
    let docs = app.call("GET", "/documents", Some(&t), None).await.json();
    assert_eq!(docs["documents"][0]["title"], "Benefits 2026");
    assert_eq!(docs["documents"][0]["metadata"]["department"], "hr");
    let (_, metadata, _) = nearest(&app, "acme", "dental").await;
    assert_eq!(metadata["department"], "hr");
    // The sidecar's own event is not a document.
    let r = deliver(
        &app,
        s3_event(
            "ObjectCreated:Put",
            &bucket,
            &format!("{key}.metadata.json"),
            Some("e2"),
            10,
        ),
    )
    .await;
    assert_eq!(r["records"][0]["result"], "skipped");
}

#[tokio::test]
async fn the_local_notifier_turns_bucket_changes_into_s3_events() {
    let app = app().await;
    let mut notifier = LocalNotifier::new(
        app.state.aws.s3.clone(),
        app.state.aws.documents_bucket.clone(),
    );
    assert!(notifier.poll().await.unwrap().is_empty());
    put_object(
        &app,
        "tenants/acme/a b.txt",
        b"The library opens at nine.",
        "text/plain",
    )
    .await;
    let events = notifier.poll().await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["Records"][0]["eventName"], "ObjectCreated:Put");
    assert_eq!(
        events[0]["Records"][0]["s3"]["object"]["key"],
        "tenants/acme/a+b.txt"
    );
    let r = deliver(&app, events[0].clone()).await;
    assert_eq!(r["records"][0]["result"], "ingested");
    assert!(
        notifier.poll().await.unwrap().is_empty(),
        "no change, no event"
    );

    app.state
        .aws
        .s3
        .delete_object()
        .bucket(&app.state.aws.documents_bucket)
        .key("tenants/acme/a b.txt")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let events = notifier.poll().await.unwrap();
    assert_eq!(events[0]["Records"][0]["eventName"], "ObjectRemoved:Delete");
    let r = deliver(&app, events[0].clone()).await;
    assert_eq!(r["records"][0]["result"], "removed");
    assert_eq!(app.count_rows("documents").await, 0);
}

#[tokio::test]
async fn the_embed_function_serves_api_events_and_s3_events_on_one_handler() {
    let app = app().await;
    // An API Gateway event through the same dispatch the Lambda runs.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(ragbot_tests::repo_root().join("events/documents-list.json"))
            .unwrap(),
    )
    .unwrap();
    let out = deliver(&app, event).await;
    assert_eq!(out["statusCode"], 200, "{out}");
    assert!(out["body"].as_str().unwrap().contains("\"documents\":[]"));
}

#[tokio::test]
async fn reembed_moves_every_chunk_to_the_configured_model_and_resumes() {
    let app = app().await;
    let t = app.token("admin", "acme", &["admin"]);
    let other = app.token("admin", "globex", &["admin"]);
    let body = json!({"document_title": "HR", "question_answer_data": [
        {"question": "How many vacation days?", "answer": "Thirty."},
        {"question": "Who approves leave?", "answer": "Your manager."}]});
    app.call("POST", "/embed/qa", Some(&t), Some(body.clone()))
        .await
        .assert_status(StatusCode::CREATED);
    app.call("POST", "/embed/qa", Some(&other), Some(body))
        .await
        .assert_status(StatusCode::CREATED);
    // Pretend the chunks came from another model.
    let owner = TestDb::connect(&app.db.migrator_url).await;
    let zero = format!("[{}]", vec!["0.05"; 384].join(","));
    owner
        .batch_execute(&format!(
            "UPDATE chunks SET embedding_model = 'old/model', embedding = '{zero}'"
        ))
        .await
        .unwrap();
    let embedder = app.state.embedder.clone().unwrap();
    let mut batches = 0;
    let done =
        ragbot::ingest::reembed::run(&app.state.store, embedder.as_ref(), 1, |_, _| batches += 1)
            .await
            .expect("reembed");
    assert_eq!((done.tenants, done.chunks, batches), (2, 4, 4));
    let rows = owner
        .query(
            "SELECT question, embedding, embedding_model FROM chunks",
            &[],
        )
        .await
        .unwrap();
    for r in rows {
        let q: String = r.get(0);
        let v: pgvector::Vector = r.get(1);
        let model: String = r.get(2);
        assert_eq!(model, embedder.model_id());
        let fresh = embedder.embed(&[q.as_str()]).await.unwrap().remove(0);
        let cos = ragbot::embedding::cosine(v.as_slice(), &fresh);
        assert!(cos > 0.999, "{q}: {cos}");
    }
    let again = ragbot::ingest::reembed::run(&app.state.store, embedder.as_ref(), 1, |_, _| {})
        .await
        .unwrap();
    assert_eq!(again.chunks, 0, "nothing left: a rerun is a no-op");
}

#[tokio::test]
async fn every_sample_event_is_handled() {
    let app = app().await;
    let dir = ragbot_tests::repo_root().join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for f in files {
        let raw = std::fs::read_to_string(&f).unwrap().replace(
            "\"ragbot-documents\"",
            &format!("\"{}\"", app.state.aws.documents_bucket),
        );
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("backup-") {
            // The backup function's own events: the schedule, and a restore of a real backup.
            let made = app
                .state
                .backups()
                .create(&ragbot::auth::Tenant::parse("acme").unwrap())
                .await
                .expect("a backup to restore");
            let raw = raw.replace("backups/acme/20261123T020000.000Z.jsonl.gz", &made.key);
            let out = ragbot::lambda::dispatch(
                app.router.clone(),
                &app.state,
                ragbot::lambda::Triggers::Backup,
                serde_json::from_str(&raw).unwrap(),
                Default::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                out["backups"].is_array() || out["restored"]["tenant"] == "acme",
                "{name}: {out}"
            );
            continue;
        }
        let event: Value = serde_json::from_str(&raw).unwrap();
        let out = deliver(&app, event).await;
        if name == "ingest-job.json" {
            // A worker's self-invocation; this job does not exist, so the worker stops at once.
            assert_eq!(out["result"], "Gone", "{name}: {out}");
            continue;
        }
        if name.starts_with("s3-") {
            let result = out["records"][0]["result"].as_str().unwrap_or_default();
            assert!(["not_found", "ingested"].contains(&result), "{name}: {out}");
            assert_eq!(
                out["records"][0]["key"],
                "tenants/acme/policies/Travel Policy été.md"
            );
        } else {
            let status = out["statusCode"].as_u64().unwrap_or(0);
            assert!(
                (200..500).contains(&status) && status != 401,
                "{name}: {out}"
            );
            if name == "retrieve.json" {
                assert_eq!(status, 200, "{name}: {out}");
            }
        }
    }
}

/// Every event the notifier reports now, delivered to the embed function's handler.
async fn poll_and_deliver(app: &TestApp, notifier: &mut LocalNotifier) -> Vec<Value> {
    let mut out = Vec::new();
    for event in notifier.poll().await.expect("poll the bucket") {
        let object = &event["Records"][0]["s3"]["object"];
        assert!(
            !object["eTag"].as_str().unwrap_or_default().is_empty(),
            "the event carries the object's ETag, as S3's do: {event}"
        );
        out.push(deliver(app, event).await["records"][0].clone());
    }
    out
}

/// The text of `key`'s document as stored, chunk by chunk.
async fn stored_text(app: &TestApp, key: &str) -> String {
    let db = TestDb::connect(&app.db.migrator_url).await;
    let rows = db
        .query(
            "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id
             WHERE d.source_key = $1 ORDER BY c.ordinal",
            &[&format!("s3:{key}")],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test]
async fn a_key_written_a_then_b_then_a_again_ends_at_a_through_the_real_notifier() {
    let app = app().await;
    let bucket = app.state.aws.documents_bucket.clone();
    let mut notifier = LocalNotifier::new(app.state.aws.s3.clone(), bucket.clone());
    let key = "tenants/acme/handbook.md";
    // Same length: a listing without ETags cannot tell them apart by size.
    let a = "# Hours\nThe office opens at nine in the morning.";
    let b = "# Hours\nThe office opens at five in the morning.";
    assert_eq!(a.len(), b.len());

    let mut sequencers = Vec::new();
    for (round, text) in [a, b, a].into_iter().enumerate() {
        // s3s-fs keeps modification times to the millisecond.
        tokio::time::sleep(Duration::from_millis(20)).await;
        put_object(&app, key, text.as_bytes(), "text/markdown").await;
        let events = notifier.poll().await.unwrap();
        assert_eq!(events.len(), 1, "round {round}: one event per write");
        let object = &events[0]["Records"][0]["s3"]["object"];
        sequencers.push(object["sequencer"].as_str().unwrap().to_string());
        let r = deliver(&app, events[0].clone()).await;
        assert_eq!(
            r["records"][0]["result"], "ingested",
            "round {round}: a new write is never a duplicate: {r}"
        );
        let stored = stored_text(&app, key).await;
        let word = if text == a { "nine" } else { "five" };
        assert!(stored.contains(word), "round {round}: stored {stored:?}");
        // A redelivery of the same event is recognised.
        let again = deliver(&app, events[0].clone()).await;
        assert_eq!(again["records"][0]["result"], "duplicate", "{again}");
    }
    assert!(
        sequencers.windows(2).all(|w| w[0] < w[1]),
        "sequencers increase: {sequencers:?}"
    );
    assert_eq!(app.count_rows("documents").await, 1);
    assert!(poll_and_deliver(&app, &mut notifier).await.is_empty());
}

#[tokio::test]
async fn a_removal_delivered_after_the_key_was_written_again_keeps_the_document() {
    let app = app().await;
    let bucket = app.state.aws.documents_bucket.clone();
    let key = "tenants/acme/late.txt";
    put_object(
        &app,
        key,
        b"The canteen serves lunch at noon.",
        "text/plain",
    )
    .await;
    let created = s3_event("ObjectCreated:Put", &bucket, key, Some("e1"), 33);
    let removed = s3_event("ObjectRemoved:Delete", &bucket, key, None, 0);
    assert_eq!(
        deliver(&app, created).await["records"][0]["result"],
        "ingested"
    );
    // The removal event of an earlier delete arrives late: the object exists, so it is kept.
    let r = deliver(&app, removed).await;
    assert_eq!(r["records"][0]["result"], "skipped", "{r}");
    assert_eq!(app.count_rows("documents").await, 1);
}

/// The ledger's state for one S3 write, read from DynamoDB Local.
async fn ledger_state(app: &TestApp, id: &str) -> Option<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = app
        .state
        .aws
        .dynamodb
        .get_item()
        .table_name(&app.state.aws.state_table)
        .key("pk", AttributeValue::S(format!("ingest#{id}")))
        .key("sk", AttributeValue::S("ledger".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item()
        .and_then(|i| i.get("state"))
        .and_then(|v| v.as_s().ok())
        .cloned()
}

#[tokio::test]
async fn an_ingestion_killed_midway_is_done_by_the_retry_and_a_live_one_keeps_its_claim() {
    let app = Arc::new(
        TestApp::spawn_with(Options {
            env: HashMap::from([
                ("EMBEDDING_PROVIDER".into(), "local".into()),
                ("INGEST_CLAIM_LEASE_SECONDS".into(), "1".into()),
            ]),
            ..Default::default()
        })
        .await,
    );
    let bucket = app.state.aws.documents_bucket.clone();
    let key = "tenants/acme/crash.txt";
    put_object(&app, key, b"The night shift starts at ten.", "text/plain").await;
    let event = s3_event("ObjectCreated:Put", &bucket, key, Some("e1"), 30);
    let sequencer = event["Records"][0]["s3"]["object"]["sequencer"]
        .as_str()
        .unwrap()
        .to_string();
    let ledger_id = format!("{bucket}/{key}#{sequencer}");

    // Hold the ingestion inside its first database call: the documents table is locked.
    let owner = TestDb::connect(&app.db.migrator_url).await;
    owner
        .batch_execute("BEGIN; LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let first = tokio::spawn({
        let (ingestor, event) = (app.state.ingestor.clone(), event.clone());
        async move { ragbot::lambda::dispatch_s3(&ingestor, event).await.is_ok() }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ledger_state(&app, &ledger_id).await.as_deref() != Some("processing") {
        assert!(
            std::time::Instant::now() < deadline,
            "the first delivery never claimed the write"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Longer than the lease: a live holder renews its claim, so a redelivery is a duplicate.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let during = deliver(&app, event.clone()).await;
    assert_eq!(during["records"][0]["result"], "duplicate", "{during}");

    // The invocation dies (no release, no completion), as a crash or a timeout would.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    owner.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(app.count_rows("documents").await, 0, "nothing was written");

    // Lambda retries the event a minute later; by then the dead holder's lease has run out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let retry = deliver(&app, event.clone()).await;
    assert_eq!(retry["records"][0]["result"], "ingested", "{retry}");
    assert!(stored_text(&app, key).await.contains("night shift"));
    assert_eq!(
        ledger_state(&app, &ledger_id).await.as_deref(),
        Some("done")
    );
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_kept_in_the_failed_events_bucket_and_replayed() {
    let app = app().await;
    let bucket = app.state.aws.documents_bucket.clone();
    let key = "tenants/acme/kept.txt";
    put_object(&app, key, b"Parcels are collected at four.", "text/plain").await;
    let event = s3_event("ObjectCreated:Put", &bucket, key, Some("e1"), 30);

    // Every write of a document fails, as when the database is unusable.
    let owner = TestDb::connect(&app.db.migrator_url).await;
    owner
        .batch_execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'injected failure'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON documents FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await
        .unwrap();
    let failed = app
        .state
        .aws
        .failed_events()
        .expect("a failed-events bucket");
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let handled = ragbot::lambda::deliver_async(
        "embed",
        event.clone(),
        &[Duration::from_millis(10), Duration::from_millis(10)],
        Some(&failed),
        |e| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ingestor = app.state.ingestor.clone();
            async move { ragbot::lambda::dispatch_s3(&ingestor, e).await }
        },
    )
    .await;
    assert!(handled.is_none());
    assert_eq!(
        attempts.into_inner(),
        3,
        "tried once and retried twice, as Lambda does"
    );
    let kept = failed.list().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0].key.starts_with("aws/lambda/async/embed/"),
        "{}",
        kept[0].key
    );
    assert_eq!(kept[0].record["requestPayload"], event);
    assert!(kept[0].record["responsePayload"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("injected failure"));
    assert_eq!(app.count_rows("documents").await, 0);

    // The cause is fixed; the operator replays what was kept.
    owner
        .batch_execute("DROP TRIGGER refuse ON documents")
        .await
        .unwrap();
    let replayed = ragbot::lambda::replay_failed(&failed, |e| {
        ragbot::lambda::dispatch(
            app.router.clone(),
            &app.state,
            ragbot::lambda::Triggers::S3,
            e,
            Default::default(),
        )
    })
    .await
    .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].result, "replayed", "{replayed:?}");
    assert_eq!(
        replayed[0].response.as_ref().unwrap()["records"][0]["result"],
        "ingested"
    );
    assert!(stored_text(&app, key).await.contains("Parcels"));
    assert!(
        failed.list().await.unwrap().is_empty(),
        "a replayed record is deleted"
    );
}

#[tokio::test]
async fn an_s3_outage_is_reported_as_s3_in_one_log_line() {
    // A port nothing listens on: S3 refuses every connection (the database is fine).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = TestApp::spawn_with(Options {
        env: HashMap::from([
            ("EMBEDDING_PROVIDER".into(), "local".into()),
            (
                "AWS_ENDPOINT_URL_S3".into(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("AWS_S3_TIMEOUT_MS".into(), "1500".into()),
            ("RAGBOT_CREATE_LOCAL_RESOURCES".into(), "false".into()),
        ]),
        ..Default::default()
    })
    .await;
    let t = app.token("admin", "acme", &["admin"]);
    let logs = ragbot_tests::Captured::default();
    let _guard = logs.install();
    let r = upload(
        &app,
        &t,
        "a.txt",
        "text/plain",
        b"The gym opens at six.".to_vec(),
    )
    .await;
    r.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("S3"), "{message}");
    assert!(!message.contains("database"), "{message}");
    assert_eq!(app.count_rows("documents").await, 0, "nothing written");

    let text = logs.text();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
        .collect();
    assert_eq!(failed.len(), 1, "one log line for one failure: {text}");
    assert!(failed[0].contains("request failed"), "{}", failed[0]);
    assert!(
        failed[0].contains("PutObject"),
        "the cause is logged: {}",
        failed[0]
    );
}

#[tokio::test]
async fn no_named_prepared_statement_outlives_a_request() {
    // One pooled connection, so the check below runs on the very session the requests used.
    let app = TestApp::spawn_with(Options {
        env: HashMap::from([
            ("EMBEDDING_PROVIDER".into(), "local".into()),
            ("DATABASE_POOL_SIZE".into(), "1".into()),
        ]),
        ..Default::default()
    })
    .await;
    let t = app.token("admin", "acme", &["admin"]);
    // Binary COPY (documents) and the typed queries of every other write and read.
    upload(
        &app,
        &t,
        "a.md",
        "text/markdown",
        b"# Hours\nOpen at nine.".to_vec(),
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.call(
        "POST",
        "/embed/qa",
        Some(&t),
        Some(json!({"document_title": "FAQ", "question_answer_data": [{"question": "When?", "answer": "At nine."}]})),
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.call(
        "POST",
        "/retrieve",
        Some(&t),
        Some(json!({"query": "opening hours"})),
    )
    .await
    .assert_status(StatusCode::OK);
    let client = app.state.store.client().await.unwrap();
    let left: Vec<String> = client
        .query_typed(
            "SELECT name || ': ' || statement FROM pg_prepared_statements",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        left.is_empty(),
        "prepared statements left on the session: {left:?}"
    );
}

#[tokio::test]
async fn a_presigned_upload_goes_straight_to_s3_and_its_notification_ingests_it() {
    let app = app().await;
    let t = app.token("admin", "acme", &["admin"]);
    let bucket = app.state.aws.documents_bucket.clone();
    let mut notifier = LocalNotifier::new(app.state.aws.s3.clone(), bucket.clone());
    let body = format!(
        "# Travel policy\n{}",
        "Trains are booked for trips under six hours. ".repeat(40)
    );

    // Refused before anything is signed or stored: too large, or a type we do not read.
    let r = app
        .call(
            "POST",
            "/documents/uploads",
            Some(&t),
            Some(json!({"name": "huge.md", "size": 60u64 << 20})),
        )
        .await;
    r.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limit"));
    let r = app
        .call(
            "POST",
            "/documents/uploads",
            Some(&t),
            Some(json!({"name": "tool.exe", "size": 10})),
        )
        .await;
    r.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let user = app.token("u", "acme", &["user"]);
    app.call(
        "POST",
        "/documents/uploads",
        Some(&user),
        Some(json!({"name": "a.md", "size": 10})),
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);

    let r = app
        .call(
            "POST",
            "/documents/uploads",
            Some(&t),
            Some(json!({"name": "travel policy.md", "size": body.len()})),
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    let ticket = r.json();
    assert_eq!(ticket["key"], "tenants/acme/uploads/travel policy.md");
    assert_eq!(ticket["upload"]["method"], "PUT");
    let url = ticket["upload"]["url"].as_str().unwrap().to_string();
    let headers = ticket["upload"]["headers"].as_object().unwrap().clone();
    assert_eq!(headers["content-length"], body.len().to_string());
    let status = app
        .call(
            "GET",
            "/documents/uploads/travel%20policy.md",
            Some(&t),
            None,
        )
        .await;
    status.assert_status(StatusCode::NOT_FOUND);
    assert!(
        notifier.poll().await.unwrap().is_empty(),
        "nothing stored yet"
    );

    let http = reqwest::Client::new();
    let put = |bytes: Vec<u8>| {
        let mut req = http.put(&url).body(bytes);
        for (k, v) in &headers {
            if k != "content-length" {
                req = req.header(k.as_str(), v.as_str().unwrap());
            }
        }
        req.send()
    };
    // More bytes than signed for: S3 refuses the PUT.
    let longer = format!("{body} and more");
    let refused = put(longer.into_bytes()).await.unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert!(notifier.poll().await.unwrap().is_empty(), "nothing stored");
    // Exactly what was signed: stored, and the bucket's notification ingests it.
    let stored = put(body.clone().into_bytes()).await.unwrap();
    assert!(
        stored.status().is_success(),
        "{}",
        stored.text().await.unwrap()
    );
    let results = poll_and_deliver(&app, &mut notifier).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["result"], "ingested", "{results:?}");
    let doc = app
        .call(
            "GET",
            "/documents/uploads/travel%20policy.md",
            Some(&t),
            None,
        )
        .await;
    doc.assert_status(StatusCode::OK);
    assert_eq!(doc.json()["status"], "ready");
    assert_eq!(doc.json()["title"], "Travel policy");
    assert!(stored_text(&app, "tenants/acme/uploads/travel policy.md")
        .await
        .contains("six hours"));
    // Another tenant cannot see it.
    let other = app.token("admin", "globex", &["admin"]);
    app.call(
        "GET",
        "/documents/uploads/travel%20policy.md",
        Some(&other),
        None,
    )
    .await
    .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn many_qa_pairs_go_to_the_workers_instead_of_the_request() {
    let app = TestApp::spawn_with(Options {
        env: HashMap::from([
            ("EMBEDDING_PROVIDER".into(), "local".into()),
            ("INGEST_JOB_THRESHOLD_CHUNKS".into(), "5".into()),
        ]),
        ..Default::default()
    })
    .await;
    let t = app.token("admin", "acme", &["admin"]);
    let pairs: Vec<Value> = (0..12)
        .map(|i| json!({"question": format!("What is rule number {i}?"), "answer": format!("Rule {i} says to be kind.")}))
        .collect();
    let body = json!({"document_title": "Rules", "question_answer_data": pairs});
    let r = app
        .call("POST", "/embed/qa", Some(&t), Some(body.clone()))
        .await;
    r.assert_status(StatusCode::ACCEPTED);
    let out = r.json();
    assert_eq!(out["status"], "processing", "{out}");
    assert!(out["job_id"].is_string());
    let id = out["document_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = app
            .call("GET", &format!("/documents/{id}"), Some(&t), None)
            .await
            .json();
        if d["status"] == "ready" {
            assert_eq!(d["chunk_count"], 12, "{d}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not embedded in time: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each pair's question was embedded: the nearest chunk to a question is its answer.
    let (text, _, _) = nearest(&app, "acme", "What is rule number 7?").await;
    assert_eq!(text, "Rule 7 says to be kind.");
    // The same pairs again: unchanged, nothing staged.
    let again = app.call("POST", "/embed/qa", Some(&t), Some(body)).await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.json()["change"], "unchanged");
}
