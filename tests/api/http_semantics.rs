//! HTTP semantics of API.md §1 and §3 that RFC 9110 defines: single-valued
//! headers sent twice (§5.3), and emails matched by Unicode full case folding.

use clientele::domain::Scope;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::json;

use crate::support::{TestApp, assert_error, body, header, id_of};

const CUSTOMER: &str = r#"{"name": "Ada Lovelace", "email": "ada@example.com"}"#;

/// Two `Authorization` lines are refused whatever their order, so the scope
/// never depends on which line a proxy or client library puts first.
#[tokio::test]
async fn two_authorization_lines_are_token_invalid_in_either_order() {
    let app = TestApp::spawn().await;
    let read = app.issue_token("default", Scope::Read, None).await;
    for (first, second) in [(&app.token, &read), (&read, &app.token)] {
        for path in ["/v1/customers", "/v2/customers"] {
            let response = app
                .client
                .post(app.url(path))
                .header(AUTHORIZATION, format!("Bearer {first}"))
                .header(AUTHORIZATION, format!("Bearer {second}"))
                .header(CONTENT_TYPE, "application/json")
                .body(CUSTOMER)
                .send()
                .await
                .unwrap();
            assert_eq!(header(&response, "www-authenticate").map(|v| v.starts_with("Bearer")), Some(true));
            assert_error(response, 401, "token_invalid").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 0, "nothing was created");
}

#[tokio::test]
async fn content_type_and_idempotency_key_sent_twice_are_parameter_invalid() {
    let app = TestApp::spawn().await;
    for path in ["/v1/customers", "/v2/customers"] {
        let twice_typed = app
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(CUSTOMER)
            .send()
            .await
            .unwrap();
        assert_eq!(assert_error(twice_typed, 400, "parameter_invalid").await["param"], "Content-Type");
        let twice_keyed = app
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "k-1")
            .header("Idempotency-Key", "k-2")
            .body(CUSTOMER)
            .send()
            .await
            .unwrap();
        assert_eq!(assert_error(twice_keyed, 400, "parameter_invalid").await["param"], "Idempotency-Key");
    }
    assert_eq!(app.v1_total(&app.token).await, 0, "nothing was created");
}

/// Two `X-Request-Id` lines: refused, under an id the server makes (neither is echoed).
#[tokio::test]
async fn two_request_ids_are_parameter_invalid_with_a_server_made_id() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::GET, "/v2/customers")
        .header("X-Request-Id", "first-id")
        .header("X-Request-Id", "second-id")
        .send()
        .await
        .unwrap();
    let request_id = header(&response, "x-request-id").unwrap().to_owned();
    assert!(request_id.starts_with("req_"), "{request_id}");
    assert_eq!(assert_error(response, 400, "parameter_invalid").await["param"], "X-Request-Id");
    // One line is fine, and echoed.
    let once = app.request(Method::GET, "/v2/customers").header("X-Request-Id", "only-id").send().await.unwrap();
    assert_eq!(header(&once, "x-request-id"), Some("only-id"));
}

/// Full case folding (CaseFolding.txt C+F), not `to_lowercase`: final sigma and ß.
#[tokio::test]
async fn emails_match_by_full_case_folding() {
    let app = TestApp::spawn().await;
    let greek = id_of(&app.create_customer("Greek", "ΑΣ@example.gr").await);
    let german = id_of(&app.create_customer("German", "STRASSE@x.de").await);
    app.create_customer("Other", "ada@example.com").await;
    for (query, expected) in [
        ("ασ@example.gr", &greek),
        ("ας@example.gr", &greek),
        ("ΑΣ@EXAMPLE.GR", &greek),
        ("straße@x.de", &german),
        ("strasse@X.DE", &german),
    ] {
        let path = format!("/v2/customers?email={}", urlencode(query));
        let page = body(app.get(&path).await).await;
        let ids: Vec<String> = page["data"].as_array().unwrap().iter().map(id_of).collect();
        assert_eq!(ids, std::slice::from_ref(expected), "{query}");
        // Stored as given.
        assert!(page["data"][0]["email"].as_str().unwrap().chars().any(char::is_uppercase), "{page}");
    }
    let none = body(app.get("/v2/customers?email=strase%40x.de").await).await;
    assert_eq!(none["data"], json!([]));
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
