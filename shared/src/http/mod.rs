//! The HTTP surface, shared by the Lambda functions (through `lambda_http::run`) and the local dev
//! server (through `axum::serve`): the same router, middleware and handlers in both.

mod error;
pub mod health;
mod request_id;

use axum::Router;

pub use error::ApiError;
pub use request_id::{current_request_id, REQUEST_ID_HEADER};

use crate::AppState;

/// A function's routes wrapped in the middleware every function shares: request ids, request logs,
/// and the error envelope for unknown routes and methods.
pub fn app(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|req: axum::extract::Request| async move {
            ApiError::not_found(format!(
                "no route for {} {}",
                req.method(),
                req.uri().path()
            ))
        })
        .method_not_allowed_fallback(|req: axum::extract::Request| async move {
            ApiError::method_not_allowed(format!(
                "{} is not allowed on {}",
                req.method(),
                req.uri().path()
            ))
        })
        .layer(axum::middleware::from_fn(request_id::request_context))
        .with_state(state)
}

/// Every function's routes, for the local dev server. Each function registers here as it is built.
pub fn all_routes() -> Router<AppState> {
    Router::new().merge(health::routes())
}
