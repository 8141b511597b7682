//! What every route module builds on: the router type with OpenAPI paths, and streaming help.

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// A function's routes, with their OpenAPI paths.
pub type Routes = OpenApiRouter<AppState>;

/// A channel's receiver as a stream (what `tokio-stream`'s `ReceiverStream` does, without the
/// crate): the streamed answers' pieces on their way into server-sent events.
pub(crate) fn receiver_stream<T>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}
