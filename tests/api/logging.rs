//! The request log of the real `clientele serve` (API.md §1, §7): with
//! `--log-format json`, one line per request, after the response, carrying the
//! request id of `X-Request-Id`, the route template, method, status, latency
//! and, when authenticated, the account; never a token or a body.

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
