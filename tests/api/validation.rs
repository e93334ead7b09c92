//! Field validation over HTTP (API.md §3): every field rule with its exact code and `param`, in v1 and v2, on create and replace.

use reqwest::{Method, Response};
use serde_json::{Map, Value, json};

use crate::support::{TestApp, assert_error, truncated};

const BOTH: [&str; 2] = ["/v1/customers", "/v2/customers"];

/// A valid body with `key` set to `value`.
fn with(key: &str, value: Value) -> Value {
    let mut body = json!({"name": "Ada Lovelace", "email": "ada@example.com"});
    body[key] = value;
    body
}

/// A valid body without `key`.
fn without(key: &str) -> Value {
    let mut body = json!({"name": "Ada Lovelace", "email": "ada@example.com"});
    body.as_object_mut().unwrap().remove(key);
    body
}

fn address(part: &str, value: Value) -> Value {
    with("address", json!({ part: value }))
}

fn metadata_of(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(pairs.into_iter().map(|(key, value)| (key, Value::String(value))).collect::<Map<_, _>>())
}

async fn send(app: &TestApp, method: Method, path: &str, body: &Value) -> Response {
    app.request(method, path).json(body).send().await.expect("request")
}

/// Asserts a `400` with `code` and `param`.
async fn refused(app: &TestApp, method: Method, path: &str, body: &Value, code: &str, param: &str) {
    let case = format!("{method} {path} {}", truncated(body));
    let response = send(app, method, path, body).await;
    assert_eq!(response.status(), 400, "{case}");
    let error = assert_error(response, 400, code).await;
    assert_eq!(error["param"], param, "{case}: {error}");
}

async fn refused_post(app: &TestApp, path: &str, body: &Value, code: &str, param: &str) {
    refused(app, Method::POST, path, body, code, param).await;
}

#[tokio::test]
async fn name_missing_null_or_not_a_string_is_refused() {
    let app = TestApp::spawn().await;
    for path in BOTH {
        refused_post(&app, path, &without("name"), "parameter_missing", "name").await;
        refused_post(&app, path, &with("name", Value::Null), "parameter_missing", "name").await;
        for value in [json!(5), json!(true), json!(["Ada"]), json!({"first": "Ada"})] {
            refused_post(&app, path, &with("name", value), "parameter_invalid", "name").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 0, "refused creates store nothing");
}

#[tokio::test]
async fn name_empty_after_trimming_is_refused() {
    let app = TestApp::spawn().await;
    for path in BOTH {
        for value in ["", " ", "   ", "\t\n \r"] {
            refused_post(&app, path, &with("name", json!(value)), "parameter_invalid", "name").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn name_length_counts_characters_after_trimming() {
    let app = TestApp::spawn().await;
    for path in BOTH {
        for ok in ["a".repeat(256), "é".repeat(256), "😀".repeat(256)] {
            let created = app.create_at(path, &with("name", json!(ok))).await;
            assert_eq!(created["name"], ok.as_str());
        }
        let padded = format!("  {}\n", "é".repeat(256));
        let created = app.create_at(path, &with("name", json!(padded))).await;
        assert_eq!(created["name"], "é".repeat(256), "256 characters once trimmed");
        for too_long in ["a".repeat(257), "é".repeat(257), "😀".repeat(257)] {
            refused_post(&app, path, &with("name", json!(too_long)), "parameter_invalid", "name").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 8);
}

#[tokio::test]
async fn name_is_stored_trimmed() {
    let app = TestApp::spawn().await;
    let v1 = app.create_at("/v1/customers", &with("name", json!("  Ada  Lovelace \n"))).await;
    assert_eq!(v1["name"], "Ada  Lovelace", "trimmed at both ends only");
    let v2 = app.create_at("/v2/customers", &with("name", json!("\tGrace "))).await;
    assert_eq!(v2["name"], "Grace");
    let id = v2["id"].as_str().unwrap();

    let response = app.put_json(&format!("/v2/customers/{id}"), &with("name", json!(" Grace Hopper "))).await;
    assert_eq!(response.status(), 200);
    let response = app.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(response.json::<Value>().await.unwrap()["name"], "Grace Hopper");
    let response = app.put_json(&format!("/v1/customers/{id}"), &with("name", json!(" G "))).await;
    assert_eq!(response.json::<Value>().await.unwrap()["name"], "G");
    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.json::<Value>().await.unwrap()["name"], "G");
}

#[tokio::test]
async fn email_missing_null_or_not_a_string_is_refused() {
    let app = TestApp::spawn().await;
    for path in BOTH {
        refused_post(&app, path, &without("email"), "parameter_missing", "email").await;
        refused_post(&app, path, &with("email", Value::Null), "parameter_missing", "email").await;
        for value in [json!(42), json!(false), json!(["ada@example.com"]), json!({})] {
            refused_post(&app, path, &with("email", value), "parameter_invalid", "email").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn email_needs_one_at_a_local_part_and_a_domain_with_a_dot() {
    let app = TestApp::spawn().await;
    let bad = [
        "",
        "ada",
        "ada.example.com",
        "ada@@example.com",
        "ada@lovelace@example.com",
        "@example.com",
        "ada@example",
        "ada@localhost",
        "ada@",
    ];
    for path in BOTH {
        for email in bad {
            refused_post(&app, path, &with("email", json!(email)), "parameter_invalid", "email").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
    for path in BOTH {
        for email in ["a@b.co", "Ada.Lovelace+crm@Mail.Example.CO.UK"] {
            let created = app.create_at(path, &with("email", json!(email))).await;
            assert_eq!(created["email"], email, "stored as given");
        }
    }
}

#[tokio::test]
async fn email_is_at_most_254_characters() {
    let app = TestApp::spawn().await;
    let domain = "@example.com";
    for path in BOTH {
        for local in ["a", "é"] {
            let ok = format!("{}{domain}", local.repeat(254 - domain.len()));
            assert_eq!(ok.chars().count(), 254);
            let created = app.create_at(path, &with("email", json!(ok))).await;
            assert_eq!(created["email"], ok.as_str());
            let too_long = format!("{}{domain}", local.repeat(255 - domain.len()));
            refused_post(&app, path, &with("email", json!(too_long)), "parameter_invalid", "email").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 4);
}

#[tokio::test]
async fn phone_allows_digits_spaces_and_plus_minus_parentheses_dot() {
    let app = TestApp::spawn().await;
    for path in BOTH {
        for ok in ["+44 (20) 7946-0958.1", "5550100", &"1".repeat(32), &"+".repeat(32)] {
            let created = app.create_at(path, &with("phone", json!(ok))).await;
            assert_eq!(created["phone"], ok);
        }
        let created = app.create_at(path, &with("phone", Value::Null)).await;
        assert_eq!(created["phone"], Value::Null);
        let created = app.create_at(path, &without("phone")).await;
        assert_eq!(created["phone"], Value::Null);
    }
    assert_eq!(app.v1_total(&app.token).await, 12);
}

#[tokio::test]
async fn phone_with_other_characters_too_long_or_not_a_string_is_refused() {
    let app = TestApp::spawn().await;
    for path in BOTH {
        let bad = [
            json!("1".repeat(33)),
            json!(format!("+44 {}", "1".repeat(29))),
            json!("555-CALL-NOW"),
            json!("5550100x12"),
            json!("555#0100"),
            json!("555/0100"),
            json!("555_0100"),
            json!("+44\t20"),
            json!(5550100),
            json!(["555"]),
        ];
        for value in bad {
            refused_post(&app, path, &with("phone", value), "parameter_invalid", "phone").await;
        }
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn address_must_be_an_object_or_null() {
    let app = TestApp::spawn().await;
    for value in [json!("12 St James's Sq"), json!(5), json!(true), json!(["London"])] {
        refused_post(&app, "/v2/customers", &with("address", value), "parameter_invalid", "address").await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
    let created = app.create_at("/v2/customers", &with("address", Value::Null)).await;
    assert_eq!(created["address"], Value::Null);
}

#[tokio::test]
async fn an_unknown_address_key_is_named_by_its_path() {
    let app = TestApp::spawn().await;
    for (key, param) in [("zip", "address.zip"), ("street", "address.street"), ("Country", "address.Country")] {
        let body = with("address", json!({"line1": "1 Road", key: "x"}));
        refused_post(&app, "/v2/customers", &body, "parameter_unknown", param).await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn address_parts_are_strings_of_at_most_200_characters() {
    let app = TestApp::spawn().await;
    let parts = ["line1", "line2", "city", "region", "postal_code"];
    for part in parts {
        let param = format!("address.{part}");
        let ok = "é".repeat(200);
        let created = app.create_at("/v2/customers", &address(part, json!(ok))).await;
        assert_eq!(created["address"][part], ok.as_str());
        refused_post(&app, "/v2/customers", &address(part, json!("x".repeat(201))), "parameter_invalid", &param).await;
        refused_post(&app, "/v2/customers", &address(part, json!("é".repeat(201))), "parameter_invalid", &param).await;
        refused_post(&app, "/v2/customers", &address(part, json!(1)), "parameter_invalid", &param).await;
        refused_post(&app, "/v2/customers", &address(part, json!({})), "parameter_invalid", &param).await;
    }
    assert_eq!(app.v1_total(&app.token).await, parts.len() as u64);
}

#[tokio::test]
async fn address_country_is_an_assigned_alpha_2_code_in_capitals_or_null() {
    let app = TestApp::spawn().await;
    for bad in [
        json!("gb"),
        json!("Gb"),
        json!("GBR"),
        json!("XX"),
        json!("UK"),
        json!("G"),
        json!(""),
        json!(" GB"),
        json!(826),
    ] {
        refused_post(&app, "/v2/customers", &address("country", bad), "parameter_invalid", "address.country").await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
    for good in ["GB", "US", "FR", "ZW"] {
        let created = app.create_at("/v2/customers", &address("country", json!(good))).await;
        assert_eq!(created["address"]["country"], good);
    }
    let created = app.create_at("/v2/customers", &address("country", Value::Null)).await;
    assert_eq!(created["address"]["country"], Value::Null);
    let created = app.create_at("/v2/customers", &address("city", json!("London"))).await;
    assert_eq!(created["address"]["country"], Value::Null);
    assert_eq!(created["address"]["city"], "London");
}

#[tokio::test]
async fn metadata_must_be_an_object() {
    let app = TestApp::spawn().await;
    for value in [json!([]), json!(["a", "b"]), json!("crm=1"), json!(1), json!(true)] {
        refused_post(&app, "/v2/customers", &with("metadata", value), "parameter_invalid", "metadata").await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
    let created = app.create_at("/v2/customers", &with("metadata", json!({}))).await;
    assert_eq!(created["metadata"], json!({}));
    // Not spelled out by API.md: null is taken as "no metadata", like an omitted field.
    let created = app.create_at("/v2/customers", &with("metadata", Value::Null)).await;
    assert_eq!(created["metadata"], json!({}));
}

#[tokio::test]
async fn metadata_values_must_be_strings() {
    let app = TestApp::spawn().await;
    for value in [json!(1), json!(true), Value::Null, json!({"a": "b"}), json!(["a"])] {
        let body = with("metadata", json!({"crm_id": value}));
        refused_post(&app, "/v2/customers", &body, "parameter_invalid", "metadata.crm_id").await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn metadata_holds_at_most_50_keys() {
    let app = TestApp::spawn().await;
    let fifty = metadata_of((0..50).map(|n| (format!("key{n:02}"), format!("value{n}"))));
    let created = app.create_at("/v2/customers", &with("metadata", fifty.clone())).await;
    assert_eq!(created["metadata"], fifty);
    let fifty_one = metadata_of((0..51).map(|n| (format!("key{n:02}"), format!("value{n}"))));
    refused_post(&app, "/v2/customers", &with("metadata", fifty_one), "parameter_invalid", "metadata").await;
    assert_eq!(app.v1_total(&app.token).await, 1);
}

#[tokio::test]
async fn metadata_keys_are_1_to_40_characters() {
    let app = TestApp::spawn().await;
    for key in ["k".repeat(40), "é".repeat(40), "k".to_owned()] {
        let metadata = metadata_of([(key.clone(), "v".to_owned())]);
        let created = app.create_at("/v2/customers", &with("metadata", metadata.clone())).await;
        assert_eq!(created["metadata"], metadata);
    }
    for key in ["k".repeat(41), "é".repeat(41)] {
        let body = with("metadata", metadata_of([(key.clone(), "v".to_owned())]));
        refused_post(&app, "/v2/customers", &body, "parameter_invalid", &format!("metadata.{key}")).await;
    }
    // The empty key's dotted path is `metadata.` (API.md does not spell this case out).
    let body = with("metadata", json!({"": "v"}));
    refused_post(&app, "/v2/customers", &body, "parameter_invalid", "metadata.").await;
    assert_eq!(app.v1_total(&app.token).await, 3);
}

#[tokio::test]
async fn metadata_values_are_at_most_500_characters() {
    let app = TestApp::spawn().await;
    for value in ["v".repeat(500), "é".repeat(500), String::new()] {
        let metadata = metadata_of([("note".to_owned(), value)]);
        let created = app.create_at("/v2/customers", &with("metadata", metadata.clone())).await;
        assert_eq!(created["metadata"], metadata);
    }
    for value in ["v".repeat(501), "é".repeat(501)] {
        let body = with("metadata", metadata_of([("note".to_owned(), value)]));
        refused_post(&app, "/v2/customers", &body, "parameter_invalid", "metadata.note").await;
    }
    assert_eq!(app.v1_total(&app.token).await, 3);
}

#[tokio::test]
async fn v1_bodies_with_v2_only_fields_are_refused_by_name() {
    let app = TestApp::spawn().await;
    let cases = [
        ("address", json!({"city": "London"})),
        ("address", Value::Null),
        ("metadata", json!({"crm_id": "8812"})),
        ("metadata", json!({})),
        ("version", json!(1)),
        ("created", json!(1764326000)),
        ("id", json!("cus_1")),
    ];
    for (field, value) in &cases {
        refused_post(&app, "/v1/customers", &with(field, value.clone()), "parameter_unknown", field).await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);

    let created = app.create_at("/v1/customers", &with("phone", json!("1"))).await;
    let path = format!("/v1/customers/{}", created["id"].as_str().unwrap());
    for (field, value) in cases {
        refused(&app, Method::PUT, &path, &with(field, value), "parameter_unknown", field).await;
    }
    let response = app.get(&path).await;
    assert_eq!(response.json::<Value>().await.unwrap(), created, "refused PUTs change nothing");
}

#[tokio::test]
async fn v2_bodies_with_unknown_fields_are_refused_by_name() {
    let app = TestApp::spawn().await;
    for field in ["nickname", "id", "version", "created_at", "Name"] {
        refused_post(&app, "/v2/customers", &with(field, json!("x")), "parameter_unknown", field).await;
    }
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn the_first_bad_field_is_the_one_reported() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({}), "parameter_missing", "name"),
        (json!({"name": "Ada"}), "parameter_missing", "email"),
        (json!({"name": " ", "email": "nope"}), "parameter_invalid", "name"),
        (json!({"email": "nope", "phone": "call me"}), "parameter_missing", "name"),
        (json!({"name": "Ada", "email": "nope", "phone": "call me"}), "parameter_invalid", "email"),
        (json!({"name": "Ada", "email": "a@b.co", "phone": "call me", "address": 5}), "parameter_invalid", "phone"),
        (
            json!({"name": "Ada", "email": "a@b.co", "address": {"country": "gb"}, "metadata": []}),
            "parameter_invalid",
            "address.country",
        ),
        (
            json!({"name": "Ada", "email": "a@b.co", "address": {"line1": "x".repeat(201), "country": "gb"}}),
            "parameter_invalid",
            "address.line1",
        ),
        (json!({"name": "Ada", "email": "a@b.co", "metadata": {"k": 1}}), "parameter_invalid", "metadata.k"),
    ];
    for (body, code, param) in &cases {
        refused_post(&app, "/v2/customers", body, code, param).await;
    }
    for (body, code, param) in &cases[..5] {
        refused_post(&app, "/v1/customers", body, code, param).await;
    }
    // Unknown fields are refused before any rule is checked, as the server reads the body.
    let body = json!({"name": "", "email": "nope", "nickname": "Ada"});
    refused_post(&app, "/v2/customers", &body, "parameter_unknown", "nickname").await;
    assert_eq!(app.v1_total(&app.token).await, 0);
}

#[tokio::test]
async fn replacements_are_validated_like_creations() {
    let app = TestApp::spawn().await;
    let created = app.create_at("/v2/customers", &without("phone")).await;
    let id = created["id"].as_str().unwrap();
    let v1 = format!("/v1/customers/{id}");
    let v2 = format!("/v2/customers/{id}");
    refused(&app, Method::PUT, &v2, &json!({}), "parameter_missing", "name").await;
    refused(&app, Method::PUT, &v1, &json!({"name": "Ada"}), "parameter_missing", "email").await;
    refused(&app, Method::PUT, &v1, &with("name", json!("é".repeat(257))), "parameter_invalid", "name").await;
    refused(&app, Method::PUT, &v2, &with("email", json!("ada@example")), "parameter_invalid", "email").await;
    refused(&app, Method::PUT, &v1, &with("phone", json!("555-CALL-NOW")), "parameter_invalid", "phone").await;
    refused(&app, Method::PUT, &v2, &address("country", json!("gb")), "parameter_invalid", "address.country").await;
    refused(&app, Method::PUT, &v2, &address("zip", json!("1")), "parameter_unknown", "address.zip").await;
    let body = with("metadata", json!({"k": "v".repeat(501)}));
    refused(&app, Method::PUT, &v2, &body, "parameter_invalid", "metadata.k").await;
    let response = app.get(&v2).await;
    assert_eq!(response.json::<Value>().await.unwrap(), created);
}

#[tokio::test]
async fn invalid_writes_change_nothing() {
    let app = TestApp::spawn().await;
    let original = app
        .create_at(
            "/v2/customers",
            &json!({"name": "Ada", "email": "ada@example.com", "phone": "555",
                "address": {"line1": "12 St James's Sq", "city": "London", "country": "GB"},
                "metadata": {"crm_id": "8812"}}),
        )
        .await;
    let id = original["id"].as_str().unwrap();
    let v1 = format!("/v1/customers/{id}");
    let v2 = format!("/v2/customers/{id}");

    let too_many = metadata_of((0..51).map(|n| (format!("k{n}"), "v".to_owned())));
    let bad_v2 = [
        (json!({"name": "New", "email": "new@example.com", "address": {"country": "XX"}}), "address.country"),
        (json!({"name": "New", "email": "new@example.com", "metadata": too_many}), "metadata"),
        (json!({"name": "New", "email": "new@example.com", "phone": "abc"}), "phone"),
        (json!({"email": "new@example.com"}), "name"),
    ];
    for (body, param) in &bad_v2 {
        let response = send(&app, Method::PUT, &v2, body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], *param);
    }
    refused(&app, Method::PUT, &v1, &json!({"name": "New", "email": "new@"}), "parameter_invalid", "email").await;
    let body = json!({"name": "New", "email": "new@example.com", "metadata": {}});
    refused(&app, Method::PUT, &v1, &body, "parameter_unknown", "metadata").await;

    let response = app.get(&v2).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("etag").unwrap(), "\"1\"", "the version did not move");
    assert_eq!(response.json::<Value>().await.unwrap(), original, "nothing was written");
    assert_eq!(app.v1_total(&app.token).await, 1);
}
