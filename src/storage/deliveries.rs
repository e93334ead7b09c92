//! What the webhook delivery worker ([`crate::webhooks`]) leases from a store
//! and records back (API.md §8). The rows are `webhook_deliveries`, one per
//! event and subscribed endpoint, written with the event.

use crate::domain::{Event, WebhookEndpointId, WebhookSecret};

/// A due delivery, leased to one worker until the lease ends: no other worker
/// (of this or another instance) leases it before then.
#[derive(Debug, Clone)]
pub struct LeasedDelivery {
    /// The `webhook_deliveries` row.
    pub id: i64,
    /// This lease's identity (random): its outcome is recorded only while the
    /// row's lease is still this one ([`AttemptRecord::lease_id`]).
    pub lease_id: i64,
    pub endpoint_id: WebhookEndpointId,
    /// The endpoint's URL, as stored at its creation.
    pub url: String,
    pub secret: WebhookSecret,
    /// Attempts made before this one.
    pub attempts: u32,
    pub event: Event,
}

/// What became of a leased delivery; written with
/// [`super::Store::record_deliveries`], which also ends the lease, if the
/// lease is still the row's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The `webhook_deliveries` row.
    pub delivery_id: i64,
    /// The lease it was made under ([`LeasedDelivery::lease_id`]): a record
    /// whose lease ran out, and was taken by another, is not applied.
    pub lease_id: i64,
    pub endpoint_id: WebhookEndpointId,
    pub outcome: AttemptOutcome,
}

/// The outcome of a leased delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Sent and answered `2xx`: done.
    Delivered(Attempted),
    /// Sent and failed: tried again from `next_attempt_at_ms` (Unix milliseconds).
    Retry(Attempted, i64),
    /// Sent and failed, the last attempt: given up (`state = 'failed'`).
    GivenUp(Attempted),
    /// Not sent (its lease was running out, or the worker stopped): due again at once.
    Released,
}

/// One attempt made: when it ended and what the receiver answered, which the
/// endpoint shows as its `last_delivery_at` and `last_delivery_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempted {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The HTTP status; 0 when no response came (refused, timed out).
    pub status: u16,
}

impl AttemptOutcome {
    /// The attempt made, if one was.
    pub fn attempted(&self) -> Option<Attempted> {
        match *self {
            Self::Delivered(attempted) | Self::Retry(attempted, _) | Self::GivenUp(attempted) => Some(attempted),
            Self::Released => None,
        }
    }

    /// The row's `state` afterwards: `pending`, `delivered` or `failed`.
    pub fn state(&self) -> &'static str {
        match self {
            Self::Delivered(_) => "delivered",
            Self::GivenUp(_) => "failed",
            Self::Retry(..) | Self::Released => "pending",
        }
    }

    /// The next attempt's time when it changes (Unix milliseconds).
    pub fn next_attempt_at_ms(&self) -> Option<i64> {
        match *self {
            Self::Retry(_, at) => Some(at),
            _ => None,
        }
    }

    /// For a retry, the milliseconds from the attempt's end to the next
    /// attempt (what a store counts on its own clock).
    pub fn retry_in_ms(&self) -> Option<i64> {
        match *self {
            Self::Retry(attempted, at) => Some(at.saturating_sub(attempted.at_ms)),
            _ => None,
        }
    }
}

/// Per endpoint, its latest attempt among `records`: what its
/// `last_delivery_at` and `last_delivery_status` become.
pub(crate) fn latest_attempts(records: &[AttemptRecord]) -> Vec<(&WebhookEndpointId, Attempted)> {
    let mut latest: Vec<(&WebhookEndpointId, Attempted)> = Vec::new();
    for record in records {
        let Some(attempted) = record.outcome.attempted() else { continue };
        match latest.iter_mut().find(|(endpoint_id, _)| *endpoint_id == &record.endpoint_id) {
            Some((_, kept)) if kept.at_ms <= attempted.at_ms => *kept = attempted,
            Some(_) => {}
            None => latest.push((&record.endpoint_id, attempted)),
        }
    }
    latest
}
