//! Every error path answers the one JSON envelope of API.md §4, and every response carries `X-Request-Id` (§1).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::{TestApp, assert_error, header};
use axum::Router;
use axum::routing::get;
use reqwest::{Method, Response};
use serde_json::{Value, json};

const VALID_BODY: &str = r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#;

fn request_id(response: &Response) -> String {
    header(response, "x-request-id").expect("every response carries X-Request-Id").to_owned()
}

/// A generated request id: `req_` + random, itself a valid request id.
fn assert_generated_id(id: &str) {
    assert!(id.starts_with("req_") && id.len() > 4, "generated id: {id:?}");
    assert!(id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{id:?}");
}

/// §4: messages are for humans and never show internals.
fn assert_no_internals(error: &Value) {
    let message = error["message"].as_str().expect("message is a string");
    let lower = message.to_ascii_lowercase();
    for leak in ["sql", "panicked", "panic", "src/", ".rs", "backtrace", "rusqlite", "thread '", "unwrap"] {
        assert!(!lower.contains(leak), "message leaks {leak:?}: {message:?}");
    }
}

/// `assert_error`, plus: no internals, and `param` only where expected.
async fn assert_envelope(response: Response, status: u16, code: &str, param: Option<&str>) -> Value {
    let error = assert_error(response, status, code).await;
    assert_no_internals(&error);
    match param {
        Some(param) => assert_eq!(error["param"], param, "param for {code}: {error}"),
        None => assert!(error.get("param").is_none(), "no param expected for {code}: {error}"),
    }
    let keys: BTreeSet<&str> = error.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected: BTreeSet<&str> = ["type", "code", "message", "request_id"].into();
    if param.is_some() {
        expected.insert("param");
    }
    assert_eq!(keys, expected, "envelope fields for {code}");
    error
}

async fn post_raw(app: &TestApp, path: &str, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Response {
    let mut request = app.request(Method::POST, path).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.expect("request")
}

// ---- 400 body_invalid_json ----

#[tokio::test]
async fn malformed_or_non_object_json_is_body_invalid_json() {
    let app = TestApp::spawn().await;
    let bodies: &[&str] = &[
        r#"{"name": "Ada", "email": "#,
        r#"{"name": "Ada",}"#,
        r#"{"name": "Ada", "email": "ada@example.com"} trailing"#,
        "not json at all",
        r#"[{"name": "Ada", "email": "ada@example.com"}]"#,
        "[]",
        r#""a string""#,
        "42",
        "null",
        "",
    ];
    for path in ["/v1/customers", "/v2/customers"] {
        for body in bodies {
            let response = post_raw(&app, path, Some("application/json"), body.to_string()).await;
            assert_envelope(response, 400, "body_invalid_json", None).await;
        }
    }
    // Nesting deeper than the parser allows, and bytes that are not UTF-8.
    let deep = format!("{{\"name\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    let not_utf8 = b"{\"name\": \"\xff\xfe\", \"email\": \"ada@example.com\"}".to_vec();
    for body in [deep.into_bytes(), not_utf8] {
        let response = post_raw(&app, "/v2/customers", Some("application/json"), body).await;
        assert_envelope(response, 400, "body_invalid_json", None).await;
    }
    // The same on PUT.
    let id = app.create_customer("Ada", "ada@example.com").await["id"].as_str().unwrap().to_owned();
    for version in ["v1", "v2"] {
        let response = app
            .request(Method::PUT, &format!("/{version}/customers/{id}"))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        assert_envelope(response, 400, "body_invalid_json", None).await;
    }
    assert_eq!(app.v1_total(&app.token).await, 1, "nothing but the one customer was created");
}

// ---- 415 unsupported_media_type ----

#[tokio::test]
async fn a_body_without_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    let content_types: &[Option<&str>] = &[
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonp"),
    ];
    for path in ["/v1/customers", "/v2/customers"] {
        for content_type in content_types {
            let response = post_raw(&app, path, *content_type, VALID_BODY).await;
            assert_envelope(response, 415, "unsupported_media_type", None).await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 0, "a refused body creates nothing");
}

#[tokio::test]
async fn json_with_charset_utf8_is_accepted() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/v1/customers", "application/json; charset=utf-8"),
        ("/v2/customers", "application/json; charset=UTF-8"),
        ("/v2/customers", "application/json"),
    ] {
        let response = post_raw(&app, path, Some(content_type), VALID_BODY).await;
        assert_eq!(response.status(), 201, "{content_type} on {path}");
        assert_eq!(header(&response, "content-type"), Some("application/json"));
    }
    assert_eq!(app.v1_total(&app.token).await, 3);
}

// ---- 413 body_too_large ----

#[tokio::test]
async fn a_body_over_64_kib_with_content_length_is_413() {
    let app = TestApp::spawn().await;
    for (path, size) in [("/v1/customers", 65 * 1024), ("/v2/customers", 64 * 1024 + 1), ("/v2/customers", 1 << 20)] {
        let body = padded_customer(size);
        assert_eq!(body.len(), size);
        let response = post_raw(&app, path, Some("application/json"), body).await;
        assert_envelope(response, 413, "body_too_large", None).await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn a_chunked_body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let body = padded_customer(72 * 1024).into_bytes();
    let raw = raw_chunked_post(app.address, "/v2/customers", &app.token, body).await;
    assert_eq!(raw.status, 413, "response: {raw:?}");
    assert_eq!(raw.header("content-type").as_deref(), Some("application/json"));
    let request_id = raw.header("x-request-id").expect("x-request-id");
    let body: Value = serde_json::from_slice(&raw.body).expect("JSON body");
    assert_eq!(body["error"]["code"], "body_too_large");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    assert_eq!(app.v1_total(&app.token).await, 0, "nothing was created");
}

#[tokio::test]
async fn a_chunked_body_under_the_limit_is_accepted() {
    let app = TestApp::spawn().await;
    let body = padded_customer(60 * 1024).into_bytes();
    let raw = raw_chunked_post(app.address, "/v1/customers", &app.token, body).await;
    assert_eq!(raw.status, 201, "response: {raw:?}");
    assert_eq!(app.v1_total(&app.token).await, 1);
}

#[tokio::test]
async fn exactly_64_kib_of_valid_json_is_not_too_large() {
    let app = TestApp::spawn().await;
    for path in ["/v1/customers", "/v2/customers"] {
        let body = padded_customer(64 * 1024);
        assert_eq!(body.len(), 65_536);
        let response = post_raw(&app, path, Some("application/json"), body).await;
        assert_eq!(response.status(), 201, "64 KiB exactly on {path}");
    }
    assert_eq!(app.v1_total(&app.token).await, 2);
}

/// A valid customer body padded with whitespace to exactly `size` bytes.
fn padded_customer(size: usize) -> String {
    let mut body = String::from(r#"{"name":"Ada Lovelace","email":"ada@example.com""#);
    body.push_str(&" ".repeat(size - body.len() - 1));
    body.push('}');
    body
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

/// POSTs `body` with `Transfer-Encoding: chunked` and no `Content-Length`, over a plain socket.
async fn raw_chunked_post(address: SocketAddr, path: &str, token: &str, body: Vec<u8>) -> RawResponse {
    let path = path.to_owned();
    let token = token.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let mut request = head.into_bytes();
        for chunk in body.chunks(4096) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        // The server may answer and close before reading everything: a write error is fine.
        let _ = stream.write_all(&request);
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
        parse_response(&received)
    })
    .await
    .expect("raw request")
}

fn parse_response(received: &[u8]) -> RawResponse {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = std::str::from_utf8(&received[..end]).expect("head is text");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let rest = &received[end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        let mut rest = rest;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body
    } else {
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(rest.len(), |(_, v)| v.parse::<usize>().unwrap());
        rest[..length].to_vec()
    };
    RawResponse { status, headers, body }
}

// ---- 404 route_not_found ----

#[tokio::test]
async fn unknown_routes_and_versions_are_route_not_found() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/nope",
        "/v2/customers/cus_x/extra",
        "/v1/",
        "/v1",
        "/v2",
        "/v3/customers",
        "/nope",
        "/customers",
        "/v1customers",
    ] {
        let response = app.get(path).await;
        assert_envelope(response, 404, "route_not_found", None).await;
    }
    // Also without a token, outside the versions.
    let response = app.client.get(app.url("/v3/customers")).send().await.unwrap();
    assert_envelope(response, 404, "route_not_found", None).await;
    let response = app.client.post(app.url("/nope")).send().await.unwrap();
    assert_envelope(response, 404, "route_not_found", None).await;
}

// ---- 405 method_not_allowed ----

fn allowed(response: &Response) -> BTreeSet<String> {
    let allow = header(response, "allow").expect("a 405 carries Allow");
    allow.split(',').map(|method| method.trim().to_ascii_uppercase()).filter(|m| !m.is_empty()).collect()
}

fn set(methods: &[&str]) -> BTreeSet<String> {
    methods.iter().map(|m| m.to_string()).collect()
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let id = app.create_customer("Ada", "ada@example.com").await["id"].as_str().unwrap().to_owned();

    let cases = [
        (Method::PATCH, format!("/v1/customers/{id}"), set(&["GET", "HEAD", "PUT", "DELETE"])),
        (Method::PATCH, format!("/v2/customers/{id}"), set(&["GET", "HEAD", "PUT", "DELETE"])),
        (Method::POST, format!("/v2/customers/{id}"), set(&["GET", "HEAD", "PUT", "DELETE"])),
        (Method::DELETE, "/v2/customers".to_owned(), set(&["GET", "HEAD", "POST"])),
        (Method::PUT, "/v1/customers".to_owned(), set(&["GET", "HEAD", "POST"])),
        (Method::POST, "/healthz".to_owned(), set(&["GET", "HEAD"])),
    ];
    for (method, path, expected) in cases {
        let response = app
            .request(method.clone(), &path)
            .header("content-type", "application/json")
            .body(VALID_BODY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(allowed(&response), expected, "Allow for {method} {path}");
        assert_envelope(response, 405, "method_not_allowed", None).await;
    }
    // Nothing was changed or deleted.
    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], 1);
    assert_eq!(app.v1_total(&app.token).await, 1);
}

// ---- 404 resource_not_found ----

#[tokio::test]
async fn unknown_and_garbage_customer_ids_are_resource_not_found() {
    let app = TestApp::spawn().await;
    let long_id = "x".repeat(300);
    let ids = [
        "cus_01JD0000000000000000000000".to_owned(),
        "cus_".to_owned(),
        "%00".to_owned(),
        "%FF".to_owned(),
        "%27%20OR%201%3D1--".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        long_id.clone(),
    ];
    for version in ["v1", "v2"] {
        for id in &ids {
            let path = format!("/{version}/customers/{id}");
            let response = app.get(&path).await;
            let error = assert_envelope(response, 404, "resource_not_found", Some("id")).await;
            let message = error["message"].as_str().unwrap();
            assert!(!message.contains(&long_id), "a 300-char id is not echoed: {message}");
            assert!(!message.contains('\0'), "a NUL is not echoed");

            let response = app.put_json(&path, &json!({"name": "A", "email": "a@example.com"})).await;
            assert_envelope(response, 404, "resource_not_found", Some("id")).await;
            let response = app.delete(&path).await;
            assert_envelope(response, 404, "resource_not_found", Some("id")).await;
        }
    }
    // The never-existing well-formed id is named in the message.
    let response = app.get("/v2/customers/cus_01JD0000000000000000000000").await;
    let error = assert_envelope(response, 404, "resource_not_found", Some("id")).await;
    assert!(error["message"].as_str().unwrap().contains("cus_01JD0000000000000000000000"), "{error}");
    assert_eq!(app.v1_total(&app.token).await, 0, "no PUT created anything");
}

#[tokio::test]
async fn a_deleted_customer_is_resource_not_found() {
    let app = TestApp::spawn().await;
    let id = app.create_customer("Ada", "ada@example.com").await["id"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/v1/customers/{id}")).await.status(), 204);
    for version in ["v1", "v2"] {
        let response = app.get(&format!("/{version}/customers/{id}")).await;
        assert_envelope(response, 404, "resource_not_found", Some("id")).await;
    }
}

// ---- X-Request-Id ----

#[tokio::test]
async fn a_valid_client_request_id_is_echoed_on_success_and_error() {
    let app = TestApp::spawn().await;
    let max = "a".repeat(64);
    for client_id in ["abc-DEF_1.2", "x", max.as_str(), "0123456789"] {
        let response =
            app.request(Method::GET, "/v1/customers").header("x-request-id", client_id).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(request_id(&response), client_id);

        let response = app
            .request(Method::GET, "/v2/customers/cus_missing")
            .header("x-request-id", client_id)
            .send()
            .await
            .unwrap();
        assert_eq!(request_id(&response), client_id);
        let error = assert_envelope(response, 404, "resource_not_found", Some("id")).await;
        assert_eq!(error["request_id"], client_id);

        let response = app.client.get(app.url("/v1/customers")).header("x-request-id", client_id).send().await.unwrap();
        assert_eq!(request_id(&response), client_id, "on a 401");
        let error = assert_error(response, 401, "token_missing").await;
        assert_eq!(error["request_id"], client_id);

        let response = app.client.get(app.url("/healthz")).header("x-request-id", client_id).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(request_id(&response), client_id, "on /healthz");
    }
}

#[tokio::test]
async fn an_invalid_client_request_id_is_replaced() {
    let app = TestApp::spawn().await;
    let too_long = "a".repeat(65);
    for client_id in [too_long.as_str(), "has space", "", "semi;colon", "slash/id"] {
        for path in ["/v1/customers", "/v1/customers/cus_missing"] {
            let response = app.request(Method::GET, path).header("x-request-id", client_id).send().await.unwrap();
            let id = request_id(&response);
            assert_ne!(id, client_id);
            assert_generated_id(&id);
            if response.status() == 404 {
                let error = assert_envelope(response, 404, "resource_not_found", Some("id")).await;
                assert_eq!(error["request_id"], id.as_str());
            } else {
                assert_eq!(response.status(), 200);
            }
        }
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let mut seen = BTreeSet::new();
    let created = app.create_customer("Ada", "ada@example.com").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let responses = vec![
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        app.client.get(app.url("/readyz")).send().await.unwrap(),
        app.client.get(app.url("/nope")).send().await.unwrap(),
        app.client.get(app.url("/v1/customers")).send().await.unwrap(),
        app.get("/v3/customers").await,
        app.get("/v1/customers").await,
        app.get(&format!("/v2/customers/{id}")).await,
        app.request(Method::GET, &format!("/v2/customers/{id}")).header("if-none-match", "\"1\"").send().await.unwrap(),
        app.post_json("/v2/customers", &json!({"name": "B", "email": "b@example.com"})).await,
        app.request(Method::PATCH, "/v1/customers").send().await.unwrap(),
        app.delete(&format!("/v1/customers/{id}")).await,
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 404, 401, 404, 200, 200, 304, 201, 405, 204]);
    for response in &responses {
        let id = request_id(response);
        assert_generated_id(&id);
        assert!(seen.insert(id.clone()), "request ids are unique: {id}");
    }
}

#[tokio::test]
async fn created_customers_also_echo_the_request_id() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::POST, "/v1/customers")
        .header("x-request-id", "create-1")
        .json(&json!({"name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(request_id(&response), "create-1");
    let response =
        app.request(Method::POST, "/v1/customers").header("x-request-id", "create-2").body("{").send().await.unwrap();
    assert_eq!(request_id(&response), "create-2");
    let error = assert_envelope(response, 415, "unsupported_media_type", None).await;
    assert_eq!(error["request_id"], "create-2");
}

// ---- Validation errors name their parameter ----

#[tokio::test]
async fn validation_errors_have_param_and_no_internals() {
    let app = TestApp::spawn().await;
    let response = app.post_json("/v1/customers", &json!({"email": "ada@example.com"})).await;
    assert_envelope(response, 400, "parameter_missing", Some("name")).await;
    let response = app.post_json("/v2/customers", &json!({"name": "Ada", "email": "no-at-sign"})).await;
    assert_envelope(response, 400, "parameter_invalid", Some("email")).await;
    let response = app.post_json("/v1/customers", &json!({"name": "Ada", "email": "a@example.com", "x": 1})).await;
    assert_envelope(response, 400, "parameter_unknown", Some("x")).await;
    let response = app.get("/v1/customers?limit=0").await;
    assert_envelope(response, 400, "parameter_invalid", Some("limit")).await;
}

// ---- Panics ----

async fn panicking_handler() -> &'static str {
    panic!("secret detail at src/storage/sqlite/queries.rs:42: SQL constraint failed");
}

#[tokio::test]
async fn a_panic_answers_a_json_500_without_internals() {
    let router = Router::new()
        .route("/boom", get(panicking_handler))
        .route("/fine", get(|| async { "fine" }))
        .layer(clientele::http::edge::EdgeLayer::bare());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();

    let response = client.get(format!("http://{address}/boom")).send().await.unwrap();
    let id = request_id(&response);
    assert_generated_id(&id);
    let error = assert_envelope(response, 500, "internal_error", None).await;
    assert_eq!(error["type"], "api_error");
    let text = error.to_string();
    for leak in ["secret detail", "queries.rs", "SQL", "constraint"] {
        assert!(!text.contains(leak), "the panic message leaked: {text}");
    }

    let response = client.get(format!("http://{address}/boom")).header("x-request-id", "panic-1").send().await.unwrap();
    assert_eq!(request_id(&response), "panic-1");
    let error = assert_envelope(response, 500, "internal_error", None).await;
    assert_eq!(error["request_id"], "panic-1");

    // The server survives the panic.
    let response = client.get(format!("http://{address}/fine")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "fine");
    server.abort();
}

// ---- Health ----

#[tokio::test]
async fn healthz_and_readyz_answer_json() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let _: Value = response.json().await.expect("healthz body is JSON");

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let body: Value = response.json().await.expect("readyz body is JSON");
    assert_eq!(body["database"], "ok", "{body}");
}

/// The ways `http::router` stacks the edge, the deadline and authentication.
enum Stack {
    /// The authentication layer under a bare edge layer.
    AuthUnderEdge,
    /// One edge layer that starts the deadline and authenticates (no CORS).
    EdgeAuthenticating,
    /// Edge, CORS, deadline and authentication, each a layer (with `--cors-origin`).
    WithCors,
}

/// Serves `/boom` (panics) and `/slow` (outlives a 1 s deadline) behind `stack`,
/// over `app`'s database opened with that 1 s budget, as `serve --request-timeout 1s`
/// would open it (a store opened for 10 s refuses work a 1 s request cannot wait for);
/// the server's address.
async fn serve_behind(app: &TestApp, stack: Stack) -> SocketAddr {
    use axum::middleware::from_fn_with_state;
    use clientele::app::AppState;
    use clientele::config::{CorsOrigin, ServerConfig};
    use clientele::http::{auth::AuthLayer, cors, deadline, edge::EdgeLayer};
    use clientele::ratelimit::RateLimiter;

    async fn boom() -> &'static str {
        panic!("boom at src/secret.rs with SQL")
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    }

    let config = ServerConfig {
        request_deadline: Duration::from_secs(1),
        cors_origins: vec!["http://example.com".parse::<CorsOrigin>().unwrap()],
        ..ServerConfig::default()
    };
    let store = clientele::storage::open_with(&app.database_url, config.budget()).await.expect("the test database");
    let state = AppState::new(config, store, RateLimiter::in_memory());
    let routes = Router::new().route("/boom", get(boom)).route("/slow", get(slow));
    let router = match stack {
        Stack::AuthUnderEdge => routes.layer(AuthLayer::new(state.clone())).layer(EdgeLayer::bare()),
        Stack::EdgeAuthenticating => routes.layer(EdgeLayer::with_metrics_deadline_and_authentication(state.clone())),
        Stack::WithCors => routes
            .layer(AuthLayer::new(state.clone()))
            .layer(from_fn_with_state(state.clone(), deadline::limit))
            .layer(from_fn_with_state(cors::layer(&state.config.cors_origins).unwrap(), cors::apply))
            .layer(EdgeLayer::with_metrics(state.clone())),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = router.with_state(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    address
}

/// `GET path` with `app`'s token from a browser page at `http://example.com`, served behind `stack`.
async fn get_behind(app: &TestApp, stack: Stack, path: &str) -> Response {
    let address = serve_behind(app, stack).await;
    let url = format!("http://{address}{path}");
    app.client.get(url).header("origin", "http://example.com").bearer_auth(&app.token).send().await.expect("request")
}

/// A panic behind the auth layer still answers with the rate-limit headers
/// (API.md §5: errors included), however the layers are stacked.
#[tokio::test]
async fn a_panic_behind_authentication_keeps_the_rate_limit_headers() {
    let app = TestApp::spawn().await;
    for stack in [Stack::AuthUnderEdge, Stack::EdgeAuthenticating, Stack::WithCors] {
        let response = get_behind(&app, stack, "/boom").await;
        assert_eq!(response.headers().get("x-ratelimit-limit").and_then(|v| v.to_str().ok()), Some("100"));
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
        assert!(response.headers().contains_key("x-request-id"));
        let error = assert_error(response, 500, "internal_error").await;
        assert!(!error["message"].as_str().unwrap().contains("src/"), "{error}");
    }
}

/// A request outliving its deadline behind authentication is answered 503 with
/// its rate-limit headers (and, with CORS, the CORS headers a browser needs to read it).
#[tokio::test]
async fn the_deadline_answer_behind_authentication_keeps_the_rate_limit_headers() {
    let app = TestApp::spawn().await;
    for (stack, cors) in [(Stack::EdgeAuthenticating, false), (Stack::WithCors, true)] {
        let started = std::time::Instant::now();
        let response = get_behind(&app, stack, "/slow").await;
        assert!(started.elapsed() < Duration::from_secs(5), "answered at the deadline");
        assert_eq!(header(&response, "retry-after"), Some("1"));
        assert!(response.headers().contains_key("x-ratelimit-limit"));
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(response.headers().contains_key("access-control-allow-origin"), cors);
        assert_error(response, 503, "service_unavailable").await;
    }
}
