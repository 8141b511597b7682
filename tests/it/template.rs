//! template.yaml against the code: every function crate is deployed, and the HTTP API sends every
//! route the code serves to the function that serves it (public routes without the authorizer).

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

fn template() -> Value {
    let raw = std::fs::read_to_string(ragbot_tests::repo_root().join("template.yaml")).unwrap();
    serde_yaml_ng::from_str(&raw).expect("template.yaml parses")
}

/// (function binary, method, path, public) for every HttpApi event.
fn http_routes(t: &Value) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    for (_, res) in t["Resources"].as_mapping().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = res["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_string();
        if let Some(events) = res["Properties"]["Events"].as_mapping() {
            for (_, ev) in events {
                if ev["Type"].as_str() == Some("HttpApi") {
                    let p = &ev["Properties"];
                    let public = p["Auth"]["Authorizer"].as_str() == Some("NONE");
                    out.push((
                        binary.clone(),
                        p["Method"].as_str().unwrap().to_lowercase(),
                        p["Path"].as_str().unwrap().to_string(),
                        public,
                    ));
                }
            }
        }
    }
    out
}

fn operations(doc: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
    let json = serde_json::to_value(doc).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in json["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

#[test]
fn every_function_crate_has_a_resource() {
    let t = template();
    let binaries: BTreeSet<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|r| {
            assert_eq!(
                r["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda")
            );
            r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let crates: BTreeSet<String> = std::fs::read_dir(ragbot_tests::repo_root().join("functions"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(binaries, crates, "template functions vs functions/ crates");
}

#[test]
fn every_served_route_is_routed_by_the_http_api_to_its_function() {
    let t = template();
    let routes = http_routes(&t);
    let routed: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(_, m, p, _)| (m.clone(), p.clone()))
        .collect();
    // Everything the dev server serves (the whole API) is routed.
    let served = operations(&ragbot::http::openapi(ragbot::http::all_routes()));
    let missing: Vec<_> = served.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "served but not routed by the HTTP API: {missing:?}"
    );
    let extra: Vec<_> = routed.difference(&served).collect();
    assert!(extra.is_empty(), "routed but served by no code: {extra:?}");
    // ...each to a function that serves it.
    for (binary, method, path, public) in &routes {
        if path == "/openapi.json" {
            continue; // every function serves the document
        }
        let own = ragbot::http::function_routes(binary)
            .unwrap_or_else(|| panic!("{binary} has HTTP events but no routes in the code"));
        let ops = operations(&ragbot::http::openapi(own));
        assert!(
            ops.contains(&(method.clone(), path.clone())),
            "{method} {path} is sent to {binary}, which does not serve it"
        );
        // Only health is public; everything else goes through the JWT authorizer.
        assert_eq!(
            *public,
            path.starts_with("/health"),
            "{method} {path}: authorizer"
        );
    }
}
