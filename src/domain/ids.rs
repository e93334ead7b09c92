//! Opaque, prefixed identifiers that sort by creation time (ULIDs).

use std::sync::Mutex;

use ulid::Generator;

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// A new ULID, strictly increasing within this process even inside one millisecond.
fn next_ulid() -> ulid::Ulid {
    let mut guard = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

pub fn customer_id() -> String {
    format!("cus_{}", next_ulid())
}

pub fn account_id() -> String {
    format!("acct_{}", next_ulid())
}

pub fn token_id() -> String {
    format!("tok_{}", next_ulid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_prefixed_and_sort_by_creation() {
        let ids: Vec<String> = (0..1000).map(|_| customer_id()).collect();
        assert!(ids.iter().all(|id| id.starts_with("cus_") && id.len() == 30));
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
