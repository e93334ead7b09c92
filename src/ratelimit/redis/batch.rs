//! The task that counts queued requests together: one pipeline, one `INCRBY` per key, per batch.
//!
//! One batch is in flight at a time; what is queued meanwhile makes the next
//! batch, so the busier the server, the more requests share a round trip (as
//! group commit does for a database's writes). Each key of a batch is also
//! created with its expiry in the same pipeline (`SET key 0 PX ms NX`, a no-op
//! once it exists; `INCRBY` keeps the expiry), so a window's key expires even
//! when the batch that first counted into it was answered too late.
//!
//! A key counted fast also gets a block of counts reserved (see [`super::reserve`]):
//! its `SET` and `INCRBY` are then one script, which sizes the block against the
//! limit atomically. Requests queued while a block was on its way are first
//! given counts of it, and only the rest are sent.

use std::sync::Arc;
use std::time::Instant;

use redis::Value;
use tokio::sync::{mpsc, oneshot};

use super::reserve::{SCRIPT, reserve_up_to};
use super::{Shared, TIMEOUT};

/// The most requests counted in one pipeline.
const MAX_BATCH: usize = 1024;

/// One request to count: its key and window, and where its count goes.
pub(super) struct Increment {
    /// The limiter's key (a token id, say), formatted into a Redis key once per batch, not per request.
    pub key: Box<str>,
    pub window_secs: u32,
    pub window_index: u64,
    /// The key's limit (N), which blocks of counts are reserved against.
    pub limit: u32,
    /// How long the window's key lives, in milliseconds from its first count (the window and a second).
    pub expiry_ms: u64,
    /// When the request was queued: it waits at most [`TIMEOUT`] from then.
    pub queued_at: Instant,
    /// Its count (this request included), or `None` to count it locally.
    pub reply: oneshot::Sender<Option<u64>>,
}

/// Counts batches until every sender is dropped.
pub(super) async fn run(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Increment>) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut pipeline = redis::pipe();
    while queue.recv_many(&mut queued, MAX_BATCH).await > 0 {
        // Blocks that arrived while these requests were queued answer them first.
        for request in queued.drain(..) {
            match shared.reservations.take(&request.key, request.window_secs, request.window_index) {
                Some(count) => {
                    let _ = request.reply.send(Some(count));
                }
                None => batch.push(request),
            }
        }
        if !batch.is_empty() {
            count(&shared, &mut batch, &mut pipeline).await;
        }
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
    let sent_at = Instant::now();
    for requests in batch.chunk_by(same_window) {
        let first = &requests[0];
        let redis_key = first.redis_key();
        let wanted =
            shared.reservations.wanted(&first.key, first.window_secs, first.window_index, requests.len(), sent_at);
        // A window's key is made with its expiry, in the pipeline that counts into
        // it: so no key outlives its window, even when this batch's answer is lost.
        if wanted == 0 {
            pipeline.cmd("SET").arg(&redis_key).arg(0).arg("PX").arg(first.expiry_ms).arg("NX").ignore();
            pipeline.cmd("INCRBY").arg(&redis_key).arg(requests.len());
        } else {
            pipeline.cmd("EVAL").arg(SCRIPT).arg(1).arg(&redis_key).arg(requests.len()).arg(wanted);
            pipeline.arg(reserve_up_to(first.limit)).arg(first.expiry_ms);
        }
    }
    let totals = match deadline {
        _ if shared.is_degraded() => None,
        Some(deadline) if Instant::now() < deadline => {
            let mut connection = shared.connection.clone();
            let call = pipeline.query_async::<Vec<Value>>(&mut connection);
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

    // The `k` requests of a key whose count is now `total`, `reserved` of which
    // are its new block, get `total - reserved - k + 1 ..= total - reserved`.
    let mut counts = Vec::with_capacity(batch.len());
    let answered_at = Instant::now();
    for (requests, answer) in batch.chunk_by(same_window).zip(totals) {
        let Some((total, reserved)) = parse(answer) else { break };
        let first = total.saturating_sub(reserved + requests.len() as u64) + 1;
        counts.extend((0..requests.len() as u64).map(|i| first + i));
        let request = &requests[0];
        let block_first = first + requests.len() as u64;
        // A block granted as Redis failed for another caller is not kept: see `Reservations::clear`.
        if !shared.is_degraded() {
            let reservations = &shared.reservations;
            reservations.grant(
                &request.key,
                request.window_secs,
                request.window_index,
                block_first,
                reserved,
                answered_at,
            );
        }
    }
    // A request left without a count (Redis answered fewer totals than asked) gets `None` by the drop.
    for (request, count) in batch.drain(..).zip(counts) {
        let _ = request.reply.send(Some(count));
    }
}

/// A key's count after this batch and the counts reserved for its block: an
/// `INCRBY`'s answer, or the script's `{count, reserved}`.
fn parse(answer: Value) -> Option<(u64, u64)> {
    match answer {
        Value::Int(total) => Some((u64::try_from(total).ok()?, 0)),
        answer => redis::from_redis_value::<(u64, u64)>(answer).ok(),
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
