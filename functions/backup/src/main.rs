//! backup Lambda: `GET /backups`, `POST /backups` (admin), the EventBridge schedule that backs
//! up every tenant, and `{"action": "restore", "key": "…"}` direct invocations. It embeds nothing,
//! so it loads no model. Cold start builds config, pool and clients once.

use ragbot::lambda::{self, Triggers};

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    let (router, state) = lambda::cold_start(ragbot::Function::Backup).await;
    lambda::run(router, state, Triggers::Backup).await
}
