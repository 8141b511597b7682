//! Property-based fuzzing (proptest) of what reads untrusted input: the document parsers (pdf,
//! html, md, csv, json, txt), the chunker, token verification and claims, the Authorization
//! header and the query checks. None may panic, whatever the input; what they accept keeps its
//! invariants.
//!
//! `make test` runs each target for proptest's default 256 cases. For a longer run:
//! `PROPTEST_CASES=200000 cargo test -p ragbot-tests --test integration fuzz::` inside the test
//! stack (see the README). A failing input is shrunk and kept in `proptest-regressions/`, which is
//! committed: it is replayed first on every run.

use std::sync::OnceLock;

use proptest::prelude::*;
use ragbot::{
    ingest::chunking::Chunker,
    parsing::{self, Format, Parsed, Section},
};

/// Bytes that look like `format` often enough to reach past its first check.
fn document(format: Format) -> BoxedStrategy<Vec<u8>> {
    let pieces: &'static [&'static str] = match format {
        Format::Markdown => &[
            "# ", "## ", "\n", "\n\n", "- ", "* ", "1. ", "```", "`", "> ", "|", "---", "[a](b)",
            "![i](x)", "**", "_", "<br>", "\\", "&amp;", "é", "日本", "\u{0}", "\u{FEFF}", "text ",
        ],
        Format::Html => &[
            "<html>",
            "<head>",
            "<title>",
            "</title>",
            "<body>",
            "<p>",
            "</p>",
            "<script>",
            "</script>",
            "<style>",
            "<!--",
            "-->",
            "<div class=\"x\">",
            "</div>",
            "<br/>",
            "&lt;",
            "&#x41;",
            "&bogus;",
            "<",
            ">",
            "\"",
            "é",
            "text ",
            "\n",
            "<![CDATA[",
            "]]>",
        ],
        Format::Csv => &[
            "question",
            "answer",
            ",",
            ";",
            "\"",
            "\"\"",
            "\n",
            "\r\n",
            "text",
            " ",
            "é",
            "\t",
            "question,answer\n",
            "\u{0}",
        ],
        Format::Json => &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"document_title\"",
            "\"question_answer_data\"",
            "\"question\"",
            "\"answer\"",
            "\"x\"",
            "null",
            "1e999",
            "-0",
            "true",
            "\"\\u0000\"",
            "\"\\ud800\"",
            " ",
            "\n",
        ],
        Format::Text | Format::Pdf => &["text ", "\n", "\u{0}", "é", "\u{FEFF}", "\r"],
    };
    let structured = proptest::collection::vec(proptest::sample::select(pieces), 0..200)
        .prop_map(|p| p.concat().into_bytes());
    let raw = proptest::collection::vec(any::<u8>(), 0..2048);
    prop_oneof![3 => structured, 1 => raw].boxed()
}

/// A valid three-page PDF with up to 40 bytes changed, cut short, or extended.
fn pdf() -> impl Strategy<Value = Vec<u8>> {
    let base = ragbot_tests::pdf::pdf_with_pages(&[
        "Leave must be requested two weeks ahead.",
        "Parking is in garage B.",
        "Expenses are filed within a month.",
    ]);
    let len = base.len();
    (
        proptest::collection::vec((0..len, any::<u8>()), 0..40),
        0..=len,
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(move |(edits, cut, tail)| {
            let mut bytes = base.clone();
            for (i, b) in edits {
                bytes[i] = b;
            }
            bytes.truncate(cut.max(len / 2));
            bytes.extend(tail);
            bytes
        })
}

fn check_parsed(format: Format, bytes: &[u8]) {
    if let Ok(parsed) = parsing::parse(format, bytes) {
        // Accepted content has text, or Q&A pairs.
        assert!(
            parsed.sections.iter().any(|s| !s.text.trim().is_empty())
                || !parsed.qa_pairs.is_empty()
        );
    }
}

/// The chunker over the model's own tokenizer (as the embed function builds it).
fn chunker() -> &'static Chunker {
    static CHUNKER: OnceLock<Chunker> = OnceLock::new();
    CHUNKER.get_or_init(|| {
        let settings = ragbot::Config::from_lookup(|k| match k {
            "EMBEDDING_PROVIDER" => Some("local".into()),
            _ => std::env::var(k).ok(),
        })
        .expect("configuration")
        .embedding;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let embedder = runtime
            .block_on(ragbot::providers::embedder(&settings))
            .expect("the model loads")
            .expect("an embedder");
        Chunker::new(embedder.tokenizer(), 48, 8).expect("chunker")
    })
}

fn text() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        "word ",
        "supercalifragilistic",
        ". ",
        "\n\n",
        "# Heading\n",
        "日本語",
        "🙂",
        "\u{200B}",
        "a",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ];
    prop_oneof![
        any::<String>(),
        "[a-zA-Z ,.!?\n#-]{0,2000}",
        proptest::collection::vec(proptest::sample::select(PIECES), 0..300)
            .prop_map(|p| p.concat()),
    ]
}

fn verifier() -> &'static (tokio::runtime::Runtime, ragbot::auth::Verifier) {
    static V: OnceLock<(tokio::runtime::Runtime, ragbot::auth::Verifier)> = OnceLock::new();
    V.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let settings =
            ragbot::config::AuthSettings::from_env_map(&[("RAGBOT_ENV", "test")]).unwrap();
        let v = runtime
            .block_on(ragbot::auth::Verifier::from_settings(&settings))
            .unwrap();
        (runtime, v)
    })
}

proptest! {
    #[test]
    fn markdown_html_csv_json_and_text_parsers_never_panic(
        (format, bytes) in prop_oneof![
            Just(Format::Markdown), Just(Format::Html), Just(Format::Csv),
            Just(Format::Json), Just(Format::Text),
        ].prop_flat_map(|f| (Just(f), document(f)))
    ) {
        check_parsed(format, &bytes);
    }

    #[test]
    fn the_pdf_parser_never_panics_on_damaged_files(bytes in pdf()) {
        check_parsed(Format::Pdf, &bytes);
    }

    #[test]
    fn format_detection_never_panics(ct in proptest::option::of(".{0,60}"), key in ".{0,120}") {
        let _ = Format::detect(ct.as_deref(), &key);
    }

    #[test]
    fn chunks_fit_the_model_and_lose_no_text(
        sections in proptest::collection::vec((text(), proptest::collection::vec("[a-z ]{0,20}", 0..3)), 1..4),
        markdown in any::<bool>(),
    ) {
        let parsed = Parsed {
            title: None,
            sections: sections
                .into_iter()
                .map(|(text, headings)| Section { text, headings, page: None })
                .collect(),
            qa_pairs: Vec::new(),
            markdown,
        };
        let c = chunker();
        if let Ok(drafts) = c.chunk(&parsed) {
            for d in &drafts {
                prop_assert!(!d.text.trim().is_empty(), "an empty chunk");
                prop_assert!(d.token_count <= 48, "{} tokens > 48: {:?}", d.token_count, d.text);
            }
            let had_text = parsed.sections.iter().any(|s| !s.text.trim().is_empty());
            prop_assert!(!had_text || !drafts.is_empty(), "text went missing");
        }
    }

    #[test]
    fn token_verification_never_panics(token in prop_oneof![
        ".{0,400}",
        "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,100}",
        // A real header ({"alg":"HS256","typ":"JWT"}) with a random payload and signature.
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}",
    ]) {
        let (runtime, v) = verifier();
        prop_assert!(runtime.block_on(v.verify(&token)).is_err());
    }

    #[test]
    fn claims_never_panic(claims in proptest::collection::btree_map(
        prop_oneof![Just("sub".to_string()), Just("tenant".to_string()), Just("custom:tenant".to_string()),
                    Just("roles".to_string()), Just("cognito:groups".to_string()), ".{0,12}"],
        prop_oneof![
            any::<String>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            proptest::collection::vec(any::<String>(), 0..4).prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ],
        0..6,
    )) {
        let map: serde_json::Map<String, serde_json::Value> = claims.into_iter().collect();
        let default = ragbot::auth::Tenant::parse("default").unwrap();
        for single in [None, Some(&default)] {
            if let Ok(p) = ragbot::auth::Principal::from_claims(&map, single) {
                prop_assert!(ragbot::auth::Tenant::parse(p.tenant.as_str()).is_ok());
                prop_assert!(!p.subject().trim().is_empty());
            }
        }
    }

    #[test]
    fn query_checks_never_panic_and_bound_what_they_accept(raw in text(), max in 1usize..600) {
        if let Ok(q) = ragbot::retrieval::check_query(&raw, max) {
            prop_assert!(q.query.chars().count() <= max, "{} chars > {max}", q.query.chars().count());
            prop_assert!(!q.query.trim().is_empty());
        }
    }
}

/// The app, served in-process, for header-level targets.
fn app() -> &'static (tokio::runtime::Runtime, ragbot_tests::TestApp) {
    static APP: OnceLock<(tokio::runtime::Runtime, ragbot_tests::TestApp)> = OnceLock::new();
    APP.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let app = runtime.block_on(ragbot_tests::TestApp::spawn());
        (runtime, app)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn any_authorization_header_gets_a_clear_4xx(value in prop_oneof![
        ".{0,200}",
        "[Bb]earer {0,3}.{0,200}",
        "Basic [A-Za-z0-9+/=]{0,40}",
    ]) {
        let Ok(header) = http::HeaderValue::from_str(&value) else { return Ok(()); };
        let (runtime, app) = app();
        let request = http::Request::get("/documents")
            .header("authorization", header)
            .body(axum::body::Body::empty())
            .unwrap();
        let r = runtime.block_on(app.send(request));
        prop_assert!(
            r.status == http::StatusCode::UNAUTHORIZED,
            "{value:?}: {} {}", r.status, String::from_utf8_lossy(&r.body)
        );
        prop_assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}
