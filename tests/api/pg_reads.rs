//! Reads by id on PostgreSQL are grouped (`storage/postgres/reader.rs`): many
//! concurrent GETs share statements, and each still gets exactly its own
//! answer, across accounts, for missing ids and for another account's ids.

/// Needs PostgreSQL: skipped by the default nextest profile.
mod needs_postgres {
    use std::sync::Arc;

    use clientele::config::ServerConfig;
    use clientele::domain::Scope;
    use clientele::ratelimit::{RateLimit, RateLimiter};
    use clientele::storage::SharedStore;
    use clientele::storage::postgres::PostgresStore;
    use futures_util::future::join_all;
    use reqwest::Method;
    use serde_json::{Value, json};

    use crate::support::database::TestDatabase;
    use crate::support::{TestApp, body, id_of};

    /// Concurrent GETs a round sends; the reader's batches form from these.
    const GETS_PER_ROUND: usize = 240;
    /// Rounds tried for a statement answering more than one read: batching
    /// that never happens fails them all.
    const ROUNDS: usize = 3;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_gets_share_statements_and_each_gets_its_own_customer() {
        let database = TestDatabase::postgres().await;
        let url = database.url.clone();
        let postgres = Arc::new(PostgresStore::open(&url).await.expect("open the store").keeping(database));
        let store: SharedStore = postgres.clone();
        let dir = tempfile::tempdir().expect("temp dir");
        let config =
            ServerConfig { default_rate_limit: RateLimit { limit: 1_000_000, window_secs: 60 }, ..Default::default() };
        let app = TestApp::spawn_on(store, dir, config, RateLimiter::in_memory()).await;
        let unlimited = Some(RateLimit { limit: 1_000_000, window_secs: 60 });
        let tokens = [
            app.issue_token("alpha", Scope::Write, unlimited).await,
            app.issue_token("beta", Scope::Write, unlimited).await,
        ];
        // Each account's customers, created through the API.
        let mut customers: Vec<Vec<Value>> = Vec::new();
        for (account, token) in tokens.iter().enumerate() {
            let mut created = Vec::new();
            for n in 0..12 {
                let request =
                    json!({"name": format!("A{account} C{n}"), "email": format!("a{account}c{n}@example.com")});
                let response =
                    app.request_as(token, Method::POST, "/v2/customers").json(&request).send().await.unwrap();
                assert_eq!(response.status(), 201, "create");
                created.push(body(response).await);
            }
            customers.push(created);
        }

        // (token, id, the customer it must get or None for a 404), mixed up.
        let mut cases: Vec<(&str, String, Option<&Value>)> = Vec::new();
        for n in 0..GETS_PER_ROUND {
            let account = n % 2;
            let own = &customers[account][n % 12];
            let other = &customers[1 - account][(n / 2) % 12];
            let case = match n % 4 {
                0 | 1 => (tokens[account].as_str(), id_of(own), Some(own)),
                // Another account's customer: not found, never its data.
                2 => (tokens[account].as_str(), id_of(other), None),
                _ => (tokens[account].as_str(), format!("cus_{:026}", n), None),
            };
            cases.push(case);
        }

        let mut batched = false;
        for round in 0..ROUNDS {
            let before = postgres.read_batches();
            let app = &app;
            let gets = cases.iter().map(|(token, id, _)| async move {
                let response =
                    app.request_as(token, Method::GET, &format!("/v2/customers/{id}")).send().await.expect("GET");
                (response.status().as_u16(), body(response).await)
            });
            let answers = join_all(gets).await;
            for ((_, id, expected), (status, answer)) in cases.iter().zip(&answers) {
                match expected {
                    Some(customer) => {
                        assert_eq!(*status, 200, "GET {id}: {answer}");
                        assert_eq!(&answer, customer, "GET {id} answers its own customer");
                    }
                    None => {
                        assert_eq!(*status, 404, "GET {id}: {answer}");
                        assert_eq!(answer["error"]["code"], "resource_not_found", "GET {id}: {answer}");
                    }
                }
            }
            let after = postgres.read_batches();
            let (statements, reads) = (after.statements - before.statements, after.reads - before.reads);
            assert_eq!(reads, GETS_PER_ROUND as u64, "every GET is one grouped read");
            println!("round {round}: {reads} reads in {statements} statements, at most {} in one", after.largest);
            if after.largest > 1 && statements < reads {
                batched = true;
                break;
            }
        }
        assert!(batched, "{ROUNDS} rounds of {GETS_PER_ROUND} concurrent GETs never shared a statement");
    }
}
