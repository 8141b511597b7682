//! embed Lambda: `POST /embed/qa` (+ legacy `/agents/embed-data/`), `POST /documents`,
//! `DELETE /documents/{id}`, and S3 `ObjectCreated` / `ObjectRemoved` notifications of the
//! documents bucket. Cold start loads config, pool, clients and the model once.

use ragbot::lambda::{self, Triggers};

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    let (router, state) = lambda::cold_start(ragbot::Function::Embed).await;
    lambda::run(router, state, Triggers::S3).await
}
