//! What each connection is doing (waiting, reading a head, serving a request)
//! and since when: written by its reader and its service, read by its watchdog
//! and by the accept loop when it must make room for a new connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The part of a connection's life that decides which timeout applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, nothing received yet: the head timeout runs from the accept.
    Fresh = 0,
    /// Kept alive after a response, nothing of the next request yet: the idle timeout.
    Idle = 1,
    /// Part of a request head has arrived: the head timeout runs from its first byte.
    Head = 2,
    /// A request is being served (its body read, its handler run, its response sent).
    Request = 3,
}

impl Phase {
    fn from_bits(bits: u64) -> Self {
        match bits & 0b11 {
            0 => Self::Fresh,
            1 => Self::Idle,
            2 => Self::Head,
            _ => Self::Request,
        }
    }
}

/// One connection's phase and when it began, in one atomic word (milliseconds
/// since `epoch` shifted left by two, the phase in the low bits), so a reader
/// never sees a phase with another phase's start.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    state: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
}

impl Activity {
    /// A connection accepted now.
    pub fn new(epoch: Instant) -> Self {
        let activity = Self { epoch, state: AtomicU64::new(0), evicted: AtomicBool::new(false), evict: Notify::new() };
        activity.enter(Phase::Fresh);
        activity
    }

    /// Records that `phase` begins now; returns now.
    pub fn enter(&self, phase: Phase) -> Instant {
        let now = Instant::now();
        let since = now.duration_since(self.epoch).as_millis() as u64;
        self.state.store(since << 2 | phase as u64, Ordering::Release);
        now
    }

    pub fn phase(&self) -> Phase {
        Phase::from_bits(self.state.load(Ordering::Acquire))
    }

    /// The phase and the moment it began.
    pub fn load(&self) -> (Phase, Instant) {
        let bits = self.state.load(Ordering::Acquire);
        (Phase::from_bits(bits), self.epoch + Duration::from_millis(bits >> 2))
    }

    /// Resolves once the accept loop has chosen this connection to close.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Whether it may be closed to make room: only between requests or while
    /// its head trickles in, never while a request is served, and only once it
    /// has been so for `min_age` (a connection just accepted has not had its
    /// chance to send its request yet).
    fn evictable(&self, min_age: Duration) -> Option<(u8, Instant)> {
        if self.evicted.load(Ordering::Relaxed) {
            return None;
        }
        let (phase, since) = self.load();
        if since.elapsed() < min_age {
            return None;
        }
        match phase {
            Phase::Idle => Some((0, since)),
            Phase::Fresh | Phase::Head => Some((1, since)),
            Phase::Request => None,
        }
    }
}

/// Every open connection, to choose one to close when the cap is reached.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
}

/// Removes its connection from the registry when dropped.
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.connections.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl Registry {
    /// Adds a connection, as soon as it is accepted: from then on it can be evicted.
    pub fn register(self: &Arc<Self>, activity: Arc<Activity>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections.lock().unwrap_or_else(PoisonError::into_inner).insert(id, activity);
        Registration { registry: self.clone(), id }
    }

    /// Asks one connection to close so that a waiting one can be served: the
    /// longest idle keep-alive connection, else the oldest unfinished head,
    /// among those in that state for at least `min_age`. A connection serving
    /// a request is never chosen. Returns whether one was.
    pub fn evict_one(&self, min_age: Duration) -> bool {
        let connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = connections
            .values()
            .filter_map(|activity| activity.evictable(min_age).map(|rank| (rank, activity)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, activity)| activity.clone());
        drop(connections);
        let Some(victim) = victim else { return false };
        victim.evicted.store(true, Ordering::Relaxed);
        victim.evict.notify_one();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_with_their_start() {
        let activity = Activity::new(Instant::now());
        assert_eq!(activity.phase(), Phase::Fresh);
        for phase in [Phase::Head, Phase::Request, Phase::Idle] {
            activity.enter(phase);
            let (loaded, since) = activity.load();
            assert_eq!(loaded, phase);
            assert!(since.elapsed() < Duration::from_secs(1));
        }
    }

    #[test]
    fn eviction_prefers_idle_then_heads_and_spares_requests() {
        let registry = Arc::new(Registry::default());
        let epoch = Instant::now();
        let serving = Arc::new(Activity::new(epoch));
        serving.enter(Phase::Request);
        let head = Arc::new(Activity::new(epoch));
        head.enter(Phase::Head);
        let idle = Arc::new(Activity::new(epoch));
        idle.enter(Phase::Idle);
        let _registrations =
            [registry.register(serving.clone()), registry.register(head.clone()), registry.register(idle.clone())];
        assert!(!registry.evict_one(Duration::from_secs(60)), "none has been idle or slow for a minute");
        assert!(registry.evict_one(Duration::ZERO));
        assert!(idle.evicted.load(Ordering::Relaxed) && !head.evicted.load(Ordering::Relaxed));
        assert!(registry.evict_one(Duration::ZERO));
        assert!(head.evicted.load(Ordering::Relaxed));
        assert!(!registry.evict_one(Duration::ZERO), "a connection serving a request is never evicted");
        assert!(!serving.evicted.load(Ordering::Relaxed));
    }
}
