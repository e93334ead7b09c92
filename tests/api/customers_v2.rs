//! v2 customers over HTTP: the full representation, ETags and versions, full replacement, and cursor paging with `Link`.

use reqwest::{Response, Url};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, body, header, id_of, keys, now, unix_of};

const V2_KEYS: [&str; 9] =
    ["address", "created_at", "email", "id", "metadata", "name", "phone", "updated_at", "version"];
const ADDRESS_KEYS: [&str; 6] = ["city", "country", "line1", "line2", "postal_code", "region"];

/// `2026-11-28T10:32:53Z`: `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`.
fn is_rfc3339_utc_seconds(text: &str) -> bool {
    text.len() == 20
        && text.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            10 => byte == b'T',
            13 | 16 => byte == b':',
            19 => byte == b'Z',
            _ => byte.is_ascii_digit(),
        })
}

async fn create_n(app: &TestApp, count: usize) -> Vec<String> {
    app.create_many("/v2/customers", count).await.iter().map(id_of).collect()
}

/// The target of `Link: <...>; rel="next"`, if present.
fn next_link(response: &Response) -> Option<String> {
    let link = header(response, "link")?;
    let (target, rest) = link.strip_prefix('<').and_then(|rest| rest.split_once('>')).expect("Link: <target>; ...");
    assert_eq!(rest, "; rel=\"next\"", "Link: {link}");
    assert!(target.starts_with("/v2/customers?"), "Link target: {target}");
    Some(target.to_owned())
}

/// The query of a link target, sorted by name.
fn query_of(app: &TestApp, target: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Url::parse(&app.url(target)).unwrap().query_pairs().into_owned().collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pairs.sort();
    pairs
}

struct Page {
    ids: Vec<String>,
    has_more: bool,
    next: Option<String>,
}

async fn page(app: &TestApp, path: &str) -> Page {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    let next = next_link(&response);
    let list = body(response).await;
    assert_eq!(keys(&list), ["data", "has_more"], "GET {path}: {list}");
    let has_more = list["has_more"].as_bool().expect("has_more is a bool");
    assert_eq!(has_more, next.is_some(), "Link present iff has_more, GET {path}");
    let ids = list["data"].as_array().expect("data").iter().map(id_of).collect();
    Page { ids, has_more, next }
}

/// Follows `Link` from `path` to the end, returning every page's ids.
async fn walk(app: &TestApp, path: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        assert!(pages.len() < 100, "paging does not end");
        let page = page(app, &path).await;
        pages.push(page.ids);
        next = page.next;
    }
    pages
}

#[tokio::test]
async fn post_answers_201_with_exactly_the_v2_fields_location_and_etag() {
    let app = TestApp::spawn().await;
    let before = now();
    let response = app
        .post_json(
            "/v2/customers",
            &json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958",
                    "address": {"line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
                    "metadata": {"crm_id": "8812"}}),
        )
        .await;
    let after = now();
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "etag"), Some("\"1\""));
    let location = header(&response, "location").expect("Location").to_owned();
    let created = body(response).await;
    assert_eq!(keys(&created), V2_KEYS, "body: {created}");
    let id = id_of(&created);
    assert!(id.starts_with("cus_") && id.len() > 4, "id: {id}");
    assert_eq!(location, format!("/v2/customers/{id}"));
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(created["email"], "ada@example.com");
    assert_eq!(created["phone"], "+44 20 7946 0958");
    assert_eq!(keys(&created["address"]), ADDRESS_KEYS);
    assert_eq!(
        created["address"],
        json!({"line1": "12 St James's Sq", "line2": null, "city": "London",
               "region": null, "postal_code": "SW1Y 4JH", "country": "GB"})
    );
    assert_eq!(created["metadata"], json!({"crm_id": "8812"}));
    assert_eq!(created["version"], 1);
    let created_at = created["created_at"].as_str().expect("created_at is a string");
    assert!(is_rfc3339_utc_seconds(created_at), "created_at: {created_at}");
    assert_eq!(created["updated_at"], created_at, "updated_at equals created_at on creation");
    let stamp = unix_of(created_at);
    assert!((before..=after).contains(&stamp), "created_at {created_at} not between {before} and {after}");
}

#[tokio::test]
async fn post_defaults_address_to_null_and_metadata_to_empty() {
    let app = TestApp::spawn().await;
    let created = app.create_at("/v2/customers", &json!({"name": "Grace", "email": "grace@example.com"})).await;
    assert_eq!(keys(&created), V2_KEYS);
    assert_eq!(created["phone"], Value::Null);
    assert_eq!(created["address"], Value::Null);
    assert_eq!(created["metadata"], json!({}));

    let explicit = app
        .create_at("/v2/customers", &json!({"name": "G", "email": "g@example.com", "phone": null, "address": null}))
        .await;
    assert_eq!((&explicit["phone"], &explicit["address"]), (&Value::Null, &Value::Null));
    assert_eq!(explicit["metadata"], json!({}));

    let empty_address =
        app.create_at("/v2/customers", &json!({"name": "G", "email": "g@example.com", "address": {}})).await;
    assert_eq!(
        empty_address["address"],
        json!({"line1": null, "line2": null, "city": null, "region": null, "postal_code": null, "country": null}),
        "an address object always has its six keys"
    );
}

#[tokio::test]
async fn get_answers_200_with_the_body_and_etag() {
    let app = TestApp::spawn().await;
    let created = app
        .create_at(
            "/v2/customers",
            &json!({"name": "Ada", "email": "ada@example.com", "address": {"country": "FR"}, "metadata": {"k": "v"}}),
        )
        .await;
    let response = app.get(&format!("/v2/customers/{}", id_of(&created))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag"), Some("\"1\""));
    assert_eq!(body(response).await, created);
}

#[tokio::test]
async fn version_grows_by_one_on_every_write_from_either_version() {
    let app = TestApp::spawn().await;
    let created = app.create_at("/v2/customers", &json!({"name": "Ada", "email": "ada@example.com"})).await;
    let id = id_of(&created);
    let path = format!("/v2/customers/{id}");
    let write = json!({"name": "Ada", "email": "ada@example.com"});

    let response = app.put_json(&path, &write).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "etag"), Some("\"2\""));
    let second = body(response).await;
    assert_eq!(second["version"], 2);

    let response = app.put_json(&format!("/v1/customers/{id}"), &write).await;
    assert_eq!(response.status(), 200);

    let response = app.get(&path).await;
    assert_eq!(header(&response, "etag"), Some("\"3\""));
    assert_eq!(body(response).await["version"], 3, "a v1 write counts");

    let response = app.put_json(&path, &write).await;
    assert_eq!(header(&response, "etag"), Some("\"4\""));
    let fourth = body(response).await;
    assert_eq!(fourth["version"], 4);
    assert_eq!(fourth["created_at"], created["created_at"], "created_at never changes");
    let updated_at = fourth["updated_at"].as_str().unwrap();
    assert!(is_rfc3339_utc_seconds(updated_at), "updated_at: {updated_at}");
    assert!(unix_of(updated_at) >= unix_of(created["created_at"].as_str().unwrap()));

    let response = app.get(&path).await;
    assert_eq!(header(&response, "etag"), Some("\"4\""), "reads do not bump the version");
    assert_eq!(body(response).await["version"], 4);
}

#[tokio::test]
async fn put_is_a_full_replacement() {
    let app = TestApp::spawn().await;
    let created = app
        .create_at(
            "/v2/customers",
            &json!({"name": "Ada", "email": "ada@example.com", "phone": "555",
               "address": {"line1": "1 Road", "city": "London", "country": "GB"}, "metadata": {"a": "1", "b": "2"}}),
        )
        .await;
    let id = id_of(&created);
    let path = format!("/v2/customers/{id}");

    let response = app
        .put_json(
            &path,
            &json!({"name": "Ada", "email": "ada@example.com", "address": {"country": "FR"}, "metadata": {"c": "3"}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let replaced = body(response).await;
    assert_eq!(keys(&replaced), V2_KEYS);
    assert_eq!(replaced["phone"], Value::Null, "omitted phone becomes null");
    assert_eq!(
        replaced["address"],
        json!({"line1": null, "line2": null, "city": null, "region": null, "postal_code": null, "country": "FR"}),
        "the address is replaced, not merged"
    );
    assert_eq!(replaced["metadata"], json!({"c": "3"}), "metadata is replaced, not merged");

    let response = app.put_json(&path, &json!({"name": "Ada K", "email": "ak@example.org"})).await;
    assert_eq!(response.status(), 200);
    let bare = body(response).await;
    assert_eq!(bare["address"], Value::Null, "omitted address becomes null");
    assert_eq!(bare["metadata"], json!({}), "omitted metadata becomes {{}}");
    assert_eq!(
        (&bare["name"], &bare["email"], &bare["version"]),
        (&json!("Ada K"), &json!("ak@example.org"), &json!(3))
    );
    assert_eq!(bare["id"], id.as_str());
    assert_eq!(body(app.get(&path).await).await, bare, "the replacement is stored");
}

#[tokio::test]
async fn put_and_delete_of_an_unknown_id_are_404() {
    let app = TestApp::spawn().await;
    for id in ["cus_01JD0000000000000000000000", "whatever"] {
        let response =
            app.put_json(&format!("/v2/customers/{id}"), &json!({"name": "A", "email": "a@example.com"})).await;
        assert_error(response, 404, "resource_not_found").await;
        assert_error(app.delete(&format!("/v2/customers/{id}")).await, 404, "resource_not_found").await;
        assert_error(app.get(&format!("/v2/customers/{id}")).await, 404, "resource_not_found").await;
    }
    assert_eq!(page(&app, "/v2/customers").await.ids, Vec::<String>::new(), "nothing was created");
}

#[tokio::test]
async fn delete_answers_204_and_later_reads_404() {
    let app = TestApp::spawn().await;
    let ids = create_n(&app, 2).await;
    let response = app.delete(&format!("/v2/customers/{}", ids[0])).await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_error(app.get(&format!("/v2/customers/{}", ids[0])).await, 404, "resource_not_found").await;
    assert_error(app.get(&format!("/v1/customers/{}", ids[0])).await, 404, "resource_not_found").await;
    assert_error(app.delete(&format!("/v2/customers/{}", ids[0])).await, 404, "resource_not_found").await;
    assert_eq!(page(&app, "/v2/customers").await.ids, ids[1..]);
}

#[tokio::test]
async fn list_is_ascending_by_id_with_data_and_has_more() {
    let app = TestApp::spawn().await;
    let empty = app.get("/v2/customers").await;
    assert_eq!(empty.status(), 200);
    assert!(header(&empty, "link").is_none());
    assert_eq!(body(empty).await, json!({"data": [], "has_more": false}));

    let created = app.create_many("/v2/customers", 3).await;
    let response = app.get("/v2/customers").await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "link").is_none(), "no Link without more");
    let list = body(response).await;
    assert_eq!(list, json!({"data": created, "has_more": false}), "full v2 items, ascending by id");
}

#[tokio::test]
async fn list_default_limit_is_20() {
    let app = TestApp::spawn().await;
    let ids = create_n(&app, 21).await;
    let first = page(&app, "/v2/customers").await;
    assert_eq!(first.ids, ids[..20]);
    assert!(first.has_more);
    let next = first.next.unwrap();
    assert_eq!(query_of(&app, &next), pairs(&[("limit", "20"), ("starting_after", &ids[19])]));
    let second = page(&app, &next).await;
    assert_eq!(second.ids, ids[20..]);
    assert!(!second.has_more);
}

#[tokio::test]
async fn link_is_present_exactly_when_there_is_more() {
    let app = TestApp::spawn().await;
    let ids = create_n(&app, 3).await;

    let exact = page(&app, "/v2/customers?limit=3").await;
    assert_eq!(exact.ids, ids);
    assert!(!exact.has_more, "a page that holds the rest exactly has no more");

    let first = page(&app, "/v2/customers?limit=2").await;
    assert_eq!(first.ids, ids[..2]);
    assert!(first.has_more);
    let next = first.next.expect("Link");
    assert_eq!(query_of(&app, &next), pairs(&[("limit", "2"), ("starting_after", &ids[1])]));
    let second = page(&app, &next).await;
    assert_eq!(second.ids, ids[2..]);
    assert!(!second.has_more);

    let manual = page(&app, &format!("/v2/customers?limit=1&starting_after={}", ids[0])).await;
    assert_eq!(manual.ids, ids[1..2]);
    assert!(manual.has_more);
    let last = page(&app, &format!("/v2/customers?starting_after={}", ids[2])).await;
    assert!(last.ids.is_empty() && !last.has_more);
}

#[tokio::test]
async fn paging_45_customers_by_10_yields_every_id_once_in_order() {
    let app = TestApp::spawn().await;
    let ids = create_n(&app, 45).await;
    let pages = walk(&app, "/v2/customers?limit=10").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 10, 10, 5]);
    let all: Vec<String> = pages.into_iter().flatten().collect();
    assert_eq!(all, ids, "no gaps, no duplicates, in creation order");
}

#[tokio::test]
async fn starting_after_an_unknown_id_starts_where_it_would_sort() {
    let app = TestApp::spawn().await;
    let ids = create_n(&app, 3).await;
    // Same prefix as ids[0], one character longer: after ids[0], before ids[1].
    let between = format!("{}0", ids[0]);
    assert!(ids[0] < between && between < ids[1]);
    assert_eq!(page(&app, &format!("/v2/customers?starting_after={between}")).await.ids, ids[1..]);
    assert_eq!(page(&app, "/v2/customers?starting_after=cus_").await.ids, ids, "before every id");
    assert_eq!(page(&app, "/v2/customers?starting_after=a").await.ids, ids);
    let after_all = page(&app, "/v2/customers?starting_after=cus_ZZZZZZZZZZZZZZZZZZZZZZZZZZ").await;
    assert!(after_all.ids.is_empty() && !after_all.has_more);

    // A page whose last item was deleted still leads on.
    let first = page(&app, "/v2/customers?limit=1").await;
    assert_eq!(first.ids, ids[..1]);
    let response = app.delete(&format!("/v2/customers/{}", ids[0])).await;
    assert_eq!(response.status(), 204);
    let second = page(&app, &first.next.unwrap()).await;
    assert_eq!(second.ids, ids[1..2]);
}

#[tokio::test]
async fn email_filter_is_exact_and_case_insensitive() {
    let app = TestApp::spawn().await;
    let mut matching = Vec::new();
    let emails = [
        "ada@example.com",
        "ada@example.co",
        "ada@example.com.au",
        "xada@example.com",
        "ada.lovelace@example.com",
        "Ada@EXAMPLE.com",
        "bob@example.com",
        "adb@example.com",
    ];
    for (n, email) in emails.iter().enumerate() {
        let created = app.create_at("/v2/customers", &json!({"name": format!("C{n}"), "email": email})).await;
        if email.eq_ignore_ascii_case("ada@example.com") {
            matching.push(created);
        }
    }
    assert_eq!(matching.len(), 2);
    for query in ["ADA@Example.com", "ada@example.com", "ADA%40EXAMPLE.COM"] {
        let response = app.get(&format!("/v2/customers?email={query}")).await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "link").is_none());
        let list = body(response).await;
        assert_eq!(list, json!({"data": matching, "has_more": false}), "email={query}");
    }
    assert_eq!(matching[1]["email"], "Ada@EXAMPLE.com", "stored as given");
    for query in ["ada@example", "ada", "%25", "ad_@example.com", "ada@example.com%20", "ada%25"] {
        let list = page(&app, &format!("/v2/customers?email={query}")).await;
        assert!(list.ids.is_empty(), "email={query} matched {:?}", list.ids);
    }
}

#[tokio::test]
async fn email_filter_is_carried_in_the_link() {
    let app = TestApp::spawn().await;
    let mut matching = Vec::new();
    for n in 0..7 {
        let email = match n % 3 {
            0 => "ada+tag@example.com",
            1 => "ADA+TAG@example.COM",
            _ => "other@example.com",
        };
        let created = app.create_at("/v2/customers", &json!({"name": format!("C{n}"), "email": email})).await;
        if n % 3 != 2 {
            matching.push(id_of(&created));
        }
    }
    assert_eq!(matching.len(), 5);
    let first = page(&app, "/v2/customers?email=Ada%2BTag%40Example.com&limit=2").await;
    let next = first.next.clone().expect("Link");
    assert_eq!(
        query_of(&app, &next),
        pairs(&[("email", "Ada+Tag@Example.com"), ("limit", "2"), ("starting_after", &matching[1])]),
        "Link: {next}"
    );

    let pages = walk(&app, "/v2/customers?email=Ada%2BTag%40Example.com&limit=2").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), matching, "every page keeps the filter");
}

#[tokio::test]
async fn list_refuses_bad_and_unknown_parameters() {
    let app = TestApp::spawn().await;
    for query in ["limit=0", "limit=101", "limit=-1", "limit=abc", "limit="] {
        let response = app.get(&format!("/v2/customers?{query}")).await;
        assert_eq!(response.status(), 400, "?{query}");
        let error = assert_error(response, 400, "parameter_invalid").await;
        assert_eq!(error["param"], "limit", "?{query}: {error}");
    }
    for (query, param) in
        [("offset=1", "offset"), ("limit=5&page=2", "page"), ("starting_before=cus_1", "starting_before")]
    {
        let response = app.get(&format!("/v2/customers?{query}")).await;
        assert_eq!(response.status(), 400, "?{query}");
        let error = assert_error(response, 400, "parameter_unknown").await;
        assert_eq!(error["param"], param, "?{query}: {error}");
    }
    assert_eq!(page(&app, "/v2/customers?limit=1").await.ids, Vec::<String>::new());
    assert_eq!(page(&app, "/v2/customers?limit=100").await.ids, Vec::<String>::new());
}
