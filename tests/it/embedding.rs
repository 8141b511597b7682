use std::collections::HashMap;

use ragbot::{
    embedding::{cosine, EmbeddingError, EmbeddingProvider, LocalEmbedder},
    store::{check_embedding_compat, Incompatible},
};
use ragbot_tests::{model_dir, reference_embeddings, Options, TestApp, TestDb};

const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

#[tokio::test]
async fn local_embedder_matches_sentence_transformers_for_every_reference_text() {
    let embedder = LocalEmbedder::load(&model_dir(), MODEL).expect("model loads");
    assert_eq!(embedder.dimension(), 384);
    let refs = reference_embeddings();
    assert_eq!(refs.len(), 30);
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();

    // All at once (batched, padded to the longest text of each batch)...
    let batched = embedder.embed(&texts).await.expect("embed");
    // ...and one at a time (no padding): both must match the reference.
    for (i, (text, reference)) in refs.iter().enumerate() {
        let single = embedder
            .embed(&[text.as_str()])
            .await
            .expect("embed one")
            .remove(0);
        for (how, v) in [("batched", &batched[i]), ("single", &single)] {
            assert_eq!(v.len(), 384);
            let c = cosine(v, reference);
            assert!(c >= 0.999, "{how} cosine {c} for {text:?}");
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-4,
                "{how} vector not normalised: {norm}"
            );
        }
    }

    // The reference set includes a text longer than the model's window: it is cut at 256 tokens
    // (with [CLS]/[SEP]), as sentence-transformers does.
    let longest = texts.iter().max_by_key(|t| t.len()).expect("texts");
    assert_eq!(
        embedder.token_count(longest).expect("tokens"),
        256,
        "{longest:.60}…"
    );
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
