//! The task that counts queued requests together: one pipeline, one `INCRBY` per key, per batch.
//!
//! One batch is in flight at a time; what is queued meanwhile makes the next
//! batch, so the busier the server, the more requests share a round trip (as
//! group commit does for a database's writes).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{Shared, TIMEOUT};

/// The most requests counted in one pipeline.
const MAX_BATCH: usize = 1024;

/// One request to count: its key and window, and where its count goes.
pub(super) struct Increment {
    /// The limiter's key (a token id, say), formatted into a Redis key once per batch, not per request.
    pub key: Box<str>,
    pub window_secs: u32,
    pub window_index: u64,
    /// The key's expiry (`PEXPIRE`) in milliseconds, if this request's batch starts its count.
    pub expiry_ms: u64,
    /// When the request was queued: it waits at most [`TIMEOUT`] from then.
    pub queued_at: Instant,
    /// Its count (this request included), or `None` to count it locally.
    pub reply: oneshot::Sender<Option<u64>>,
}

/// Counts batches until every sender is dropped.
pub(super) async fn run(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Increment>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut pipeline = redis::pipe();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        count(&shared, &mut batch, &mut pipeline).await;
    }
}

/// Answers (and empties) `batch`: each request gets its count, or `None` if
/// Redis is degraded, fails, or cannot answer before the oldest request's
/// [`TIMEOUT`] runs out.
async fn count(shared: &Arc<Shared>, batch: &mut Vec<Increment>, pipeline: &mut redis::Pipeline) {
    let deadline = batch.iter().map(|request| request.queued_at).min().map(|oldest| oldest + TIMEOUT);
    // A stable sort: the requests of one key stay in queue order, so the earlier get the lower counts.
    batch.sort_by(|a, b| a.window().cmp(&b.window()));
    pipeline.clear();
    let mut redis_keys = Vec::new();
    for requests in batch.chunk_by(same_window) {
        let redis_key = requests[0].redis_key();
        pipeline.cmd("INCRBY").arg(&redis_key).arg(requests.len());
        redis_keys.push(redis_key);
    }
    let totals = match deadline {
        _ if shared.is_degraded() => None,
        Some(deadline) if Instant::now() < deadline => {
            let mut connection = shared.connection.clone();
            let call = pipeline.query_async::<Vec<u64>>(&mut connection);
            shared.answer(tokio::time::timeout_at(deadline.into(), call).await)
        }
        _ => {
            shared.degrade("no answer within 50 ms");
            None
        }
    };
    let Some(totals) = totals else {
        for request in batch.drain(..) {
            let _ = request.reply.send(None);
        }
        return;
    };

    // The `k` requests of a key whose count is now `total` get `total - k + 1 ..= total`.
    let mut counts = Vec::with_capacity(batch.len());
    let mut expiries = redis::pipe();
    for ((requests, total), redis_key) in batch.chunk_by(same_window).zip(totals).zip(redis_keys) {
        let first = total.saturating_sub(requests.len() as u64) + 1;
        counts.extend((0..requests.len() as u64).map(|i| first + i));
        if first == 1 {
            expiries.cmd("PEXPIRE").arg(redis_key).arg(requests[0].expiry_ms).ignore();
        }
    }
    // A request left without a count (Redis answered fewer totals than asked) gets `None` by the drop.
    for (request, count) in batch.drain(..).zip(counts) {
        let _ = request.reply.send(Some(count));
    }
    if !expiries.is_empty() {
        // Beside the next batch, not before it: no request waits for the expiry of a window's first count.
        tokio::spawn(expire(shared.clone(), expiries));
    }
}

/// Sends the `PEXPIRE`s of `expiries`; a failure degrades the limiter.
async fn expire(shared: Arc<Shared>, expiries: redis::Pipeline) {
    let mut connection = shared.connection.clone();
    let call = expiries.exec_async(&mut connection);
    shared.answer(tokio::time::timeout(TIMEOUT, call).await);
}

impl Increment {
    fn window(&self) -> (&str, u32, u64) {
        (&self.key, self.window_secs, self.window_index)
    }

    fn redis_key(&self) -> String {
        super::window_key(&self.key, self.window_secs, self.window_index)
    }
}

fn same_window(a: &Increment, b: &Increment) -> bool {
    a.window() == b.window()
}
