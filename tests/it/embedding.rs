use std::collections::HashMap;

use ragbot::{
    embedding::{cosine, EmbeddingError, EmbeddingProvider, Kernel, LocalEmbedder},
    store::{check_embedding_compat, Incompatible},
};
use ragbot_tests::{model_dir, reference_embeddings, Options, TestApp, TestDb};

const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

#[tokio::test]
async fn local_embedder_matches_sentence_transformers_for_every_reference_text() {
    // Every matrix kernel this CPU runs (bfloat16 dot products where it has them, and the f32
    // fallback every CPU has) is held to the same bar.
    let kernels = Kernel::supported();
    assert_eq!(
        LocalEmbedder::load(&model_dir(), MODEL)
            .expect("model loads")
            .kernel(),
        kernels[0]
    );
    let refs = reference_embeddings();
    assert_eq!(refs.len(), 30);
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
    for kernel in kernels {
        let embedder =
            LocalEmbedder::load_with_kernel(&model_dir(), MODEL, kernel).expect("model loads");
        assert_eq!(embedder.dimension(), 384);
        // All at once (one batch, texts stacked unpadded)...
        let batched = embedder.embed(&texts).await.expect("embed");
        // ...and one at a time (short texts take the few-row path): both must match.
        let mut lowest = [1.0f32; 2];
        for (i, (text, reference)) in refs.iter().enumerate() {
            let single = embedder
                .embed(&[text.as_str()])
                .await
                .expect("embed one")
                .remove(0);
            for (k, (how, v)) in [("batched", &batched[i]), ("single", &single)]
                .into_iter()
                .enumerate()
            {
                assert_eq!(v.len(), 384);
                let c = cosine(v, reference);
                lowest[k] = lowest[k].min(c);
                assert!(c >= 0.999, "{kernel:?} {how} cosine {c} for {text:?}");
                let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!(
                    (norm - 1.0).abs() < 1e-4,
                    "{kernel:?} {how} vector not normalised: {norm}"
                );
            }
        }
        eprintln!(
            "{}: lowest cosine to the reference: batched {:.6}, single {:.6}",
            kernel.describe(),
            lowest[0],
            lowest[1]
        );
    }

    let embedder = LocalEmbedder::load(&model_dir(), MODEL).expect("model loads");
    // The reference set includes a text longer than the model's window: it is cut at 256 tokens
    // (with [CLS]/[SEP]), as sentence-transformers does.
    let longest = texts.iter().max_by_key(|t| t.len()).expect("texts");
    assert_eq!(
        embedder.token_count(longest).expect("tokens"),
        256,
        "{longest:.60}…"
    );
}

#[tokio::test]
async fn concurrent_queries_get_exactly_the_vectors_they_get_alone() {
    // Under load many forward passes share the model and its thread pool at once (each call on
    // its own blocking thread, every kernel writing its output through raw pointers): a query's
    // vector must not depend on what else is running.
    let refs = reference_embeddings();
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
    for kernel in Kernel::supported() {
        let embedder =
            LocalEmbedder::load_with_kernel(&model_dir(), MODEL, kernel).expect("model loads");
        let mut alone = Vec::new();
        for t in &texts {
            alone.push(embedder.embed(&[*t]).await.expect("embed one").remove(0));
        }
        let passes = embedder.queue_passes();
        let together = futures_util::future::join_all(texts.iter().map(|t| {
            let e = &embedder;
            async move { e.embed(&[*t]).await }
        }))
        .await;
        if kernel.batch_invariant() {
            // ...including when they share forward passes (queued queries go in together).
            let shared = embedder.queue_passes() - passes;
            assert!(
                shared < texts.len() as u64,
                "{kernel:?}: {} concurrent queries took {shared} passes",
                texts.len()
            );
        }
        for ((t, a), b) in texts.iter().zip(&alone).zip(together) {
            let b = b.expect("embed concurrently").remove(0);
            assert!(
                a == &b,
                "{kernel:?}: {t:?} differs when embedded concurrently"
            );
        }
    }
}

fn copy_model(to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "sentence_bert_config.json",
    ] {
        std::fs::copy(model_dir().join(f), to.join(f)).unwrap();
    }
}

fn load_error(dir: &std::path::Path) -> String {
    match LocalEmbedder::load(dir, MODEL) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e @ EmbeddingError::Config(_)) => e.to_string(),
        Err(other) => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn misconfigured_model_directories_fail_with_one_clear_line() {
    let base = std::env::temp_dir().join(format!("ragbot-model-{}", uuid::Uuid::new_v4().simple()));

    // Missing directory.
    let err = load_error(&base.join("nope"));
    assert!(
        err.contains("config.json not found") && err.contains("EMBEDDING_MODEL_DIR="),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    // Corrupt (truncated) weights.
    let corrupt = base.join("corrupt");
    copy_model(&corrupt);
    let weights = std::fs::read(corrupt.join("model.safetensors")).unwrap();
    std::fs::write(
        corrupt.join("model.safetensors"),
        &weights[..weights.len() / 3],
    )
    .unwrap();
    let err = load_error(&corrupt);
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(!err.contains('\n'), "{err}");

    // Garbage tokenizer.
    let bad_tok = base.join("bad-tokenizer");
    copy_model(&bad_tok);
    std::fs::write(bad_tok.join("tokenizer.json"), b"{not json").unwrap();
    let err = load_error(&bad_tok);
    assert!(err.contains("tokenizer.json"), "{err}");

    // Weights that do not match the config (a wrong-dimension model).
    let wrong_dim = base.join("wrong-dimension");
    copy_model(&wrong_dim);
    let cfg = std::fs::read_to_string(wrong_dim.join("config.json")).unwrap();
    std::fs::write(
        wrong_dim.join("config.json"),
        cfg.replace("\"hidden_size\": 384", "\"hidden_size\": 768"),
    )
    .unwrap();
    let err = load_error(&wrong_dim);
    assert!(err.contains("model.safetensors"), "{err}");

    std::fs::remove_dir_all(&base).ok();
}

#[tokio::test]
async fn start_up_refuses_a_model_that_does_not_fit_the_stored_vectors() {
    let app = TestApp::spawn().await;
    let store = &app.state.store;

    // Dimension against the chunks.embedding column.
    assert_eq!(
        check_embedding_compat(store, 384, MODEL).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        check_embedding_compat(store, 768, MODEL).await.unwrap(),
        Err(Incompatible::Dimension {
            provider: 768,
            column: 384
        })
    );

    // Model id against the chunks already stored: start-up fails with one line.
    let client = TestDb::connect(&app.db.app_url).await;
    client
        .batch_execute("SELECT set_config('ragbot.tenant', 't', false)")
        .await
        .unwrap();
    let doc: uuid::Uuid = client
        .query_one(
            "INSERT INTO documents (tenant, title, source, source_key, content_sha256, mime)
             VALUES ('t', 'd', 'api', 'k', 's', 'text/plain') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let zero = format!("[{}]", vec!["0.1"; 384].join(","));
    client
        .execute(
            &format!("INSERT INTO chunks (document_id, tenant, ordinal, text, embedding, embedding_model) VALUES ($1, 't', 0, 'x', '{zero}', 'openai/text-embedding-3-small')"),
            &[&doc],
        )
        .await
        .unwrap();
    let err = ragbot::AppState::init(
        ragbot::Config::from_lookup(|k| {
            let vars: HashMap<&str, String> = HashMap::from([
                ("RAGBOT_ENV", "test".to_string()),
                ("DATABASE_URL", app.db.app_url.clone()),
                ("EMBEDDING_PROVIDER", "local".to_string()),
            ]);
            vars.get(k).cloned().or_else(|| std::env::var(k).ok())
        })
        .unwrap(),
    )
    .await
    .err()
    .expect("start-up must refuse")
    .to_string();
    assert!(
        err.contains("'openai/text-embedding-3-small'") && err.contains("ragbot reembed"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[tokio::test]
async fn readiness_reports_the_loaded_embedder() {
    let app = TestApp::spawn_with(Options {
        env: HashMap::from([("EMBEDDING_PROVIDER".to_string(), "local".to_string())]),
        ..Default::default()
    })
    .await;
    let resp = app.get("/health/ready").await;
    resp.assert_status(http::StatusCode::OK);
    assert_eq!(resp.json()["checks"]["embedder"]["status"], "ok");
}

mod openai_compatible {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        time::Duration,
    };

    use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
    use ragbot::embedding::{
        openai::{OpenAiEmbedder, OpenAiSettings},
        EmbeddingError, EmbeddingProvider,
    };
    use serde_json::{json, Value};

    /// A local stand-in for an OpenAI-compatible server: answers each call with the next scripted
    /// status (then 200s), and embeds text i as a 4-dimension vector, in reverse order.
    async fn server(script: Vec<u16>) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let state = (calls.clone(), Arc::new(script));
        let app = axum::Router::new()
            .route(
                "/v1/embeddings",
                axum::routing::post(
                    |State((calls, script)): State<(Arc<AtomicUsize>, Arc<Vec<u16>>)>,
                     headers: axum::http::HeaderMap,
                     Json(body): Json<Value>| async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        if let Some(code) = script.get(n) {
                            let status = StatusCode::from_u16(*code).unwrap();
                            return (status, [("retry-after", "0")], "slow down").into_response();
                        }
                        assert_eq!(headers.get("authorization").unwrap(), "Bearer sk-test");
                        assert_eq!(body["model"], "test-embed");
                        assert_eq!(body["dimensions"], 4);
                        let inputs = body["input"].as_array().unwrap().clone();
                        let mut data: Vec<Value> = inputs
                            .iter()
                            .enumerate()
                            .map(|(i, _)| json!({"index": i, "embedding": [i as f32 + 1.0, 0.0, 0.0, 1.0]}))
                            .collect();
                        data.reverse();
                        Json(json!({"object": "list", "data": data})).into_response()
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        (url, calls, handle)
    }

    fn embedder(url: &str, retries: u32) -> OpenAiEmbedder {
        OpenAiEmbedder::new(OpenAiSettings {
            base_url: url.to_string(),
            api_key: Some("sk-test".into()),
            model: "test-embed".into(),
            dimension: 4,
            send_dimensions: true,
            batch: 2,
            timeout: Duration::from_secs(2),
            max_retries: retries,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn retries_a_429_then_returns_normalised_vectors_in_input_order() {
        let (url, calls, _h) = server(vec![429, 503]).await;
        let e = embedder(&url, 4);
        let v = e
            .embed(&["a", "b", "c"])
            .await
            .expect("embeds after retries");
        // batch 2: the first batch took 3 calls (429, 503, 200), the second one call.
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(v.len(), 3);
        let expect = |x: f32| {
            let n = (x * x + 1.0).sqrt();
            vec![x / n, 0.0, 0.0, 1.0 / n]
        };
        assert_eq!(v[0], expect(1.0));
        assert_eq!(v[1], expect(2.0));
        assert_eq!(
            v[2],
            expect(1.0),
            "the second batch starts at index 0 again"
        );
        assert_eq!((e.model_id(), e.dimension()), ("test-embed", 4));
    }

    #[tokio::test]
    async fn client_errors_fail_at_once_and_server_errors_after_the_retry_budget() {
        let (url, calls, _h) = server(vec![400]).await;
        let err = embedder(&url, 4).embed(&["a"]).await.unwrap_err();
        assert!(
            matches!(err, EmbeddingError::Inference(ref m) if m.contains("400")),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry on 400");

        let (url, calls, _h) = server(vec![500, 500, 500, 500]).await;
        let err = embedder(&url, 2).embed(&["a"]).await.unwrap_err();
        assert!(
            matches!(err, EmbeddingError::Unavailable(ref m) if m.contains("after 3 attempts")),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let err = embedder("http://127.0.0.1:9/v1", 1)
            .embed(&["a"])
            .await
            .unwrap_err();
        assert!(matches!(err, EmbeddingError::Unavailable(_)), "{err}");
    }
}

/// The Bedrock provider (aws-sdk-bedrockruntime, SigV4-signed `InvokeModel`) against a local
/// stand-in of the Bedrock runtime endpoint.
mod bedrock {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc, Mutex,
        },
        time::Duration,
    };

    use axum::{extract::State, http::StatusCode, response::IntoResponse};
    use ragbot::{
        aws::BedrockEmbedder,
        embedding::BedrockSettings,
        embedding::{EmbeddingError, EmbeddingProvider},
    };
    use serde_json::{json, Value};

    type Seen = Arc<Mutex<Vec<(String, Value)>>>;

    /// Answers `POST /model/{id}/invoke` with the next scripted error (429 throttling, 400
    /// validation), then Titan-shaped embeddings: the text's length in the first dimension.
    async fn server(script: Vec<u16>) -> (String, Arc<AtomicUsize>, Seen) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen: Seen = Arc::default();
        let state = (calls.clone(), Arc::new(script), seen.clone());
        let app = axum::Router::new()
            .route(
                "/model/{model}/invoke",
                axum::routing::post(
                    |State((calls, script, seen)): State<(
                        Arc<AtomicUsize>,
                        Arc<Vec<u16>>,
                        Seen,
                    )>,
                     axum::extract::Path(model): axum::extract::Path<String>,
                     headers: axum::http::HeaderMap,
                     body: axum::body::Bytes| async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        assert!(
                            headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")),
                            "SigV4-signed"
                        );
                        if let Some(code) = script.get(n) {
                            let kind = if *code == 429 {
                                "ThrottlingException"
                            } else {
                                "ValidationException"
                            };
                            return (
                                StatusCode::from_u16(*code).unwrap(),
                                [
                                    ("x-amzn-errortype", kind),
                                    ("content-type", "application/json"),
                                ],
                                json!({"message": format!("{kind} from the stand-in")}).to_string(),
                            )
                                .into_response();
                        }
                        let req: Value = serde_json::from_slice(&body).unwrap();
                        seen.lock().unwrap().push((model, req.clone()));
                        let dims = req["dimensions"].as_u64().unwrap() as usize;
                        let len = req["inputText"].as_str().unwrap().chars().count();
                        let mut v = vec![0.0f32; dims];
                        v[0] = len as f32;
                        v[1] = 1.0;
                        (
                            [("content-type", "application/json")],
                            json!({"embedding": v, "inputTextTokenCount": len}).to_string(),
                        )
                            .into_response()
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        (url, calls, seen)
    }

    fn settings(url: &str, dimension: usize) -> BedrockSettings {
        BedrockSettings {
            region: "us-east-1".into(),
            endpoint: Some(url.to_string()),
            model: "amazon.titan-embed-text-v2:0".into(),
            dimension,
            concurrency: 4,
            timeout: Duration::from_secs(2),
            max_retries: 3,
        }
    }

    #[tokio::test]
    async fn titan_v2_retries_throttling_and_returns_normalised_vectors_in_order() {
        let (url, calls, seen) = server(vec![429]).await;
        let e = BedrockEmbedder::new(settings(&url, 256)).await.unwrap();
        let texts = ["a", "bb", "ccc", "dddd", "eeeee"];
        let v = e.embed(&texts).await.expect("embeds after a 429");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            6,
            "5 texts + 1 throttled call"
        );
        assert_eq!(v.len(), 5);
        for (i, vec) in v.iter().enumerate() {
            let len = (i + 1) as f32;
            let n = (len * len + 1.0).sqrt();
            assert_eq!(vec.len(), 256);
            assert!((vec[0] - len / n).abs() < 1e-6 && (vec[1] - 1.0 / n).abs() < 1e-6);
        }
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|(m, r)| m == "amazon.titan-embed-text-v2:0"
            && r["dimensions"] == 256
            && r["normalize"] == true));
        assert_eq!(
            (e.model_id(), e.dimension()),
            ("amazon.titan-embed-text-v2:0", 256)
        );
    }

    #[tokio::test]
    async fn titan_v2_validation_errors_fail_at_once_and_bad_dimensions_at_start_up() {
        let (url, calls, _) = server(vec![400]).await;
        let e = BedrockEmbedder::new(settings(&url, 512)).await.unwrap();
        let err = e.embed(&["a"]).await.unwrap_err();
        assert!(
            matches!(err, EmbeddingError::Inference(ref m) if m.contains("ValidationException")),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry on 400");

        let err = BedrockEmbedder::new(settings(&url, 384))
            .await
            .err()
            .expect("384 is not a Titan v2 size")
            .to_string();
        assert!(err.contains("256, 512 or 1024"), "{err}");
        assert!(!err.contains('\n'));
    }
}
