//! v1 customers over HTTP: create, read, replace (keeping v2-only fields), delete, offset paging, and the one record shared with v2.

use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, body, header, id_of, keys, now, unix_of};

const V1_KEYS: [&str; 6] = ["created", "email", "id", "name", "phone", "updated"];

async fn list_ids(app: &TestApp, path: &str) -> Vec<String> {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    body(response).await["data"].as_array().expect("data").iter().map(id_of).collect()
}

#[tokio::test]
async fn post_answers_201_with_exactly_the_v1_fields_and_a_location() {
    let app = TestApp::spawn().await;
    let before = now();
    let response = app
        .post_json(
            "/v1/customers",
            &json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"}),
        )
        .await;
    let after = now();
    assert_eq!(response.status(), 201);
    let location = header(&response, "location").expect("Location").to_owned();
    assert_eq!(header(&response, "etag"), Some("\"1\""), "v1 sends the entity tag too (API.md §3)");
    let created = body(response).await;
    assert_eq!(keys(&created), V1_KEYS, "body: {created}");
    let id = id_of(&created);
    assert!(id.starts_with("cus_") && id.len() > 4, "id: {id}");
    assert_eq!(location, format!("/v1/customers/{id}"));
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(created["email"], "ada@example.com");
    assert_eq!(created["phone"], "+44 20 7946 0958");
    let stamp = created["created"].as_i64().expect("created is an integer");
    assert!((before..=after).contains(&stamp), "created {stamp} not in {before}..={after}");
    assert_eq!(created["updated"].as_i64(), Some(stamp), "updated equals created on creation");
}

#[tokio::test]
async fn post_without_phone_stores_null() {
    let app = TestApp::spawn().await;
    let created = app.create_at("/v1/customers", &json!({"name": "Grace Hopper", "email": "grace@example.com"})).await;
    assert_eq!(keys(&created), V1_KEYS);
    assert_eq!(created["phone"], Value::Null);
    let read = body(app.get(&format!("/v1/customers/{}", id_of(&created))).await).await;
    assert_eq!(read["phone"], Value::Null);
}

#[tokio::test]
async fn get_answers_200_with_the_created_body() {
    let app = TestApp::spawn().await;
    let created =
        app.create_at("/v1/customers", &json!({"name": "Ada", "email": "Ada@Example.com", "phone": "555 0100"})).await;
    let response = app.get(&format!("/v1/customers/{}", id_of(&created))).await;
    assert_eq!(response.status(), 200);
    let read = body(response).await;
    assert_eq!(read, created);
    assert_eq!(read["email"], "Ada@Example.com", "email is stored as given");
}

#[tokio::test]
async fn get_of_an_unknown_id_is_404() {
    let app = TestApp::spawn().await;
    for id in ["cus_01JD0000000000000000000000", "nope", "cus_"] {
        let response = app.get(&format!("/v1/customers/{id}")).await;
        assert_error(response, 404, "resource_not_found").await;
    }
}

#[tokio::test]
async fn put_replaces_name_email_and_phone_and_omitted_phone_becomes_null() {
    let app = TestApp::spawn().await;
    let created =
        app.create_at("/v1/customers", &json!({"name": "Ada", "email": "ada@example.com", "phone": "555 0100"})).await;
    let id = id_of(&created);
    let response =
        app.put_json(&format!("/v1/customers/{id}"), &json!({"name": "Ada King", "email": "ak@example.org"})).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "location").is_none());
    let replaced = body(response).await;
    assert_eq!(keys(&replaced), V1_KEYS, "body: {replaced}");
    assert_eq!(replaced["id"], id.as_str());
    assert_eq!(replaced["name"], "Ada King");
    assert_eq!(replaced["email"], "ak@example.org");
    assert_eq!(replaced["phone"], Value::Null);
    assert_eq!(replaced["created"], created["created"], "created never changes");
    assert!(replaced["updated"].as_i64().unwrap() >= created["updated"].as_i64().unwrap());

    let read = body(app.get(&format!("/v1/customers/{id}")).await).await;
    assert_eq!(read, replaced, "the replacement is stored");

    let response = app
        .put_json(&format!("/v1/customers/{id}"), &json!({"name": "Ada", "email": "ada@example.com", "phone": "(0) 1"}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await["phone"], "(0) 1");
}

#[tokio::test]
async fn put_keeps_the_v2_only_address_and_metadata_and_bumps_the_version() {
    let app = TestApp::spawn().await;
    let address = json!({"line1": "12 St James's Sq", "line2": null, "city": "London",
                         "region": null, "postal_code": "SW1Y 4JH", "country": "GB"});
    let metadata = json!({"crm_id": "8812", "tier": "gold"});
    let response = app
        .post_json(
            "/v2/customers",
            &json!({"name": "Ada", "email": "ada@example.com", "phone": "1", "address": address, "metadata": metadata}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let v2 = body(response).await;
    assert_eq!(v2["version"], 1);
    let id = id_of(&v2);

    let response =
        app.put_json(&format!("/v1/customers/{id}"), &json!({"name": "Ada King", "email": "ak@example.org"})).await;
    assert_eq!(response.status(), 200);
    let v1 = body(response).await;
    assert_eq!(keys(&v1), V1_KEYS, "v1 never shows v2-only fields: {v1}");

    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag"), Some("\"2\""));
    let after = body(response).await;
    assert_eq!(after["address"], address, "address kept");
    assert_eq!(after["metadata"], metadata, "metadata kept");
    assert_eq!(after["name"], "Ada King");
    assert_eq!(after["email"], "ak@example.org");
    assert_eq!(after["phone"], Value::Null);
    assert_eq!(after["version"], 2, "a v1 write bumps the version");
    assert_eq!(after["created_at"], v2["created_at"]);
}

#[tokio::test]
async fn delete_answers_204_and_later_reads_404() {
    let app = TestApp::spawn().await;
    let created = app.create_at("/v1/customers", &json!({"name": "Ada", "email": "ada@example.com"})).await;
    let id = id_of(&created);
    let response = app.delete(&format!("/v1/customers/{id}")).await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty(), "204 has no body");

    assert_error(app.get(&format!("/v1/customers/{id}")).await, 404, "resource_not_found").await;
    assert_error(app.get(&format!("/v2/customers/{id}")).await, 404, "resource_not_found").await;
    assert_error(app.delete(&format!("/v1/customers/{id}")).await, 404, "resource_not_found").await;
    let response =
        app.put_json(&format!("/v1/customers/{id}"), &json!({"name": "Ada", "email": "ada@example.com"})).await;
    assert_error(response, 404, "resource_not_found").await;
    let list = body(app.get("/v1/customers").await).await;
    assert_eq!(list["total"], 0);
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn put_and_delete_of_an_unknown_id_are_404() {
    let app = TestApp::spawn().await;
    let kept = app.create_at("/v1/customers", &json!({"name": "Kept", "email": "kept@example.com"})).await;
    for id in ["cus_01JD0000000000000000000000", "unknown"] {
        let response =
            app.put_json(&format!("/v1/customers/{id}"), &json!({"name": "Ada", "email": "ada@example.com"})).await;
        assert_error(response, 404, "resource_not_found").await;
        assert_error(app.delete(&format!("/v1/customers/{id}")).await, 404, "resource_not_found").await;
    }
    let list = body(app.get("/v1/customers").await).await;
    assert_eq!(list["total"], 1, "a PUT to an unknown id creates nothing");
    assert_eq!(list["data"], json!([kept]));
}

#[tokio::test]
async fn list_is_oldest_first_with_defaults() {
    let app = TestApp::spawn().await;
    let empty = body(app.get("/v1/customers").await).await;
    assert_eq!(empty, json!({"data": [], "total": 0, "limit": 20, "offset": 0}));

    let created = app.create_many("/v1/customers", 3).await;
    let response = app.get("/v1/customers").await;
    assert_eq!(response.status(), 200);
    let list = body(response).await;
    assert_eq!(keys(&list), ["data", "limit", "offset", "total"]);
    assert_eq!(list["total"], 3);
    assert_eq!(list["limit"], 20);
    assert_eq!(list["offset"], 0);
    assert_eq!(list["data"], Value::Array(created), "oldest first, each in its v1 form");
}

#[tokio::test]
async fn list_default_limit_is_20() {
    let app = TestApp::spawn().await;
    let ids: Vec<String> = app.create_many("/v1/customers", 25).await.iter().map(id_of).collect();
    let list = body(app.get("/v1/customers").await).await;
    assert_eq!(list["total"], 25);
    assert_eq!(list["limit"], 20);
    let page: Vec<String> = list["data"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(page, ids[..20]);
    assert_eq!(list_ids(&app, "/v1/customers?offset=20").await, ids[20..]);
}

#[tokio::test]
async fn list_pages_by_limit_and_offset() {
    let app = TestApp::spawn().await;
    let ids: Vec<String> = app.create_many("/v1/customers", 5).await.iter().map(id_of).collect();
    let list = body(app.get("/v1/customers?limit=2&offset=1").await).await;
    assert_eq!((list["total"].as_u64(), list["limit"].as_u64(), list["offset"].as_u64()), (Some(5), Some(2), Some(1)));
    assert_eq!(list_ids(&app, "/v1/customers?limit=2&offset=1").await, ids[1..3]);
    assert_eq!(list_ids(&app, "/v1/customers?offset=3&limit=2").await, ids[3..5]);
    assert_eq!(list_ids(&app, "/v1/customers?limit=2&offset=4").await, ids[4..]);
    assert_eq!(list_ids(&app, "/v1/customers?limit=1").await, ids[..1]);
    assert_eq!(list_ids(&app, "/v1/customers?limit=100").await, ids);
    assert_eq!(list_ids(&app, "/v1/customers?offset=0").await, ids);

    let past_end = body(app.get("/v1/customers?limit=2&offset=5").await).await;
    assert_eq!(past_end, json!({"data": [], "total": 5, "limit": 2, "offset": 5}));
    let far = body(app.get("/v1/customers?offset=1000").await).await;
    assert_eq!(far, json!({"data": [], "total": 5, "limit": 20, "offset": 1000}));
}

#[tokio::test]
async fn list_refuses_out_of_range_parameters() {
    let app = TestApp::spawn().await;
    let cases = [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("limit=10&offset=-1", "offset"),
    ];
    for (query, param) in cases {
        let response = app.get(&format!("/v1/customers?{query}")).await;
        assert_eq!(response.status(), 400, "?{query}");
        let error = assert_error(response, 400, "parameter_invalid").await;
        assert_eq!(error["param"], param, "?{query}: {error}");
    }
}

#[tokio::test]
async fn list_refuses_unknown_query_parameters() {
    let app = TestApp::spawn().await;
    for (query, param) in
        [("page=2", "page"), ("starting_after=cus_1", "starting_after"), ("limit=5&sort=name", "sort")]
    {
        let response = app.get(&format!("/v1/customers?{query}")).await;
        assert_eq!(response.status(), 400, "?{query}");
        let error = assert_error(response, 400, "parameter_unknown").await;
        assert_eq!(error["param"], param, "?{query}: {error}");
    }
}

#[tokio::test]
async fn a_customer_created_in_v1_reads_in_v2_with_the_same_id() {
    let app = TestApp::spawn().await;
    let v1 =
        app.create_at("/v1/customers", &json!({"name": "Ada", "email": "ada@example.com", "phone": "+1 555"})).await;
    let id = id_of(&v1);
    let response = app.get(&format!("/v2/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag"), Some("\"1\""));
    let v2 = body(response).await;
    assert_eq!(v2["id"], id.as_str());
    assert_eq!(v2["name"], "Ada");
    assert_eq!(v2["email"], "ada@example.com");
    assert_eq!(v2["phone"], "+1 555");
    assert_eq!(v2["address"], Value::Null);
    assert_eq!(v2["metadata"], json!({}));
    assert_eq!(v2["version"], 1);
    assert_eq!(unix_of(v2["created_at"].as_str().unwrap()), v1["created"].as_i64().unwrap());
    assert_eq!(unix_of(v2["updated_at"].as_str().unwrap()), v1["updated"].as_i64().unwrap());
    let v2_list = body(app.get("/v2/customers").await).await;
    assert_eq!(v2_list["data"], json!([v2]));
}

#[tokio::test]
async fn a_customer_created_in_v2_reads_in_v1_with_the_same_id() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/v2/customers",
            &json!({"name": "Grace", "email": "grace@example.com", "address": {"city": "Arlington"}, "metadata": {"a": "b"}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let v2 = body(response).await;
    let id = id_of(&v2);
    let response = app.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(response.status(), 200);
    let v1 = body(response).await;
    assert_eq!(keys(&v1), V1_KEYS, "v1 shows only its fields: {v1}");
    assert_eq!(v1["id"], id.as_str());
    assert_eq!(v1["name"], "Grace");
    assert_eq!(v1["email"], "grace@example.com");
    assert_eq!(v1["phone"], Value::Null);
    assert_eq!(v1["created"].as_i64().unwrap(), unix_of(v2["created_at"].as_str().unwrap()));
    assert_eq!(v1["updated"].as_i64().unwrap(), unix_of(v2["updated_at"].as_str().unwrap()));
    let v1_list = body(app.get("/v1/customers").await).await;
    assert_eq!(v1_list["total"], 1);
    assert_eq!(v1_list["data"], json!([v1]));
}

#[tokio::test]
async fn ids_start_with_cus_and_sort_by_creation_time_across_versions() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let path = if n % 2 == 0 { "/v1/customers" } else { "/v2/customers" };
        let response =
            app.post_json(path, &json!({"name": format!("C{n}"), "email": format!("c{n}@example.com")})).await;
        assert_eq!(response.status(), 201);
        ids.push(id_of(&body(response).await));
    }
    assert!(ids.iter().all(|id| id.starts_with("cus_")), "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids are unique and sort in creation order");
    assert_eq!(list_ids(&app, "/v1/customers").await, ids, "v1 lists oldest first");
    assert_eq!(list_ids(&app, "/v2/customers").await, ids, "v2 lists by id");
}
