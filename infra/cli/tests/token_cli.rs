//! `ragbot token` mints a token the API accepts: verified with the same code the functions use.

use std::process::Command;

use ragbot::{
    auth::{Principal, Role, Verifier},
    config::AuthSettings,
};

fn token(args: &[&str]) -> std::process::Output {
    // A clean environment: `make test` exports the stack's variables.
    Command::new(env!("CARGO_BIN_EXE_ragbot"))
        .arg("token")
        .args(args)
        .env_clear()
        .env("RAGBOT_ENV", "local")
        .output()
        .expect("run ragbot token")
}

#[tokio::test]
async fn minted_tokens_verify_and_carry_subject_tenant_and_roles() {
    let out = token(&[
        "--sub",
        "alice",
        "--tenant",
        "acme",
        "--roles",
        "admin,user",
        "--ttl",
        "30m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwt = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let settings = AuthSettings::from_env_map(&[("RAGBOT_ENV", "local")]).unwrap();
    let verifier = Verifier::from_settings(&settings).await.unwrap();
    let claims = verifier
        .verify(&jwt)
        .await
        .expect("the local dev token verifies");
    let exp = claims["exp"].as_u64().unwrap();
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(exp - iat, 1800);
    // The token names its tenant, so even a multi-tenant deployment accepts it.
    let p = Principal::from_claims(&claims, None).unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.tenant.as_str(), "acme");
    assert_eq!(
        p.roles.into_iter().collect::<Vec<_>>(),
        vec![Role::Admin, Role::User]
    );
}

#[test]
fn bad_arguments_fail_with_one_clear_line() {
    let out = token(&["--sub", "a", "--roles", "superuser"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown role 'superuser'"), "{err}");
    let out = token(&["--sub", "a", "--tenant", "no spaces"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid tenant code"));
    let out = token(&["--sub", "a", "--ttl", "forever"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ttl 'forever'"));
}

#[test]
fn seed_refuses_production() {
    let out = Command::new(env!("CARGO_BIN_EXE_ragbot"))
        .args(["seed", "--size", "small"])
        .env_clear()
        .env("RAGBOT_ENV", "production")
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/ragbot")
        .env("DOCUMENTS_BUCKET", "d")
        .env("BACKUPS_BUCKET", "b")
        .env("STATE_TABLE", "t")
        .output()
        .expect("run ragbot seed");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refuses to run with RAGBOT_ENV=production"),
        "{err}"
    );
}
