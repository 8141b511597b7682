//! The local LLM server of the test stack (llama.cpp's OpenAI-compatible server), and a counting
//! proxy in front of it that can also misbehave on cue (answer 429 or stall), so tests assert how
//! many model calls a request made and how the provider client copes with faults — while the
//! answers themselves still come from the real server.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer this status (with `Retry-After: 0` for 429) without calling the server.
    Status(u16),
    /// Wait this long, then forward.
    Stall(Duration),
    /// Answer a stream of this many one-word pieces, one every 100 ms, without calling the
    /// server: what a reader that leaves mid-answer is tested against (abandoning the real
    /// server's streams crashes it now and then).
    Stream(usize),
}

/// The stack's one LLM server takes one request at a time: llama-cpp-python 0.2.60 crashes
/// (segfault) when a request arrives while it streams an answer. Everything in this test process
/// that talks to the server holds this (the proxies while they forward).
pub static SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The base URL (`…/v1`) and model of the stack's real LLM server.
pub fn real_server() -> (String, String) {
    (
        crate::stack_env("RAGBOT_LLM_BASE_URL"),
        crate::stack_env("RAGBOT_LLM_MODEL"),
    )
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    calls: Arc<AtomicUsize>,
    abandoned: Arc<AtomicUsize>,
    script: Arc<Mutex<VecDeque<Step>>>,
}

pub struct LlmProxy {
    /// The proxy's base URL, to use as `LLM_BASE_URL`.
    pub url: String,
    pub model: String,
    calls: Arc<AtomicUsize>,
    abandoned: Arc<AtomicUsize>,
    script: Arc<Mutex<VecDeque<Step>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl LlmProxy {
    /// A proxy in front of the stack's LLM server; `script` says what the first requests get
    /// (the rest are forwarded as they come).
    pub async fn start(script: Vec<Step>) -> LlmProxy {
        let (upstream, model) = real_server();
        let calls = Arc::new(AtomicUsize::new(0));
        let abandoned = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let shared = Shared {
            upstream,
            http: reqwest::Client::new(),
            calls: calls.clone(),
            abandoned: abandoned.clone(),
            script: script.clone(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/models", get(models))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the LLM proxy");
        let url = format!("http://{}/v1", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        LlmProxy {
            url,
            model,
            calls,
            abandoned,
            script,
            _server: server,
        }
    }

    /// Completion requests received so far (including scripted failures).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Streams the app stopped reading before the server finished them.
    pub fn abandoned(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Adds steps for the next requests.
    pub fn then(&self, steps: Vec<Step>) {
        if let Ok(mut s) = self.script.lock() {
            s.extend(steps);
        }
    }

    /// The app's variables for the openai provider through this proxy.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LLM_PROVIDER".into(), "openai".into()),
            ("LLM_BASE_URL".into(), self.url.clone()),
            ("LLM_MODEL".into(), self.model.clone()),
            // Short answers keep the tests quick on 2 cores; temperature 0 for repeatability.
            ("LLM_MAX_TOKENS".into(), "48".into()),
            ("LLM_TEMPERATURE".into(), "0".into()),
            // The one local server answers the tests' calls one at a time, on 2 busy cores.
            ("LLM_DEADLINE_MS".into(), "120000".into()),
        ]
    }
}

async fn completions(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    s.calls.fetch_add(1, Ordering::SeqCst);
    let step = s.script.lock().ok().and_then(|mut q| q.pop_front());
    match step {
        Some(Step::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, [("retry-after", "0")], "scripted failure").into_response();
        }
        Some(Step::Stall(d)) => tokio::time::sleep(d).await,
        Some(Step::Stream(n)) => return scripted_stream(n, s.abandoned.clone()),
        None => {}
    }
    let turn = SERVER.lock().await;
    let mut req = s
        .http
        .post(format!("{}/chat/completions", s.upstream))
        .header("content-type", "application/json")
        .body(body);
    if let Some(auth) = headers.get("authorization") {
        req = req.header("authorization", auth.as_bytes());
    }
    match req.send().await {
        Ok(mut r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let streamed = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !streamed {
                let bytes = r.bytes().await.unwrap_or_default();
                drop(turn);
                return (status, [("content-type", "application/json")], bytes).into_response();
            }
            // A stream is passed on as it comes; when the app goes away mid-stream the proxy
            // sees its sends fail and counts it. It then reads the server's stream to its end
            // before the next test's turn: the local server crashes when a request reaches it
            // while an abandoned stream is still being generated.
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
            let abandoned = s.abandoned.clone();
            tokio::spawn(async move {
                let mut reader_left = false;
                while let Ok(Some(bytes)) = r.chunk().await {
                    if !reader_left && tx.send(bytes).await.is_err() {
                        abandoned.fetch_add(1, Ordering::SeqCst);
                        reader_left = true;
                    }
                }
                drop(turn);
            });
            let body = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
            });
            (
                status,
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// `n` `chat.completion.chunk` pieces, then `[DONE]`; a reader that leaves is counted.
fn scripted_stream(n: usize, abandoned: Arc<AtomicUsize>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for i in 0..n {
            let event = format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}}}}]}}\n\n"
            );
            if tx.send(Bytes::from(event)).await.is_err() {
                abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await.ok();
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [("content-type", "text/event-stream")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

async fn models(State(s): State<Shared>) -> Response {
    match s.http.get(format!("{}/models", s.upstream)).send().await {
        Ok(r) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            r.bytes().await.unwrap_or_default(),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
