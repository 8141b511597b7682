//! Ingestion settings: chunk sizes, embedding batches, large-document jobs, limits
//! (`CHUNK_*`, `EMBED_BATCH_SIZE`, `INGEST_*`).

use std::time::Duration;

use crate::env::{ConfigError, Env};

/// Ingestion: chunk sizes in tokens of the embedding model, embedding batch size.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub chunk_max_tokens: usize,
    pub chunk_overlap_tokens: usize,
    pub embed_batch: usize,
    /// Large documents: when they are split among workers, and how.
    pub jobs: JobSettings,
    /// The Lambda function that runs ingestion workers (`INGEST_JOB_FUNCTION`, else this
    /// function when running in Lambda); `None`: workers are tasks of this process.
    pub job_function: Option<String>,
    /// The largest file ingested (`INGEST_MAX_FILE_BYTES`, 50 MiB): a presigned upload may not
    /// declare more, and a bigger object put into the bucket is marked failed.
    pub max_file_bytes: u64,
    /// How long the ingestion ledger's claim on one S3 write lasts unrenewed
    /// (`INGEST_CLAIM_LEASE_SECONDS`, [`crate::ports::LEDGER_LEASE`]).
    pub claim_lease: Duration,
}

impl IngestSettings {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
    ) -> Result<Self, ConfigError> {
        let ingest = IngestSettings {
            chunk_max_tokens: env.parse_or("CHUNK_MAX_TOKENS", 200)?,
            chunk_overlap_tokens: env.parse_or("CHUNK_OVERLAP_TOKENS", 30)?,
            embed_batch: env.parse_or("EMBED_BATCH_SIZE", 32)?,
            jobs: {
                let d = JobSettings::default();
                JobSettings {
                    threshold_chunks: env
                        .parse_or("INGEST_JOB_THRESHOLD_CHUNKS", d.threshold_chunks)?,
                    max_workers: env.parse_or("INGEST_JOB_MAX_WORKERS", d.max_workers)?,
                    chunks_per_worker: env
                        .parse_or("INGEST_JOB_CHUNKS_PER_WORKER", d.chunks_per_worker)?,
                    lease: Duration::from_secs(
                        env.parse_or("INGEST_JOB_LEASE_SECONDS", d.lease.as_secs())?,
                    ),
                    reserve: Duration::from_secs(
                        env.parse_or("INGEST_JOB_RESERVE_SECONDS", d.reserve.as_secs())?,
                    ),
                    swap_rows_per_second: env
                        .parse_or("INGEST_JOB_SWAP_ROWS_PER_SECOND", d.swap_rows_per_second)?,
                }
            },
            job_function: env
                .string("INGEST_JOB_FUNCTION")
                .or_else(|| env.string("AWS_LAMBDA_FUNCTION_NAME")),
            max_file_bytes: env.parse_or("INGEST_MAX_FILE_BYTES", 50 * 1024 * 1024)?,
            claim_lease: Duration::from_secs(env.parse_or(
                "INGEST_CLAIM_LEASE_SECONDS",
                crate::ports::LEDGER_LEASE.as_secs(),
            )?),
        };
        for (name, value) in [
            ("INGEST_JOB_MAX_WORKERS", ingest.jobs.max_workers),
            (
                "INGEST_JOB_CHUNKS_PER_WORKER",
                ingest.jobs.chunks_per_worker,
            ),
            (
                "INGEST_JOB_LEASE_SECONDS",
                ingest.jobs.lease.as_secs() as usize,
            ),
            (
                "INGEST_CLAIM_LEASE_SECONDS",
                ingest.claim_lease.as_secs() as usize,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        // all-MiniLM-L6-v2 reads 256 tokens, two of which are [CLS] and [SEP].
        if !(16..=254).contains(&ingest.chunk_max_tokens) {
            return Err(ConfigError::Invalid {
                name: "CHUNK_MAX_TOKENS",
                reason: format!(
                    "{} is outside 16..=254 (the model reads 256 tokens including 2 special ones)",
                    ingest.chunk_max_tokens
                ),
            });
        }
        if ingest.chunk_overlap_tokens >= ingest.chunk_max_tokens {
            return Err(ConfigError::Invalid {
                name: "CHUNK_OVERLAP_TOKENS",
                reason: "must be smaller than CHUNK_MAX_TOKENS".into(),
            });
        }
        if ingest.embed_batch == 0 {
            return Err(ConfigError::Invalid {
                name: "EMBED_BATCH_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        Ok(ingest)
    }
}

/// How large documents are split among workers (`INGEST_JOB_*` variables).
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Documents with more chunks than this are embedded by workers; smaller ones inline.
    pub threshold_chunks: usize,
    /// At most this many workers per job.
    pub max_workers: usize,
    /// Fewer workers for smaller jobs: one per this many chunks.
    pub chunks_per_worker: usize,
    /// How long a claimed batch stays a worker's before another may take it.
    pub lease: Duration,
    /// A worker stops claiming when less than this is left before its deadline (time for one
    /// more batch), and hands over to a new worker.
    pub reserve: Duration,
    /// Rows per second the final swap moves into `chunks` (HNSW inserts), to judge whether it
    /// fits in what is left of an invocation; when not, a fresh invocation does it.
    pub swap_rows_per_second: f64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            threshold_chunks: 256,
            max_workers: 8,
            chunks_per_worker: 1000,
            lease: Duration::from_secs(120),
            reserve: Duration::from_secs(90),
            swap_rows_per_second: 150.0,
        }
    }
}

impl JobSettings {
    /// Workers to start for a job of `total` chunks.
    pub fn workers_for(&self, total: usize) -> usize {
        total
            .div_ceil(self.chunks_per_worker.max(1))
            .clamp(1, self.max_workers.max(1))
    }
}
