//! No password is printed in any form (issue 18): the real `clientele`
//! binary, given database and Redis URLs that carry a password in every form
//! the drivers accept, never shows it on stdout or stderr (errors, logs,
//! help), nor in `/readyz`.
//!
//! The PostgreSQL `serve` case is a `needs_postgres` test
//! (`CLIENTELE_TEST_DATABASE_URL`); the others need no service (a refused port
//! or a missing database is the point).

use std::process::Output;

use crate::support::database::TestDatabase;
use crate::support::process::{Sandbox, Server, blocking, command, serve_command};
use crate::support::{DATABASE_URL_VAR, client, service_url};

/// The secret, and its forms on the command line: raw and percent-encoded.
const PASSWORD: &str = "Sw0rdf1sh7c1";
const ENCODED: &str = "Sw0rd%66%31sh7c1";

fn assert_hidden(what: &str, texts: &[&str]) {
    for text in texts {
        for secret in [PASSWORD, ENCODED, "Sw0rd"] {
            assert!(!text.contains(secret), "{what}: the password ({secret}) was printed:\n{text}");
        }
    }
}

fn run(args: &[&str], env: Option<(&str, &str)>) -> Output {
    let mut command = command();
    if let Some((name, value)) = env {
        command.env(name, value);
    }
    blocking(|| command.args(args).output()).expect("run clientele")
}

/// Database URLs with a password, in each form; none of them opens a store.
fn database_urls() -> Vec<String> {
    vec![
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/clientele_no_such_database"),
        format!("postgres://postgres:{ENCODED}@127.0.0.1:1/clientele"),
        format!("postgresql://postgres@127.0.0.1:5432/clientele_no_such_database?password={PASSWORD}"),
        format!("postgres://postgres@127.0.0.1:1/clientele?sslmode=disable&password={ENCODED}&application_name=x"),
        format!("postgres://postgres@127.0.0.1:1/clientele?pass%77ord={PASSWORD}"),
        format!("host=127.0.0.1 port=5432 user=postgres password={PASSWORD} dbname=clientele"),
        format!("host=127.0.0.1 password = '{PASSWORD} and more' dbname=clientele"),
        format!("mysql://root:{PASSWORD}@127.0.0.1/clientele"),
    ]
}

#[test]
fn admin_commands_never_print_a_database_password() {
    for url in database_urls() {
        for args in [vec!["tokens", "list"], vec!["accounts", "list", "--json"], vec!["accounts", "create", "x"]] {
            let by_flag: Vec<&str> = ["--database-url", url.as_str()].into_iter().chain(args.iter().copied()).collect();
            let outputs = [run(&by_flag, None), run(&args, Some(("CLIENTELE_DATABASE_URL", &url)))];
            for output in outputs {
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                let what = format!("clientele {args:?} on {url}");
                assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
                assert!(stderr.starts_with("error: ") && stderr.lines().count() == 1, "{what}: one line: {stderr}");
                assert!(stderr.contains("***"), "{what}: the message still says where: {stderr}");
                assert_hidden(&what, &[&stdout, &stderr]);
            }
        }
    }
}

#[test]
fn help_never_shows_the_urls_from_the_environment() {
    let url = format!("postgres://postgres:{PASSWORD}@db/clientele");
    let redis = format!("redis://:{PASSWORD}@cache:6379");
    for args in [vec!["--help"], vec!["serve", "--help"], vec!["tokens", "list", "--help"]] {
        let mut command = command();
        command.env("CLIENTELE_DATABASE_URL", &url).env("CLIENTELE_REDIS_URL", &redis);
        let output = blocking(|| command.args(&args).output()).unwrap();
        assert!(output.status.success(), "{args:?}");
        assert_hidden(&format!("{args:?}"), &[&String::from_utf8_lossy(&output.stdout)]);
    }
}

/// `serve` with a Redis that is down: its logs, its banner and `/readyz` (which says Redis is down).
async fn serve_and_look(database_url: &str, redis_url: &str, what: &str) {
    let server = Server::start(serve_command(database_url, &["--redis-url", redis_url]));
    let response = client().get(server.url("/readyz")).send().await.expect("/readyz");
    assert_eq!(response.status(), 503, "{what}: Redis is down");
    let body = response.text().await.unwrap();
    let logs = server.logs();
    assert!(logs.contains("serving"), "{what}: the start was logged: {logs}");
    let banner = server.banner.join("\n");
    assert_hidden(what, &[&body, &logs, &banner]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_never_logs_a_redis_password() {
    let sandbox = Sandbox::sqlite();
    for redis_url in [format!("redis://:{PASSWORD}@127.0.0.1:1/0"), format!("redis://default:{ENCODED}@127.0.0.1:1")] {
        serve_and_look(&sandbox.url, &redis_url, &redis_url).await;
    }
    // A Redis URL that does not parse is refused in one line, masked.
    let output = run(
        &[
            "--database-url",
            &sandbox.url,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            &format!("redis://:{PASSWORD}@[bad"),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid Redis URL"), "{stderr}");
    assert_hidden("an invalid Redis URL", &[&stderr, &String::from_utf8_lossy(&output.stdout)]);
}

/// Needs PostgreSQL: skipped by the default nextest profile.
mod needs_postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serve_never_logs_a_postgres_password() {
        service_url(DATABASE_URL_VAR);
        let database = TestDatabase::postgres().await;
        // The test server trusts local connections, so a password is accepted and ignored.
        let (base, query) = database.url.split_once('?').map_or((database.url.as_str(), ""), |(b, q)| (b, q));
        let with_query = format!("{base}?{query}{}password={PASSWORD}", if query.is_empty() { "" } else { "&" });
        let with_userinfo = database.url.replacen("://postgres@", &format!("://postgres:{ENCODED}@"), 1);
        assert_ne!(with_userinfo, database.url, "the test URL names the user postgres");
        for url in [with_query, with_userinfo] {
            serve_and_look(&url, &format!("redis://:{PASSWORD}@127.0.0.1:1"), &url).await;
        }
    }
}
