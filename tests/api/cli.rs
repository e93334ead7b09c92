//! The real `clientele` binary, end to end (API.md §2 and §7): the admin
//! commands, their output and exit codes, the environment, the first-start
//! bootstrap, the admin CLI beside a running server, graceful shutdown on
//! SIGTERM and durability across `kill -9`.
//!
//! Every test works in its own temporary directory with its own database (a
//! SQLite file there, or an empty PostgreSQL database on the PostgreSQL pass:
//! see `support::database`), and every server it starts is killed when the
//! test ends, pass or fail.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Output;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::client;
use crate::support::process::{Sandbox, Server, describe, stderr, stdout};

// ---- helpers ----

/// A run-time failure: exit 1, nothing on stdout, one `error: ...` line on stderr, no backtrace.
fn assert_runtime_error(output: &Output, mentions: &[&str]) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    assert_eq!(stdout(output), "", "{}", describe(output));
    let err = stderr(output);
    assert_no_panic(&err);
    let lines: Vec<&str> = err.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    let lower = lines[0].to_lowercase();
    assert!(mentions.iter().any(|word| lower.contains(word)), "{err:?} mentions one of {mentions:?}");
    lines[0].to_owned()
}

fn assert_no_panic(text: &str) {
    for needle in ["panicked", "RUST_BACKTRACE", "stack backtrace", "thread 'main'"] {
        assert!(!text.contains(needle), "{needle:?} in {text:?}");
    }
}

/// A usage error from clap: exit 2, nothing on stdout.
fn assert_usage_error(output: &Output) {
    assert_eq!(output.status.code(), Some(2), "{}", describe(output));
    assert_eq!(stdout(output), "", "{}", describe(output));
    assert!(stderr(output).starts_with("error: "), "{}", describe(output));
    assert_no_panic(&stderr(output));
}

fn is_token(text: &str) -> bool {
    text.strip_prefix("clt_").is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Every `clt_...` word in the text.
fn tokens_in(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|line| line.split_whitespace())
        .filter(|word| word.contains("clt_"))
        .map(str::to_owned)
        .collect()
}

async fn get(client: &reqwest::Client, server: &Server, token: &str, path: &str) -> reqwest::Response {
    client.get(server.url(path)).bearer_auth(token).send().await.expect("GET")
}

async fn post_customer(client: &reqwest::Client, server: &Server, token: &str, n: usize) -> reqwest::Response {
    let body = json!({"name": format!("Customer {n}"), "email": format!("customer{n}@example.com")});
    client.post(server.url("/v2/customers")).bearer_auth(token).json(&body).send().await.expect("POST")
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// The bootstrap token a first start printed, checked to appear exactly once.
fn only_bootstrap_token(server: &Server) -> String {
    let found = tokens_in(&server.banner);
    assert_eq!(found.len(), 1, "one token in the bootstrap block: {:?}", server.banner);
    assert!(is_token(&found[0]), "token shape: {:?}", found[0]);
    found[0].clone()
}

/// `tokens list --json` entry whose prefix starts the secret.
fn token_entry(list: &Value, secret: &str) -> Value {
    let matching: Vec<&Value> =
        list.as_array().expect("array").iter().filter(|t| secret.starts_with(t["prefix"].as_str().unwrap())).collect();
    assert_eq!(matching.len(), 1, "one token entry for the secret in {list}");
    matching[0].clone()
}

// ---- accounts ----

#[test]
fn accounts_create_and_list() {
    let sandbox = Sandbox::new();
    let out = sandbox.ok(&["accounts", "create", "acme"]);
    let id = out.trim_end_matches('\n');
    assert_eq!(out, format!("{id}\n"), "one line");
    assert!(id.starts_with("acct_") && id.len() > 5 && !id.contains(char::is_whitespace), "{out:?}");
    sandbox.ok(&["accounts", "create", "globex.eu_2-b"]);

    let table = sandbox.ok(&["accounts", "list"]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "header and two rows: {table}");
    let acme: Vec<&str> = rows.iter().find(|row| row.contains(id)).expect("acme row").split_whitespace().collect();
    assert_eq!(&acme[..2], &[id, "acme"], "{table}");
    assert!(table.contains("globex.eu_2-b"), "{table}");

    let list = sandbox.json(&["accounts", "list", "--json"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2, "{list:?}");
    let acme = list.iter().find(|a| a["name"] == "acme").expect("acme");
    assert_eq!(acme["id"], id);
    let mut keys: Vec<&str> = acme.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "id", "name"]);
    let created = acme["created_at"].as_str().expect("created_at is a string");
    assert!(created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T', "RFC 3339: {created}");
}

#[test]
fn accounts_create_rejects_duplicates_and_bad_names() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    assert_runtime_error(&sandbox.cli(&["accounts", "create", "acme"]), &["acme"]);
    assert_runtime_error(&sandbox.cli(&["accounts", "create", "has space"]), &["name"]);
    assert_runtime_error(&sandbox.cli(&["accounts", "create", ""]), &["name"]);
    let list = sandbox.json(&["accounts", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing created by the failures: {list}");
}

// ---- tokens ----

#[test]
fn tokens_create_prints_the_secret_alone() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    let mut seen = Vec::new();
    for args in [
        &["tokens", "create", "--account", "acme"][..],
        &["tokens", "create", "--account", "acme", "--scope", "write", "--rate-limit", "5/10s"],
        &["tokens", "create", "--account", "acme", "--scope", "read"],
    ] {
        let output = sandbox.cli(args);
        assert!(output.status.success(), "{}", describe(&output));
        let out = stdout(&output);
        let secret = out.strip_suffix('\n').expect("ends with a newline");
        assert!(is_token(secret), "stdout is exactly the token and a newline: {out:?}");
        assert!(!stderr(&output).contains(secret), "the secret is printed once");
        seen.push(secret.to_owned());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "tokens differ");
    let list = sandbox.json(&["tokens", "list", "--json"]);
    let scopes: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["scope"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["read", "write", "read"], "default scope is read; oldest first");
    assert_eq!(list[1]["rate_limit"], "5/10s");
    assert_eq!(list[0]["rate_limit"], Value::Null);
}

#[test]
fn tokens_create_errors() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    assert_runtime_error(&sandbox.cli(&["tokens", "create", "--account", "nobody"]), &["nobody"]);
    assert_usage_error(&sandbox.cli(&["tokens", "create", "--account", "acme", "--scope", "admin"]));
    assert_usage_error(&sandbox.cli(&["tokens", "create", "--account", "acme", "--rate-limit", "10/0s"]));
    assert_usage_error(&sandbox.cli(&["tokens", "create", "--account", "acme", "--rate-limit", "abc"]));
    assert_usage_error(&sandbox.cli(&["tokens", "create"]));
    assert_usage_error(&sandbox.cli(&["tokens", "create", "--account", "acme", "--bogus"]));
    assert_eq!(sandbox.json(&["tokens", "list", "--json"]), json!([]), "no token issued by the failures");
}

#[test]
fn tokens_list_filter_and_revoke() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    sandbox.ok(&["accounts", "create", "globex"]);
    let acme = sandbox.ok(&["tokens", "create", "--account", "acme", "--scope", "write", "--rate-limit", "7/30s"]);
    let acme = acme.trim();
    let globex = sandbox.ok(&["tokens", "create", "--account", "globex"]);
    let globex = globex.trim();

    let table = sandbox.ok(&["tokens", "list"]);
    for secret in [acme, globex] {
        assert!(!table.contains(secret), "the secret never appears: {table}");
    }
    let rows: Vec<Vec<&str>> = table.lines().skip(1).map(|row| row.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    let header: Vec<String> = table.lines().next().unwrap().split_whitespace().map(str::to_lowercase).collect();
    let columns = ["id", "account", "prefix", "scope", "rate", "created", "last", "revoked", "name", "expires"];
    for (i, word) in columns.iter().enumerate() {
        assert!(header[i].contains(word), "column {i} is {word}: {header:?}");
    }
    let row = rows.iter().find(|row| row[1] == "acme").expect("acme row");
    assert!(row[0].starts_with("tok_"), "{row:?}");
    assert!(acme.starts_with(row[2]) && row[2].len() < acme.len() && row[2].len() >= 4, "prefix {row:?}");
    assert_eq!(row[3], "write");
    assert_eq!(row[4], "7/30s");
    assert_eq!(row.len(), 10, "created, never used, not revoked, no name, no expiry: {row:?}");
    assert_eq!(&row[6..], &["-", "-", "-", "-"], "{row:?}");
    let acme_id = row[0].to_owned();

    let filtered = sandbox.ok(&["tokens", "list", "--account", "globex"]);
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    assert!(filtered.contains("globex") && !filtered.contains("acme") && !filtered.contains(&acme_id), "{filtered}");
    assert_runtime_error(&sandbox.cli(&["tokens", "list", "--account", "nobody"]), &["nobody"]);

    let list_text = sandbox.ok(&["tokens", "list", "--json"]);
    for secret in [acme, globex] {
        assert!(!list_text.contains(secret), "the secret never appears: {list_text}");
    }
    let list: Value = serde_json::from_str(&list_text).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let entry = token_entry(&list, acme);
    let mut keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "account",
            "created_at",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "prefix",
            "rate_limit",
            "revoked_at",
            "scope"
        ]
    );
    assert_eq!((&entry["name"], &entry["expires_at"]), (&Value::Null, &Value::Null));
    assert_eq!(entry["id"], acme_id.as_str());
    assert_eq!(entry["account"], "acme");
    assert_eq!(entry["scope"], "write");
    assert_eq!(entry["rate_limit"], "7/30s");
    assert!(entry["created_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{entry}");
    assert_eq!(entry["last_used_at"], Value::Null);
    assert_eq!(entry["revoked_at"], Value::Null);
    let only_globex = sandbox.json(&["tokens", "list", "--account", "globex", "--json"]);
    assert_eq!(only_globex.as_array().unwrap().len(), 1);
    assert_eq!(only_globex[0]["account"], "globex");
    assert_eq!(only_globex[0]["scope"], "read");

    let revoked = sandbox.cli(&["tokens", "revoke", &acme_id]);
    assert!(revoked.status.success(), "{}", describe(&revoked));
    let list = sandbox.json(&["tokens", "list", "--json"]);
    let entry = token_entry(&list, acme);
    assert!(entry["revoked_at"].as_str().is_some_and(|at| at.ends_with('Z')), "revoked_at set: {entry}");
    assert_eq!(token_entry(&list, globex)["revoked_at"], Value::Null, "only that token");
    let table = sandbox.ok(&["tokens", "list", "--account", "acme"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_ne!(row[7], "-", "REVOKED column filled: {table}");

    assert_runtime_error(&sandbox.cli(&["tokens", "revoke", "tok_00000000000000000000000000"]), &["tok_"]);
}

// ---- environment ----

#[test]
fn database_url_from_the_environment_and_the_flag_wins() {
    let sandbox = Sandbox::new();
    let from_env = sandbox.other_database("env.db");
    let run = |args: &[&str]| {
        sandbox.command().env("CLIENTELE_DATABASE_URL", &from_env.url).args(args).output().expect("run")
    };
    let created = run(&["accounts", "create", "envco"]);
    assert!(created.status.success(), "{}", describe(&created));
    let in_env_database = sandbox.json_at(&from_env.url, &["accounts", "list", "--json"]);
    assert_eq!(in_env_database[0]["name"], "envco", "the environment picked the database");
    // On the SQLite pass the sandbox's own file is the default one, and it stays untouched too.
    assert_eq!(sandbox.json(&["accounts", "list", "--json"]), json!([]), "not the default database");

    let listed = run(&["accounts", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(listed[0]["name"], "envco");

    let flagged = run(&["--database-url", &sandbox.url, "accounts", "list", "--json"]);
    assert!(flagged.status.success(), "{}", describe(&flagged));
    assert_eq!(serde_json::from_slice::<Value>(&flagged.stdout).unwrap(), json!([]), "the flag wins");
    let flagged = run(&["accounts", "list", "--database-url", &sandbox.url]);
    assert!(!stdout(&flagged).contains("envco"), "the flag wins after the subcommand too");
}

#[tokio::test]
async fn serve_reads_its_options_from_the_environment_and_flags_win() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command();
    command
        .env("CLIENTELE_DATABASE_URL", &sandbox.url)
        .env("CLIENTELE_LISTEN", "127.0.0.1:0")
        .env("CLIENTELE_NO_BOOTSTRAP", "true")
        .env("CLIENTELE_DEFAULT_RATE_LIMIT", "2/60s")
        .arg("serve");
    let server = Server::start(command);
    assert_eq!(server.address.ip().to_string(), "127.0.0.1");
    assert_ne!(server.address.port(), 8080, "CLIENTELE_LISTEN used");
    assert!(tokens_in(&server.banner).is_empty(), "CLIENTELE_NO_BOOTSTRAP used: {:?}", server.banner);
    assert_eq!(sandbox.json(&["accounts", "list", "--json"]), json!([]), "CLIENTELE_DATABASE_URL used");

    sandbox.ok(&["accounts", "create", "acme"]);
    let token = sandbox.ok(&["tokens", "create", "--account", "acme"]).trim().to_owned();
    let client = client();
    let response = get(&client, &server, &token, "/v2/customers").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit"], "2", "CLIENTELE_DEFAULT_RATE_LIMIT used");

    let elsewhere = sandbox.other_database("elsewhere.db");
    let mut command = sandbox.command();
    command
        .env("CLIENTELE_DATABASE_URL", &elsewhere.url)
        .env("CLIENTELE_LISTEN", "127.0.0.1:1")
        .env("CLIENTELE_DEFAULT_RATE_LIMIT", "2/60s")
        .args(["serve", "--database-url", &sandbox.url, "--listen", "127.0.0.1:0", "--default-rate-limit", "3/60s"]);
    let second = Server::start(command);
    assert!(tokens_in(&second.banner).is_empty(), "the flag's database is not empty: {:?}", second.banner);
    let response = get(&client, &second, &token, "/v2/customers").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit"], "3", "--default-rate-limit wins over the environment");
    // A start on the environment's (empty) database would have bootstrapped an account there.
    let in_elsewhere = sandbox.json_at(&elsewhere.url, &["accounts", "list", "--json"]);
    assert_eq!(in_elsewhere, json!([]), "--database-url wins over the environment");
}

// ---- run-time errors ----

#[test]
fn runtime_errors_are_one_line_without_a_backtrace() {
    let sandbox = Sandbox::new();
    let missing = "sqlite:///nonexistent/dir/x.db";
    for args in [
        &["accounts", "list"][..],
        &["accounts", "create", "acme"],
        &["tokens", "list", "--json"],
        &["tokens", "create", "--account", "acme"],
        &["tokens", "revoke", "tok_x"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let output = sandbox.command().arg("--database-url").arg(missing).args(args).output().expect("run");
        assert_runtime_error(&output, &["database", "/nonexistent/dir"]);
    }
    for args in [&["accounts", "list"][..], &["serve", "--listen", "127.0.0.1:0"]] {
        let output = sandbox.command().args(["--database-url", "mysql://u:hunter2@db/x"]).args(args).output().unwrap();
        let line = assert_runtime_error(&output, &["unsupported", "mysql"]);
        assert!(!line.contains("hunter2"), "no password in messages: {line}");
    }
    // Nothing listens on port 1: an unreachable PostgreSQL server, on either pass.
    for args in [&["accounts", "list"][..], &["serve", "--listen", "127.0.0.1:0"]] {
        let unreachable = "postgres://postgres:hunter2@127.0.0.1:1/x";
        let output = sandbox.command().args(["--database-url", unreachable]).args(args).output().unwrap();
        let line = assert_runtime_error(&output, &["127.0.0.1:1"]);
        assert!(line.contains("PostgreSQL") && !line.contains("hunter2"), "{line}");
    }

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().unwrap().to_string();
    let output =
        sandbox.command().args(["--database-url", &sandbox.url, "serve", "--listen", &address]).output().expect("run");
    assert_runtime_error(&output, &[&address, "address", "listen"]);
    // A start that cannot listen printed no token (stdout is empty, above) and bootstrapped nothing,
    // so the next start on a free address still prints the token.
    assert_eq!(sandbox.json(&["accounts", "list", "--json"]), json!([]), "nothing bootstrapped");
}

// ---- bootstrap ----

#[tokio::test]
async fn first_start_prints_a_working_token_once() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&[]);
    let token = only_bootstrap_token(&server);
    let client = client();
    assert_eq!(get(&client, &server, &token, "/v2/customers").await.status(), 200);
    let created = post_customer(&client, &server, &token, 1).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    server.stop();

    let accounts = sandbox.json(&["accounts", "list", "--json"]);
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    assert_eq!(accounts[0]["name"], "default");
    let tokens = sandbox.json(&["tokens", "list", "--json"]);
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert_eq!(token_entry(&tokens, &token)["scope"], "write");
    assert!(!tokens.to_string().contains(&token));

    let again = sandbox.serve(&[]);
    assert!(tokens_in(&again.banner).is_empty(), "no token on the second start: {:?}", again.banner);
    let path = format!("/v1/customers/{}", created["id"].as_str().unwrap());
    assert_eq!(get(&client, &again, &token, &path).await.status(), 200, "same data, same token");
    assert_eq!(sandbox.json(&["tokens", "list", "--json"]).as_array().unwrap().len(), 1, "no new token");
    again.stop();
}

#[test]
fn no_bootstrap_leaves_the_database_empty() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&["--no-bootstrap"]);
    assert!(tokens_in(&server.banner).is_empty(), "{:?}", server.banner);
    assert_eq!(sandbox.json(&["accounts", "list", "--json"]), json!([]));
    assert_eq!(sandbox.json(&["tokens", "list", "--json"]), json!([]));
    server.stop();
}

// ---- the admin CLI beside a running server ----

#[tokio::test]
async fn tokens_issued_and_revoked_while_serving() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&[]);
    let client = client();
    sandbox.ok(&["accounts", "create", "acme"]);
    let read = sandbox.ok(&["tokens", "create", "--account", "acme"]).trim().to_owned();
    let write = sandbox.ok(&["tokens", "create", "--account", "acme", "--scope", "write"]).trim().to_owned();

    let response = get(&client, &server, &read, "/v2/customers").await;
    assert_eq!(response.status(), 200, "a token works at once");
    let denied = post_customer(&client, &server, &read, 1).await;
    assert_eq!(denied.status(), 403, "the default scope is read");
    assert_eq!(error_code(denied).await, "scope_insufficient");
    assert_eq!(post_customer(&client, &server, &write, 2).await.status(), 201);

    // The server records the first use in the background; the CLI sees it in the shared file.
    let used = Instant::now();
    let list = loop {
        let list = sandbox.json(&["tokens", "list", "--account", "acme", "--json"]);
        if token_entry(&list, &read)["last_used_at"].is_string() {
            break list;
        }
        assert!(used.elapsed() < Duration::from_secs(5), "last_used_at never set: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = token_entry(&list, &read)["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let revoked = sandbox.cli(&["tokens", "revoke", &id]);
    assert!(revoked.status.success(), "{}", describe(&revoked));
    loop {
        let response = get(&client, &server, &read, "/v2/customers").await;
        if response.status() == 401 {
            assert_eq!(error_code(response).await, "token_invalid");
            break;
        }
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(5), "revoked token still works after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "revocation took {:?}", started.elapsed());
    assert_eq!(get(&client, &server, &write, "/v2/customers").await.status(), 200, "other tokens unaffected");
    server.stop();
}

// ---- graceful shutdown ----

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_zero() {
    let sandbox = Sandbox::new();
    let mut server = sandbox.serve(&[]);
    let token = only_bootstrap_token(&server);
    let healthz = |address: SocketAddr| -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        Some(answer)
    };
    let before = healthz(server.address).expect("connect before the signal");
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");

    let body = br#"{"name": "Grace Hopper", "email": "grace@example.com"}"#;
    let (first, second) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(server.address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /v2/customers HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.address,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    thread::sleep(Duration::from_millis(300));

    server.sigterm();
    thread::sleep(Duration::from_millis(500));
    assert!(server.child.try_wait().unwrap().is_none(), "still running while a request is in flight");
    match healthz(server.address) {
        None => {}
        Some(answer) => assert!(!answer.starts_with("HTTP/"), "a new connection was served after SIGTERM: {answer}"),
    }

    stream.write_all(second).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the response");
    assert!(answer.starts_with("HTTP/1.1 201"), "the request in flight completes: {answer}");
    assert!(answer.contains("\"cus_"), "{answer}");

    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM; stderr: {}", server.logs());
}

#[test]
fn sigterm_as_soon_as_it_listens_still_drains_and_exits_zero() {
    let sandbox = Sandbox::new();
    // The signal handlers are installed before the listening line is printed:
    // a signal sent on seeing it drains the server instead of killing it.
    let mut server = sandbox.serve(&[]);
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status after an early SIGTERM; stderr: {}", server.logs());
    // The default, pretty log format writes no colour codes to a pipe.
    let logs = server.logs();
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escape codes in logs written to a pipe: {logs:?}");
}

// ---- consistency ----

/// The real server keeps a SQLite read transaction open across a busy worker's
/// point reads (`storage::sqlite::runtime`); under a load that keeps its
/// workers busy, every read still sees every write answered before it:
/// a create, a replace and a delete, each read back at once.
#[tokio::test]
async fn under_load_a_read_sees_every_write_answered_before_it() {
    let sandbox = Sandbox::new();
    let server = Arc::new(sandbox.serve(&["--default-rate-limit", "1000000/60s"]));
    let token = only_bootstrap_token(&server);
    let client = client();
    let created = post_customer(&client, &server, &token, 0).await;
    let busy_path = format!("/v2/customers/{}", created.json::<Value>().await.unwrap()["id"].as_str().unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, server, token, path, stop) =
            (client.clone(), server.clone(), token.clone(), busy_path.clone(), stop.clone());
        load.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(get(&client, &server, &token, &path).await.status(), 200);
            }
        });
    }
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..8 {
        let (client, server, token) = (client.clone(), server.clone(), token.clone());
        writers.spawn(async move {
            for i in 0..20 {
                let n = writer * 100 + i;
                let created: Value = post_customer(&client, &server, &token, n).await.json().await.unwrap();
                let path = format!("/v2/customers/{}", created["id"].as_str().unwrap());
                let read = get(&client, &server, &token, &path).await;
                assert_eq!(read.status(), 200, "create {n} read back");
                let replacement = json!({"name": format!("Renamed {n}"), "email": format!("renamed{n}@example.com")});
                let replaced = client.put(server.url(&path)).bearer_auth(&token).json(&replacement).send().await;
                let replaced: Value = replaced.unwrap().json().await.unwrap();
                let read: Value = get(&client, &server, &token, &path).await.json().await.unwrap();
                assert_eq!((&read["name"], &read["version"]), (&replaced["name"], &replaced["version"]), "{n}");
                let deleted = client.delete(server.url(&path)).bearer_auth(&token).send().await.unwrap();
                assert_eq!(deleted.status(), 204);
                assert_eq!(get(&client, &server, &token, &path).await.status(), 404, "delete {n} read back");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.expect("reader");
    }
}

// ---- durability ----

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&["--default-rate-limit", "10000/60s"]);
    let token = only_bootstrap_token(&server);
    if sandbox.database.is_sqlite() {
        // SQLite only: the write-ahead log the durability below rests on (PostgreSQL keeps its own).
        let wal = sandbox.dir.path().join("clientele.db-wal");
        assert!(wal.exists(), "SQLite runs in WAL mode: no {}", wal.display());
    }

    let client = client();
    let mut workers = tokio::task::JoinSet::new();
    let server = Arc::new(server);
    for worker in 0..8 {
        let (client, server, token) = (client.clone(), server.clone(), token.clone());
        workers.spawn(async move {
            let mut created = Vec::new();
            for i in 0..25 {
                let n = worker * 25 + i;
                let response = post_customer(&client, &server, &token, n).await;
                assert_eq!(response.status(), 201, "create {n}");
                let body: Value = response.json().await.unwrap();
                created.push((body["id"].as_str().unwrap().to_owned(), n));
            }
            created
        });
    }
    let mut created = Vec::new();
    while let Some(batch) = workers.join_next().await {
        created.extend(batch.expect("worker"));
    }
    assert_eq!(created.len(), 200);
    let mut server = Arc::into_inner(server).expect("workers done");
    server.child.kill().expect("kill -9");
    let status = server.child.wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status}");
    drop(server);

    let server = Arc::new(sandbox.serve(&["--default-rate-limit", "10000/60s"]));
    assert!(tokens_in(&server.banner).is_empty(), "the database is not empty: {:?}", server.banner);
    let mut readers = tokio::task::JoinSet::new();
    for chunk in created.chunks(25) {
        let (client, server, token, chunk) = (client.clone(), server.clone(), token.clone(), chunk.to_vec());
        readers.spawn(async move {
            for (id, n) in chunk {
                let response = get(&client, &server, &token, &format!("/v2/customers/{id}")).await;
                assert_eq!(response.status(), 200, "customer {n} ({id}) lost");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["email"], format!("customer{n}@example.com"));
            }
        });
    }
    while let Some(done) = readers.join_next().await {
        done.expect("reader");
    }
    let page: Value = get(&client, &server, &token, "/v1/customers?limit=1").await.json().await.unwrap();
    assert_eq!(page["total"], 200, "no more, no fewer");
}

/// `serve --sqlite-synchronous full|normal` (API.md §7), also `CLIENTELE_SQLITE_SYNCHRONOUS`;
/// that each value reaches SQLite's `PRAGMA synchronous` is checked in `storage::sqlite`'s unit tests.
#[tokio::test]
async fn sqlite_synchronous_takes_full_or_normal_by_flag_or_environment_and_nothing_else() {
    let sandbox = Sandbox::sqlite();
    // A file of its own that does not exist yet: a usage error must not create it.
    let fresh = sandbox.dir.path().join("fresh.db");
    let url = format!("sqlite://{}", fresh.display());
    let serve = |args: &[&str]| {
        let mut command = sandbox.command();
        command.arg("--database-url").arg(&url).args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        command
    };
    for bad in ["off", "FULLY", "extra", ""] {
        let output = serve(&["--sqlite-synchronous", bad]).output().unwrap();
        assert_usage_error(&output);
        assert!(stderr(&output).contains("--sqlite-synchronous"), "{}", describe(&output));
    }
    let output = serve(&[]).env("CLIENTELE_SQLITE_SYNCHRONOUS", "sometimes").output().unwrap();
    assert_usage_error(&output);
    assert!(stderr(&output).contains("sometimes"), "{}", describe(&output));
    assert!(!fresh.exists(), "a usage error opens no database");

    let client = client();
    let mut token = None;
    for (n, (flag, environment)) in
        [(None, None), (Some("full"), None), (Some("normal"), None), (None, Some("normal")), (None, Some("full"))]
            .into_iter()
            .enumerate()
    {
        let mut command = serve(&flag.map_or(vec![], |value| vec!["--sqlite-synchronous", value]));
        if let Some(value) = environment {
            command.env("CLIENTELE_SQLITE_SYNCHRONOUS", value);
        }
        let server = Server::start(command);
        let secret = token.get_or_insert_with(|| only_bootstrap_token(&server)).clone();
        let created = post_customer(&client, &server, &secret, n).await;
        assert_eq!(created.status(), 201, "{flag:?} {environment:?}");
        server.stop();
    }
}
