//! The migrate function's custom-resource handler against the real PostgreSQL: it sets up a
//! database from nothing, and always answers CloudFormation at the ResponseURL.

use std::sync::{Arc, Mutex};

use ragbot::{
    config::TlsMode,
    deploy::{self, handle_custom_resource_with, MigrateSettings},
    store,
};
use ragbot_tests::{stack_env, url_with_user, TestDb};
use serde_json::{json, Value};

async fn response_sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/cfn-response",
        axum::routing::put(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str::<Value>(&body).unwrap());
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cfn-response", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (url, got)
}

#[tokio::test]
async fn the_custom_resource_sets_up_a_database_and_answers_cloudformation() {
    let admin_url = stack_env("RAGBOT_PG_ADMIN_URL");
    let name = format!("cfn_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db_url = store::with_database(&admin_url, &name);
    let migrator_pw = stack_env("RAGBOT_MIGRATOR_PASSWORD");
    let app_pw = stack_env("RAGBOT_APP_PASSWORD");
    let settings = MigrateSettings {
        admin_url: admin_url.clone(),
        admin_password: None,
        database: name.clone(),
        // Without a password in the URL: it comes from the secret, as in AWS.
        migrator_url: url_with_user(&db_url, store::MIGRATOR_ROLE, "x").replace(":x@", "@"),
        migrator_password: migrator_pw,
        app_password: app_pw.clone(),
        tls: TlsMode::Disable,
    };
    let (url, got) = response_sink().await;
    let event = json!({
        "RequestType": "Create", "ResponseURL": url, "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/ragbot/1",
        "RequestId": "req-1", "LogicalResourceId": "DatabaseSchema", "ResourceType": "Custom::DatabaseSchema",
    });
    let _guard = ragbot_tests::BOOTSTRAP.lock().await;
    let out = handle_custom_resource_with(&event, Ok(settings.clone()), None)
        .await
        .unwrap();
    assert_eq!(out["Status"], "SUCCESS", "{out}");
    let answered = got.lock().unwrap().clone();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["Status"], "SUCCESS");
    assert_eq!(answered[0]["RequestId"], "req-1");
    assert_eq!(answered[0]["LogicalResourceId"], "DatabaseSchema");
    // The app role can now use the schema.
    let app = TestDb::connect(&url_with_user(&db_url, store::APP_ROLE, &app_pw)).await;
    let n: i64 = app
        .query_one("SELECT count(*) FROM chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // An update re-runs idempotently; a failure is still answered (FAILED, with the reason).
    let update = json!({"RequestType": "Update", "ResponseURL": url, "PhysicalResourceId": "ragbot-database-schema"});
    let out = handle_custom_resource_with(&update, Ok(settings.clone()), None)
        .await
        .unwrap();
    assert_eq!(out["Status"], "SUCCESS");
    let mut broken = settings.clone();
    broken.admin_url = url_with_user(&admin_url, "postgres", "wrong-password");
    let out = handle_custom_resource_with(&update, Ok(broken), None)
        .await
        .unwrap();
    assert_eq!(out["Status"], "FAILED");
    assert!(
        out["Reason"].as_str().unwrap().contains("password"),
        "{out}"
    );
    assert_eq!(got.lock().unwrap().len(), 3);
    // Set-up that would outlast the invocation is abandoned before its deadline and answered.
    let out = handle_custom_resource_with(
        &update,
        Ok(settings.clone()),
        Some(std::time::Instant::now() + deploy::ANSWER_MARGIN / 2),
    )
    .await
    .unwrap();
    assert_eq!(out["Status"], "FAILED", "{out}");
    assert!(
        out["Reason"].as_str().unwrap().contains("time limit"),
        "{out}"
    );
    let answered = got.lock().unwrap().clone();
    assert_eq!(answered.len(), 4);
    assert_eq!(answered[3]["Status"], "FAILED");
    // With time left, the same update succeeds.
    let out = handle_custom_resource_with(
        &update,
        Ok(settings),
        Some(std::time::Instant::now() + deploy::ANSWER_MARGIN * 4),
    )
    .await
    .unwrap();
    assert_eq!(out["Status"], "SUCCESS", "{out}");
    let out = handle_custom_resource_with(
        &json!({"RequestType": "Delete", "ResponseURL": url}),
        Err("unused".into()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out["Status"], "SUCCESS",
        "delete keeps the data and succeeds"
    );
}
