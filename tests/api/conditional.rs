//! Conditional requests, RFC 9110 §13 as API.md §3 states them, on v1 and v2
//! alike (and on PostgreSQL with `CLIENTELE_TEST_BACKEND=postgres`). Each test
//! names the rule it holds.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, header, id_of};

const VERSIONS: [&str; 2] = ["v1", "v2"];

fn replacement(name: &str) -> Value {
    json!({"name": name, "email": "ada@example.com"})
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    conditions: &[(&str, &str)],
    body: Option<&Value>,
) -> Response {
    let mut request = app.request(method, path);
    for (name, value) in conditions {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

/// A customer at version 2 (created, then replaced once), and its path in `version`.
async fn customer_at_version_2(app: &TestApp, version: &str) -> (String, String) {
    let id = id_of(&app.create_customer("Ada", "ada@example.com").await);
    let path = format!("/{version}/customers/{id}");
    assert_eq!(app.put_json(&path, &replacement("Ada v2")).await.status(), 200);
    (id, path)
}

/// The stored version and name, read through v2 without conditions.
async fn stored(app: &TestApp, id: &str) -> (i64, String) {
    let customer: Value = app.get(&format!("/v2/customers/{id}")).await.json().await.unwrap();
    (customer["version"].as_i64().unwrap(), customer["name"].as_str().unwrap().to_owned())
}

/// §8.8.3: every single-customer response carries the strong entity tag `"<version>"`, in both versions.
#[tokio::test]
async fn every_single_customer_response_carries_the_entity_tag() {
    let app = TestApp::spawn().await;
    for version in VERSIONS {
        let created = app.post_json(&format!("/{version}/customers"), &replacement("Ada")).await;
        assert_eq!((created.status().as_u16(), header(&created, "etag")), (201, Some("\"1\"")), "{version} POST");
        let path = format!("/{version}/customers/{}", id_of(&created.json().await.unwrap()));
        let read = app.get(&path).await;
        assert_eq!((read.status().as_u16(), header(&read, "etag")), (200, Some("\"1\"")), "{version} GET");
        let head = app.request(Method::HEAD, &path).send().await.unwrap();
        assert_eq!((head.status().as_u16(), header(&head, "etag")), (200, Some("\"1\"")), "{version} HEAD");
        let put = app.put_json(&path, &replacement("Ada 2")).await;
        assert_eq!((put.status().as_u16(), header(&put, "etag")), (200, Some("\"2\"")), "{version} PUT");
    }
}

/// §13.1.1 and §8.8.3.2: If-Match uses the strong comparison. `"01"` is not `"1"`, a weak tag
/// never matches; a false If-Match is 412 and nothing is written. `*` matches any existing customer.
#[tokio::test]
async fn if_match_uses_the_strong_comparison() {
    let app = TestApp::spawn().await;
    for version in VERSIONS {
        let (id, path) = customer_at_version_2(&app, version).await;
        for refused in ["\"02\"", "W/\"2\"", "\"1\"", "\"+2\"", "\"x\""] {
            let put = send(&app, Method::PUT, &path, &[("If-Match", refused)], Some(&replacement("Lost"))).await;
            assert_error(put, 412, "precondition_failed").await;
            assert_error(
                send(&app, Method::DELETE, &path, &[("If-Match", refused)], None).await,
                412,
                "precondition_failed",
            )
            .await;
            assert_error(
                send(&app, Method::GET, &path, &[("If-Match", refused)], None).await,
                412,
                "precondition_failed",
            )
            .await;
            assert_eq!(stored(&app, &id).await, (2, "Ada v2".to_owned()), "{version} {refused}: nothing written");
        }
        let get = send(&app, Method::GET, &path, &[("If-Match", "\"2\"")], None).await;
        assert_eq!(get.status(), 200, "{version}");
        let put = send(&app, Method::PUT, &path, &[("If-Match", "*")], Some(&replacement("Star"))).await;
        assert_eq!((put.status().as_u16(), header(&put, "etag")), (200, Some("\"3\"")), "{version} *");
        let deleted = send(&app, Method::DELETE, &path, &[("If-Match", "\"3\"")], None).await;
        assert_eq!(deleted.status(), 204, "{version}");
    }
}

/// §13.1.2 and §8.8.3.2: If-None-Match uses the weak comparison (`W/"2"` matches `"2"`, the text
/// must still be identical). On GET/HEAD a match is 304 with the ETag and no body.
#[tokio::test]
async fn if_none_match_on_a_read_is_304_by_the_weak_comparison() {
    let app = TestApp::spawn().await;
    for version in VERSIONS {
        let (_, path) = customer_at_version_2(&app, version).await;
        for matching in ["\"2\"", "W/\"2\"", "\"7\", W/\"2\"", "*"] {
            for method in [Method::GET, Method::HEAD] {
                let response = send(&app, method.clone(), &path, &[("If-None-Match", matching)], None).await;
                assert_eq!(response.status(), 304, "{version} {method} {matching}");
                assert_eq!(header(&response, "etag"), Some("\"2\""));
                assert!(response.bytes().await.unwrap().is_empty(), "a 304 has no body");
            }
        }
        for other in ["\"02\"", "W/\"1\"", "\"x\""] {
            let response = send(&app, Method::GET, &path, &[("If-None-Match", other)], None).await;
            assert_eq!(
                (response.status().as_u16(), header(&response, "etag")),
                (200, Some("\"2\"")),
                "{version} {other}"
            );
        }
    }
}

/// §13.1.2: on PUT and DELETE, If-None-Match naming the current tag, or `*` on an existing
/// customer, is 412 and nothing is written; naming another version, the write proceeds.
#[tokio::test]
async fn if_none_match_on_a_write_is_412_when_it_matches() {
    let app = TestApp::spawn().await;
    for version in VERSIONS {
        let (id, path) = customer_at_version_2(&app, version).await;
        for matching in ["*", "\"2\"", "W/\"2\"", "\"1\", \"2\""] {
            let put = send(&app, Method::PUT, &path, &[("If-None-Match", matching)], Some(&replacement("Lost"))).await;
            assert_error(put, 412, "precondition_failed").await;
            let delete = send(&app, Method::DELETE, &path, &[("If-None-Match", matching)], None).await;
            assert_error(delete, 412, "precondition_failed").await;
            assert_eq!(stored(&app, &id).await, (2, "Ada v2".to_owned()), "{version} {matching}: nothing written");
        }
        let put = send(&app, Method::PUT, &path, &[("If-None-Match", "\"1\"")], Some(&replacement("Moved"))).await;
        assert_eq!((put.status().as_u16(), header(&put, "etag")), (200, Some("\"3\"")), "{version}");
        let delete = send(&app, Method::DELETE, &path, &[("If-None-Match", "W/\"2\"")], None).await;
        assert_eq!(delete.status(), 204, "{version}");
    }
}

/// §13.2.2: If-Match is evaluated before If-None-Match.
#[tokio::test]
async fn if_match_is_evaluated_before_if_none_match() {
    let app = TestApp::spawn().await;
    for version in VERSIONS {
        let (id, path) = customer_at_version_2(&app, version).await;
        // A false If-Match wins over a matching If-None-Match: 412, not 304.
        let both = [("If-Match", "\"1\""), ("If-None-Match", "\"2\"")];
        assert_error(send(&app, Method::GET, &path, &both, None).await, 412, "precondition_failed").await;
        // A true If-Match, then a matching If-None-Match: 304 on a read, 412 on a write.
        let both = [("If-Match", "\"2\""), ("If-None-Match", "\"2\"")];
        assert_eq!(send(&app, Method::GET, &path, &both, None).await.status(), 304, "{version}");
        let put = send(&app, Method::PUT, &path, &both, Some(&replacement("Lost"))).await;
        assert_error(put, 412, "precondition_failed").await;
        assert_eq!(stored(&app, &id).await.0, 2);
    }
}

/// §5.3: several lines of either header combine into one list.
#[tokio::test]
async fn several_lines_combine_into_one_list() {
    let app = TestApp::spawn().await;
    for version in VERSIONS {
        let (_, path) = customer_at_version_2(&app, version).await;
        let lines = [("If-Match", "\"9\""), ("If-Match", "\"8\", \"2\"")];
        let put = send(&app, Method::PUT, &path, &lines, Some(&replacement("Combined"))).await;
        assert_eq!(put.status(), 200, "{version}: \"2\" is on the second line");
        let lines = [("If-None-Match", "\"1\""), ("If-None-Match", "\"3\"")];
        assert_eq!(
            send(&app, Method::GET, &path, &lines, None).await.status(),
            304,
            "{version}: \"3\" on the second line"
        );
    }
}

/// A value that is neither `*` nor a list of entity tags is 400, `param` naming the header,
/// before anything else is looked at.
#[tokio::test]
async fn malformed_conditions_are_400_naming_the_header() {
    let app = TestApp::spawn().await;
    for version in VERSIONS {
        let (id, path) = customer_at_version_2(&app, version).await;
        for (name, value) in [("If-Match", "2"), ("If-Match", "0"), ("If-None-Match", "\"2"), ("If-None-Match", "W/2")]
        {
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let body = (method == Method::PUT).then(|| replacement("Lost"));
                let response = send(&app, method.clone(), &path, &[(name, value)], body.as_ref()).await;
                let error = assert_error(response, 400, "parameter_invalid").await;
                assert_eq!(error["param"], name, "{version} {method} {name}: {value}");
            }
        }
        assert_eq!(stored(&app, &id).await.0, 2);
    }
}

/// API.md §3: on a customer that does not exist, If-Match is false (412); otherwise the usual 404,
/// `If-None-Match: *` included (a PUT creates nothing). Another account's customer answers alike.
#[tokio::test]
async fn preconditions_on_a_customer_that_does_not_exist() {
    let app = TestApp::spawn().await;
    let other_token = app.issue_token("other", clientele::domain::Scope::Write, None).await;
    let theirs = id_of(
        &app.request_as(&other_token, Method::POST, "/v2/customers")
            .json(&replacement("Theirs"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    for version in VERSIONS {
        for id in ["cus_00000000000000000000000000", "cus_not-even-an-id", theirs.as_str()] {
            let path = format!("/{version}/customers/{id}");
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let body = (method == Method::PUT).then(|| replacement("X"));
                for condition in ["*", "\"1\""] {
                    let response = send(&app, method.clone(), &path, &[("If-Match", condition)], body.as_ref()).await;
                    assert_error(response, 412, "precondition_failed").await;
                    let response =
                        send(&app, method.clone(), &path, &[("If-None-Match", condition)], body.as_ref()).await;
                    assert_error(response, 404, "resource_not_found").await;
                }
            }
        }
    }
    let theirs_now: Value = app
        .request_as(&other_token, Method::GET, &format!("/v2/customers/{theirs}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs_now["version"], 1, "nothing was written to the other account's customer");
    assert_eq!(app.v1_total(&app.token).await, 0, "nothing was created");
}
