//! The OpenAI-compatible endpoint, driven by the official `openai` Python client over real HTTP
//! (`tests/openai_client.py`; the package is installed into `.local/venv` by `make test`'s
//! install step). Content is asserted with the deterministic extractive provider; the local LLM
//! server shows that a stream really comes in pieces.

use http::StatusCode;
use ragbot_tests::TestApp;

use super::chat::app_with;
use serde_json::{json, Value};

const PASSWORD_Q: &str = "How can I change my Gmail password?";
const PASSWORD_A: &str = "Open Settings, then Accounts and Import, then Change password.";
const STRIKE_Q: &str = "How do I strikethrough text in GitHub Markdown?";
const STRIKE_A: &str = "Wrap the words in two tildes on each side, like ~~this~~.";

async fn seed(app: &TestApp, tenant: &str) {
    let admin = app.token("admin-1", tenant, &["admin", "user"]);
    let r = app
        .call(
            "POST",
            "/embed/qa",
            Some(&admin),
            Some(json!({"document_title": "FAQ", "question_answer_data": [
                {"question": PASSWORD_Q, "answer": PASSWORD_A},
                {"question": STRIKE_Q, "answer": STRIKE_A}]})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// The app on a real port, as `ragbot dev` serves it; its `/v1` base URL.
async fn serve(app: &TestApp) -> String {
    format!("http://{}/v1", TestApp::serve(app.router.clone()).await)
}

/// One run of the official client; what it saw, as JSON.
async fn client(spec: Value) -> Value {
    let root = ragbot_tests::repo_root();
    let python = std::env::var("RAGBOT_TOOLS_PYTHON")
        .unwrap_or_else(|_| root.join(".local/venv/bin/python").display().to_string());
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/openai_client.py"))
        .arg(spec.to_string())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("{python}: {e} (make test installs it: bash infra/local/install.sh tools)")
        });
    assert!(
        out.status.success(),
        "the openai client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn the_official_client_gets_cited_answers_histories_streams_and_clear_errors() {
    let app = app_with(vec![]).await;
    seed(&app, "acme").await;
    let base = serve(&app).await;
    let key = app.token("alice", "acme", &["user"]);
    let ask = |messages: Value, stream: bool| json!({"base_url": base, "key": key, "model": "ragbot", "messages": messages, "stream": stream});

    // The models a caller may name.
    let models = client(json!({"base_url": base, "key": key, "op": "models"})).await;
    let ids = models["ids"].as_array().expect("model ids");
    assert!(ids.contains(&json!("ragbot")), "{models}");
    assert!(
        ids.contains(&json!("ragbot/extractive/extractive")),
        "{models}"
    );

    // A plain answer: the stored answer verbatim, cited, with usage.
    let a = client(ask(json!([{"role": "user", "content": PASSWORD_Q}]), false)).await;
    assert_eq!(a["object"], "chat.completion", "{a}");
    assert_eq!(a["finish_reason"], "stop");
    assert_eq!(a["content"], PASSWORD_A, "{a}");
    let citations = a["citations"].as_array().expect("citations");
    assert_eq!(citations.len(), 1, "{a}");
    assert_eq!(citations[0]["question"], PASSWORD_Q);
    assert_eq!(citations[0]["index"], 1);
    assert!(a["usage"]["total_tokens"].is_number());
    assert_eq!(a["ragbot"]["grounded"], true);
    assert_eq!(
        a["ragbot"]["conversation_id"],
        Value::Null,
        "nothing stored"
    );
    assert_eq!(
        app.count_rows("messages").await,
        0,
        "stateless: no messages stored"
    );

    // A two-message history: the follow-up is answered in its light ("and in Markdown?" alone
    // says nothing about strikethrough).
    let h = client(ask(
        json!([
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "How do I strikethrough text?"},
            {"role": "assistant", "content": STRIKE_A},
            {"role": "user", "content": "and in GitHub Markdown?"}
        ]),
        false,
    ))
    .await;
    assert_eq!(h["content"], STRIKE_A, "{h}");
    assert_eq!(h["citations"][0]["question"], STRIKE_Q, "{h}");

    // Streamed: chunks, then the end (the client reads `data: [DONE]`), usage and citations last.
    let s = client(ask(json!([{"role": "user", "content": PASSWORD_Q}]), true)).await;
    assert!(!s["pieces"].as_array().unwrap().is_empty(), "{s}");
    assert_eq!(s["content"], PASSWORD_A, "{s}");
    assert_eq!(s["finish_reason"], "stop", "{s}");
    assert!(s["usage"]["total_tokens"].is_number(), "{s}");
    assert_eq!(s["citations"][0]["question"], PASSWORD_Q, "{s}");

    // A conversation of the caller's, named by header: stored like POST /conversations/{id}/messages.
    let conv = app
        .call("POST", "/conversations", Some(&key), Some(json!({})))
        .await;
    assert_eq!(conv.status, StatusCode::CREATED);
    let conv_id = conv.json()["id"].as_str().unwrap().to_string();
    let mut stored = ask(json!([{"role": "user", "content": PASSWORD_Q}]), false);
    stored["extra_headers"] = json!({"X-Conversation-Id": conv_id});
    let c = client(stored).await;
    assert_eq!(c["ragbot"]["conversation_id"], json!(conv_id), "{c}");
    let msgs = app
        .call(
            "GET",
            &format!("/conversations/{conv_id}/messages"),
            Some(&key),
            None,
        )
        .await
        .json();
    assert_eq!(msgs["messages"].as_array().map(Vec::len), Some(2), "{msgs}");

    // A bad key: the client's AuthenticationError, in OpenAI's error shape.
    let bad = client(
        json!({"base_url": base, "key": "not-a-jwt", "model": "ragbot",
        "messages": [{"role": "user", "content": PASSWORD_Q}]}),
    )
    .await;
    assert_eq!(bad["exception"], "AuthenticationError", "{bad}");
    assert_eq!(bad["status"], 401);
    assert_eq!(bad["body"]["type"], "authentication_error", "{bad}");

    // An unknown model and a conversation without a question.
    let mut unknown = ask(json!([{"role": "user", "content": PASSWORD_Q}]), false);
    unknown["model"] = json!("gpt-4o");
    let u = client(unknown).await;
    assert_eq!(u["exception"], "NotFoundError", "{u}");
    assert_eq!(u["body"]["code"], "model_not_found");
    let n = client(ask(json!([{"role": "assistant", "content": "hi"}]), false)).await;
    assert_eq!(n["exception"], "BadRequestError", "{n}");

    // Another tenant asks the same: none of acme's knowledge, the fallback instead.
    let other = app.token("bob", "globex", &["user"]);
    let o = client(json!({"base_url": base, "key": other, "model": "ragbot",
        "messages": [{"role": "user", "content": PASSWORD_Q}]}))
    .await;
    assert_eq!(o["ragbot"]["grounded"], false, "{o}");
    assert_eq!(o["citations"], json!([]), "{o}");
    assert!(
        !o["content"]
            .as_str()
            .unwrap()
            .contains("Accounts and Import"),
        "{o}"
    );
    let os = client(
        json!({"base_url": base, "key": other, "model": "ragbot", "stream": true,
        "messages": [{"role": "user", "content": PASSWORD_Q}]}),
    )
    .await;
    assert_eq!(os["citations"], json!([]), "{os}");
    assert!(
        !os["content"]
            .as_str()
            .unwrap()
            .contains("Accounts and Import"),
        "{os}"
    );
}

/// With the local LLM behind it, a stream really arrives in pieces as the model writes.
#[tokio::test]
async fn a_stream_from_the_local_llm_comes_in_pieces() {
    let (url, model) = ragbot_tests::llm::real_server();
    let app = app_with(vec![
        ("LLM_PROVIDER".into(), "openai".into()),
        ("LLM_BASE_URL".into(), url),
        ("LLM_MODEL".into(), model.clone()),
        ("LLM_MAX_TOKENS".into(), "32".into()),
        ("LLM_TEMPERATURE".into(), "0".into()),
        ("LLM_DEADLINE_MS".into(), "120000".into()),
    ])
    .await;
    seed(&app, "acme").await;
    let base = serve(&app).await;
    let key = app.token("alice", "acme", &["user"]);
    let _turn = ragbot_tests::llm::SERVER.lock().await;
    let s = client(json!({"base_url": base, "key": key, "model": format!("ragbot/openai/{model}"),
        "stream": true, "messages": [{"role": "user", "content": "how do I change the password of my Gmail account"}]}))
    .await;
    assert!(
        s["pieces"].as_array().map_or(0, Vec::len) > 1,
        "the answer came in pieces: {s}"
    );
    assert_eq!(s["finish_reason"], "stop", "{s}");
    assert!(
        s["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{s}"
    );
    assert_eq!(s["ragbot"]["grounded"], true, "{s}");
}
