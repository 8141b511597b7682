//! Per-process state, built once in `main` (cold start) and shared by every invocation.

use std::sync::Arc;

use crate::{
    auth::{Tenant, Verifier},
    aws::{
        AwsClients, AwsError, DynamoAnswerCache, DynamoLedger, DynamoRateLimiter,
        DynamoTokenBudget, S3Objects,
    },
    chat::{Chat, ChatDeps},
    config::{Config, ConfigError},
    embedding::{EmbeddingError, SharedEmbedder},
    ingest::{chunking::Chunker, document::Ingestor},
    llm::LlmError,
    providers,
    ratelimit::RateLimiter,
    store::{self, Incompatible, Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("creating local resources: {0}")]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Embedding(#[from] EmbeddingError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("embedding model does not fit the database: {0}")]
    Incompatible(#[from] Incompatible),
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub aws: AwsClients,
    /// `None` in processes that embed nothing (the health function).
    pub embedder: Option<SharedEmbedder>,
    pub verifier: Arc<Verifier>,
    pub limiter: Arc<dyn RateLimiter>,
    /// Tenant of principals whose token names none.
    pub default_tenant: Tenant,
    /// Document ingestion (parse, chunk, embed, store), shared by routes and the S3 handler.
    pub ingestor: Arc<Ingestor>,
    /// The chat pipeline (conversation memory, retrieval, generation, citations, cache).
    pub chat: Arc<Chat>,
    /// What readiness pings besides the database and the embedder (S3, DynamoDB).
    pub probes: Arc<[Box<dyn crate::ports::Probe>]>,
}

impl AppState {
    /// Backups of this deployment: the database, the backups bucket, through the object port.
    pub fn backups(&self) -> crate::backup::Backups<'_> {
        crate::backup::Backups {
            store: &self.store,
            objects: self.ingestor.objects.as_ref(),
            bucket: &self.aws.backups_bucket,
        }
    }

    pub async fn init(config: Config) -> Result<Self, InitError> {
        Self::init_with(config, true).await
    }

    /// `check_model: false` skips the start-up check of the embedder against stored chunks (for
    /// `ragbot reembed`, whose job is to fix a mismatch).
    pub async fn init_with(config: Config, check_model: bool) -> Result<Self, InitError> {
        let store = Store::new(&config.database)?;
        let aws = AwsClients::new(&config.aws).await;
        if config.aws.create_local_resources {
            aws.ensure_local_resources().await?;
        }
        let embedder = providers::embedder(&config.embedding).await?;
        if let Some(e) = embedder.as_ref().filter(|_| check_model) {
            match store::check_embedding_compat(&store, e.dimension(), e.model_id()).await {
                Ok(Ok(())) => {}
                Ok(Err(incompatible)) => return Err(incompatible.into()),
                // The database may be resuming: start anyway, health reports it.
                Err(err) => {
                    tracing::warn!(error = %err, "could not check the embedding model against the database")
                }
            }
        }
        let verifier = Arc::new(Verifier::from_settings(&config.auth).await?);
        let default_tenant =
            Tenant::parse(&config.auth.default_tenant).map_err(|reason| ConfigError::Invalid {
                name: "TENANT_CODE",
                reason,
            })?;
        let limiter: Arc<dyn RateLimiter> = Arc::new(DynamoRateLimiter::new(aws.clone()));
        let chunker = match &embedder {
            Some(e) => Some(
                Chunker::new(
                    e.tokenizer(),
                    config.ingest.chunk_max_tokens,
                    config.ingest.chunk_overlap_tokens,
                )
                .map_err(|reason| ConfigError::Invalid {
                    name: "CHUNK_OVERLAP_TOKENS",
                    reason,
                })?,
            ),
            None => None,
        };
        let ingestor = Arc::new(Ingestor {
            store: store.clone(),
            embedder: embedder.clone(),
            chunker,
            objects: Arc::new(S3Objects::new(&aws)),
            ledger: Arc::new(DynamoLedger::new(&aws, config.ingest.claim_lease)),
            documents_bucket: aws.documents_bucket.clone(),
            default_tenant: default_tenant.clone(),
            embed_batch: config.ingest.embed_batch,
            max_file_bytes: config.ingest.max_file_bytes,
            jobs: config.ingest.jobs.clone(),
            // Job objects in the jobs bucket when there is one; else the Lambda API; else (the
            // dev server, the CLI) tasks of this process.
            dispatcher: match (&aws.job_bucket, &config.ingest.job_function) {
                (Some(bucket), _) => Some(Arc::new(crate::aws::S3JobDispatcher::new(
                    aws.s3.clone(),
                    bucket.clone(),
                )) as crate::ports::SharedDispatcher),
                #[cfg(feature = "lambda-api")]
                (None, Some(function)) => Some(Arc::new(crate::aws::LambdaDispatcher::new(
                    aws.lambda.clone(),
                    function.clone(),
                ))
                    as crate::ports::SharedDispatcher),
                // Built without the Lambda API: workers are tasks of this process.
                _ => None,
            },
        });
        let llm = providers::llm(&config.llm, embedder.clone()).await?;
        let chat = Arc::new(Chat::new(ChatDeps {
            store: store.clone(),
            embedder: embedder.clone(),
            llm,
            cache: (config.chat.cache_ttl_secs > 0)
                .then(|| Arc::new(DynamoAnswerCache::new(&aws)) as _),
            budget: Some(Arc::new(DynamoTokenBudget::new(&aws))),
            settings: config.chat.clone(),
            retrieve: config.retrieve.clone(),
            llm_deadline: config.llm.deadline,
        }));
        Ok(AppState {
            chat,
            probes: aws.probes().into(),
            config: Arc::new(config),
            store,
            aws,
            embedder,
            verifier,
            limiter,
            default_tenant,
            ingestor,
        })
    }
}
