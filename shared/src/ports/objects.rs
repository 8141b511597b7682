//! Ports of the ingestion domain: where documents are stored (S3) and the ledger that makes
//! redelivered S3 events process once (DynamoDB). Adapters are in [`crate::aws`].

use crate::future::BoxFuture;

/// A presigned PUT: send the file to `url` with exactly these headers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PresignedPut {
    pub method: &'static str,
    pub url: String,
    /// Headers the PUT must carry as they are (they are part of the signature).
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub version: Option<String>,
}

/// Which outside service a port failure is about (so errors say what failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The documents bucket (S3).
    ObjectStore,
    /// The ingestion ledger (DynamoDB).
    Ledger,
    /// Starting ingestion workers (the Lambda API).
    Workers,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dependency::ObjectStore => "the document store (S3)",
            Dependency::Ledger => "the ingestion ledger (DynamoDB)",
            Dependency::Workers => "starting ingestion workers (Lambda)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub dependency: Dependency,
    pub message: String,
}

impl PortError {
    pub fn object_store(message: impl Into<String>) -> Self {
        PortError {
            dependency: Dependency::ObjectStore,
            message: message.into(),
        }
    }
    pub fn ledger(message: impl Into<String>) -> Self {
        PortError {
            dependency: Dependency::Ledger,
            message: message.into(),
        }
    }
    pub fn workers(message: impl Into<String>) -> Self {
        PortError {
            dependency: Dependency::Workers,
            message: message.into(),
        }
    }
}

pub trait ObjectStore: Send + Sync {
    /// `None` when the object does not exist (e.g. deleted since the event was sent).
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Object>, PortError>>;
    fn put<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        bytes: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), PortError>>;
    /// A URL that lets its holder PUT exactly `content_length` bytes of `content_type` at
    /// `bucket/key` until it expires (a presigned S3 PutObject).
    fn presign_put<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        content_type: &'a str,
        content_length: u64,
        expires_in: std::time::Duration,
    ) -> BoxFuture<'a, Result<PresignedPut, PortError>>;
    /// Whether the object exists now (HeadObject).
    fn exists<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, PortError>>;
    /// Every key under `prefix`, in key order.
    fn list<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, PortError>>;
}

/// How long a claim protects one S3 write from concurrent processing without being renewed (its
/// holder renews it every third of this while working). An invocation that died mid-way is taken
/// over after it: shorter than the minute Lambda waits before retrying a failed async invocation.
pub const LEDGER_LEASE: std::time::Duration = std::time::Duration::from_secs(45);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation processes the object version.
    Acquired,
    /// Already processed: skip.
    Done,
    /// Another invocation is processing it right now: skip.
    InProgress,
}

/// At-most-once processing of one S3 write across redeliveries and concurrent invocations. A
/// claim is leased: its holder renews it while working, so a claim whose holder died (a crash, a
/// timeout) runs out well before Lambda retries the event (about a minute later).
pub trait Ledger: Send + Sync {
    fn claim<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Claim, PortError>>;
    /// How long a claim lasts without renewal.
    fn lease(&self) -> std::time::Duration;
    /// Extends a held claim by a lease from now.
    fn renew<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), PortError>>;
    fn complete<'a>(
        &'a self,
        id: &'a str,
        outcome: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
    /// Gives the claim back after a transient failure, so a retry can process it.
    fn release<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), PortError>>;
}

/// A large document's ingestion job, as workers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub tenant: crate::auth::Tenant,
    pub job_id: uuid::Uuid,
}

/// Starts workers for an ingestion job somewhere else than this invocation: on Lambda,
/// asynchronous invocations of the embed function itself (a worker that nears its deadline
/// dispatches one more to carry on). Without a dispatcher, workers are tasks of this process.
pub trait JobDispatcher: Send + Sync {
    fn dispatch<'a>(
        &'a self,
        job: &'a JobRef,
        workers: usize,
    ) -> BoxFuture<'a, Result<(), PortError>>;
}

/// A dispatcher shared by every invocation of the process (`Ingestor::dispatcher`).
pub type SharedDispatcher = std::sync::Arc<dyn JobDispatcher>;

/// One record of an object notification (S3 event), decoded: what happened to which object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// The notification's event name (`ObjectCreated:Put`, `ObjectRemoved:Delete`, …).
    pub name: String,
    pub kind: ObjectEventKind,
    pub bucket: String,
    /// The object key, URL-decoded.
    pub key: String,
    /// Identifies the write the record reports (its sequencer, else its version id or ETag): a
    /// redelivery repeats it, a new write of the same key changes it.
    pub write: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectEventKind {
    Created,
    Removed,
    /// Anything else (reported, not handled).
    Other,
}
