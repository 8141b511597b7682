//! Per-process state, built once in `main` (cold start) and shared by every invocation.

use std::sync::Arc;

use crate::{
    aws::{AwsClients, AwsError},
    config::Config,
    store::{Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("creating local resources: {0}")]
    Aws(#[from] AwsError),
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub aws: AwsClients,
}

impl AppState {
    pub async fn init(config: Config) -> Result<Self, InitError> {
        let store = Store::new(&config.database)?;
        let aws = AwsClients::new(&config.aws).await;
        if config.aws.create_local_resources {
            aws.ensure_local_resources().await?;
        }
        Ok(AppState {
            config: Arc::new(config),
            store,
            aws,
        })
    }
}
