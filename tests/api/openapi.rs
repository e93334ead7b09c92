//! The OpenAPI documents and the docs page (API.md §6): served without a token,
//! equal to the committed `openapi/v1.json` and `openapi/v2.json`, and
//! describing what the contract says each version does.
//!
//! After a deliberate API change, regenerate the committed documents with
//! `CLIENTELE_UPDATE_OPENAPI=1 cargo nextest run --test api openapi::` and review the diff.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{TestApp, assert_error, header};

const OPERATIONS: [(&str, &str, &str); 5] = [
    ("/customers", "post", "createCustomer"),
    ("/customers", "get", "listCustomers"),
    ("/customers/{id}", "get", "getCustomer"),
    ("/customers/{id}", "put", "replaceCustomer"),
    ("/customers/{id}", "delete", "deleteCustomer"),
];

const ERROR_CODES: [&str; 22] = [
    "body_invalid_json",
    "parameter_missing",
    "parameter_invalid",
    "parameter_unknown",
    "token_missing",
    "token_invalid",
    "token_expired",
    "scope_insufficient",
    "resource_not_found",
    "route_not_found",
    "method_not_allowed",
    "request_timeout",
    "idempotency_request_in_progress",
    "precondition_failed",
    "body_too_large",
    "uri_too_long",
    "unsupported_media_type",
    "idempotency_key_reused",
    "rate_limited",
    "headers_too_large",
    "internal_error",
    "service_unavailable",
];

fn committed_path(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi").join(format!("{version}.json"))
}

/// Fetches a document without a token, checking how it is served.
async fn served(app: &TestApp, version: &str) -> String {
    let response = app.client.get(app.url(&format!("/{version}/openapi.json"))).send().await.unwrap();
    assert_eq!(response.status(), 200, "{version} document without a token");
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert!(header(&response, "x-request-id").is_some());
    response.text().await.unwrap()
}

async fn documents() -> (Value, Value) {
    let app = TestApp::spawn().await;
    let v1 = serde_json::from_str(&served(&app, "v1").await).unwrap();
    let v2 = serde_json::from_str(&served(&app, "v2").await).unwrap();
    (v1, v2)
}

#[tokio::test]
async fn served_documents_equal_the_committed_ones() {
    let app = TestApp::spawn().await;
    let update = std::env::var_os("CLIENTELE_UPDATE_OPENAPI").is_some_and(|value| value == "1");
    for version in ["v1", "v2"] {
        let served = served(&app, version).await;
        let path = committed_path(version);
        if update {
            std::fs::write(&path, &served).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            served == committed,
            "the served {version} document differs from {}: the API changed. If that is deliberate, \
             regenerate the committed documents with `CLIENTELE_UPDATE_OPENAPI=1 cargo nextest run --test api openapi::` \
             and review the diff (a change within a version must not break existing clients).",
            path.display()
        );
    }
}

#[tokio::test]
async fn documents_need_no_token_but_customers_do() {
    let app = TestApp::spawn().await;
    for version in ["v1", "v2"] {
        served(&app, version).await;
        let response = app.client.get(app.url(&format!("/{version}/customers"))).send().await.unwrap();
        assert_error(response, 401, "token_missing").await;
        // The document routes do not open anything else under the version prefix.
        let response = app.client.get(app.url(&format!("/{version}/openapi.yaml"))).send().await.unwrap();
        assert_error(response, 401, "token_missing").await;
    }
    // A token does not get in the way either.
    let response = app.get("/v2/openapi.json").await;
    assert_eq!(response.status(), 200);
}

fn operation<'a>(doc: &'a Value, version: &str, path: &str, method: &str) -> &'a Value {
    let operation = &doc["paths"][format!("/{version}{path}")][method];
    assert!(operation.is_object(), "{version}: {method} {path} is documented");
    operation
}

fn parameter_names(operation: &Value) -> Vec<(&str, &str)> {
    operation["parameters"]
        .as_array()
        .map(|parameters| parameters.iter().map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap())).collect())
        .unwrap_or_default()
}

/// The statuses an operation documents, with the response (resolving a `$ref`).
fn responses<'a>(doc: &'a Value, operation: &'a Value) -> Vec<(&'a str, &'a Value)> {
    let mut list = Vec::new();
    for (status, response) in operation["responses"].as_object().unwrap() {
        let resolved = match response["$ref"].as_str() {
            Some(reference) => {
                let name = reference.strip_prefix("#/components/responses/").expect("a response reference");
                &doc["components"]["responses"][name]
            }
            None => response,
        };
        assert!(resolved.is_object(), "{status} resolves");
        list.push((status.as_str(), resolved));
    }
    list
}

fn statuses<'a>(doc: &'a Value, operation: &'a Value) -> Vec<&'a str> {
    responses(doc, operation).into_iter().map(|(status, _)| status).collect()
}

fn response_headers<'a>(doc: &'a Value, operation: &'a Value, status: &str) -> Vec<&'a str> {
    let (_, response) = responses(doc, operation).into_iter().find(|(s, _)| *s == status).expect("status");
    response["headers"].as_object().map(|h| h.keys().map(String::as_str).collect()).unwrap_or_default()
}

#[tokio::test]
async fn each_document_describes_its_version() {
    let (v1, v2) = documents().await;
    for (version, doc) in [("v1", &v1), ("v2", &v2)] {
        assert_eq!(doc["openapi"], "3.1.0");
        // Exactly the five operations, all under this version.
        let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        // v2 also has `GET /v2/token`, events and webhook endpoints (API.md §8).
        assert_eq!(paths.len(), if version == "v1" { 2 } else { 7 }, "{version}: {paths:?}");
        assert!(paths.iter().all(|path| path.starts_with(&format!("/{version}/"))), "{version}: {paths:?}");
        for (path, method, operation_id) in OPERATIONS {
            let op = operation(doc, version, path, method);
            assert_eq!(op["operationId"], operation_id);
            let all = statuses(doc, op);
            for status in ["401", "414", "429", "431", "500", "503"] {
                assert!(all.contains(&status), "{version} {operation_id} documents {status}: {all:?}");
            }
            assert!(parameter_names(op).contains(&("X-Request-Id", "header")), "{version} {operation_id}");
            for (status, response) in responses(doc, op) {
                let headers = response["headers"].as_object().expect("headers");
                assert!(headers.contains_key("X-Request-Id"), "{version} {operation_id} {status}");
                // 401 comes before the rate limit; 414 and 431 before authentication.
                if !["401", "414", "431"].contains(&status) {
                    for name in ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"] {
                        assert!(headers.contains_key(name), "{version} {operation_id} {status} {name}");
                    }
                }
                if status.starts_with(['4', '5']) {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
                        "{version} {operation_id} {status}"
                    );
                }
            }
            if method != "get" {
                assert!(all.contains(&"403"), "{version} {operation_id}: a read token cannot write");
            }
            if path.contains("{id}") {
                assert!(all.contains(&"404"), "{version} {operation_id}");
            }
        }
        let create = operation(doc, version, "/customers", "post");
        assert!(parameter_names(create).contains(&("Idempotency-Key", "header")));
        for status in ["201", "400", "409", "413", "415", "422"] {
            assert!(statuses(doc, create).contains(&status), "{version} create {status}");
        }
        let created = response_headers(doc, create, "201");
        assert!(created.contains(&"Location") && created.contains(&"Idempotent-Replayed"), "{created:?}");
        for status in ["429", "503"] {
            assert!(response_headers(doc, create, status).contains(&"Retry-After"), "{version} {status}");
        }
        assert!(response_headers(doc, create, "401").contains(&"WWW-Authenticate"));

        // The security scheme, required everywhere.
        let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
        assert_eq!((&scheme["type"], &scheme["scheme"]), (&Value::from("http"), &Value::from("bearer")));
        assert_eq!(doc["security"], serde_json::json!([{"bearerAuth": []}]));

        // The error envelope and every code: an open set, the known codes listed apart (API.md §4).
        let code = &doc["components"]["schemas"]["ErrorCode"]["anyOf"];
        assert_eq!(code[0]["$ref"], "#/components/schemas/KnownErrorCode", "{version}");
        assert_eq!(code[1]["type"], "string", "{version}: any other string is a code too");
        let codes: Vec<&str> = doc["components"]["schemas"]["KnownErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap())
            .collect();
        assert_eq!(codes, ERROR_CODES);
        let detail = &doc["components"]["schemas"]["ErrorDetail"];
        let mut required: Vec<&str> =
            detail["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        required.sort_unstable();
        assert_eq!(required, ["code", "message", "request_id", "type"]);

        // Request bodies refuse unknown fields, as the server does.
        let input = &doc["components"]["schemas"]["CustomerInput"];
        assert_eq!(input["additionalProperties"], false, "{version}");
        assert_eq!(input["required"], serde_json::json!(["name", "email"]), "{version}");
        let list = operation(doc, version, "/customers", "get");
        let limit = list["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!((&limit["schema"]["minimum"], &limit["schema"]["maximum"]), (&Value::from(1), &Value::from(100)));
    }

    // v1 is the narrow view: none of v2's fields or parameters; the conditional headers are both's (API.md §3).
    let mut v1_names = Vec::new();
    names(&v1, &mut v1_names);
    for v2_only in ["metadata", "address", "starting_after", "created_at"] {
        assert!(!v1_names.contains(&v2_only), "v1 has {v2_only}");
    }
    for both in ["If-Match", "If-None-Match", "ETag"] {
        assert!(v1_names.contains(&both), "v1 has {both}");
    }
    let mut v2_names = Vec::new();
    names(&v2, &mut v2_names);
    for name in ["metadata", "address", "country", "If-Match", "If-None-Match", "starting_after", "ETag", "Link"] {
        assert!(v2_names.contains(&name), "v2 has {name}");
    }
    let customer_v1 = &v1["components"]["schemas"]["Customer"]["properties"];
    assert_eq!(crate::support::keys(customer_v1), ["created", "email", "id", "name", "phone", "updated"]);
    assert!(operation(&v1, "v1", "/customers", "get")["parameters"].to_string().contains("\"offset\""));

    // v2: ETags, conditional requests, cursor paging, the full model.
    let get = operation(&v2, "v2", "/customers/{id}", "get");
    assert!(parameter_names(get).contains(&("If-None-Match", "header")));
    assert!(response_headers(&v2, get, "200").contains(&"ETag"));
    assert!(response_headers(&v2, get, "304").contains(&"ETag"));
    for method in ["put", "delete"] {
        let op = operation(&v2, "v2", "/customers/{id}", method);
        assert!(parameter_names(op).contains(&("If-Match", "header")), "{method}");
        assert!(statuses(&v2, op).contains(&"412"), "{method}");
    }
    assert!(response_headers(&v2, operation(&v2, "v2", "/customers", "post"), "201").contains(&"ETag"));
    let list = operation(&v2, "v2", "/customers", "get");
    assert!(response_headers(&v2, list, "200").contains(&"Link"));
    let names: Vec<&str> = parameter_names(list).into_iter().map(|(name, _)| name).collect();
    assert!(names.contains(&"starting_after") && names.contains(&"email") && !names.contains(&"offset"));
    let customer_v2 = &v2["components"]["schemas"]["Customer"]["properties"];
    assert_eq!(
        crate::support::keys(customer_v2),
        ["address", "created_at", "email", "id", "metadata", "name", "phone", "updated_at", "version"]
    );
    let countries = v2["components"]["schemas"]["CountryCode"]["enum"].as_array().unwrap();
    assert_eq!(countries.len(), 249);
    assert!(countries.contains(&Value::from("GB")) && !countries.contains(&Value::from("UK")));
    let metadata = &v2["components"]["schemas"]["CustomerInput"]["properties"]["metadata"];
    assert_eq!(metadata["maxProperties"], 50);
    assert_eq!(metadata["propertyNames"]["maxLength"], 40);
    assert_eq!(metadata["additionalProperties"]["maxLength"], 500);
}

/// Every property, parameter and header name in a document.
fn names<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                if key == "properties" || key == "headers" {
                    found.extend(child.as_object().into_iter().flat_map(|o| o.keys().map(String::as_str)));
                }
                if key == "parameters" {
                    found.extend(child.as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()));
                }
                names(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| names(item, found)),
        _ => {}
    }
}

/// Patterns use only what ECMA-262 and Python's `re` read alike.
#[tokio::test]
async fn patterns_avoid_engine_specific_classes() {
    let (v1, v2) = documents().await;
    for doc in [v1, v2] {
        let text = doc.to_string();
        for class in [r"\\s", r"\\S", r"\\d", r"\\D", r"\\w", r"\\W", r"\\p{", r"\\b", "(?i)", "(?<"] {
            assert!(!text.contains(class), "a pattern uses {class}");
        }
    }
}

#[tokio::test]
async fn docs_page_and_assets_are_served_without_a_token() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200, "/docs redirects to the page");
    assert_eq!(response.url().path(), "/docs/");
    assert!(header(&response, "content-type").unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://unpkg") && !page.contains("cdn"), "no CDN: {page}");

    let initializer = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap();
    assert_eq!(initializer.status(), 200);
    let initializer = initializer.text().await.unwrap();
    for expected in ["/v1/openapi.json", "/v2/openapi.json", "\"validatorUrl\": \"none\"", "persistAuthorization"] {
        assert!(initializer.contains(expected), "{expected} in {initializer}");
    }

    let bundle = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let css = app.client.get(app.url("/docs/swagger-ui.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(header(&css, "content-type").unwrap().starts_with("text/css"));

    let missing = app.client.get(app.url("/docs/no-such-asset.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
