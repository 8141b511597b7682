//! migrate Lambda: the CloudFormation custom resource that, on every deploy, creates or updates the
//! database roles (migrator, restricted app role), the database and the `vector` extension, and
//! applies pending migrations. It always answers CloudFormation, also on failure and when the
//! set-up would outlast the invocation.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use ragbot::{config::LogFormat, deploy, lambda::deadline_of, telemetry};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        deploy::handle_custom_resource(&event.payload, deadline_of(&event.context))
            .await
            .map_err(Error::from)
    }))
    .await
}
