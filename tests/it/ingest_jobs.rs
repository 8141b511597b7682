//! Large documents embedded by workers (`ingest::jobs`) over the real stack: in-process workers
//! behind `POST /documents`, atomic swap with the previous version served until then (failures
//! injected while embedding and while swapping, then resumed), and the Lambda path — real
//! aws-sdk-lambda `Invoke` calls against a local Lambda endpoint that runs each worker invocation
//! through `lambda::dispatch` with a short deadline, so every worker hands over to a successor.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::State, http::HeaderMap, routing::post, Router};
use http::{Request, StatusCode};
use ragbot::{
    auth::Tenant,
    ingest::{
        document::{Ingestor, SourceFile},
        jobs::JobRun,
    },
    lambda::{dispatch, Triggers},
    ports::{JobDispatcher, JobRef, PortError},
    AppState, BoxFuture,
};
use ragbot_tests::{Options, TestApp, TestDb};
use serde_json::{json, Value};

/// Small chunks and a low threshold, so a few paragraphs make a "large" document.
fn job_env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("EMBEDDING_PROVIDER", "local"),
        ("CHUNK_MAX_TOKENS", "32"),
        ("CHUNK_OVERLAP_TOKENS", "0"),
        ("INGEST_JOB_THRESHOLD_CHUNKS", "5"),
        ("EMBED_BATCH_SIZE", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// A handbook of `n` sections of about 30 tokens each (one chunk per section).
fn handbook(version: &str, n: usize, marker: &str) -> String {
    let topics = [
        "parking in garage B",
        "vegetarian lunch on Thursday",
        "thirty days of paid leave",
        "trains for trips under six hours",
        "laptops returned on the last day",
        "visitors signing in at reception",
        "fire drills every March",
        "expense reports within a month",
    ];
    (0..n)
        .map(|i| {
            let extra = if i == n / 2 { marker } else { "" };
            format!(
                "Section {i} of the {version} handbook covers {}. Staff should read it carefully before asking the office manager. {extra}\n\n",
                topics[i % topics.len()]
            )
        })
        .collect()
}

async fn upload(app: &TestApp, token: &str, name: &str, body: String) -> Value {
    let r = app
        .send(
            Request::post(format!("/documents?name={name}"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "text/markdown")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    r.json()
}

/// Polls `GET /documents/{id}` until `done(doc)`, at most two minutes.
async fn wait_for(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let d = app
            .call("GET", &format!("/documents/{id}"), Some(token), None)
            .await
            .json();
        if done(&d) {
            return d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "document never got there: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The document's chunk texts in ordinal order, checking the ordinals are 0..n.
async fn chunk_texts(app: &TestApp, doc: &str) -> Vec<String> {
    let db = TestDb::connect(&app.db.migrator_url).await;
    let id = uuid::Uuid::parse_str(doc).unwrap();
    let rows = db
        .query(
            "SELECT ordinal, text FROM chunks WHERE document_id = $1 ORDER BY ordinal",
            &[&id],
        )
        .await
        .unwrap();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.get::<_, i32>(0), i as i32, "ordinals are 0..n");
    }
    rows.iter().map(|r| r.get(1)).collect()
}

async fn pending_rows(app: &TestApp) -> i64 {
    app.count_rows("ingest_job_chunks").await
}

#[tokio::test]
async fn large_uploads_are_accepted_then_embedded_by_workers_and_swapped_in() {
    let app = TestApp::spawn_with(Options {
        env: job_env(&[]),
        ..Default::default()
    })
    .await;
    let t = app.token("admin", "acme", &["admin"]);

    let v1 = handbook("first", 12, "");
    let r = upload(&app, &t, "handbook.md", v1.clone()).await;
    assert_eq!(r["status"], "processing", "{r}");
    assert!(r["job_id"].is_string(), "{r}");
    let total = r["chunks"].as_u64().unwrap();
    assert!(total > 5, "{r}");
    let doc = r["document_id"].as_str().unwrap().to_string();

    let d = wait_for(&app, &t, &doc, |d| d["status"] == "ready").await;
    assert_eq!(d["chunk_count"], total, "{d}");
    assert_eq!(d["job"]["status"], "done", "{d}");
    assert_eq!(d["job"]["embedded"], total, "{d}");
    assert_eq!(d["job"]["total"], total, "{d}");
    assert_eq!(
        d["content_sha256"],
        ragbot::ingest::sha256_hex(v1.as_bytes())
    );
    let texts = chunk_texts(&app, &doc).await;
    assert_eq!(texts.len() as u64, total);
    assert!(texts.iter().all(|t| t.contains("first handbook")));
    assert_eq!(pending_rows(&app).await, 0, "staged rows are removed");

    // Retrievable through the real /retrieve path.
    let user = app.token("u1", "acme", &["user"]);
    let found = app
        .call(
            "POST",
            "/retrieve",
            Some(&user),
            Some(json!({"query": "where do visitors sign in", "top_k": 1, "threshold": 0.0})),
        )
        .await
        .json();
    assert!(
        found["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("visitors signing in"),
        "{found}"
    );

    // The same content again: nothing to do.
    let again = app
        .send(
            Request::post("/documents?name=handbook.md")
                .header("authorization", format!("Bearer {t}"))
                .header("content-type", "text/markdown")
                .body(Body::from(v1))
                .unwrap(),
        )
        .await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.json()["change"], "unchanged");

    // A new version replaces every chunk once its workers are done.
    let v2 = handbook("second", 9, "");
    let r = upload(&app, &t, "handbook.md", v2.clone()).await;
    assert_eq!(r["change"], "updated", "{r}");
    assert_eq!(r["document_id"], doc.as_str());
    let d = wait_for(&app, &t, &doc, |d| {
        d["status"] == "ready" && d["job"]["id"] == r["job_id"]
    })
    .await;
    assert_eq!(
        d["content_sha256"],
        ragbot::ingest::sha256_hex(v2.as_bytes())
    );
    let texts = chunk_texts(&app, &doc).await;
    assert_eq!(texts.len() as u64, r["chunks"].as_u64().unwrap());
    assert!(
        texts.iter().all(|t| t.contains("second handbook")),
        "{texts:?}"
    );
    assert_eq!(pending_rows(&app).await, 0);
}

/// Records dispatches instead of starting workers: the test runs the workers itself.
#[derive(Default)]
struct Recorder(Mutex<Vec<(JobRef, usize)>>);

impl JobDispatcher for Recorder {
    fn dispatch<'a>(
        &'a self,
        job: &'a JobRef,
        workers: usize,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        self.0.lock().unwrap().push((job.clone(), workers));
        Box::pin(async { Ok(()) })
    }
}

fn source(ingestor: &Ingestor, key: &str) -> SourceFile {
    SourceFile {
        tenant: Tenant::parse("acme").unwrap(),
        source: ragbot::store::Source::Api,
        bucket: ingestor.documents_bucket.clone(),
        key: key.to_string(),
        version: None,
        content_type: Some("text/markdown".into()),
        title: None,
        metadata: json!({}),
    }
}

async fn job_status(app: &TestApp, job: uuid::Uuid) -> (String, i32, i32) {
    let db = TestDb::connect(&app.db.migrator_url).await;
    let r = db
        .query_one(
            "SELECT status, embedded, total FROM ingest_jobs WHERE id = $1",
            &[&job],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn failures_while_embedding_or_swapping_leave_the_previous_version_and_workers_resume() {
    let app = TestApp::spawn_with(Options {
        env: job_env(&[]),
        ..Default::default()
    })
    .await;
    let t = app.token("admin", "acme", &["admin"]);
    let recorder = Arc::new(Recorder::default());
    let mut ingestor = (*app.state.ingestor).clone();
    ingestor.dispatcher = Some(recorder.clone());
    let src = source(&ingestor, "tenants/acme/uploads/rules.md");

    let v1 = handbook("first", 10, "");
    let out = ingestor
        .ingest_file(&src, v1.clone().into_bytes(), None)
        .await
        .unwrap();
    assert_eq!(out.status, "processing");
    let doc = out.document_id.to_string();
    let job1 = JobRef {
        tenant: src.tenant.clone(),
        job_id: out.job_id.unwrap(),
    };
    assert_eq!(recorder.0.lock().unwrap().as_slice(), &[(job1.clone(), 1)]);
    // Nothing is served before the first version is complete.
    assert!(chunk_texts(&app, &doc).await.is_empty());
    assert_eq!(
        ingestor.run_job(&job1, None).await.unwrap(),
        JobRun::Finished {
            chunks: out.chunks as i32
        }
    );
    let old = chunk_texts(&app, &doc).await;
    assert_eq!(old.len(), out.chunks);

    // Version two; storing the embedding of its EXPLODE chunk fails (midway through the job).
    let owner = TestDb::connect(&app.db.migrator_url).await;
    owner
        .batch_execute(
            "CREATE FUNCTION explode() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.text LIKE '%EXPLODE%' AND NEW.embedding IS NOT NULL
                   THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER explode BEFORE UPDATE ON ingest_job_chunks
                 FOR EACH ROW EXECUTE FUNCTION explode();",
        )
        .await
        .unwrap();
    let v2 = handbook("second", 10, "EXPLODE");
    let out2 = ingestor
        .ingest_file(&src, v2.clone().into_bytes(), None)
        .await
        .unwrap();
    assert_eq!(out2.change, ragbot::ingest::Change::Updated);
    let job2 = JobRef {
        tenant: src.tenant.clone(),
        job_id: out2.job_id.unwrap(),
    };
    let err = ingestor.run_job(&job2, None).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    let (status, embedded, total) = job_status(&app, job2.job_id).await;
    assert_eq!(status, "running");
    assert!(
        embedded > 0 && embedded < total,
        "stopped midway: {embedded}/{total}"
    );
    let leased: i64 = owner
        .query_one(
            "SELECT count(*) FROM ingest_job_chunks WHERE job_id = $1 AND lease_until IS NOT NULL",
            &[&job2.job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leased, 0, "the failed batch is given back at once");
    assert_eq!(
        chunk_texts(&app, &doc).await,
        old,
        "old version still served"
    );
    let d = app
        .call("GET", &format!("/documents/{doc}"), Some(&t), None)
        .await
        .json();
    assert_eq!(d["status"], "processing", "{d}");
    assert_eq!(d["job"]["embedded"], embedded, "{d}");

    // Embedding works again, but the swap fails: still the old version, nothing half-written.
    owner
        .batch_execute(
            "DROP TRIGGER explode ON ingest_job_chunks;
             CREATE TRIGGER explode BEFORE INSERT ON chunks FOR EACH ROW EXECUTE FUNCTION explode();",
        )
        .await
        .unwrap();
    let err = ingestor.run_job(&job2, None).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    let (status, embedded, total) = job_status(&app, job2.job_id).await;
    assert_eq!((status.as_str(), embedded), ("running", total));
    assert_eq!(
        chunk_texts(&app, &doc).await,
        old,
        "old version still served"
    );

    // Fixed: a worker resumes and swaps version two in, each chunk once.
    owner
        .batch_execute("DROP TRIGGER explode ON chunks")
        .await
        .unwrap();
    assert_eq!(
        ingestor.run_job(&job2, None).await.unwrap(),
        JobRun::Finished { chunks: total }
    );
    let new = chunk_texts(&app, &doc).await;
    assert_eq!(new.len(), out2.chunks);
    assert!(new.iter().all(|t| t.contains("second handbook")));
    assert_eq!(new.iter().filter(|t| t.contains("EXPLODE")).count(), 1);
    assert_eq!(pending_rows(&app).await, 0);
    // A late worker of either job finds nothing to do.
    assert_eq!(ingestor.run_job(&job2, None).await.unwrap(), JobRun::Gone);
    assert_eq!(ingestor.run_job(&job1, None).await.unwrap(), JobRun::Gone);

    // Deleting the document ends a running job: its workers stop.
    let v3 = handbook("third", 10, "");
    let out3 = ingestor
        .ingest_file(&src, v3.into_bytes(), None)
        .await
        .unwrap();
    app.call("DELETE", &format!("/documents/{doc}"), Some(&t), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let job3 = JobRef {
        tenant: src.tenant.clone(),
        job_id: out3.job_id.unwrap(),
    };
    assert_eq!(ingestor.run_job(&job3, None).await.unwrap(), JobRun::Gone);
    assert_eq!(pending_rows(&app).await, 0);
}

/// A local Lambda endpoint: `Invoke` with `InvocationType: Event` answers 202 and queues the
/// event; [`run_invocations`] runs each through `lambda::dispatch` (as the embed function's runtime
/// loop does) with a deadline one second away, as if the invocation were nearly out of time.
#[derive(Clone)]
struct LocalLambda {
    queue: tokio::sync::mpsc::UnboundedSender<Value>,
    invocations: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn invoke(
    State(lambda): State<LocalLambda>,
    axum::extract::Path(function): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    if headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        != Some("Event")
    {
        return StatusCode::BAD_REQUEST;
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    lambda
        .invocations
        .lock()
        .unwrap()
        .push((function, event.clone()));
    match lambda.queue.send(event) {
        Ok(()) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Runs queued invocations concurrently, forever; each result is pushed to `results`.
async fn run_invocations(
    router: Router,
    state: AppState,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Value>,
    results: Arc<Mutex<Vec<Result<Value, String>>>>,
) {
    use futures_util::StreamExt;
    let mut running = futures_util::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(event) = queue.recv() => {
                let (router, state) = (router.clone(), state.clone());
                running.push(async move {
                    let mut ctx = lambda_runtime::Context::default();
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as u64;
                    ctx.deadline = now + 1_000;
                    dispatch(router, &state, Triggers::of(ragbot::Function::Embed), event, ctx)
                        .await
                        .map_err(|e| e.to_string())
                });
            }
            Some(result) = running.next(), if !running.is_empty() => {
                results.lock().unwrap().push(result);
            }
        }
    }
}

#[tokio::test]
async fn on_lambda_workers_are_invoked_and_hand_over_before_their_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (queue, queued) = tokio::sync::mpsc::unbounded_channel();
    let lambda = LocalLambda {
        queue,
        invocations: Arc::default(),
    };
    let server = Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(lambda.clone());
    tokio::spawn(async move { axum::serve(listener, server).await });

    let app = TestApp::spawn_with(Options {
        env: job_env(&[
            ("INGEST_JOB_FUNCTION", "ragbot-embed"),
            ("AWS_ENDPOINT_URL_LAMBDA", &endpoint),
            ("INGEST_JOB_CHUNKS_PER_WORKER", "4"),
            ("INGEST_JOB_MAX_WORKERS", "2"),
        ]),
        ..Default::default()
    })
    .await;
    let results = Arc::new(Mutex::new(Vec::new()));
    let functions = run_invocations(
        app.router.clone(),
        app.state.clone(),
        queued,
        results.clone(),
    );
    let mut functions = std::pin::pin!(functions);
    let t = app.token("admin", "acme", &["admin"]);

    let body = handbook("lambda", 12, "");
    let r = upload(&app, &t, "big.md", body).await;
    let doc = r["document_id"].as_str().unwrap().to_string();
    let total = r["chunks"].as_u64().unwrap();
    let d = tokio::select! {
        _ = &mut functions => unreachable!("the local Lambda runs forever"),
        d = wait_for(&app, &t, &doc, |d| d["status"] == "ready") => d,
    };
    assert_eq!(d["chunk_count"], total, "{d}");
    assert_eq!(chunk_texts(&app, &doc).await.len() as u64, total);
    assert_eq!(pending_rows(&app).await, 0);
    // Stragglers (successors invoked while the job finished) end quietly.
    let _ = tokio::time::timeout(Duration::from_secs(3), &mut functions).await;

    let invocations = lambda.invocations.lock().unwrap().clone();
    let expected = json!({"action": "ingest_job", "tenant": "acme", "job_id": r["job_id"]});
    assert!(
        invocations
            .iter()
            .all(|(f, e)| f == "ragbot-embed" && *e == expected),
        "{invocations:?}"
    );
    // Two workers to start with (12+ chunks at 4 per worker, at most 2); each invocation does one
    // step and, a second from its deadline, invokes its successor: many more invocations than 2.
    let batches = total.div_ceil(4) as usize;
    assert!(
        invocations.len() > batches,
        "{} invocations for {batches} batches",
        invocations.len()
    );
    let results = results.lock().unwrap().clone();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .any(|v| v["result"].as_str().unwrap_or("").starts_with("Finished")),
        "{results:?}"
    );
}

#[tokio::test]
async fn a_job_whose_workers_died_is_reported_stalled_and_restarted() {
    let app = TestApp::spawn_with(Options {
        env: job_env(&[("INGEST_JOB_LEASE_SECONDS", "1")]),
        ..Default::default()
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let mut ingestor = (*app.state.ingestor).clone();
    // Workers that never run: as if every one of them died.
    ingestor.dispatcher = Some(recorder.clone());
    let src = source(&ingestor, "tenants/acme/uploads/stalled.md");
    let out = ingestor
        .ingest_file(&src, handbook("first", 10, "").into_bytes(), None)
        .await
        .unwrap();
    let job_id = out.job_id.unwrap();
    let none = ragbot::lambda::restart_stalled(&ingestor).await.unwrap();
    assert_eq!(none["restarted"], json!([]), "a fresh job is not stalled");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    recorder.0.lock().unwrap().clear();
    let report = ragbot::lambda::restart_stalled(&ingestor).await.unwrap();
    let restarted = report["restarted"].as_array().unwrap();
    assert_eq!(restarted.len(), 1, "{report}");
    assert_eq!(restarted[0]["tenant"], "acme");
    assert_eq!(restarted[0]["job"]["job_id"], job_id.to_string());
    assert_eq!(
        restarted[0]["job"]["document_id"],
        out.document_id.to_string()
    );
    assert_eq!(restarted[0]["job"]["embedded"], 0);
    assert!(restarted[0]["job"]["idle_seconds"].as_i64().unwrap() >= 1);
    let dispatched = recorder.0.lock().unwrap().clone();
    assert_eq!(
        dispatched,
        vec![(
            JobRef {
                tenant: src.tenant.clone(),
                job_id
            },
            1
        )]
    );
    // The restarted worker carries the job to its end.
    let job = JobRef {
        tenant: src.tenant.clone(),
        job_id,
    };
    assert!(matches!(
        ingestor.run_job(&job, None).await.unwrap(),
        JobRun::Finished { .. }
    ));
    let after = ragbot::lambda::restart_stalled(&ingestor).await.unwrap();
    assert_eq!(after["restarted"], json!([]));
}

#[tokio::test]
async fn workers_can_be_started_by_job_objects_in_s3_without_the_lambda_api() {
    let jobs_bucket = format!("jobs-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let app = TestApp::spawn_with(Options {
        env: job_env(&[("INGEST_JOB_BUCKET", jobs_bucket.as_str())]),
        ..Default::default()
    })
    .await;
    let t = app.token("admin", "acme", &["admin"]);
    let r = upload(&app, &t, "handbook.md", handbook("first", 12, "")).await;
    assert_eq!(r["status"], "processing", "{r}");
    let doc = r["document_id"].as_str().unwrap().to_string();

    // The upload wrote one job object (12 chunks: one worker) instead of calling Lambda.
    let s3 = &app.state.aws.s3;
    let listed = s3
        .list_objects_v2()
        .bucket(&jobs_bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("jobs/acme/{}/", r["job_id"].as_str().unwrap())),
        "{keys:?}"
    );
    let d = app
        .call("GET", &format!("/documents/{doc}"), Some(&t), None)
        .await
        .json();
    assert_eq!(
        d["status"], "processing",
        "nothing runs until the object's notification: {d}"
    );

    // The bucket's notification invokes the embed function: the worker runs the job to its end.
    let event = ragbot::aws::notify_local::s3_event(
        "ObjectCreated:Put",
        &jobs_bucket,
        &keys[0],
        Some("e"),
        80,
    );
    let out = dispatch(
        app.router.clone(),
        &app.state,
        Triggers::S3,
        event.clone(),
        Default::default(),
    )
    .await
    .expect("the worker runs");
    assert!(
        out["workers"][0]["run"]["result"]
            .as_str()
            .unwrap()
            .contains("Finished"),
        "{out}"
    );
    let d = wait_for(&app, &t, &doc, |d| d["status"] == "ready").await;
    assert_eq!(d["chunk_count"], r["chunks"], "{d}");
    // Its object is gone; a redelivered notification finds nothing to do.
    assert_eq!(
        s3.list_objects_v2()
            .bucket(&jobs_bucket)
            .send()
            .await
            .unwrap()
            .key_count(),
        Some(0)
    );
    let again = dispatch(
        app.router.clone(),
        &app.state,
        Triggers::S3,
        event,
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(again["workers"][0]["result"], "already_done", "{again}");
}
