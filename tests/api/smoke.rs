//! The first request works: create, read in both versions, and the error envelope.

use serde_json::json;

use crate::support::{TestApp, assert_error};

#[tokio::test]
async fn a_customer_created_in_v2_reads_in_v1() {
    let app = TestApp::spawn().await;
    let created = app.create_customer("Ada Lovelace", "ada@example.com").await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("cus_"));
    let v1 = app.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(v1.status(), 200);
    let v1: serde_json::Value = v1.json().await.unwrap();
    assert_eq!(v1["email"], "ada@example.com");
    assert!(v1["created"].is_i64());
}

#[tokio::test]
async fn an_unknown_field_is_refused_with_its_name() {
    let app = TestApp::spawn().await;
    let response = app.post_json("/v1/customers", &json!({"name": "A", "email": "a@b.co", "address": null})).await;
    let error = assert_error(response, 400, "parameter_unknown").await;
    assert_eq!(error["param"], "address");
}
