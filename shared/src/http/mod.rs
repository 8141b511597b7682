//! The HTTP surface, shared by the Lambda functions (through `lambda_http::run`) and the local dev
//! server (through `axum::serve`): the same router, middleware and handlers in both.
//!
//! Routes are registered through utoipa-axum's `routes!`, which adds each handler to the router and
//! its `#[utoipa::path]` to the OpenAPI document in one step, so the document served at
//! `GET /openapi.json` lists exactly the routes served.

mod auth;
pub mod backups;
pub mod chat;
mod chat_stream;
mod error;
pub mod health;
mod json;
pub mod knowledge;
pub mod openai_compat;
mod request_id;
pub mod retrieve;
mod routes;

use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, Extension},
    http::{header, HeaderValue, Method},
    response::{IntoResponse, Response},
    Router,
};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    OpenApi,
};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use auth::{AccessLevel, Admin, Authorized, Reader};
pub use error::{ApiError, ErrorBody, ErrorEnvelope};
pub use json::{body_rejection, ApiJson, ApiQuery};
pub use request_id::{current_request_id, REQUEST_ID_HEADER};
pub(crate) use routes::receiver_stream;
pub use routes::Routes;

use crate::{config::HttpSettings, AppState, Function};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ragbot",
        description = "Serverless RAG chatbot backend. Authenticate with `Authorization: Bearer <JWT>`; errors use one envelope `{\"error\":{\"code\",\"message\",\"request_id\"}}`."
    ),
    components(schemas(ErrorEnvelope, ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, served as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This API's OpenAPI 3 document", body = Object, content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<Arc<String>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
        .into_response()
}

/// The OpenAPI document of `routes` (plus `/openapi.json` itself), with the error responses every
/// operation can give (see [`complete`]).
pub fn openapi(routes: Routes) -> utoipa::openapi::OpenApi {
    let mut doc = with_meta(routes).split_for_parts().1;
    complete(&mut doc);
    doc
}

/// Whether a path is served without a token (the template's HTTP API has no authorizer on them).
pub fn is_public(path: &str) -> bool {
    path == "/health" || path.starts_with("/health/") || path == "/openapi.json"
}

/// Adds to every operation the error responses the shared layers give it, where its own
/// `#[utoipa::path]` does not describe them more precisely: bearer security and 401/403/429 on
/// every non-public route, 400/413/415/422 where there is a body, 400 for query parameters, 404
/// under a path parameter, and 500/503 everywhere — each with the error envelope.
fn complete(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        path::{Operation, ParameterIn},
        security::SecurityRequirement,
        ContentBuilder, Ref, RefOr, ResponseBuilder,
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = is_public(path);
        // The OpenAI-compatible routes answer errors in OpenAI's shape.
        let schema = if path.starts_with("/v1/") {
            "OpenAiError"
        } else {
            "ErrorEnvelope"
        };
        let add = |op: &mut Operation, status: &str, description: &str| {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name(schema)))
                                    .build(),
                            )
                            .build(),
                    )
                });
        };
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            if !public {
                if op.security.is_none() {
                    op.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                }
                add(op, "401", "Missing, expired or invalid token");
                add(op, "403", "The token's roles do not allow this");
                add(op, "429", "Rate limit reached (see Retry-After)");
            }
            if op.request_body.is_some() {
                add(op, "400", "Malformed body");
                add(op, "413", "Body larger than MAX_BODY_BYTES");
                add(op, "415", "Unsupported content type");
                add(op, "422", "A field is missing or invalid");
            }
            let query = op.parameters.iter().flatten().any(|p| match p {
                RefOr::T(p) => matches!(p.parameter_in, ParameterIn::Query),
                RefOr::Ref(_) => false,
            });
            if query {
                add(op, "400", "Bad query parameter");
            }
            if path.contains('{') {
                add(op, "404", "Not found in your tenant");
            }
            add(
                op,
                "500",
                "Internal error (the request id is in the envelope and the logs)",
            );
            add(
                op,
                "503",
                "A dependency (database, model) is unavailable; retry shortly",
            );
        }
    }
}

fn with_meta(routes: Routes) -> Routes {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes)
        .routes(routes!(openapi_json))
}

/// A function's routes wrapped in the middleware every function shares: request ids and request
/// logs, body limit, CORS, `/openapi.json`, and the error envelope for unknown routes and methods.
pub fn app(routes: Routes, state: AppState) -> Router {
    let http = state.config.http.clone();
    let (router, _) = with_meta(routes).split_for_parts();
    // The document describes the whole HTTP API, whichever function serves it.
    let doc = Arc::new(
        openapi(all_routes())
            .to_json()
            .unwrap_or_else(|_| "{}".to_string()),
    );
    let mut router = router
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
        .layer(Extension(doc))
        .layer(DefaultBodyLimit::max(http.max_body_bytes));
    if let Some(cors) = cors(&http) {
        router = router.layer(cors);
    }
    router
        .layer(axum::middleware::from_fn(request_id::request_context))
        .with_state(state)
}

/// Request ids and request logs (as [`app`] gives the API) for routes served beside it, such as
/// the dev server's pages, so their errors carry an id too.
pub fn with_request_context(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(request_id::request_context))
}

fn cors(http: &HttpSettings) -> Option<CorsLayer> {
    if http.cors_origins.is_empty() {
        return None;
    }
    let origins = if http.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(
            http.cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static(openai_compat::CONVERSATION_HEADER),
            ])
            .expose_headers([
                header::HeaderName::from_static(REQUEST_ID_HEADER),
                header::RETRY_AFTER,
            ])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// The HTTP routes each Lambda function serves (its `main` uses this; the template test checks that
/// the HTTP API sends each route to the function serving it).
pub fn function_routes(function: Function) -> Routes {
    match function {
        Function::Health => health::routes(),
        Function::Embed => knowledge::write_routes(),
        Function::Retrieve => retrieve::routes().merge(knowledge::read_routes()),
        Function::Backup => backups::routes(),
        Function::Chat => chat::routes().merge(openai_compat::routes()),
    }
}

/// Every function's routes, for the local dev server. Each function registers here as it is built.
pub fn all_routes() -> Routes {
    OpenApiRouter::new()
        .merge(health::routes())
        .merge(knowledge::write_routes())
        .merge(knowledge::read_routes())
        .merge(retrieve::routes())
        .merge(backups::routes())
        .merge(chat::routes())
        .merge(openai_compat::routes())
}
