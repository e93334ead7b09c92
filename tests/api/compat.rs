//! The compatibility promise of issue 13, over real HTTP: the IETF `RateLimit`
//! headers (API.md §5), `GET /v2/token` (§2), documents tailored to a token and
//! `clientele openapi` (§6), and the deprecation headers and documents (§6).

use clientele::config::ServerConfig;
use clientele::domain::Scope;
use clientele::lifecycle::{Deprecation, VersionDate};
use clientele::ratelimit::RateLimit;
use reqwest::Method;
use serde_json::Value;

use crate::support::process;
use crate::support::{TestApp, assert_error, body, header, keys};

/// The IETF headers must carry the same numbers as the `X-RateLimit-*` ones.
fn assert_ietf_headers(response: &reqwest::Response, window_secs: u32) -> (u64, u64, u64) {
    let number = |name| header(response, name).unwrap_or_else(|| panic!("{name}")).parse::<u64>().unwrap();
    let (limit, remaining, reset) =
        (number("x-ratelimit-limit"), number("x-ratelimit-remaining"), number("x-ratelimit-reset"));
    assert_eq!(header(response, "ratelimit-policy"), Some(format!("\"default\";q={limit};w={window_secs}").as_str()));
    assert_eq!(header(response, "ratelimit"), Some(format!("\"default\";r={remaining};t={reset}").as_str()));
    (limit, remaining, reset)
}

fn limited(limit: u32) -> ServerConfig {
    ServerConfig { default_rate_limit: RateLimit { limit, window_secs: 3600 }, ..ServerConfig::default() }
}

#[tokio::test]
async fn ietf_rate_limit_headers_on_every_authenticated_response() {
    let app = TestApp::spawn_with_config(limited(4)).await;
    let ok = app.get("/v2/customers").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(assert_ietf_headers(&ok, 3600).1, 3);
    let missing = app.get("/v1/customers/cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").await;
    assert_eq!(assert_ietf_headers(&missing, 3600).1, 2);
    assert_error(missing, 404, "resource_not_found").await;
    let reader = app.issue_token("default", Scope::Read, Some(RateLimit { limit: 5, window_secs: 60 })).await;
    let forbidden =
        app.request_as(&reader, Method::DELETE, "/v2/customers/cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").send().await.unwrap();
    assert_eq!(assert_ietf_headers(&forbidden, 60), (5, 4, assert_ietf_headers(&forbidden, 60).2));
    assert_error(forbidden, 403, "scope_insufficient").await;
    app.get("/v2/customers").await;
    app.get("/v2/customers").await;
    let over = app.get("/v2/customers").await;
    assert_eq!(assert_ietf_headers(&over, 3600).1, 0);
    assert!(header(&over, "retry-after").is_some());
    assert_error(over, 429, "rate_limited").await;
    // No token, no limit to report.
    let anonymous = app.client.get(app.url("/v2/customers")).send().await.unwrap();
    assert!(header(&anonymous, "ratelimit").is_none() && header(&anonymous, "ratelimit-policy").is_none());
}

#[tokio::test]
async fn get_token_describes_the_caller_and_counts_toward_no_limit() {
    let app = TestApp::spawn_with_config(limited(10)).await;
    let reader = app.issue_token("acme", Scope::Read, Some(RateLimit { limit: 7, window_secs: 120 })).await;
    app.request_as(&reader, Method::GET, "/v2/customers").send().await.unwrap();
    let tokens = app.store.list_tokens(None).await.unwrap();
    let record = tokens.iter().find(|token| token.account_name == "acme").unwrap();
    for _ in 0..3 {
        let response = app.request_as(&reader, Method::GET, "/v2/token").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(assert_ietf_headers(&response, 120), (7, 6, assert_ietf_headers(&response, 120).2));
        let token = body(response).await;
        assert_eq!(keys(&token), ["account", "created_at", "expires_at", "id", "name", "rate_limit", "scope"]);
        assert_eq!(token["id"], record.id.as_str());
        assert_eq!(token["account"], "acme");
        assert_eq!(token["scope"], "read");
        assert_eq!((&token["name"], &token["expires_at"]), (&Value::Null, &Value::Null), "not stored yet (issue 14)");
        assert_eq!(token["created_at"], clientele::domain::time::rfc3339(record.created_at).as_str());
        let limit = &token["rate_limit"];
        assert_eq!(
            (&limit["limit"], &limit["window_seconds"], &limit["remaining"]),
            (&7.into(), &120.into(), &6.into())
        );
        assert!((1..=120).contains(&limit["reset"].as_u64().unwrap()), "{limit}");
    }
    // A counted request still counts: the token stands one lower afterwards.
    app.request_as(&reader, Method::GET, "/v2/customers").send().await.unwrap();
    let after = body(app.request_as(&reader, Method::GET, "/v2/token").send().await.unwrap()).await;
    assert_eq!(after["rate_limit"]["remaining"], 5);
    // The default token's limit is the server's default.
    let default = body(app.get("/v2/token").await).await;
    assert_eq!((&default["scope"], &default["account"]), (&"write".into(), &"default".into()));
    assert_eq!(default["rate_limit"]["window_seconds"], 3600);
    // Only v2 has it.
    assert_error(app.get("/v1/token").await, 404, "route_not_found").await;
}

#[tokio::test]
async fn get_token_needs_a_valid_token_and_failures_count_toward_the_failed_auth_limit() {
    let config =
        ServerConfig { auth_failure_limit: RateLimit { limit: 2, window_secs: 3600 }, ..ServerConfig::default() };
    let app = TestApp::spawn_with_config(config).await;
    let missing = app.client.get(app.url("/v2/token")).send().await.unwrap();
    assert_error(missing, 401, "token_missing").await;
    let wrong = app.request_as("clt_00000000000000000000000000000000", Method::GET, "/v2/token").send().await.unwrap();
    assert_eq!(header(&wrong, "www-authenticate").map(|v| v.starts_with("Bearer")), Some(true));
    assert_error(wrong, 401, "token_invalid").await;
    let blocked =
        app.request_as("clt_00000000000000000000000000000001", Method::GET, "/v2/token").send().await.unwrap();
    assert_error(blocked, 429, "rate_limited").await;
}

async fn document(app: &TestApp, version: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(&format!("/{version}/openapi.json")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The operations of the v2 document a read token is shown (API.md §6, tailored documents), as
/// [`methods`] lists them.
const V2_READ_OPERATIONS: [&str; 7] = [
    "get /v2/customers",
    "get /v2/customers/{id}",
    "get /v2/events",
    "get /v2/events/{id}",
    "get /v2/token",
    "get /v2/webhook_endpoints",
    "get /v2/webhook_endpoints/{id}",
];

fn methods(doc: &Value) -> Vec<String> {
    let mut found: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| format!("{method} {path}")))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn documents_are_tailored_to_the_token_that_asks() {
    let config = ServerConfig { public_url: Some("https://api.example.com".into()), ..limited(50) };
    let app = TestApp::spawn_with_config(config).await;
    let reader = app.issue_token("acme", Scope::Read, Some(RateLimit { limit: 30, window_secs: 60 })).await;
    let reader_id =
        app.store.list_tokens(None).await.unwrap().into_iter().find(|t| t.account_name == "acme").unwrap().id;

    // Without a token: the full document, byte for byte the committed one, with no server.
    for version in ["v1", "v2"] {
        let full = document(&app, version, None).await.text().await.unwrap();
        let committed =
            std::fs::read_to_string(format!("{}/openapi/{version}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(full == committed, "{version}: the untailored document is the committed one");
        assert!(serde_json::from_str::<Value>(&full).unwrap().get("servers").is_none());
    }

    // Tailored or not, the answer depends on Authorization, and says so to caches.
    for token in [None, Some(reader.as_str())] {
        let response = document(&app, "v2", token).await;
        let vary: Vec<_> = response.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert!(vary.iter().any(|v| v.eq_ignore_ascii_case("authorization")), "{token:?}: Vary {vary:?}");
    }

    let read_v2 = document(&app, "v2", Some(&reader)).await;
    assert_eq!(read_v2.status(), 200);
    let read_v2 = body(read_v2).await;
    assert_eq!(methods(&read_v2), V2_READ_OPERATIONS);
    assert_eq!(read_v2["servers"], serde_json::json!([{"url": "https://api.example.com"}]));
    let description = read_v2["info"]["description"].as_str().unwrap();
    assert!(description.contains(&format!("tailored to the token `{reader_id}`")), "{description}");
    assert!(description.contains("Its rate limit is 30 requests per window of 60 seconds."), "{description}");
    assert!(description.contains("Its scope is `read`"), "{description}");
    assert!(read_v2["components"]["responses"].get("Forbidden").is_none(), "no operation of a read token answers 403");
    let read_v1 = body(document(&app, "v1", Some(&reader)).await).await;
    assert_eq!(methods(&read_v1), ["get /v1/customers", "get /v1/customers/{id}"]);

    let write_v2 = body(document(&app, "v2", Some(&app.token)).await).await;
    assert_eq!(methods(&write_v2).len(), 12, "{:?}", methods(&write_v2));
    assert!(write_v2["info"]["description"].as_str().unwrap().contains("50 requests per window of 3600 seconds"));

    // Asking for a document counts toward no limit.
    let standing = app.request_as(&reader, Method::GET, "/v2/token").send().await.unwrap();
    assert_eq!(body(standing).await["rate_limit"]["remaining"], 30);

    // An invalid token is refused as anywhere else.
    for version in ["v1", "v2"] {
        let refused = document(&app, version, Some("clt_00000000000000000000000000000000")).await;
        assert_error(refused, 401, "token_invalid").await;
    }
}

fn deprecated_v1() -> ServerConfig {
    let deprecate: VersionDate = "v1=2027-06-30".parse().unwrap();
    let sunset: VersionDate = "v1=2027-12-31".parse().unwrap();
    ServerConfig { deprecations: Deprecation::combine(&[deprecate], &[sunset]).unwrap(), ..ServerConfig::default() }
}

#[tokio::test]
async fn a_deprecated_version_says_so_on_every_response_and_in_its_document() {
    let app = TestApp::spawn_with_config(deprecated_v1()).await;
    let created = app.create_customer("Ada", "ada@example.com").await;
    let id = created["id"].as_str().unwrap();
    let v1_responses = [
        app.get("/v1/customers").await,
        app.get(&format!("/v1/customers/{id}")).await,
        app.get("/v1/customers/cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").await,
        app.get("/v1/no-such-route").await,
        app.client.get(app.url("/v1/customers")).send().await.unwrap(),
        document(&app, "v1", None).await,
        // Refused by the edge before authentication (two request ids): an error of v1 too.
        app.client
            .get(app.url("/v1/customers"))
            .bearer_auth(&app.token)
            .header("x-request-id", "one")
            .header("x-request-id", "two")
            .send()
            .await
            .unwrap(),
    ];
    assert_eq!(v1_responses.last().unwrap().status(), 400, "two request ids are refused");
    for response in &v1_responses {
        let what = format!("{} {}", response.url().path(), response.status());
        assert_eq!(header(response, "deprecation"), Some("@1814313600"), "{what}");
        assert_eq!(header(response, "sunset"), Some("Fri, 31 Dec 2027 00:00:00 GMT"), "{what}");
        assert_eq!(header(response, "link"), Some("</docs>; rel=\"deprecation\""), "{what}");
    }
    for response in [app.get("/v2/customers").await, document(&app, "v2", None).await] {
        assert!(header(&response, "deprecation").is_none() && header(&response, "sunset").is_none());
    }

    let v1 = body(document(&app, "v1", None).await).await;
    let operations: Vec<&Value> =
        v1["paths"].as_object().unwrap().values().flat_map(|item| item.as_object().unwrap().values()).collect();
    assert_eq!(operations.len(), 5);
    assert!(operations.iter().all(|operation| operation["deprecated"] == true), "every v1 operation is deprecated");
    assert!(v1["info"]["description"].as_str().unwrap().contains("## Deprecated"));
    let v2 = body(document(&app, "v2", None).await).await;
    assert!(!v2.to_string().contains("\"deprecated\""), "v2 is not deprecated");
}

#[tokio::test]
async fn a_deprecated_version_keeps_its_own_link_headers() {
    let deprecate: VersionDate = "v2=2027-06-30".parse().unwrap();
    let config =
        ServerConfig { deprecations: Deprecation::combine(&[deprecate], &[]).unwrap(), ..ServerConfig::default() };
    let app = TestApp::spawn_with_config(config).await;
    app.create_customer("Ada", "ada@example.com").await;
    app.create_customer("Grace", "grace@example.com").await;
    let page = app.get("/v2/customers?limit=1").await;
    let links: Vec<&str> = page.headers().get_all("link").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links[0].ends_with("rel=\"next\"") && links[1] == "</docs>; rel=\"deprecation\"", "{links:?}");
    assert!(header(&page, "sunset").is_none(), "no sunset announced");
}

#[tokio::test(flavor = "multi_thread")]
async fn clientele_openapi_prints_the_documents_for_the_operator() {
    let app = TestApp::spawn().await;
    let reader = app.issue_token("acme", Scope::Read, Some(RateLimit { limit: 9, window_secs: 60 })).await;
    drop(reader);
    let token_id =
        app.store.list_tokens(None).await.unwrap().into_iter().find(|t| t.account_name == "acme").unwrap().id;
    let url = app.database_url.clone();
    let (full, tailored, scoped) = process::blocking(move || {
        let full = process::command().args(["openapi", "--version", "v2"]).output().unwrap();
        let tailored = process::command()
            .args(["--database-url", &url, "openapi", "--version", "v2", "--token-id", token_id.as_str()])
            .args(["--public-url", "https://api.example.com/"])
            .output()
            .unwrap();
        let scoped = process::command().args(["openapi", "--version", "v1", "--scope", "read"]).output().unwrap();
        (full, tailored, scoped)
    });
    assert!(full.status.success());
    let committed = std::fs::read_to_string(format!("{}/openapi/v2.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(String::from_utf8(full.stdout).unwrap() == committed, "the untailored document is the committed one");
    assert!(tailored.status.success(), "{}", String::from_utf8_lossy(&tailored.stderr));
    let tailored: Value = serde_json::from_slice(&tailored.stdout).unwrap();
    assert_eq!(methods(&tailored), V2_READ_OPERATIONS);
    assert_eq!(tailored["servers"], serde_json::json!([{"url": "https://api.example.com"}]));
    assert!(
        tailored["info"]["description"]
            .as_str()
            .unwrap()
            .contains("Its rate limit is 9 requests per window of 60 seconds.")
    );
    let scoped: Value = serde_json::from_slice(&scoped.stdout).unwrap();
    assert_eq!(methods(&scoped), ["get /v1/customers", "get /v1/customers/{id}"]);

    let url = app.database_url.clone();
    let unknown = process::blocking(move || {
        process::command()
            .args(["--database-url", &url, "openapi", "--version", "v2", "--token-id", "tok_nope"])
            .output()
            .unwrap()
    });
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&unknown.stderr).trim(), "error: no token with id tok_nope");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_sunset_without_a_deprecation() {
    let output = process::blocking(|| {
        process::command()
            .args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap", "--sunset", "v1=2027-12-31"])
            .args(["--database-url", "sqlite:///nonexistent-dir-for-clientele-tests/x.db"])
            .output()
            .unwrap()
    });
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--sunset v1=... needs --deprecate v1=... too"), "{stderr}");
    let bad =
        process::blocking(|| process::command().args(["serve", "--deprecate", "v3=2027-06-30"]).output().unwrap());
    assert_eq!(bad.status.code(), Some(2), "a mistyped value is a usage error");
}
