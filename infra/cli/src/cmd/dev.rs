//! `ragbot dev`: every function's routes on one local server, with the S3 notifications emulated.

use super::*;

pub(crate) async fn dev(addr: SocketAddr) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    telemetry::init(config.log_format);
    let state = AppState::init(config).await.map_err(|e| e.to_string())?;
    let mut app = http::app(http::all_routes(), state.clone());
    // Swagger UI at /docs, from the swagger-ui-dist package the install step unpacked.
    if let Some(dir) = std::env::var_os("SWAGGER_UI_DIR").map(std::path::PathBuf::from) {
        if docs::is_installed(&dir) {
            eprintln!("ragbot dev: API docs (Swagger UI) on http://{addr}/docs");
        } else {
            eprintln!(
                "ragbot dev: SWAGGER_UI_DIR={} holds no swagger-ui-dist; /docs says so",
                dir.display()
            );
        }
        app = app.merge(http::with_request_context(docs::router(dir)));
    }
    // The web chat page at /, from the repository's web/ (RAGBOT_WEB_DIR).
    if let Some(dir) = std::env::var_os("RAGBOT_WEB_DIR").map(std::path::PathBuf::from) {
        if web::is_present(&dir) {
            let auth = AuthSettings::from_env().map_err(|e| e.to_string())?;
            eprintln!("ragbot dev: the chat page on http://{addr}/");
            app = app.merge(http::with_request_context(web::router(dir, auth)));
        } else {
            eprintln!("ragbot dev: RAGBOT_WEB_DIR={} holds no page", dir.display());
        }
    }
    spawn_local_s3_notifications(&state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("ragbot dev: serving on http://{addr} (Ctrl-C stops)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| e.to_string())
}

/// s3s-fs sends no event notifications: poll the documents bucket and hand each change to the
/// embed function's Lambda handler as the S3 event JSON AWS would send.
pub(crate) fn spawn_local_s3_notifications(state: &AppState) {
    let notifier = ragbot::aws::notify_local::LocalNotifier::new(
        state.aws.s3.clone(),
        state.aws.documents_bucket.clone(),
    );
    let ingestor = state.ingestor.clone();
    let failed = state.aws.failed_events().map(std::sync::Arc::new);
    eprintln!(
        "ragbot dev: watching bucket {} for documents (S3 notifications emulated, every 2 s)",
        state.aws.documents_bucket
    );
    tokio::spawn(
        notifier.run(std::time::Duration::from_secs(2), move |event| {
            let (ingestor, failed) = (ingestor.clone(), failed.clone());
            async move {
                // Retried and kept on failure, as Lambda does with S3's asynchronous invocations.
                let handled = ragbot::lambda::deliver_async(
                    "embed",
                    event,
                    &ragbot::lambda::LOCAL_RETRY_DELAYS,
                    failed.as_deref(),
                    |e| {
                        let ingestor = ingestor.clone();
                        async move { ragbot::lambda::dispatch_s3(&ingestor, e).await }
                    },
                )
                .await;
                if let Some(result) = handled {
                    tracing::info!(%result, "local S3 notification handled");
                }
            }
        }),
    );
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    eprintln!("ragbot dev: shutting down");
}
