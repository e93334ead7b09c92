//! The network edge (API.md §1, "Basics" and "Slow, idle and hostile
//! connections"), against the real `clientele serve` binary with short
//! timeouts: slow heads and idle connections closed, a stalled body answered
//! `408` (and a slow one within the body timeout served), the connection cap that slow clients cannot fill, the shutdown
//! deadline, CORS and `OPTIONS`, compression both ways, `414`/`431` in JSON,
//! and `GET /`.
//!
//! Raw sockets where the test is about bytes on the wire; reqwest (which does
//! not decode compressed bodies here) elsewhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::process::{Server, blocking, serve_command};
use crate::support::{client, expect_error, expect_json, header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A server over a SQLite file of its own, and the token its first start printed.
struct Sandbox {
    server: Server,
    token: String,
    _dir: TempDir,
}

fn serve(args: &[&str]) -> Sandbox {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("edge.db").display());
    let server = Server::start(serve_command(&url, args));
    let token = server.bootstrap_token().expect("the first start prints a token");
    Sandbox { server, token, _dir: dir }
}

/// A response read off a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts the JSON error envelope with its request id; returns the `error` object.
    fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let body: Value = serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON body: {self:?}"));
        assert_eq!(body["error"]["code"], code, "{self:?}");
        let request_id = self.header("x-request-id").unwrap_or_else(|| panic!("X-Request-Id: {self:?}"));
        assert!(request_id.starts_with("req_"), "{self:?}");
        assert_eq!(body["error"]["request_id"], request_id, "{self:?}");
        body["error"].clone()
    }
}

fn parse_response(raw: &[u8]) -> Option<RawResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some(RawResponse { status, headers, body: body.to_owned() })
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    stream
}

/// Reads until the server closes the connection (or the read timeout); returns the bytes and how long it took.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if matches!(error.kind(), std::io::ErrorKind::ConnectionReset) => break,
            Err(error) => panic!("no close within the read timeout ({error}); received {received:?}"),
        }
    }
    (received, started.elapsed())
}

/// Reads one response with a `Content-Length` body off a keep-alive connection.
fn read_one_response(stream: &mut TcpStream) -> RawResponse {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(response) = parse_response(&received) {
            let length: usize = response.header("content-length").map_or(0, |v| v.parse().unwrap());
            if response.body.len() >= length {
                return response;
            }
        }
        let read = stream.read(&mut buffer).expect("read a response");
        assert!(read > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..read]);
    }
}

/// Sends `request` on a new connection and reads everything until the server closes it.
fn exchange(address: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = connect(address);
    // A large request may be refused before the server has read it all: keep writing on a thread.
    let mut writer = stream.try_clone().unwrap();
    let request = request.to_vec();
    let writing = thread::spawn(move || {
        let _ = writer.write_all(&request);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let (received, _) = read_until_closed(&mut stream);
    let _ = writing.join();
    parse_response(&received).unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&received)))
}

// ---- slow, idle and hostile connections ----

#[test]
fn a_slow_head_is_closed_without_an_answer() {
    let sandbox = serve(&["--header-timeout", "1s"]);
    let address = sandbox.server.address;
    let mut stream = connect(address);
    let mut writer = stream.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: yes" {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let (received, took) = blocking(|| read_until_closed(&mut stream));
    assert!(received.is_empty(), "no answer to a head never finished: {:?}", String::from_utf8_lossy(&received));
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(4), "closed after {took:?}");
    let _ = trickle.join();

    // A connection that sends nothing at all is closed by the same timeout.
    let mut silent = connect(address);
    let (received, took) = read_until_closed(&mut silent);
    assert!(received.is_empty() && took < Duration::from_secs(4), "silent connection closed after {took:?}");
}

#[test]
fn a_stalled_body_gets_408_then_the_connection_closes() {
    let sandbox = serve(&["--body-timeout", "1s"]);
    let mut stream = connect(sandbox.server.address);
    let head = format!(
        "POST /v2/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"name\": \"Ada",
        sandbox.token
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (received, took) = read_until_closed(&mut stream);
    let response = parse_response(&received).expect("a response");
    let error = response.expect_error(408, "request_timeout");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(4), "answered after {took:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_head_timeout() {
    let sandbox = serve(&["--header-timeout", "1s", "--idle-timeout", "3s"]);
    let mut stream = connect(sandbox.server.address);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(request).unwrap();
    assert_eq!(read_one_response(&mut stream).status, 200);
    // Longer than the head timeout, shorter than the idle timeout: still open.
    thread::sleep(Duration::from_secs(2));
    stream.write_all(request).unwrap();
    assert_eq!(read_one_response(&mut stream).status, 200, "kept alive past the head timeout");
    let (received, took) = read_until_closed(&mut stream);
    assert!(received.is_empty(), "{:?}", String::from_utf8_lossy(&received));
    assert!(took >= Duration::from_millis(2500) && took < Duration::from_secs(6), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_beyond_the_cap_do_not_starve_a_ready_client() {
    let sandbox = serve(&["--max-connections", "50", "--header-timeout", "60s"]);
    let address = sandbox.server.address;
    // 200 connections that start a head and never finish it.
    // (Connecting them takes a moment only if the server keeps up: beyond the cap
    // and the listen queue, a connect waits for the server to make room.)
    let connecting = Instant::now();
    let slow: Vec<TcpStream> = blocking(|| {
        (0..200)
            .map(|_| {
                let mut stream = TcpStream::connect(address).expect("connect a slow client");
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
                stream
            })
            .collect()
    });
    assert!(connecting.elapsed() < Duration::from_secs(5), "200 connects took {:?}", connecting.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let response = client().get(sandbox.server.url("/healthz")).send().await.expect("the ready client is served");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    let (_, body) = expect_json(
        client().get(sandbox.server.url("/v2/customers")).bearer_auth(&sandbox.token).send().await.unwrap(),
        200,
        "an API request beside 200 slow clients",
    )
    .await;
    assert!(body["data"].is_array());
    drop(slow);
}

#[test]
fn a_body_slower_than_the_request_timeout_but_within_the_body_timeout_is_served() {
    // The request timeout counts the server's work, not the client's upload (API.md §1).
    let sandbox = serve(&["--request-timeout", "1s", "--body-timeout", "10s"]);
    let mut stream = connect(sandbox.server.address);
    let body = r#"{"name": "Ada Lovelace", "email": "ada@example.com"}"#;
    let (first, rest) = body.split_at(10);
    let head = format!(
        "POST /v2/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{first}",
        sandbox.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(2_500));
    stream.write_all(rest.as_bytes()).unwrap();
    let response = read_one_response(&mut stream);
    assert_eq!(response.status, 201, "{response:?}");
}

#[test]
fn sigterm_cuts_stalled_clients_and_exits_zero_at_once() {
    let mut sandbox = serve(&["--shutdown-timeout", "30s", "--body-timeout", "60s", "--header-timeout", "60s"]);
    let address = sandbox.server.address;
    // One client stalls in its body (a request in flight), one in its head, one is idle between requests.
    let mut stalled_body = connect(address);
    let head = format!(
        "POST /v2/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{",
        sandbox.token
    );
    stalled_body.write_all(head.as_bytes()).unwrap();
    let mut slow_head = connect(address);
    slow_head.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let mut idle = connect(address);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_one_response(&mut idle).status, 200);
    thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    sandbox.server.sigterm();
    // No slow client holds the shutdown (API.md §1): the idle and the slow head
    // are closed, and the stalled body is answered 503 and closed, at once.
    for (what, stream) in [("idle", &mut idle), ("slow head", &mut slow_head)] {
        let (received, _) = read_until_closed(stream);
        assert!(received.is_empty(), "{what}: {:?}", String::from_utf8_lossy(&received));
        assert!(signalled.elapsed() < Duration::from_secs(1), "{what} closed after {:?}", signalled.elapsed());
    }
    let (received, _) = read_until_closed(&mut stalled_body);
    let response = parse_response(&received).expect("the stalled body gets an answer");
    response.expect_error(503, "service_unavailable");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    let status = sandbox.server.wait_exit(Duration::from_secs(6));
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status; logs: {}", sandbox.server.logs());
    assert!(took < Duration::from_secs(2), "exited after {took:?}, with a 30 s shutdown timeout");
}

#[test]
fn sigterm_with_a_request_stuck_in_the_database_exits_zero_at_the_shutdown_timeout() {
    let mut sandbox = serve(&["--shutdown-timeout", "2s", "--request-timeout", "20s"]);
    // The test holds SQLite's write lock, so a POST waits in its handler (for the busy timeout, 5 s).
    let database = rusqlite::Connection::open(sandbox._dir.path().join("edge.db")).unwrap();
    database.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut stuck = connect(sandbox.server.address);
    let body = r#"{"name": "Ada Lovelace", "email": "ada@example.com"}"#;
    let request = format!(
        "POST /v2/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        sandbox.token,
        body.len()
    );
    stuck.write_all(request.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    sandbox.server.sigterm();
    let status = sandbox.server.wait_exit(Duration::from_secs(6));
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status; logs: {}", sandbox.server.logs());
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(4), "exited after {took:?}");
    let (received, _) = read_until_closed(&mut stuck);
    assert!(received.is_empty(), "the stuck request is cut: {:?}", String::from_utf8_lossy(&received));
    drop(database);
    // The logs are read from a pipe by a thread: give it a moment to catch up with the exit.
    let logged = Instant::now();
    while !sandbox.server.logs().contains("shutdown timeout passed") && logged.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(sandbox.server.logs().contains("shutdown timeout passed"), "{}", sandbox.server.logs());
}

// ---- CORS and OPTIONS ----

const ORIGIN: &str = "https://app.example.com";

async fn preflight(server: &Server, path: &str, origin: &str) -> reqwest::Response {
    client()
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,idempotency-key")
        .send()
        .await
        .unwrap()
}

fn comma_list(headers: &reqwest::header::HeaderMap, name: &str) -> Vec<String> {
    header(headers, name)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_and_headers_for_the_allowed_origin() {
    let sandbox = serve(&["--cors-origin", ORIGIN, "--cors-origin", "http://localhost:3000"]);
    let server = &sandbox.server;

    let response = preflight(server, "/v2/customers", ORIGIN).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(ORIGIN));
    let allow = comma_list(headers, "allow");
    for method in ["get", "head", "post"] {
        assert!(allow.contains(&method.to_owned()), "{allow:?}");
    }
    assert!(!allow.contains(&"put".to_owned()), "{allow:?}");
    let methods = comma_list(headers, "access-control-allow-methods");
    for method in ["get", "post", "put", "delete"] {
        assert!(methods.contains(&method.to_owned()), "{methods:?}");
    }
    let allowed = comma_list(headers, "access-control-allow-headers");
    for name in ["authorization", "content-type", "idempotency-key", "if-match", "if-none-match", "x-request-id"] {
        assert!(allowed.contains(&name.to_owned()), "{allowed:?}");
    }
    assert!(header(headers, "access-control-max-age").is_some_and(|age| age.parse::<u64>().unwrap() > 0));
    assert!(header(headers, "x-request-id").is_some());

    // A real request, and an error before authentication, both readable by the page.
    for token in [Some(sandbox.token.as_str()), None] {
        let mut request = client().get(server.url("/v2/customers")).header("origin", ORIGIN);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), if token.is_some() { 200 } else { 401 });
        let headers = response.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), Some(ORIGIN), "{headers:?}");
        let exposed = comma_list(headers, "access-control-expose-headers");
        for name in [
            "etag",
            "location",
            "retry-after",
            "x-request-id",
            "idempotent-replayed",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ] {
            assert!(exposed.contains(&name.to_owned()), "{name} in {exposed:?}");
        }
    }

    // Another origin gets no permission; a second configured one does.
    let other = preflight(server, "/v2/customers", "https://evil.example").await;
    assert!(header(other.headers(), "access-control-allow-origin").is_none(), "{:?}", other.headers());
    let second = preflight(server, "/v2/customers/cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", "http://localhost:3000").await;
    assert_eq!(second.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(second.headers(), "access-control-allow-origin"), Some("http://localhost:3000"));
    assert!(comma_list(second.headers(), "allow").contains(&"put".to_owned()));
    // An unknown route is still unknown.
    expect_error(preflight(server, "/v2/nothing", ORIGIN).await, 404, "route_not_found", "OPTIONS unknown route").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_with_any_origin_and_none_without_the_flag() {
    let any = serve(&["--cors-origin", "*"]);
    let response = preflight(&any.server, "/v1/customers", "https://anywhere.example").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(response.headers(), "access-control-allow-origin"), Some("*"));

    let plain = serve(&[]);
    let response = preflight(&plain.server, "/v2/customers", ORIGIN).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "OPTIONS answers without CORS too");
    assert!(comma_list(response.headers(), "allow").contains(&"post".to_owned()));
    let get = client()
        .get(plain.server.url("/v2/customers"))
        .bearer_auth(&plain.token)
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    for response_headers in [response.headers(), get.headers()] {
        let cors: Vec<_> =
            response_headers.keys().filter(|name| name.as_str().starts_with("access-control-")).collect();
        assert!(cors.is_empty(), "no CORS header without --cors-origin: {cors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_needs_no_token_and_counts_toward_no_limit() {
    // Day-long windows, so that no window ends during the test.
    let sandbox = serve(&["--auth-failure-limit", "3/24h", "--default-rate-limit", "100/24h"]);
    let server = &sandbox.server;
    let remaining = |response: &reqwest::Response| -> u64 {
        header(response.headers(), "x-ratelimit-remaining").expect("rate-limit headers").parse().unwrap()
    };
    let first = client().get(server.url("/v2/customers")).bearer_auth(&sandbox.token).send().await.unwrap();
    let before = remaining(&first);
    for _ in 0..10 {
        let response = client().request(Method::OPTIONS, server.url("/v2/customers")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "OPTIONS without a token");
        let with_token = client()
            .request(Method::OPTIONS, server.url("/v1/customers"))
            .bearer_auth(&sandbox.token)
            .send()
            .await
            .unwrap();
        assert_eq!(with_token.status(), StatusCode::NO_CONTENT);
        let with_bad_token = client()
            .request(Method::OPTIONS, server.url("/v2/customers"))
            .bearer_auth("clt_not_a_token")
            .send()
            .await
            .unwrap();
        assert_eq!(with_bad_token.status(), StatusCode::NO_CONTENT);
    }
    // 30 OPTIONS later: a missing token is still a 401, not a 429, and the token's count moved by one.
    let response = client().get(server.url("/v2/customers")).send().await.unwrap();
    expect_error(response, 401, "token_missing", "after OPTIONS, the failed-auth limit is untouched").await;
    let second = client().get(server.url("/v2/customers")).bearer_auth(&sandbox.token).send().await.unwrap();
    assert_eq!(remaining(&second), before - 1);
}

// ---- compression ----

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(bytes).read_to_end(&mut decoded).map(|_| ()).unwrap(),
        "br" => brotli::Decompressor::new(bytes, 4096).read_to_end(&mut decoded).map(|_| ()).unwrap(),
        "zstd" => decoded = zstd::decode_all(bytes).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    decoded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_are_compressed_and_small_ones_are_not() {
    let sandbox = serve(&[]);
    let server = &sandbox.server;
    let plain = client().get(server.url("/v2/openapi.json")).send().await.unwrap();
    assert!(header(plain.headers(), "content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 10_000);

    for encoding in ["gzip", "br", "zstd"] {
        let response =
            client().get(server.url("/v2/openapi.json")).header("accept-encoding", encoding).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(response.headers(), "content-encoding"), Some(encoding));
        let vary: Vec<_> = response.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert!(vary.iter().any(|vary| vary.contains("accept-encoding")), "{vary:?}");
        assert!(header(response.headers(), "x-request-id").is_some());
        let compressed = response.bytes().await.unwrap();
        assert!(compressed.len() * 4 < plain.len(), "{encoding}: {} of {} bytes", compressed.len(), plain.len());
        assert_eq!(decode(encoding, &compressed), plain, "{encoding} round trip");
    }
    // The client's preference among several.
    let response = client()
        .get(server.url("/v2/openapi.json"))
        .header("accept-encoding", "gzip;q=0.5, br;q=1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(header(response.headers(), "content-encoding"), Some("br"));

    // One customer (about 300 bytes) is sent as it is; a page of them (several KiB) is compressed.
    let customer = json!({"name": "Ada Lovelace", "email": "ada@example.com"});
    let mut id = String::new();
    for _ in 0..20 {
        let created = client()
            .post(server.url("/v2/customers"))
            .bearer_auth(&sandbox.token)
            .json(&customer)
            .send()
            .await
            .unwrap();
        id = expect_json(created, 201, "create").await.1["id"].as_str().unwrap().to_owned();
    }
    let one = client()
        .get(server.url(&format!("/v2/customers/{id}")))
        .bearer_auth(&sandbox.token)
        .header("accept-encoding", "gzip, br, zstd")
        .send()
        .await
        .unwrap();
    assert!(header(one.headers(), "content-encoding").is_none(), "{:?}", one.headers());
    let length = one.bytes().await.unwrap().len();
    assert!(length < 1024, "{length}");
    let page = client()
        .get(server.url("/v2/customers?limit=20"))
        .bearer_auth(&sandbox.token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(page.headers(), "content-encoding"), Some("gzip"));
    let body: Value = serde_json::from_slice(&decode("gzip", &page.bytes().await.unwrap())).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn brotli_compress(bytes: &[u8]) -> Vec<u8> {
    let mut compressed = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut compressed, 4096, 5, 22);
        writer.write_all(bytes).unwrap();
    }
    compressed
}

async fn post_encoded(sandbox: &Sandbox, encoding: &str, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(sandbox.server.url("/v2/customers"))
        .bearer_auth(&sandbox.token)
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_request_bodies_are_decoded_and_limited_after_decoding() {
    let sandbox = serve(&[]);
    let customer = json!({"name": "Grace Hopper", "email": "grace@example.com"}).to_string();
    // Codings are case-insensitive, x-gzip is gzip and identity is none (RFC 9110 §8.4.1).
    let encoded = [
        ("gzip", gzip(customer.as_bytes())),
        ("GZIP", gzip(customer.as_bytes())),
        ("x-gzip", gzip(customer.as_bytes())),
        ("br", brotli_compress(customer.as_bytes())),
        ("Br", brotli_compress(customer.as_bytes())),
        ("identity", customer.clone().into_bytes()),
    ];
    for (encoding, body) in encoded {
        let (_, created) = expect_json(post_encoded(&sandbox, encoding, body).await, 201, encoding).await;
        assert_eq!(created["name"], "Grace Hopper", "{encoding}");
    }

    // A bomb: 5 MB of JSON in a few KB of gzip.
    let bomb = format!(r#"{{"name": "{}", "email": "a@example.com"}}"#, " ".repeat(5 << 20));
    let compressed = gzip(bomb.as_bytes());
    assert!(compressed.len() < 64 * 1024, "{} bytes", compressed.len());
    expect_error(post_encoded(&sandbox, "gzip", compressed).await, 413, "body_too_large", "gzip bomb").await;

    // Just under the limit once decoded is fine: the limit is on the decoded body, not more.
    let fits = format!(r#"{{"name": "Fits", "email": "fits@example.com", "phone": null{}}}"#, " ".repeat(60_000));
    expect_json(post_encoded(&sandbox, "gzip", gzip(fits.as_bytes())).await, 201, "60 KB decoded").await;

    // Other codings, and a body that does not decode.
    for encoding in ["deflate", "compress", "zstd", "gzip, br", "x-custom"] {
        let response = post_encoded(&sandbox, encoding, customer.clone().into_bytes()).await;
        expect_error(response, 415, "unsupported_media_type", encoding).await;
    }
    let response = post_encoded(&sandbox, "gzip", customer.clone().into_bytes()).await;
    expect_error(response, 400, "body_invalid_json", "not gzip at all").await;
}

// ---- request heads too large ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_targets_get_414_and_large_heads_431_in_json() {
    let sandbox = serve(&[]);
    let server = &sandbox.server;
    let address = server.address;

    // Over 8 KiB of target, in three sizes: reaching the application whole, and cut off while it arrives.
    for length in [8_300, 65_536, 1 << 20] {
        let target = format!("/v2/customers?q={}", "a".repeat(length));
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let response = blocking(|| exchange(address, request.as_bytes()));
        response.expect_error(414, "uri_too_long");
    }
    let response = client().get(server.url(&format!("/healthz?q={}", "a".repeat(9000)))).send().await.unwrap();
    expect_error(response, 414, "uri_too_long", "9 KB query").await;
    // A target just over 8 KiB in a request line short enough to reach the application, which measures it.
    let response = client().get(server.url(&format!("/healthz?q={}", "a".repeat(8189)))).send().await.unwrap();
    expect_error(response, 414, "uri_too_long", "8200-byte target").await;
    // 8 KiB itself is fine.
    let response = client().get(server.url(&format!("/healthz?q={}", "a".repeat(8000)))).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // Over 32 KiB of head: one big header, many headers, 600 KB.
    for size in [40_000, 600_000] {
        let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(size));
        blocking(|| exchange(address, request.as_bytes())).expect_error(431, "headers_too_large");
    }
    let many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: 1\r\n".repeat(150));
    blocking(|| exchange(address, many.as_bytes())).expect_error(431, "headers_too_large");
    let response = client().get(server.url("/healthz")).header("x-big", "b".repeat(33_000)).send().await.unwrap();
    expect_error(response, 431, "headers_too_large", "33 KB header").await;
    let response = client().get(server.url("/healthz")).header("x-big", "b".repeat(30_000)).send().await.unwrap();
    assert_eq!(response.status(), 200, "30 KB of headers is within the limit");
    let response = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_root_redirects_to_the_docs() {
    let sandbox = serve(&[]);
    let no_redirects =
        reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects.get(sandbox.server.url("/")).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(header(response.headers(), "location"), Some("/docs"));
    assert!(header(response.headers(), "x-request-id").is_some());
    let followed = client().get(sandbox.server.url("/")).send().await.unwrap();
    assert_eq!(followed.status(), 200);
    assert!(followed.text().await.unwrap().contains("swagger"), "the docs page");
}
