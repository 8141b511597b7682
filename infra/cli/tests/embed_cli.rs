//! `ragbot embed` from the outside: JSON lines in, embeddings out, parity with sentence-transformers.

use std::{
    io::Write,
    process::{Command, Stdio},
};

fn ragbot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ragbot"));
    cmd.env(
        "EMBEDDING_MODEL_DIR",
        std::env::var("EMBEDDING_MODEL_DIR").expect("EMBEDDING_MODEL_DIR is set by `make test`"),
    );
    cmd
}

fn run_with_stdin(input: &str) -> std::process::Output {
    let mut child = ragbot()
        .arg("embed")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ragbot");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embed_subcommand_matches_the_reference_vectors() {
    let dir = std::env::var("RAGBOT_REFERENCE_DIR")
        .unwrap_or_else(|_| format!("{}/../../../shared/reference", env!("CARGO_MANIFEST_DIR")));
    let reference =
        std::fs::read_to_string(format!("{dir}/minilm_reference.jsonl")).expect("reference file");
    let refs: Vec<serde_json::Value> = reference
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input: String = refs
        .iter()
        .map(|r| format!("{}\n", serde_json::json!({"text": r["text"]})))
        .collect();

    let out = run_with_stdin(&input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), refs.len());
    for (got, want) in lines.iter().zip(&refs) {
        assert_eq!(got["text"], want["text"], "order is kept");
        let v: Vec<f64> = got["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let r: Vec<f64> = want["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let c = cosine(&v, &r);
        assert!(c >= 0.999, "cosine {c} for {}", want["text"]);
    }
}

#[test]
fn embed_subcommand_names_the_bad_line() {
    let out = run_with_stdin("{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn embed_subcommand_reports_a_missing_model_directory() {
    let mut cmd = ragbot();
    cmd.env("EMBEDDING_MODEL_DIR", "/nonexistent/model")
        .arg("embed")
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("config.json not found") && err.contains("/nonexistent/model"),
        "{err}"
    );
}
