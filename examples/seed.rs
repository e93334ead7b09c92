//! Fills a database for the benchmark: an account `bench` with a write token
//! (limit high enough never to refuse, so the limiter runs but does not block)
//! and N customers. Prints `TOKEN=...` and `CUSTOMER_ID=...` (one from the middle).
//!
//! Usage: seed DATABASE_URL COUNT

use clientele::admin;
use clientele::domain::{Customer, CustomerFields, CustomerName, Email, Scope, ids};
use clientele::ratelimit::RateLimit;
use clientele::storage;
use tokio::task::JoinSet;

const CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "sqlite://bench.db".to_owned());
    let count: usize = args.next().unwrap_or_else(|| "10000".to_owned()).parse()?;
    let store = storage::open(&url).await?;
    let account = admin::create_account(&store, "bench").await?;
    let limit = RateLimit { limit: 1_000_000_000, window_secs: 60 };
    let (secret, _) = admin::issue_token(&store, "bench", Scope::Write, Some(limit)).await?;

    let mut tasks = JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (store, account_id) = (store.clone(), account.id.clone());
        tasks.spawn(async move {
            let mut ids_created = Vec::new();
            for n in (worker..count).step_by(CONCURRENCY) {
                let fields = CustomerFields {
                    name: CustomerName::parse(&format!("Customer {n}")).expect("valid name"),
                    email: Email::parse(&format!("customer{n}@example.com")).expect("valid email"),
                    phone: None,
                    extended: None,
                };
                let customer = Customer::create(ids::customer_id(), fields, clientele::domain::time::now_unix());
                ids_created.push(customer.id.clone());
                store.insert_customer(&account_id, customer, None).await.expect("insert");
            }
            ids_created
        });
    }
    let mut all_ids = Vec::with_capacity(count);
    while let Some(ids_created) = tasks.join_next().await {
        all_ids.extend(ids_created?);
    }
    all_ids.sort();
    println!("TOKEN={}", secret.expose());
    println!("CUSTOMER_ID={}", all_ids.get(all_ids.len() / 2).map(ToString::to_string).unwrap_or_default());
    Ok(())
}
