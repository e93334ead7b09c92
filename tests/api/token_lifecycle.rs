//! The token lifecycle of API.md §2 and §7 ("Token lifecycle"), on the
//! selected backend: expiry (`401 token_expired`, at once, cached or not),
//! rotation with a grace period on every instance, revocation by id or by the
//! secret itself, the audit trail of every admin action, and admin commands
//! that never create a database.

use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clientele::admin::{self, TokenOptions};
use clientele::domain::Scope;
use clientele::ratelimit::{RateLimit, RateLimiter};
use reqwest::{Method, Response};
use serde_json::Value;

use crate::support::process::{Sandbox, Server, describe, serve_command, stderr, stdout};
use crate::support::{TestApp, expect_error, header, keys, now, number_header, unix_of};

// ---- helpers ----

/// A 401 with `code`, its `WWW-Authenticate` challenge and the JSON envelope.
async fn assert_refused(response: Response, code: &str, what: &str) {
    let challenge = header(&response, "www-authenticate").map(str::to_owned);
    expect_error(response, 401, code, what).await;
    let challenge = challenge.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
}

async fn get(app: &TestApp, token: &str) -> Response {
    app.request_as(token, Method::GET, "/v2/customers").send().await.expect("request")
}

/// Sleeps until the wall clock's Unix seconds reach `at`.
async fn sleep_until_unix(at: i64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let target = Duration::from_secs(u64::try_from(at).unwrap());
    if let Some(left) = target.checked_sub(now) {
        tokio::time::sleep(left + Duration::from_millis(20)).await;
    }
}

fn is_token(text: &str) -> bool {
    text.strip_prefix("clt_").is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Exit 1, nothing on stdout, one `error:` line on stderr; returns it.
fn one_error_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    assert_eq!(stdout(output), "", "{}", describe(output));
    let err = stderr(output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    lines[0].to_owned()
}

/// The operating-system user running the tests, by `id -un`.
fn os_user() -> String {
    let output = std::process::Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8(output.stdout).expect("UTF-8").trim().to_owned()
}

// ---- expiry, over HTTP ----

#[tokio::test]
async fn an_expired_token_answers_token_expired_at_once_even_when_cached() {
    let app = TestApp::spawn().await;
    let options =
        TokenOptions { scope: Scope::Write, expires_in: Some(Duration::from_secs(2)), ..TokenOptions::default() };
    let (secret, record) = admin::issue_token_with(&app.store, "default", options).await.unwrap();
    let expires_at = record.expires_at.expect("an expiry");
    assert!((now() + 1..=now() + 2).contains(&expires_at), "{expires_at}");
    // Used (so cached by the server) before the expiry...
    assert_eq!(get(&app, secret.expose()).await.status(), 200);
    sleep_until_unix(expires_at).await;
    // ...and refused from the expiry on, without waiting for the cache.
    for (method, path) in
        [(Method::GET, "/v1/customers"), (Method::GET, "/v2/customers"), (Method::POST, "/v2/customers")]
    {
        let response = app.request_as(secret.expose(), method, path).send().await.unwrap();
        assert_refused(response, "token_expired", path).await;
    }
    // Long after, looked up again, still expired (not invalid).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_refused(get(&app, secret.expose()).await, "token_expired", "after the cache period").await;
    assert_eq!(app.get("/v2/customers").await.status(), 200, "other tokens unaffected");
}

#[tokio::test]
async fn a_token_that_expired_before_its_first_use_is_token_expired() {
    let app = TestApp::spawn().await;
    let options = TokenOptions { expires_in: Some(Duration::from_secs(1)), ..TokenOptions::default() };
    let (secret, record) = admin::issue_token_with(&app.store, "default", options).await.unwrap();
    sleep_until_unix(record.expires_at.unwrap()).await;
    assert_refused(get(&app, secret.expose()).await, "token_expired", "never used").await;
}

// ---- rotation, over HTTP, on two instances ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_works_until_its_grace_ends_on_every_instance() {
    let first = TestApp::spawn().await;
    let second = first.spawn_beside(RateLimiter::in_memory()).await;
    let limit = Some(RateLimit { limit: 1000, window_secs: 3600 });
    let (old, record) = admin::issue_token(&first.store, "default", Scope::Read, limit).await.unwrap();
    for app in [&first, &second] {
        assert_eq!(get(app, old.expose()).await.status(), 200, "cached by both");
    }
    let grace = Duration::from_secs(3);
    let (new, rotated) = admin::rotate_token(&first.store, record.id.as_str(), grace).await.unwrap();
    assert_eq!((&rotated.id, rotated.scope, rotated.rate_limit), (&record.id, Scope::Read, limit), "same token");
    let grace_until = rotated.previous.expect("the old secret is kept").until;

    // The new secret works at once, everywhere, and shares the old one's rate-limit counter.
    let before = number_header(&get(&first, old.expose()).await, "x-ratelimit-remaining", "old");
    let response = get(&first, new.expose()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(number_header(&response, "x-ratelimit-remaining", "new"), before - 1, "one counter for both secrets");
    assert_eq!(get(&second, new.expose()).await.status(), 200);

    // The old one works until the grace ends, then is expired on both instances within 5 s.
    while now() < grace_until - 1 {
        for app in [&first, &second] {
            assert_eq!(get(app, old.expose()).await.status(), 200, "within the grace period");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sleep_until_unix(grace_until).await;
    let ended = Instant::now();
    let mut pending = vec![&first, &second];
    while !pending.is_empty() {
        assert!(ended.elapsed() < Duration::from_secs(5), "old secret still accepted 5 s after its grace");
        let mut still = Vec::new();
        for app in pending {
            let response = get(app, old.expose()).await;
            if response.status() == 401 {
                assert_refused(response, "token_expired", "after the grace").await;
            } else {
                assert_eq!(response.status(), 200);
                still.push(app);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for app in [&first, &second] {
        assert_eq!(get(app, new.expose()).await.status(), 200, "the new secret lives on");
    }

    // Revoking the token ends both secrets.
    let (newest, _) = admin::rotate_token(&first.store, record.id.as_str(), Duration::from_secs(600)).await.unwrap();
    admin::revoke_token(&first.store, record.id.as_str()).await.unwrap();
    let revoked = Instant::now();
    for secret in [&new, &newest] {
        loop {
            let response = get(&second, secret.expose()).await;
            if response.status() == 401 {
                assert_refused(response, "token_invalid", "revoked").await;
                break;
            }
            assert!(revoked.elapsed() < Duration::from_secs(5), "revoked secret still accepted after 5 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn rotation_without_grace_ends_the_old_secret_within_5_seconds() {
    let app = TestApp::spawn().await;
    let (old, record) = admin::issue_token(&app.store, "default", Scope::Read, None).await.unwrap();
    assert_eq!(get(&app, old.expose()).await.status(), 200);
    let (new, _) = admin::rotate_token(&app.store, record.id.as_str(), Duration::ZERO).await.unwrap();
    let rotated = Instant::now();
    loop {
        let response = get(&app, old.expose()).await;
        if response.status() == 401 {
            assert_refused(response, "token_expired", "no grace").await;
            break;
        }
        assert!(rotated.elapsed() < Duration::from_secs(5), "old secret still accepted after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&app, new.expose()).await.status(), 200);
}

// ---- the CLI ----

#[test]
fn tokens_create_with_a_name_an_expiry_and_json() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    let output = sandbox.cli(&["tokens", "create", "--account", "acme", "--expires-in", "90d", "--name", "ci-deploy"]);
    assert!(output.status.success(), "{}", describe(&output));
    let secret = stdout(&output).strip_suffix('\n').expect("one line").to_owned();
    assert!(is_token(&secret), "the secret alone on stdout: {secret:?}");
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(!err.contains(&secret), "the secret is printed once: {err:?}");
    let list = sandbox.json(&["tokens", "list", "--json"]);
    let entry = &list[0];
    let id = entry["id"].as_str().unwrap();
    assert!(err.contains(id), "stderr names the new token's id {id}: {err:?}");
    assert_eq!(entry["name"], "ci-deploy");
    let expires_at = unix_of(entry["expires_at"].as_str().expect("expires_at"));
    assert!((expires_at - now() - 90 * 86_400).abs() <= 5, "in 90 days: {entry}");

    let table = sandbox.ok(&["tokens", "list"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[8..], &["ci-deploy", entry["expires_at"].as_str().unwrap()], "{table}");

    let json = sandbox.json(&[
        "tokens",
        "create",
        "--account",
        "acme",
        "--scope",
        "write",
        "--rate-limit",
        "5/10s",
        "--name",
        "etl",
        "--json",
    ]);
    assert_eq!(keys(&json), ["account", "expires_at", "id", "name", "rate_limit", "scope", "token"]);
    assert!(is_token(json["token"].as_str().unwrap()), "{json}");
    assert!(json["id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(
        (&json["account"], &json["scope"], &json["rate_limit"]),
        (&"acme".into(), &"write".into(), &"5/10s".into())
    );
    assert_eq!((&json["name"], &json["expires_at"]), (&"etl".into(), &Value::Null));

    for bad in [
        &["--expires-in", "90"][..],
        &["--expires-in", "1w"],
        &["--expires-in", "-1d"],
        &["--name", "has space"],
        &["--name", ""],
    ] {
        let output = sandbox
            .command()
            .arg("--database-url")
            .arg(&sandbox.url)
            .args(["tokens", "create", "--account", "acme"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "usage error for {bad:?}: {}", describe(&output));
    }
    assert_eq!(sandbox.json(&["tokens", "list", "--json"]).as_array().unwrap().len(), 2, "nothing issued by errors");
}

#[test]
fn tokens_rotate_prints_the_new_secret_and_keeps_the_id() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    let created = sandbox.json(&["tokens", "create", "--account", "acme", "--rate-limit", "9/9s", "--json"]);
    let id = created["id"].as_str().unwrap();
    let output = sandbox.cli(&["tokens", "rotate", id, "--grace", "1h"]);
    assert!(output.status.success(), "{}", describe(&output));
    let secret = stdout(&output).trim_end().to_owned();
    assert!(is_token(&secret) && secret != created["token"], "a new secret alone on stdout: {secret:?}");
    let err = stderr(&output);
    assert!(err.contains(id) && !err.contains(&secret) && err.lines().count() == 1, "{err:?}");

    let rotated = sandbox.json(&["tokens", "rotate", id, "--json"]);
    assert_eq!(keys(&rotated), ["account", "expires_at", "id", "name", "rate_limit", "scope", "token"]);
    assert_eq!((&rotated["id"], &rotated["rate_limit"]), (&created["id"], &created["rate_limit"]));
    assert_ne!(rotated["token"].as_str(), Some(secret.as_str()));
    let list = sandbox.json(&["tokens", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "same token: {list}");
    assert!(rotated["token"].as_str().unwrap().starts_with(list[0]["prefix"].as_str().unwrap()), "new prefix: {list}");

    // A secret pasted where the id goes is refused without being printed.
    let pasted = rotated["token"].as_str().unwrap();
    let line = one_error_line(&sandbox.cli(&["tokens", "rotate", pasted]));
    assert!(!line.contains(&pasted[4..]), "{line}");

    sandbox.ok(&["tokens", "revoke", id]);
    let line = one_error_line(&sandbox.cli(&["tokens", "rotate", id]));
    assert!(line.contains("revoked"), "{line}");
    one_error_line(&sandbox.cli(&["tokens", "rotate", "tok_00000000000000000000000000"]));
    let output = sandbox.cli(&["tokens", "rotate", id, "--grace", "soon"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}

#[test]
fn tokens_revoke_by_id_or_by_secret_never_prints_a_secret() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    let first = sandbox.json(&["tokens", "create", "--account", "acme", "--json"]);
    let leaked = first["token"].as_str().unwrap();
    let id = first["id"].as_str().unwrap();

    let output = sandbox.cli(&["tokens", "revoke", leaked]);
    assert!(output.status.success(), "{}", describe(&output));
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!all.contains(leaked) && !all.contains(&leaked[8..]), "the secret is never printed: {all:?}");
    assert!(all.contains(id) && all.contains("revoked"), "{all:?}");
    let revoked_at = sandbox.json(&["tokens", "list", "--json"])[0]["revoked_at"].as_str().unwrap().to_owned();

    // Again, by id or by secret: exit 0, saying when it was revoked.
    for again in [id, leaked] {
        let output = sandbox.cli(&["tokens", "revoke", again]);
        assert!(output.status.success(), "{}", describe(&output));
        let err = stderr(&output);
        assert!(err.contains("already revoked") && err.contains(&revoked_at), "{err:?}");
        assert!(!err.contains(leaked), "{err:?}");
    }

    let unknown = "clt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let line = one_error_line(&sandbox.cli(&["tokens", "revoke", unknown]));
    assert!(!line.contains(unknown) && !line.contains("AAAAAAAA"), "{line}");
    let mangled = format!("{leaked}x");
    let line = one_error_line(&sandbox.cli(&["tokens", "revoke", &mangled]));
    assert!(!line.contains(&leaked[4..]), "a mangled secret is not printed either: {line}");
    one_error_line(&sandbox.cli(&["tokens", "revoke", "tok_00000000000000000000000000"]));
}

#[test]
fn audit_lists_every_admin_action_with_the_os_user_and_no_secret() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    let created =
        sandbox.json(&["tokens", "create", "--account", "acme", "--name", "ci", "--expires-in", "1d", "--json"]);
    let id = created["id"].as_str().unwrap();
    let rotated = sandbox.json(&["tokens", "rotate", id, "--grace", "2h", "--json"]);
    sandbox.ok(&["tokens", "revoke", id]);
    sandbox.ok(&["tokens", "revoke", id]);
    let _ = sandbox.cli(&["accounts", "create", "acme"]);

    let entries = sandbox.json(&["audit", "--json"]);
    let entries = entries.as_array().expect("an array");
    let seen: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [("account.created", "acme"), ("token.created", id), ("token.rotated", id), ("token.revoked", id)],
        "failed and repeated actions record nothing"
    );
    let user = os_user();
    for entry in entries {
        assert_eq!(keys(entry), ["action", "actor", "at", "detail", "target"]);
        assert_eq!(entry["actor"], user.as_str(), "{entry}");
        assert!((unix_of(entry["at"].as_str().unwrap()) - now()).abs() < 60, "{entry}");
    }
    assert!(entries[1]["detail"].as_str().unwrap().contains("acme"), "{:?}", entries[1]);
    let text = format!("{}{}", sandbox.ok(&["audit"]), sandbox.ok(&["audit", "--json"]));
    for secret in [&created["token"], &rotated["token"]] {
        assert!(!text.contains(secret.as_str().unwrap()), "no secret in the audit trail");
    }
    assert!(!text.contains("clt_"), "not even a prefix: {text}");
    let table = sandbox.ok(&["audit"]);
    assert_eq!(table.lines().count(), 5, "a header and four rows: {table}");
    assert!(table.lines().next().unwrap().starts_with("TIME"), "{table}");

    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(sandbox.json(&["audit", "--since", "1s", "--json"]), serde_json::json!([]), "--since");
    assert_eq!(sandbox.json(&["audit", "--since", "1h", "--json"]).as_array().unwrap().len(), 4);
    assert_eq!(sandbox.cli(&["audit", "--since", "7"]).status.code(), Some(2), "a duration needs its unit");
}

#[test]
fn admin_commands_never_create_a_database() {
    let sandbox = Sandbox::sqlite();
    let missing = sandbox.missing_sqlite_url("nothing-here.db");
    let file = sandbox.dir.path().join("nothing-here.db");
    for args in [
        &["accounts", "list"][..],
        &["accounts", "create", "acme"],
        &["tokens", "list"],
        &["tokens", "create", "--account", "acme"],
        &["tokens", "rotate", "tok_00000000000000000000000000"],
        &["tokens", "revoke", "tok_00000000000000000000000000"],
        &["audit"],
    ] {
        let output = sandbox.command().arg("--database-url").arg(&missing).args(args).output().unwrap();
        let line = one_error_line(&output);
        assert!(line.contains("nothing-here.db") && line.contains("serve"), "{args:?}: {line}");
        assert!(!file.exists(), "{args:?} created {}", file.display());
    }
    // Run in a folder with no database and no --database-url: the default file is not created either.
    let dir = tempfile::tempdir().unwrap();
    let output = sandbox.command().args(["tokens", "list"]).current_dir(dir.path()).output().unwrap();
    one_error_line(&output);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing created in the working folder");

    // Only serve creates one.
    let mut command = serve_command(&missing, &["--no-bootstrap"]);
    command.current_dir(sandbox.dir.path());
    let serve = Server::start(command);
    assert!(file.exists(), "serve created the database");
    serve.stop();
    assert_eq!(sandbox.json_at(&missing, &["tokens", "list", "--json"]), serde_json::json!([]));
}
