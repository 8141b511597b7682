//! The web chat page in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, installed by `make test`'s install step; fantoccini as the
//! client), against the page and API exactly as `ragbot dev` serves them, with the local LLM
//! behind the chat (through the counting proxy, so the tests take turns at the one server).
//! Screenshots of each state go to `target/test-output/browser/`.

use std::{path::PathBuf, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use ragbot_tests::{llm::LlmProxy, Options, TestApp};
use serde_json::{json, Value};

const QUESTION: &str = "How do I delete my Facebook account?";
const ANSWER: &str = "Go to the account deletion page and click Submit. Your account is deactivated for two weeks, then permanently deleted if you do not log in.";

struct Driver {
    process: tokio::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.process.start_kill().ok();
    }
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn chromedriver() -> Driver {
    let port = free_port().await;
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let process = tokio::process::Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin}: {e} (make test installs chromium-driver: bash infra/local/install.sh)")
        });
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Driver { process, url };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn shots() -> PathBuf {
    let dir = ragbot_tests::repo_root().join("target/test-output/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until `check` holds (polling), or fails with `what`.
async fn until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

async fn last_text(c: &Client, css: &str) -> String {
    match c.find_all(Locator::Css(css)).await {
        Ok(v) => match v.last() {
            Some(e) => e.text().await.unwrap_or_default(),
            None => String::new(),
        },
        Err(_) => String::new(),
    }
}

async fn ask(c: &Client, question: &str) {
    let q = c.find(Locator::Id("question")).await.unwrap();
    q.send_keys(question).await.unwrap();
    c.find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_page_signs_in_streams_cites_follows_up_takes_feedback_and_suggests() {
    let proxy = LlmProxy::start(vec![]).await;
    let mut env: std::collections::HashMap<String, String> = proxy.env().into_iter().collect();
    env.insert("EMBEDDING_PROVIDER".into(), "local".into());
    env.insert("LLM_MAX_TOKENS".into(), "40".into());
    env.insert("CHAT_LLM_REWRITE".into(), "false".into());
    let app = TestApp::spawn_with(Options {
        env,
        ..Default::default()
    })
    .await;
    let admin = app.token("admin-1", "acme", &["admin", "user"]);
    let r = app
        .call(
            "POST",
            "/embed/qa",
            Some(&admin),
            Some(
                json!({"document_title": "Help centre FAQ", "question_answer_data": [
                {"question": QUESTION, "answer": ANSWER},
                {"question": "How can I change my Gmail password?",
                 "answer": "Open Settings, then Accounts and Import, then Change password."}]}),
            ),
        )
        .await;
    assert!(r.status.is_success());

    // The page and the API on one port, as `ragbot dev` serves them.
    let router = app.router.clone().merge(ragbot_cli::web::router(
        ragbot_tests::repo_root().join("web"),
        app.state.config.auth.clone(),
    ));
    let addr = TestApp::serve(router).await;
    let driver = chromedriver().await;
    let c = browser(&driver).await;
    let result = tokio::time::timeout(Duration::from_secs(600), async {
        c.goto(&format!("http://{addr}/")).await.unwrap();

        // Development sign-in.
        until("the sign-in form", 10, || async {
            c.find(Locator::Css("#dev-sign-in:not([hidden])"))
                .await
                .is_ok()
        })
        .await;
        shot(&c, "01-sign-in").await;
        let tenant = c.find(Locator::Id("dev-tenant")).await.unwrap();
        tenant.clear().await.unwrap();
        tenant.send_keys("acme").await.unwrap();
        c.find(Locator::Css("#dev-sign-in button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until("the chat", 10, || async {
            c.find(Locator::Css("#app:not([hidden])")).await.is_ok()
        })
        .await;

        // A question the knowledge answers: the answer grows as the model writes, then ends
        // with its sources and feedback buttons.
        ask(&c, QUESTION).await;
        let mut lengths = Vec::new();
        let mut mid_shot = false;
        let mut waited = 0;
        loop {
            let t = last_text(&c, ".msg.assistant .answer").await;
            if !t.is_empty() && lengths.last() != Some(&t.len()) {
                lengths.push(t.len());
            }
            if !mid_shot && !t.is_empty() {
                shot(&c, "02-streaming").await;
                mid_shot = true;
            }
            if count(&c, ".msg.assistant .feedback").await == 1 {
                break;
            }
            waited += 1;
            assert!(waited < 1800, "timed out waiting for the first answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            lengths.len() >= 2,
            "the answer grew in steps as it streamed: {lengths:?}"
        );
        shot(&c, "03-answer").await;
        assert_eq!(
            count(&c, "#conversations li").await,
            1,
            "the conversation is listed"
        );

        // Its first source opens the passage's snippet.
        let cite = c
            .find(Locator::Css(".msg.assistant .cite"))
            .await
            .expect("a source button");
        cite.click().await.unwrap();
        let source = c
            .find(Locator::Css(".msg.assistant .source"))
            .await
            .unwrap();
        let snippet = source.text().await.unwrap();
        assert!(snippet.contains("Help centre FAQ"), "{snippet}");
        assert_eq!(
            cite.attr("aria-expanded").await.unwrap().as_deref(),
            Some("true")
        );
        shot(&c, "04-citation").await;

        // A follow-up in the same conversation.
        ask(&c, "and how long does it take?").await;
        until("the follow-up answer", 180, || async {
            count(&c, ".msg.assistant .feedback").await == 2
        })
        .await;
        assert_eq!(
            count(&c, "#conversations li").await,
            1,
            "still one conversation"
        );
        shot(&c, "05-follow-up").await;

        // Feedback on the first answer, stored.
        let up = c
            .find(Locator::Css(
                ".msg.assistant .feedback button[data-rating=up]",
            ))
            .await
            .unwrap();
        up.click().await.unwrap();
        until("the thumbs up pressed", 10, || async {
            up.attr("aria-pressed").await.ok().flatten().as_deref() == Some("true")
        })
        .await;

        // Nothing relevant: the fallback, with sample questions to click.
        ask(&c, "What is the boiling point of tungsten?").await;
        until("the suggestions", 60, || async {
            c.find(Locator::Css("#suggestions:not([hidden]) button"))
                .await
                .is_ok()
        })
        .await;
        let suggestion = c
            .find(Locator::Css("#suggestion-list button"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            [QUESTION, "How can I change my Gmail password?"].contains(&suggestion.as_str()),
            "{suggestion}"
        );
        shot(&c, "06-fallback").await;
    })
    .await;
    c.close().await.ok();
    result.expect("the browser session finished in time");

    // What the page did is what the API stored.
    // The page signed in as the form's default user, `dev`.
    let user = app.token("dev", "acme", &["admin", "user"]);
    let list = app
        .call("GET", "/conversations", Some(&user), None)
        .await
        .json();
    let id = list["conversations"][0]["id"].as_str().unwrap().to_string();
    let conv: Value = app
        .call("GET", &format!("/conversations/{id}"), Some(&user), None)
        .await
        .json();
    let messages = conv["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6, "three turns: {conv}");
    assert_eq!(messages[1]["feedback"]["rating"], "up", "{conv}");
    assert!(
        proxy.calls() >= 2,
        "the model answered the first two questions"
    );
}
