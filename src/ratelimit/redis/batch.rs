//! The task that counts queued requests together: one pipeline, one `INCRBY` per key, per batch.
//!
//! One batch is in flight at a time; what is queued meanwhile makes the next
//! batch, so the busier the server, the more requests share a round trip (as
//! group commit does for a database's writes). Each key of a batch is also
//! created with its expiry in the same pipeline (`SET key 0 PX ms NX`, a no-op
//! once it exists; `INCRBY` keeps the expiry), so a window's key expires even
//! when the batch that first counted into it was answered too late.

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
    /// How long the window's key lives, in milliseconds from its first count (the window and a second).
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
    for requests in batch.chunk_by(same_window) {
        let redis_key = requests[0].redis_key();
        // A window's key is made with its expiry, in the pipeline that counts into
        // it: so no key outlives its window, even when this batch's answer is lost.
        pipeline.cmd("SET").arg(&redis_key).arg(0).arg("PX").arg(requests[0].expiry_ms).arg("NX").ignore();
        pipeline.cmd("INCRBY").arg(&redis_key).arg(requests.len());
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
    for (requests, total) in batch.chunk_by(same_window).zip(totals) {
        let first = total.saturating_sub(requests.len() as u64) + 1;
        counts.extend((0..requests.len() as u64).map(|i| first + i));
    }
    // A request left without a count (Redis answered fewer totals than asked) gets `None` by the drop.
    for (request, count) in batch.drain(..).zip(counts) {
        let _ = request.reply.send(Some(count));
    }
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
