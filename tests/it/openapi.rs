//! The OpenAPI document (`GET /openapi.json`): a real validator accepts it, it lists exactly the
//! operations the router serves, and it describes security, parameters and errors as the code
//! behaves. (`/docs`, the dev server's Swagger UI over it, is tested in `infra/cli`.)

use std::collections::BTreeSet;

use http::StatusCode;
use ragbot_tests::TestApp;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let r = app.get("/openapi.json").await;
    r.assert_status(StatusCode::OK);
    r.json()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_string(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_served_document_passes_openapi_spec_validator() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let validator = std::env::var("RAGBOT_OPENAPI_VALIDATOR").unwrap_or_else(|_| {
        ragbot_tests::repo_root()
            .join(".local/venv/bin/openapi-spec-validator")
            .display()
            .to_string()
    });
    let dir = std::env::temp_dir().join(format!("ragbot-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("{validator}: {e} (make test installs it: bash infra/local/install.sh tools)")
        });
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The router's paths, read from its `Debug` output (axum offers no listing; this test fails
/// loudly if that output changes shape), then probed method by method through the real router.
fn served_paths() -> Vec<String> {
    let (router, _) = ragbot::http::all_routes().split_for_parts();
    let debug = format!("{router:?}");
    let start = debug
        .find("node: Node { paths: {")
        .expect("axum's Router Debug output lists its paths");
    let rest = &debug[start..];
    // The map's end: its last path's closing quote, then the map's and the node's braces.
    let end = rest.find("\"} }").expect("end of the path list") + 1;
    let paths: Vec<String> = rest[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(paths.len() > 10, "paths read from the router: {paths:?}");
    paths
}

#[tokio::test]
async fn every_served_operation_is_documented_and_every_documented_one_served() {
    let app = TestApp::spawn().await;
    let documented = operations(&document(&app).await);
    let mut served = BTreeSet::new();
    for path in served_paths()
        .into_iter()
        .chain(["/openapi.json".to_string()])
    {
        let uri = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{message_id}", "00000000-0000-0000-0000-000000000000");
        for m in METHODS {
            let r = app.call(&m.to_uppercase(), &uri, None, None).await;
            let code = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|j| j["error"]["code"].as_str().map(str::to_string));
            if code.as_deref() != Some("method_not_allowed") {
                served.insert((m.to_string(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but missing from /openapi.json: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn security_parameters_and_errors_are_described_as_the_code_behaves() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // The OpenAI-compatible routes answer errors in OpenAI's shape.
        let envelope = if path.starts_with("/v1/") {
            "#/components/schemas/OpenAiError"
        } else {
            "#/components/schemas/ErrorEnvelope"
        };
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let at = format!("{} {path}", m.to_uppercase());
            let responses = op["responses"].as_object().expect("responses");
            let error = |status: &str| {
                let r = &responses
                    .get(status)
                    .unwrap_or_else(|| panic!("{at}: no {status} response"));
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"], envelope,
                    "{at}: {status} carries the error envelope"
                );
            };
            for (status, r) in responses {
                if status.starts_with('2') && status != "204" {
                    let schema = r["content"]
                        .as_object()
                        .and_then(|c| c.values().next())
                        .map(|c| &c["schema"]);
                    assert!(
                        schema.is_some_and(|s| !s.is_null()),
                        "{at}: {status} has a schema"
                    );
                }
            }
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().expect("request content");
                assert!(
                    content.values().all(|c| !c["schema"].is_null()),
                    "{at}: the request body has a schema"
                );
            }
            if ragbot::http::is_public(path) {
                assert!(op.get("security").is_none(), "{at} is public");
            } else {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"bearer": []}]),
                    "{at} declares bearer security"
                );
                for s in ["401", "403", "429"] {
                    error(s);
                }
            }
            if op.get("requestBody").is_some() {
                for s in ["413", "415", "422"] {
                    error(s);
                }
            }
            if path.contains('{') {
                error("404");
            }
            error("500");
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                let expected = if path.contains(&format!("{{{name}}}")) {
                    "path"
                } else if name.starts_with("x-") {
                    "header"
                } else {
                    "query"
                };
                assert_eq!(p["in"], expected, "{at}: parameter {name}");
            }
        }
    }
    // The list routes page through the query string.
    let list = &doc["paths"]["/documents"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"after") && names.contains(&"limit"),
        "{names:?}"
    );
    // The main bodies carry examples.
    for schema in ["ChatRequest", "RetrieveRequest", "QaBody"] {
        assert!(
            doc["components"]["schemas"][schema]["example"].is_object(),
            "{schema} has an example"
        );
    }
}
