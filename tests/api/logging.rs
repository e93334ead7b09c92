//! The request log of the real `clientele serve` (API.md §1, §7): with
//! `--log-format json`, one line per request, after the response, carrying the
//! request id of `X-Request-Id`, the route template, method, status, latency
//! and, when authenticated, the account; never a token or a body. Lines are
//! written by a thread of their own: a stuck stderr drops (and counts) lines,
//! it never holds up a request; SIGTERM writes out what is queued.

use serde_json::{Value, json};

use crate::support::client;
use crate::support::process::{Sandbox, Server};

const REQUEST_LOG_TARGET: &str = "clientele::request";

/// `clientele serve --log-format json` on a fresh SQLite file, with `CLIENTELE_LOG` set to `log_filter` if given.
fn start(sandbox: &Sandbox, log_filter: Option<&str>) -> Server {
    let mut command = sandbox.serve_command(&["--log-format", "json"]);
    if let Some(filter) = log_filter {
        command.env("CLIENTELE_LOG", filter);
    }
    Server::start(command)
}

/// The id of the account `default`, from the admin CLI.
fn default_account_id(sandbox: &Sandbox) -> String {
    let accounts = sandbox.json(&["accounts", "list", "--json"]);
    let default = accounts.as_array().unwrap().iter().find(|account| account["name"] == "default");
    default.expect("the bootstrap account")["id"].as_str().unwrap().to_owned()
}

/// What one request should have logged.
struct Expected {
    request_id: String,
    route: &'static str,
    method: &'static str,
    status: u16,
    authenticated: bool,
}

fn expect(response: &reqwest::Response, route: &'static str, method: &'static str, authenticated: bool) -> Expected {
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    Expected { request_id, route, method, status: response.status().as_u16(), authenticated }
}

/// Every stderr line, each of which must be a JSON object.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect()
}

fn request_lines(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|line| line["target"] == REQUEST_LOG_TARGET).collect()
}

#[tokio::test]
async fn each_request_is_logged_once_as_json_with_its_id_and_without_secrets() {
    let sandbox = Sandbox::sqlite();
    let server = start(&sandbox, None);
    let client = client();
    let token = server.bootstrap_token().unwrap_or_default();
    assert!(token.starts_with("clt_"), "the bootstrap token was printed");
    let wrong_token = format!("clt_{}", "Q".repeat(32));
    let body = json!({
        "name": "Zebulon Quixote",
        "email": "zebulon.private@example.com",
        "metadata": {"note": "body-secret-7731"}
    });
    let mut expected = Vec::new();

    let health = client.get(server.url("/healthz")).header("x-request-id", "log-check.1").send().await.unwrap();
    assert_eq!(health.headers()["x-request-id"], "log-check.1", "a client's request id is echoed");
    expected.push(expect(&health, "/healthz", "GET", false));

    let created = client.post(server.url("/v2/customers")).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(created.status(), 201);
    expected.push(expect(&created, "/v2/customers", "POST", true));
    let customer: Value = created.json().await.unwrap();
    let customer_id = customer["id"].as_str().unwrap().to_owned();

    let read =
        client.get(server.url(&format!("/v2/customers/{customer_id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status(), 200);
    expected.push(expect(&read, "/v2/customers/{id}", "GET", true));

    let refused = client.get(server.url("/v2/customers")).bearer_auth(&wrong_token).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    expected.push(expect(&refused, "/v2/customers", "GET", false));

    let nowhere = client.delete(server.url("/nowhere/cus_raw_path")).send().await.unwrap();
    assert_eq!(nowhere.status(), 404);
    expected.push(expect(&nowhere, "unmatched", "DELETE", false));

    let account_id = default_account_id(&sandbox);
    let stderr = server.stop();
    let lines = json_lines(&stderr);
    let logged = request_lines(&lines);
    assert_eq!(logged.len(), expected.len(), "one line per request:\n{stderr}");
    for request in &expected {
        let matching: Vec<&&Value> =
            logged.iter().filter(|line| line["fields"]["request_id"] == request.request_id.as_str()).collect();
        assert_eq!(matching.len(), 1, "one line for {}:\n{stderr}", request.request_id);
        let fields = &matching[0]["fields"];
        assert_eq!(matching[0]["level"], "INFO", "{fields}");
        assert_eq!(fields["route"], request.route, "{fields}");
        assert_eq!(fields["method"], request.method, "{fields}");
        assert_eq!(fields["status"], request.status, "{fields}");
        let latency = fields["latency_ms"].as_f64().unwrap_or_else(|| panic!("latency_ms is a number: {fields}"));
        assert!((0.0..10_000.0).contains(&latency), "{fields}");
        if request.authenticated {
            assert_eq!(fields["account_id"], account_id.as_str(), "{fields}");
        } else {
            assert!(fields.get("account_id").is_none(), "no account on an unauthenticated request: {fields}");
        }
    }

    for secret in [token.as_str(), wrong_token.as_str(), "Zebulon", "zebulon.private", "body-secret-7731"] {
        assert!(!stderr.contains(secret), "{secret:?} is in the logs:\n{stderr}");
    }
    for never in [customer_id.as_str(), "cus_raw_path", "Bearer", "authorization", "Authorization"] {
        assert!(!stderr.contains(never), "{never:?} is in the logs:\n{stderr}");
    }
}

#[tokio::test]
async fn the_request_log_can_be_turned_off_by_its_target() {
    let sandbox = Sandbox::sqlite();
    let server = start(&sandbox, Some("info,clientele::request=off"));
    let response = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let stderr = server.stop();
    let lines = json_lines(&stderr);
    assert!(request_lines(&lines).is_empty(), "no request line:\n{stderr}");
    assert!(lines.iter().any(|line| line["fields"]["message"] == "serving"), "other logs still appear:\n{stderr}");
}

/// The samples of `name` in a Prometheus exposition, as (line, value).
fn samples<'a>(exposition: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    exposition
        .lines()
        .filter(|line| line.split([' ', '{']).next() == Some(name))
        .map(|line| (line, line.rsplit(' ').next().unwrap().parse().unwrap()))
        .collect()
}

const DROPPED: &str = "clientele_log_lines_dropped_total";

#[tokio::test]
async fn dropped_log_lines_are_exported_none_drop_under_light_load_and_sigterm_writes_the_last_lines() {
    let sandbox = Sandbox::sqlite();
    let server = start(&sandbox, None);
    let client = client();
    for index in 0..50 {
        let response =
            client.get(server.url("/healthz")).header("x-request-id", format!("light.{index}")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("# TYPE {DROPPED} counter")), "{metrics}");
    assert_eq!(samples(&metrics, DROPPED).iter().map(|(_, value)| *value).collect::<Vec<_>>(), [0.0], "{metrics}");
    // The last request before SIGTERM, and the lines logged while shutting down, are written before exit.
    let last = client.get(server.url("/healthz")).header("x-request-id", "last.before.sigterm").send().await.unwrap();
    assert_eq!(last.status(), 200);
    let stderr = server.stop();
    let lines = json_lines(&stderr);
    assert_eq!(request_lines(&lines).len(), 52, "every request logged:\n{stderr}");
    assert!(request_lines(&lines).iter().any(|line| line["fields"]["request_id"] == "last.before.sigterm"), "{stderr}");
    let final_line = lines.last().expect("some lines");
    assert_eq!(final_line["fields"]["message"], "stopped after finishing the requests in flight", "{stderr}");
}

/// Kills the process when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn requests_never_wait_on_a_stuck_stderr_lines_are_dropped_and_counted_instead() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    use futures_util::StreamExt;

    use crate::support::process::{LISTENING, blocking};

    let sandbox = Sandbox::sqlite();
    let mut command = sandbox.serve_command(&["--log-format", "json", "--no-bootstrap"]);
    // stderr is a pipe nobody reads: once its 64 KiB are full, every write to it blocks.
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Killed(command.spawn().expect("spawn clientele serve"));
    let _stuck_stderr = child.0.stderr.take().expect("stderr is piped");
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let address = blocking(move || {
        let lines = BufReader::new(stdout).lines().map_while(Result::ok);
        lines.filter_map(|line| line.strip_prefix(LISTENING).map(str::to_owned)).next().expect("a listening line")
    });
    let url = |path: &str| format!("http://{address}{path}");

    // More lines than the queue (16,384), the write buffer and the pipe hold together.
    let client = client();
    let requests = futures_util::stream::iter(0..24_000)
        .map(|_| {
            let request = client.get(url("/healthz")).send();
            async move { request.await.map(|response| response.status().as_u16()) }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let statuses = tokio::time::timeout(std::time::Duration::from_secs(120), requests)
        .await
        .expect("every request was answered although stderr is stuck");
    assert!(statuses.iter().all(|status| matches!(status, Ok(200))), "every request succeeded");

    let metrics = client.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    let dropped = samples(&metrics, DROPPED);
    assert_eq!(dropped.len(), 1, "{metrics}");
    // At least the lines beyond the queue, the 64 KiB buffer and the 64 KiB pipe (about 250 bytes a line).
    assert!((2_000.0..=24_000.0).contains(&dropped[0].1), "{}", dropped[0].0);
}
