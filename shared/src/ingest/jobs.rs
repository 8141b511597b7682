//! Large documents: more chunks than one Lambda invocation can embed in 15 minutes (a 50 MB text
//! is ~54k chunks; at ~20 chunks/s per invocation that is 45 minutes).
//!
//! The invocation that receives the document parses and chunks it once, stages the chunks without
//! embeddings in one transaction (the document shows `processing`; its previous chunks are still
//! served), and starts workers. Each worker claims batches (`FOR UPDATE SKIP LOCKED`, leased so a
//! dead worker's batch is taken again), embeds them and stores the vectors. A worker that nears its
//! deadline dispatches one more worker and returns. When no chunk is left, one transaction swaps
//! the document's chunks for the new ones and marks it `ready`. A failure anywhere before that swap
//! leaves the previous version intact; a retried or re-dispatched worker resumes where the job is.

use std::time::{Duration, Instant};

pub use super::JobSettings;
use super::{document::Ingestor, IngestError};
use crate::ports::JobRef;
use crate::{
    auth::Tenant,
    store::jobs::{self, Claimed, Finished},
};

/// How a worker's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRun {
    /// This worker swapped the document's chunks: the job is done.
    Finished { chunks: i32 },
    /// Near the deadline: one more worker was dispatched to carry on.
    Continued,
    /// Nothing left for this worker (another finished it, it failed, or it was superseded).
    Gone,
}

/// Attempts of an in-process worker (a Lambda worker is retried by Lambda's asynchronous
/// invocation instead).
const LOCAL_ATTEMPTS: u32 = 3;

impl Ingestor {
    /// Starts the workers of a freshly staged job of `total` chunks.
    pub(crate) async fn start_job(&self, job: &JobRef, total: usize) -> Result<(), IngestError> {
        let workers = self.jobs.workers_for(total);
        self.dispatch_workers(job, workers).await
    }

    async fn dispatch_workers(&self, job: &JobRef, workers: usize) -> Result<(), IngestError> {
        match &self.dispatcher {
            Some(d) => Ok(d.dispatch(job, workers).await?),
            None => {
                // In-process (dev server, CLI, tests): the embedder already uses every core, so
                // one worker task is as fast as several.
                self.spawn_local_worker(job.clone());
                Ok(())
            }
        }
    }

    /// Every tenant's jobs that have made no progress for longer than a lease (their workers died
    /// or gave up), with the tenant they belong to.
    pub async fn stalled_jobs(&self) -> Result<Vec<(Tenant, jobs::Stalled)>, IngestError> {
        let mut out = Vec::new();
        for tenant in crate::store::tenants(&self.store).await? {
            let tx = self.store.begin(&tenant).await?;
            let stalled = jobs::stalled(&tx, self.jobs.lease).await?;
            tx.commit().await?;
            out.extend(stalled.into_iter().map(|s| (tenant.clone(), s)));
        }
        Ok(out)
    }

    /// Starts a worker again for a stalled job (it carries on from what is stored).
    pub async fn restart_job(
        &self,
        tenant: &Tenant,
        job_id: uuid::Uuid,
    ) -> Result<(), IngestError> {
        let job = JobRef {
            tenant: tenant.clone(),
            job_id,
        };
        self.dispatch_workers(&job, 1).await
    }

    /// Runs a worker as a task of this process, retried a few times on transient errors.
    pub fn spawn_local_worker(&self, job: JobRef) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=LOCAL_ATTEMPTS {
                match me.run_job(&job, None).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(job = %job.job_id, attempt, error = %e, "ingestion worker failed");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            tracing::error!(job = %job.job_id, "ingestion worker gave up; ingest the document again to resume");
        });
    }

    /// One worker: claims, embeds and stores batches until the job is complete (then swaps the
    /// chunks in), gone, or `deadline` is near (then dispatches a successor). `Err` only for
    /// transient failures; what this worker embedded is kept, and its current batch given back.
    pub async fn run_job(
        &self,
        job: &JobRef,
        deadline: Option<Instant>,
    ) -> Result<JobRun, IngestError> {
        let embedder = self.embedder.clone().ok_or(IngestError::NoEmbedder)?;
        let tx = self.store.begin(&job.tenant).await?;
        let total = match jobs::running(&tx, job.job_id).await? {
            None => {
                tx.commit().await?;
                return Ok(JobRun::Gone);
            }
            Some((model, _)) if model != embedder.model_id() => {
                let reason = format!(
                    "the document was staged for embedding model {model}, but this function embeds with {}; ingest it again",
                    embedder.model_id()
                );
                tracing::error!(job = %job.job_id, %reason, "ingestion job failed");
                jobs::fail(&tx, job.job_id, &reason).await?;
                tx.commit().await?;
                return Ok(JobRun::Gone);
            }
            Some((_, total)) => {
                tx.commit().await?;
                total
            }
        };
        // The swap inserts every chunk into the HNSW index in one transaction: it must fit in
        // what is left of the invocation.
        let swap_time =
            Duration::from_secs_f64(total.max(0) as f64 / self.jobs.swap_rows_per_second.max(1.0));

        let batch = self.embed_batch.max(1) as i64;
        let mut idle = Duration::from_millis(100);
        // Every run does at least one step (a batch, or a wait) before handing over, so a short
        // deadline still makes progress instead of passing the job on forever.
        let mut stepped = false;
        let mut embedded_here = false;
        loop {
            if let Some(d) = deadline.filter(|_| stepped) {
                if d.saturating_duration_since(Instant::now()) < self.jobs.reserve {
                    self.dispatch_workers(job, 1).await?;
                    tracing::info!(job = %job.job_id, "ingestion worker handed over before its deadline");
                    return Ok(JobRun::Continued);
                }
            }
            let tx = self.store.begin(&job.tenant).await?;
            let claimed = jobs::claim(&tx, job.job_id, batch, self.jobs.lease).await?;
            tx.commit().await?;
            stepped = true;
            match claimed {
                Claimed::Gone => return Ok(JobRun::Gone),
                Claimed::Waiting { remaining } => {
                    tracing::debug!(job = %job.job_id, remaining, "waiting for other workers' batches");
                    tokio::time::sleep(idle).await;
                    idle = (idle * 2).min(Duration::from_secs(2));
                }
                Claimed::Batch(rows) => {
                    idle = Duration::from_millis(100);
                    self.embed_claimed(&embedder, job, rows).await?;
                    embedded_here = true;
                }
                Claimed::Complete => {
                    // A worker that spent its time embedding hands the swap to a fresh
                    // invocation when it may not finish it; a fresh one always tries.
                    if let Some(d) = deadline.filter(|_| embedded_here) {
                        if d.saturating_duration_since(Instant::now())
                            < self.jobs.reserve + swap_time
                        {
                            self.dispatch_workers(job, 1).await?;
                            tracing::info!(job = %job.job_id, estimate_s = swap_time.as_secs(), "ingestion worker handed the final swap to a fresh invocation");
                            return Ok(JobRun::Continued);
                        }
                    }
                    let tx = self.store.begin_long(&job.tenant).await?;
                    let finished = jobs::finish(&tx, job.job_id).await?;
                    tx.commit().await?;
                    match finished {
                        Finished::Swapped {
                            document_id,
                            chunks,
                        } => {
                            tracing::info!(job = %job.job_id, %document_id, chunks, "document ingested by its workers");
                            return Ok(JobRun::Finished { chunks });
                        }
                        Finished::NotYet => continue,
                        Finished::Gone => return Ok(JobRun::Gone),
                    }
                }
            }
        }
    }

    async fn embed_claimed(
        &self,
        embedder: &crate::embedding::SharedEmbedder,
        job: &JobRef,
        rows: Vec<(i32, String)>,
    ) -> Result<(), IngestError> {
        let texts: Vec<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();
        let stored = async {
            let vectors = embedder.embed(&texts).await?;
            crate::embedding::check_count(rows.len(), vectors.len())?;
            let embedded: Vec<(i32, Vec<f32>)> =
                rows.iter().map(|(o, _)| *o).zip(vectors).collect();
            let tx = self.store.begin(&job.tenant).await?;
            jobs::store_embeddings(&tx, job.job_id, &embedded).await?;
            tx.commit().await?;
            Ok::<(), IngestError>(())
        }
        .await;
        if stored.is_err() {
            // Give the batch back now rather than when the lease runs out.
            let ordinals: Vec<i32> = rows.iter().map(|(o, _)| *o).collect();
            let released = async {
                let tx = self.store.begin(&job.tenant).await?;
                jobs::release(&tx, job.job_id, &ordinals).await?;
                tx.commit().await
            };
            if let Err(e) = released.await {
                tracing::warn!(job = %job.job_id, error = %e, "could not give back a claimed batch; its lease will run out");
            }
        }
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::JobSettings;

    #[test]
    fn workers_grow_with_the_job_up_to_the_maximum() {
        let s = JobSettings::default();
        assert_eq!(s.workers_for(1), 1);
        assert_eq!(s.workers_for(1000), 1);
        assert_eq!(s.workers_for(1001), 2);
        assert_eq!(s.workers_for(54_000), 8);
    }
}
