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
        let own = binary
            .parse::<ragbot::Function>()
            .map(ragbot::http::function_routes)
            .unwrap_or_else(|_| panic!("{binary} has HTTP events but no routes in the code"));
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

/// The streamed chat in AWS: HTTP APIs buffer responses, so the chat binary also runs behind a
/// Function URL in RESPONSE_STREAM mode, verifying the JWT itself against the issuer's keys
/// (read at deploy time by a small function outside the VPC).
#[test]
fn the_chat_stream_has_a_streaming_function_url_that_verifies_tokens_itself() {
    let t = template();
    let f = &t["Resources"]["ChatStreamFunction"];
    assert_eq!(f["Type"].as_str(), Some("AWS::Serverless::Function"));
    assert_eq!(
        f["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("chat")
    );
    let p = &f["Properties"];
    let url = &p["FunctionUrlConfig"];
    assert_eq!(url["InvokeMode"].as_str(), Some("RESPONSE_STREAM"));
    // No authorizer in front of a Function URL: the function checks every request's token.
    assert_eq!(url["AuthType"].as_str(), Some("NONE"));
    let headers = format!("{:?}", url["Cors"]["AllowHeaders"]);
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(
        !url["Cors"]["AllowOrigins"].is_null(),
        "CORS origins as the HTTP API's"
    );
    let env = &p["Environment"]["Variables"];
    assert_eq!(env["RAGBOT_RESPONSE_STREAM"].as_str(), Some("true"));
    assert!(
        format!("{:?}", env["JWT_JWKS"]).contains("IssuerJwks"),
        "the keys come from the deploy-time fetch: {:?}",
        env["JWT_JWKS"]
    );
    // The issuer and audience the token must carry come from the globals, as for every function.
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(!globals["JWT_ISSUER"].is_null() && !globals["JWT_AUDIENCE"].is_null());
    // It serves the chat routes (the stream among them) and is not behind the HTTP API.
    assert!(p["Events"].is_null(), "the Function URL is its only way in");
    let served = operations(&ragbot::http::openapi(ragbot::http::function_routes(
        ragbot::Function::Chat,
    )));
    assert!(served.contains(&("post".to_string(), "/chat/stream".to_string())));
    // The fetcher: a plain Lambda function (the VPC globals do not apply), answering CloudFormation.
    let fetcher = &t["Resources"]["JwksFetcher"];
    assert_eq!(fetcher["Type"].as_str(), Some("AWS::Lambda::Function"));
    assert!(fetcher["Properties"]["VpcConfig"].is_null());
    let code = fetcher["Properties"]["Code"]["ZipFile"].as_str().unwrap();
    assert!(code.contains("urlopen") && code.contains("cfnresponse.FAILED"));
    assert_eq!(
        t["Resources"]["IssuerJwks"]["Type"].as_str(),
        Some("Custom::Jwks")
    );
    assert!(!t["Outputs"]["ChatStreamUrl"].is_null());
}

/// The optional web page hosting: off by default; when on, a private bucket that only the
/// stack's CloudFront distribution may read.
#[test]
fn the_web_page_bucket_is_optional_private_and_read_only_by_cloudfront() {
    let t = template();
    assert_eq!(
        t["Parameters"]["WebPage"]["Default"].as_str(),
        Some("false")
    );
    for r in [
        "WebBucket",
        "WebOriginAccess",
        "WebDistribution",
        "WebBucketPolicy",
    ] {
        assert_eq!(
            t["Resources"][r]["Condition"].as_str(),
            Some("UseWebPage"),
            "{r} only with WebPage=true"
        );
    }
    let block = &t["Resources"]["WebBucket"]["Properties"]["PublicAccessBlockConfiguration"];
    for k in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[k].as_bool(), Some(true), "{k}");
    }
    let origin =
        &t["Resources"]["WebDistribution"]["Properties"]["DistributionConfig"]["Origins"][0];
    assert!(format!("{:?}", origin["OriginAccessControlId"]).contains("WebOriginAccess"));
    let statement =
        &t["Resources"]["WebBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        statement["Principal"]["Service"].as_str(),
        Some("cloudfront.amazonaws.com")
    );
    assert!(format!("{:?}", statement["Condition"]).contains("WebDistribution"));
    // Signing in on the page: the hosted UI's code flow (PKCE, no secret), back to the page.
    assert_eq!(
        t["Resources"]["UserPoolDomain"]["Condition"].as_str(),
        Some("HostedSignIn")
    );
    let client = &t["Resources"]["UserPoolClient"]["Properties"];
    assert_eq!(client["GenerateSecret"].as_bool(), Some(false));
    for k in ["AllowedOAuthFlows", "CallbackURLs"] {
        let v = format!("{:?}", client[k]);
        assert!(
            v.contains("HostedSignIn"),
            "{k} only with the hosted sign-in: {v}"
        );
    }
    assert!(format!("{:?}", client["AllowedOAuthFlows"]).contains("code"));
    assert!(!t["Outputs"]["WebConfig"].is_null());
}

#[test]
fn failed_asynchronous_ingestion_is_retried_twice_then_kept_for_replay() {
    let t = template();
    let embed = &t["Resources"]["EmbedFunction"]["Properties"];
    let config = &embed["EventInvokeConfig"];
    assert_eq!(config["MaximumRetryAttempts"].as_u64(), Some(2));
    let on_failure = &config["DestinationConfig"]["OnFailure"];
    // SAM's name for an S3 bucket destination (it adds the s3:PutObject permission).
    assert_eq!(on_failure["Type"].as_str(), Some("S3Bucket"));
    assert!(
        format!("{:?}", on_failure["Destination"]).contains("FailedEventsBucket"),
        "{:?}",
        on_failure["Destination"]
    );
    let bucket = &t["Resources"]["FailedEventsBucket"];
    assert_eq!(bucket["Type"].as_str(), Some("AWS::S3::Bucket"));
    assert!(
        bucket["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
            .as_bool()
            .unwrap_or(false)
    );
    // The embed function is not triggered by its own failure records (they are in another bucket).
    assert!(format!("{:?}", embed["Events"]).contains("DocumentsBucket"));
    assert!(!format!("{:?}", embed["Events"]).contains("FailedEventsBucket"));
    // The ledger's claims run out before Lambda's first retry, a minute after a failure.
    assert!(ragbot::aws::LEDGER_LEASE < ragbot::lambda::LAMBDA_RETRY_DELAYS[0]);
    assert!(t["Outputs"]["FailedEventsBucketName"].is_mapping());
}

/// Runs the inline Python of a template function on `event` (as Lambda's python3.12 would).
fn run_inline_python(code: &str, event: &serde_json::Value) -> serde_json::Value {
    let script = format!(
        "{code}\nimport json, sys\nprint(json.dumps(handler(json.load(sys.stdin), None)))\n"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the handler returns the event as JSON")
}

#[test]
fn cognito_puts_the_tenant_into_access_tokens_and_users_cannot_change_it() {
    let t = template();
    let r = &t["Resources"];
    // Users may not write their own tenant through the app client.
    let client = &r["UserPoolClient"]["Properties"];
    let writable: Vec<&str> = client["WriteAttributes"]
        .as_sequence()
        .expect("WriteAttributes is set (unset means every mutable attribute)")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        !writable.iter().any(|a| a.contains("tenant")),
        "{writable:?}"
    );
    assert!(format!("{:?}", client["ReadAttributes"]).contains("custom:tenant"));
    // The pre-token-generation trigger (V2: access tokens too) adds the claim.
    let pool = &r["UserPool"]["Properties"];
    let trigger = &pool["LambdaConfig"]["PreTokenGenerationConfig"];
    assert_eq!(trigger["LambdaVersion"].as_str(), Some("V2_0"));
    assert!(format!("{:?}", trigger["LambdaArn"]).contains("TenantClaimTrigger"));
    assert_eq!(pool["UserPoolTier"].as_str(), Some("ESSENTIALS"));
    assert!(format!(
        "{:?}",
        r["TenantClaimTriggerPermission"]["Properties"]["Principal"]
    )
    .contains("cognito-idp.amazonaws.com"));

    // The trigger's code, run on Cognito's V2 event shape.
    let code = r["TenantClaimTrigger"]["Properties"]["Code"]["ZipFile"]
        .as_str()
        .unwrap();
    let event = |attrs: serde_json::Value| {
        serde_json::json!({
            "version": "2", "triggerSource": "TokenGeneration_Authentication",
            "region": "eu-west-1", "userPoolId": "eu-west-1_AbCdEfGhI", "userName": "ana",
            "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "c"},
            "request": {"userAttributes": attrs, "groupConfiguration": {"groupsToOverride": ["admin"]}, "scopes": ["openid"]},
            "response": {"claimsAndScopeOverrideDetails": null}
        })
    };
    let out = run_inline_python(
        code,
        &event(serde_json::json!({"sub": "s", "custom:tenant": "acme"})),
    );
    let details = &out["response"]["claimsAndScopeOverrideDetails"];
    for token in ["accessTokenGeneration", "idTokenGeneration"] {
        assert_eq!(
            details[token]["claimsToAddOrOverride"]["tenant"], "acme",
            "{out}"
        );
    }
    let out = run_inline_python(code, &event(serde_json::json!({"sub": "s"})));
    assert_eq!(
        out["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]
            ["claimsToAddOrOverride"],
        serde_json::json!({}),
        "no tenant attribute, no tenant claim: a multi-tenant deployment refuses the token"
    );

    // Multi-tenant unless said otherwise; no switch that the authorizer would silently ignore.
    let p = &t["Parameters"];
    assert_eq!(p["Tenancy"]["Default"].as_str(), Some("multi"));
    assert!(p["AllowAnonymous"].is_null());
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(env["ALLOW_ANONYMOUS"].is_null());
    assert_eq!(env["RAGBOT_ENV"].as_str(), Some("production"));
    assert!(format!("{:?}", env["TENANCY"]).contains("Tenancy"));
}

#[test]
fn the_schema_set_up_reads_the_database_passwords_when_it_runs_not_at_deploy_time() {
    let t = template();
    let r = &t["Resources"];
    let schema = &r["DatabaseSchema"]["Properties"];
    assert!(format!("{:?}", schema["ServiceToken"]).contains("SchemaSecrets"));
    assert!(format!("{:?}", schema["AdminSecretArn"]).contains("MasterUserSecret"));
    // No password is resolved into the migrate function's configuration.
    let migrate = &r["MigrateFunction"]["Properties"];
    let env = format!("{:?}", migrate["Environment"]);
    assert!(
        !env.contains("PASSWORD") && !env.contains("resolve:secretsmanager"),
        "{env}"
    );
    assert_eq!(
        migrate["EventInvokeConfig"]["MaximumRetryAttempts"].as_u64(),
        Some(0)
    );
    assert!(env.contains("RAGBOT_CONNECT_RETRY_MS"));
    // SchemaSecrets runs outside the VPC (a plain Lambda function, not a SAM one with the globals).
    assert_eq!(
        r["SchemaSecrets"]["Type"].as_str(),
        Some("AWS::Lambda::Function")
    );
    assert!(r["SchemaSecrets"]["Properties"]["VpcConfig"].is_null());

    // Its code, with boto3 and cfnresponse stood in for: three secrets read, the migrate
    // function invoked asynchronously with them; any failure answered FAILED.
    let code = r["SchemaSecrets"]["Properties"]["Code"]["ZipFile"]
        .as_str()
        .unwrap();
    let harness = r#"
import json, sys, types
calls = []
class Secrets:
    def get_secret_value(self, SecretId):
        if SecretId == "broken":
            raise RuntimeError("AccessDenied")
        return {"SecretString": json.dumps({"username": "u", "password": "pw-" + SecretId})}
class Lambda:
    def invoke(self, **kw):
        calls.append(("invoke", kw["FunctionName"], kw["InvocationType"], json.loads(kw["Payload"])))
boto3 = types.ModuleType("boto3")
boto3.client = lambda name: Secrets() if name == "secretsmanager" else Lambda()
cfn = types.ModuleType("cfnresponse")
cfn.SUCCESS, cfn.FAILED = "SUCCESS", "FAILED"
cfn.send = lambda event, context, status, data, reason=None: calls.append(("answer", status, reason))
sys.modules["boto3"], sys.modules["cfnresponse"] = boto3, cfn
"#;
    let run = |admin_arn: &str| {
        let script = format!(
            "{harness}\n{code}\nhandler({{\"RequestType\": \"Update\", \"ResourceProperties\": {{\"MigrateFunction\": \"stack-migrate\", \"AdminSecretArn\": \"{admin_arn}\", \"MigratorSecretArn\": \"m\", \"AppSecretArn\": \"a\"}}}}, None)\nprint(json.dumps(calls))\n"
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let calls = run("admin");
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    assert_eq!(calls[0][1], "stack-migrate");
    assert_eq!(calls[0][2], "Event");
    assert_eq!(
        calls[0][3]["Passwords"],
        serde_json::json!({"admin": "pw-admin", "migrator": "pw-m", "app": "pw-a"})
    );
    let calls = run("broken");
    assert_eq!(calls[0][0], "answer");
    assert_eq!(calls[0][1], "FAILED");
    assert!(calls[0][2].as_str().unwrap().contains("AccessDenied"));
}

/// Evaluates a condition of the template (`!Equals`, `!Not`, `!And`, `!Or`, `!Condition`, `!Ref`
/// of a parameter) for the given parameter values (defaults for the rest).
fn condition_holds(t: &Value, name: &str, params: &[(&str, &str)]) -> bool {
    fn value(t: &Value, v: &Value, params: &[(&str, &str)]) -> String {
        match v {
            Value::Tagged(tagged) if tagged.tag == "Ref" => {
                let p = tagged.value.as_str().unwrap();
                params
                    .iter()
                    .find(|(k, _)| *k == p)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_else(|| match &t["Parameters"][p]["Default"] {
                        Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
            }
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        }
    }
    fn eval(t: &Value, c: &Value, params: &[(&str, &str)]) -> bool {
        let Value::Tagged(tagged) = c else {
            panic!("not a condition: {c:?}")
        };
        let args = tagged.value.as_sequence();
        match tagged.tag.to_string().trim_start_matches('!') {
            "Equals" => {
                let a = args.unwrap();
                value(t, &a[0], params) == value(t, &a[1], params)
            }
            "Not" => !eval(t, &args.unwrap()[0], params),
            "And" => args.unwrap().iter().all(|c| eval(t, c, params)),
            "Or" => args.unwrap().iter().any(|c| eval(t, c, params)),
            "Condition" => condition_holds(t, tagged.value.as_str().unwrap(), params),
            other => panic!("unsupported condition function {other}"),
        }
    }
    eval(t, &t["Conditions"][name], params)
}

/// The resources the template creates for these parameter values.
fn resources_for(t: &Value, params: &[(&str, &str)]) -> BTreeSet<String> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| match r["Condition"].as_str() {
            Some(c) => condition_holds(t, c, params),
            None => true,
        })
        .map(|(k, _)| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rds_proxy_is_an_option_and_without_it_the_functions_connect_to_aurora_directly() {
    let t = template();
    assert_eq!(
        t["Parameters"]["DatabaseProxy"]["Default"].as_str(),
        Some("false")
    );
    let proxy_parts = [
        "RdsProxy",
        "RdsProxyTargets",
        "ProxyRole",
        "ProxySecurityGroup",
        "ProxyToDatabase",
    ];
    let default = resources_for(&t, &[]);
    let with_proxy = resources_for(&t, &[("DatabaseProxy", "true")]);
    for part in proxy_parts {
        assert!(!default.contains(part), "{part} is created by default");
        assert!(
            with_proxy.contains(part),
            "{part} is missing with DatabaseProxy=true"
        );
    }
    // Everything else is the same either way.
    let rest: BTreeSet<_> = with_proxy
        .difference(&default)
        .filter(|r| !proxy_parts.contains(&r.as_str()))
        .collect();
    assert!(rest.is_empty(), "{rest:?}");

    // The connection settings follow the choice.
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    let url = format!("{:?}", env["DATABASE_URL"]);
    assert!(
        url.contains("UseProxy") && url.contains("RdsProxy.Endpoint"),
        "{url}"
    );
    assert!(url.contains("DatabaseCluster.Endpoint.Address"), "{url}");
    assert_eq!(env["DATABASE_TLS"].as_str(), Some("require"));
    let pool = format!("{:?}", env["DATABASE_POOL_SIZE"]);
    assert!(
        pool.contains("UseProxy") && pool.contains("\"1\""),
        "{pool}"
    );
    // The functions reach Aurora directly; the proxy's rule only exists with the proxy.
    let ingress = format!(
        "{:?}",
        t["Resources"]["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    );
    assert!(ingress.contains("LambdaSecurityGroup"), "{ingress}");
    assert!(ingress.contains("UseProxy"), "{ingress}");
    assert_eq!(
        t["Outputs"]["DatabaseProxyEndpoint"]["Condition"].as_str(),
        Some("UseProxy")
    );
    // Sanity of the evaluator on another switch.
    assert!(condition_holds(&t, "UseWorkers", &[]));
    assert!(!condition_holds(
        &t,
        "UseWorkers",
        &[("LargeDocumentWorkers", "false")]
    ));
    assert!(!condition_holds(&t, "HostedSignIn", &[]));
    assert!(condition_holds(&t, "HostedSignIn", &[("WebPage", "true")]));
}

#[test]
fn workers_start_through_a_jobs_bucket_so_no_interface_endpoint_is_needed_by_default() {
    let t = template();
    let default = resources_for(&t, &[]);
    // Only gateway endpoints (free) by default: S3 and DynamoDB.
    let interface: Vec<&String> = default
        .iter()
        .filter(|r| {
            t["Resources"][r.as_str()]["Type"].as_str() == Some("AWS::EC2::VPCEndpoint")
                && t["Resources"][r.as_str()]["Properties"]["VpcEndpointType"].as_str()
                    == Some("Interface")
        })
        .collect();
    assert!(
        interface.is_empty(),
        "interface endpoints by default: {interface:?}"
    );
    assert!(!default.iter().any(|r| r.contains("NatGateway")));
    let embed = &t["Resources"]["EmbedFunction"]["Properties"];
    assert!(format!(
        "{:?}",
        embed["Environment"]["Variables"]["INGEST_JOB_BUCKET"]
    )
    .contains("JobsBucket"));
    assert_eq!(embed["RecursiveLoop"].as_str(), Some("Allow"));
    let started = &embed["Events"]["WorkerStarted"];
    assert_eq!(started["Type"].as_str(), Some("S3"));
    assert!(format!("{:?}", started["Properties"]["Bucket"]).contains("JobsBucket"));
    assert!(!format!("{:?}", embed["Policies"]).contains("lambda:InvokeFunction"));
    assert!(default.contains("JobsBucket"));
}
