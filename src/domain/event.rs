//! Events: a record of each successful customer write, kept for the
//! account's integrators to read and for webhooks to deliver (API.md §8).

use std::fmt;
use std::str::FromStr;

use super::customer::Customer;
use super::ids::{AccountId, EventId};

/// What happened to a customer. Its wire name (`customer.created`, ...) is
/// also how it is stored and what an endpoint subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    CustomerCreated,
    CustomerUpdated,
    CustomerDeleted,
}

impl EventType {
    /// Every type, in the order the documents list them.
    pub const ALL: [EventType; 3] =
        [EventType::CustomerCreated, EventType::CustomerUpdated, EventType::CustomerDeleted];

    /// The wire and stored name: `customer.created`, `customer.updated`, `customer.deleted`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::CustomerCreated => "customer.created",
            EventType::CustomerUpdated => "customer.updated",
            EventType::CustomerDeleted => "customer.deleted",
        }
    }
}

impl FromStr for EventType {
    type Err = String;

    /// One of [`EventType::ALL`] by its exact name.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        EventType::ALL.into_iter().find(|kind| kind.as_str() == raw).ok_or_else(|| {
            format!("unknown event type {raw:?}: expected customer.created, customer.updated or customer.deleted")
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded event: the customer as it was after the write (for a
/// deletion, its last stored state, version unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub account_id: AccountId,
    pub event_type: EventType,
    /// When the write happened, in Unix milliseconds.
    pub created_at_ms: i64,
    pub customer: Customer,
}

impl Event {
    /// A new event with a fresh id (later calls in this process sort after
    /// earlier ones) at `created_at_ms`.
    pub fn new(account_id: AccountId, event_type: EventType, customer: Customer, created_at_ms: i64) -> Self {
        Self { id: super::ids::event_id(), account_id, event_type, created_at_ms, customer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_by_name_and_nothing_else_parses() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(kind));
        }
        for refused in ["", "customer.Created", "customer", "customer.created ", "invoice.created"] {
            assert!(refused.parse::<EventType>().is_err(), "{refused:?}");
        }
    }
}
