//! Lambda entry points for functions that take more than API Gateway requests: the embed function
//! also receives S3 notifications, and the backup function EventBridge schedules and direct
//! restore invocations. The event's shape decides; each function says which kinds it takes.

use lambda_http::{request::LambdaRequest, Adapter, Service};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

use crate::{ingest::document::Ingestor, AppState, Function};

pub type Error = lambda_runtime::Error;

/// What a function takes besides API Gateway requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggers {
    HttpOnly,
    /// S3 notifications of the documents bucket, and `{"action": "ingest_job", …}` worker
    /// invocations for large documents (embed).
    S3,
    /// EventBridge schedules, and `{"action": "restore", "key": "..."}` direct invocations (backup).
    Backup,
}

impl Triggers {
    pub fn of(function: Function) -> Triggers {
        match function {
            Function::Embed => Triggers::S3,
            Function::Backup => Triggers::Backup,
            Function::Health | Function::Retrieve | Function::Chat => Triggers::HttpOnly,
        }
    }
}

/// Cold start of a function that serves HTTP routes: configuration, telemetry, the function's
/// routes and the app state (pool, clients, and the model when [`Function::needs_model`]), built once per
/// execution environment. Any failure ends the process with one line naming the function, which
/// Lambda reports as the init error.
pub async fn cold_start(function: Function) -> (axum::Router, AppState) {
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{function}: {e}");
        std::process::exit(2)
    };
    let mut config = crate::Config::from_env().unwrap_or_else(|e| fail(&e));
    crate::telemetry::init(config.log_format);
    if !function.needs_model() {
        config.embedding.provider = crate::config::EmbeddingProviderKind::None;
    }
    let routes = crate::http::function_routes(function);
    let state = AppState::init(config).await.unwrap_or_else(|e| fail(&e));
    (crate::http::app(routes, state.clone()), state)
}

/// Whether `event` is an S3 notification (`Records[].eventSource == "aws:s3"`).
pub fn is_s3_event(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:s3")
}

/// Whether `event` is an EventBridge schedule (`source: aws.events`, `detail-type: Scheduled Event`).
pub fn is_scheduled_event(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// The key of a direct restore invocation: `{"action": "restore", "key": "backups/…"}`.
fn restore_key(event: &Value) -> Option<&str> {
    if event.get("action").and_then(Value::as_str) != Some("restore") {
        return None;
    }
    event.get("key").and_then(Value::as_str)
}

fn refuse(kind: &str, triggers: Triggers) -> Error {
    let takes = match triggers {
        Triggers::HttpOnly => "API Gateway requests only",
        Triggers::S3 => "API Gateway requests, S3 notifications and ingestion jobs",
        Triggers::Backup => "API Gateway requests, schedules and restore actions",
    };
    format!("this function does not take {kind}: it takes {takes}").into()
}

/// Handles one invocation: S3 events go to ingestion, schedules and restores to backups, anything
/// else is parsed as an API Gateway request and served by `router` (the router the dev server
/// serves).
pub async fn dispatch(
    router: axum::Router,
    state: &AppState,
    triggers: Triggers,
    event: Value,
    context: Context,
) -> Result<Value, Error> {
    if is_s3_event(&event) {
        if triggers != Triggers::S3 {
            return Err(refuse("S3 events", triggers));
        }
        if let Some(jobs) = state.aws.job_bucket.as_deref() {
            if s3_event_bucket(&event) == Some(jobs) {
                return job_object_workers(state, jobs, &event, &context).await;
            }
        }
        return dispatch_s3(&state.ingestor, event).await;
    }
    if is_scheduled_event(&event) {
        if triggers != Triggers::Backup {
            return Err(refuse("scheduled events", triggers));
        }
        return scheduled_backup(state).await;
    }
    if event.get("action").and_then(Value::as_str) == Some(crate::aws::INGEST_JOB_ACTION) {
        if triggers != Triggers::S3 {
            return Err(refuse("ingestion jobs", triggers));
        }
        return ingest_job_worker(&state.ingestor, &event, &context).await;
    }
    if event.get("action").and_then(Value::as_str) == Some(crate::aws::RESTART_STALLED_ACTION) {
        if triggers != Triggers::S3 {
            return Err(refuse("ingestion jobs", triggers));
        }
        return restart_stalled(&state.ingestor).await;
    }
    if event.get("action").is_some() {
        if triggers != Triggers::Backup {
            return Err(refuse("actions", triggers));
        }
        let key = restore_key(&event)
            .ok_or("a direct invocation takes {\"action\": \"restore\", \"key\": \"backups/…\"}")?;
        let manifest = state.backups().restore(key).await.map_err(|e| {
            tracing::error!(error = %e, "restore failed; nothing was changed");
            Box::new(e) as Error
        })?;
        return Ok(json!({ "restored": manifest }));
    }
    let request: LambdaRequest = serde_json::from_value(event)?;
    let mut adapter = Adapter::from(router);
    let response = adapter.call(LambdaEvent::new(request, context)).await?;
    Ok(serde_json::to_value(response)?)
}

/// Ingests / removes the objects of an S3 notification. An error (e.g. the database is down) fails
/// the invocation so that Lambda retries it; per-object outcomes are in the response.
pub async fn dispatch_s3(ingestor: &Ingestor, event: Value) -> Result<Value, Error> {
    let s3: aws_lambda_events::s3::S3Event = serde_json::from_value(event)?;
    let events = crate::aws::object_events(&s3);
    let reports = ingestor.handle_object_events(&events).await.map_err(|e| {
        tracing::error!(error = %e, "S3 event failed; Lambda will retry it");
        Box::new(e) as Error
    })?;
    Ok(json!({ "records": reports }))
}

/// The bucket of an S3 notification's first record.
fn s3_event_bucket(event: &Value) -> Option<&str> {
    event
        .pointer("/Records/0/s3/bucket/name")
        .and_then(Value::as_str)
}

/// Workers started by job objects (see [`crate::aws::S3JobDispatcher`]): each record's object holds
/// a worker event. The object is deleted once its worker has run; a failure fails the invocation,
/// so Lambda retries it (and keeps it in the failed-events bucket after two retries).
async fn job_object_workers(
    state: &AppState,
    bucket: &str,
    event: &Value,
    context: &Context,
) -> Result<Value, Error> {
    use crate::ports::ObjectStore;
    let s3: aws_lambda_events::s3::S3Event = serde_json::from_value(event.clone())?;
    let objects = crate::aws::S3Objects::from_client(state.aws.s3.clone());
    let mut runs = Vec::new();
    for record in &s3.records {
        if !record
            .event_name
            .as_deref()
            .unwrap_or("")
            .starts_with("ObjectCreated")
        {
            continue;
        }
        let key = crate::aws::decode_s3_key(record.s3.object.key.as_deref().unwrap_or(""));
        let Some(job) = crate::aws::read_job_object(&objects, bucket, &key).await? else {
            // Gone: a redelivery of a worker that already ran.
            runs.push(json!({"key": key, "result": "already_done"}));
            continue;
        };
        let run = ingest_job_worker(&state.ingestor, &job, context).await?;
        objects.delete(bucket, &key).await?;
        runs.push(json!({"key": key, "run": run}));
    }
    Ok(json!({ "workers": runs }))
}

/// How Lambda retries a failed asynchronous invocation: twice more, about one and then two minutes
/// later; the dev server waits [`LOCAL_RETRY_DELAYS`] instead.
pub const LAMBDA_RETRY_DELAYS: [std::time::Duration; 2] = [
    std::time::Duration::from_secs(60),
    std::time::Duration::from_secs(120),
];
/// The dev server's retry delays for the S3 notifications it emulates.
pub const LOCAL_RETRY_DELAYS: [std::time::Duration; 2] = [
    std::time::Duration::from_secs(5),
    std::time::Duration::from_secs(10),
];

/// Handles an asynchronous event as Lambda does: on failure it is tried again after each of
/// `delays`, and when the last attempt fails its invocation record goes to the failed-events
/// bucket (the function's on-failure destination), to be replayed by `ragbot replay-failed`.
/// `None` when every attempt failed.
pub async fn deliver_async<F, Fut>(
    function: &str,
    event: Value,
    delays: &[std::time::Duration],
    failed: Option<&crate::aws::failed_events::FailedEvents>,
    handle: F,
) -> Option<Value>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = Result<Value, Error>>,
{
    let mut attempt = 0;
    let error = loop {
        attempt += 1;
        match handle(event.clone()).await {
            Ok(v) => return Some(v),
            Err(e) => match delays.get(attempt - 1) {
                Some(delay) => {
                    tracing::warn!(error = %e, attempt, retry_in_s = delay.as_secs_f64(), "asynchronous invocation failed; retrying");
                    tokio::time::sleep(*delay).await;
                }
                None => break e.to_string(),
            },
        }
    };
    let attempts = u32::try_from(attempt).unwrap_or(u32::MAX);
    match failed {
        Some(f) => {
            let record = crate::aws::failed_events::record(function, &event, &error, attempts);
            match f.put(function, &record).await {
                Ok(key) => {
                    tracing::error!(%error, attempts, bucket = f.bucket(), %key, "asynchronous invocation failed for good; kept for `ragbot replay-failed`")
                }
                Err(e) => {
                    tracing::error!(%error, keep_error = %e, "asynchronous invocation failed for good and could not be kept")
                }
            }
        }
        None => {
            tracing::error!(%error, attempts, "asynchronous invocation failed for good (no failed-events bucket configured)")
        }
    }
    None
}

/// What replaying one kept record did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    pub key: String,
    /// `replayed` (the record was deleted) or `failed` (kept, see `error`).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Replays every record kept in the failed-events bucket through `handle` (in AWS: an
/// asynchronous invocation of the embed function; locally: its handler in-process), oldest
/// first. A replayed record is deleted; a record that fails again is kept and reported.
pub async fn replay_failed<F, Fut>(
    failed: &crate::aws::failed_events::FailedEvents,
    handle: F,
) -> Result<Vec<Replayed>, crate::ports::PortError>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = Result<Value, Error>>,
{
    let mut out = Vec::new();
    for kept in failed.list().await? {
        let Some(payload) = crate::aws::failed_events::payload(&kept.record) else {
            out.push(Replayed {
                key: kept.key,
                result: "failed",
                response: None,
                error: Some("not a Lambda invocation record (no requestPayload)".into()),
            });
            continue;
        };
        match handle(payload.clone()).await {
            Ok(response) => {
                failed.delete(&kept.key).await?;
                out.push(Replayed {
                    key: kept.key,
                    result: "replayed",
                    response: Some(response),
                    error: None,
                });
            }
            Err(e) => out.push(Replayed {
                key: kept.key,
                result: "failed",
                response: None,
                error: Some(e.to_string()),
            }),
        }
    }
    Ok(out)
}

/// Starts a worker again for every job that has made no progress for longer than a lease (its
/// workers died, or gave up after Lambda's retries); reports them.
pub async fn restart_stalled(ingestor: &Ingestor) -> Result<Value, Error> {
    let stalled = ingestor.stalled_jobs().await?;
    let mut restarted = Vec::with_capacity(stalled.len());
    for (tenant, job) in stalled {
        tracing::warn!(tenant = %tenant, job = %job.job_id, document = %job.document_id, idle_seconds = job.idle_seconds, "stalled ingestion job; starting a worker again");
        ingestor.restart_job(&tenant, job.job_id).await?;
        restarted.push(json!({"tenant": tenant.as_str(), "job": job}));
    }
    Ok(json!({ "restarted": restarted }))
}

/// One ingestion worker (see [`crate::ingest::jobs`]): works on the job until it is done or this
/// invocation nears its deadline (then it invokes a successor). An error fails the invocation, so
/// Lambda retries it; the work stored so far is kept.
async fn ingest_job_worker(
    ingestor: &Ingestor,
    event: &Value,
    context: &Context,
) -> Result<Value, Error> {
    let tenant = event
        .get("tenant")
        .and_then(Value::as_str)
        .ok_or("an ingestion job event needs \"tenant\"")?;
    let tenant = crate::auth::Tenant::parse(tenant)?;
    let job_id = event
        .get("job_id")
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or("an ingestion job event needs \"job_id\" (a UUID)")?;
    let job = crate::ports::JobRef { tenant, job_id };
    let deadline = deadline_of(context);
    let run = ingestor.run_job(&job, deadline).await.map_err(|e| {
        tracing::error!(job = %job_id, error = %e, "ingestion worker failed; Lambda will retry it");
        Box::new(e) as Error
    })?;
    Ok(json!({ "job_id": job_id, "result": format!("{run:?}") }))
}

/// The invocation's deadline as an `Instant` (`context.deadline` is epoch milliseconds; 0 when
/// unknown, e.g. a local invocation without one).
pub fn deadline_of(context: &Context) -> Option<std::time::Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    let left = context.deadline.saturating_sub(now_ms);
    Some(std::time::Instant::now() + std::time::Duration::from_millis(left))
}

/// Backs up every tenant. Every tenant is attempted; if any failed, the invocation fails after
/// the others are done (so the Lambda `Errors` metric and alarms see it), naming them.
async fn scheduled_backup(state: &AppState) -> Result<Value, Error> {
    let results = state.backups().create_all().await.map_err(|e| {
        tracing::error!(error = %e, "scheduled backup could not start");
        Box::new(e) as Error
    })?;
    let mut written = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(m) => written.push(m),
            Err((tenant, error)) => failed.push(format!("{tenant}: {error}")),
        }
    }
    crate::telemetry::metric(
        "BackupFailures",
        failed.len() as f64,
        crate::telemetry::Unit::Count,
    );
    if !failed.is_empty() {
        return Err(format!(
            "{} of {} tenant backups failed: {}",
            failed.len(),
            failed.len() + written.len(),
            failed.join("; ")
        )
        .into());
    }
    Ok(json!({ "backups": written }))
}

/// The Lambda runtime loop for a function with non-HTTP triggers.
pub async fn run(router: axum::Router, state: AppState, triggers: Triggers) -> Result<(), Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| {
            let (router, state) = (router.clone(), state.clone());
            async move { dispatch(router, &state, triggers, event.payload, event.context).await }
        },
    ))
    .await
}
