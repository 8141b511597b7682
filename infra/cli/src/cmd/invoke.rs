//! Lambda handlers on demand: `ragbot invoke`, and `ragbot replay-failed`.

use super::*;

pub(crate) async fn invoke(function: &str, event: &std::path::Path) -> Result<(), String> {
    let raw = std::fs::read_to_string(event).map_err(|e| format!("{}: {e}", event.display()))?;
    let payload: serde_json::Value =
        serde_json::from_str(&raw).map_err(|e| format!("{}: not JSON: {e}", event.display()))?;
    let result = if function == "migrate" {
        ragbot::deploy::handle_custom_resource(&payload, None).await?
    } else {
        let function: ragbot::Function = function
            .parse()
            .map_err(|e: String| format!("{e} (or migrate)"))?;
        let routes = http::function_routes(function);
        let triggers = ragbot::lambda::Triggers::of(function);
        let mut config = Config::from_env().map_err(|e| e.to_string())?;
        if !function.needs_model() {
            config.embedding.provider = ragbot::config::EmbeddingProviderKind::None;
        }
        if std::env::var("LOG_FORMAT").is_err() {
            telemetry::init(ragbot::config::LogFormat::Text);
        } else {
            telemetry::init(config.log_format);
        }
        let state = AppState::init(config).await.map_err(|e| e.to_string())?;
        let router = http::app(routes, state.clone());
        ragbot::lambda::dispatch(router, &state, triggers, payload, Default::default())
            .await
            .map_err(|e| e.to_string())?
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
    );
    Ok(())
}

pub(crate) async fn replay_failed(function: Option<&str>) -> Result<(), String> {
    use ragbot::lambda::{dispatch, replay_failed, Triggers};
    let restart = serde_json::json!({"action": ragbot::aws::RESTART_STALLED_ACTION});
    let (replayed, restarted) = match function {
        Some(function) => {
            // Only S3 and the Lambda API: the database is the function's to reach.
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let bucket = std::env::var("FAILED_EVENTS_BUCKET").map_err(|_| {
                "set FAILED_EVENTS_BUCKET to the stack's FailedEventsBucketName output".to_string()
            })?;
            let failed = ragbot::aws::failed_events::FailedEvents::new(
                aws_sdk_s3::Client::new(&sdk),
                bucket,
            );
            let lambda = aws_sdk_lambda::Client::new(&sdk);
            let replayed = replay_failed(&failed, |event| {
                let lambda = lambda.clone();
                async move {
                    // Asynchronously, as S3 invokes it: Lambda retries and keeps it again if needed.
                    ragbot::aws::invoke(&lambda, function, &event, false)
                        .await
                        .map_err(|e| e.to_string().into())
                }
            })
            .await
            .map_err(|e| e.to_string())?;
            let restarted = ragbot::aws::invoke(&lambda, function, &restart, true)
                .await
                .map_err(|e| e.to_string())?;
            (replayed, restarted)
        }
        None => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            telemetry::init(ragbot::config::LogFormat::Text);
            let state = AppState::init(config).await.map_err(|e| e.to_string())?;
            let failed = state.aws.failed_events().ok_or(
                "no failed-events bucket: set FAILED_EVENTS_BUCKET (or use --function in AWS)",
            )?;
            let routes = http::function_routes(ragbot::Function::Embed);
            let router = http::app(routes, state.clone());
            let replayed = replay_failed(&failed, |event| {
                dispatch(
                    router.clone(),
                    &state,
                    Triggers::S3,
                    event,
                    Default::default(),
                )
            })
            .await
            .map_err(|e| e.to_string())?;
            let restarted = dispatch(router, &state, Triggers::S3, restart, Default::default())
                .await
                .map_err(|e| e.to_string())?;
            (replayed, restarted)
        }
    };
    for r in &replayed {
        println!("{}", serde_json::to_string(r).map_err(|e| e.to_string())?);
    }
    let failed = replayed.iter().filter(|r| r.result == "failed").count();
    println!(
        "{}",
        serde_json::json!({
            "replayed": replayed.len() - failed,
            "failed_again": failed,
            "restarted_jobs": restarted["restarted"],
        })
    );
    if failed > 0 {
        return Err(format!(
            "{failed} of {} records failed again and were kept",
            replayed.len()
        ));
    }
    Ok(())
}
