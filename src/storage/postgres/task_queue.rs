//! The queue of a task that takes jobs from it (the grouped reader and writer
//! of [`super::reader`] and [`super::writer`]): started by the first job, on
//! the runtime that serves it, and started again if that runtime has ended
//! (a test's runtime, say), so a store outlives the runtime it was opened on.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;

/// The sending end of a lazily started task's queue of `J`s.
pub(super) struct TaskQueue<J> {
    sender: Mutex<Option<mpsc::UnboundedSender<J>>>,
}

impl<J: Send + 'static> TaskQueue<J> {
    /// No task yet: the first [`TaskQueue::send`] starts it.
    pub(super) fn new() -> Self {
        Self { sender: Mutex::new(None) }
    }

    /// Queues `job` for the task, starting it first with `start(receiver)`
    /// (on the current runtime) if it is not running. Errors: the job back,
    /// if the task has just stopped.
    pub(super) fn send<Task>(&self, job: J, start: impl FnOnce(mpsc::UnboundedReceiver<J>) -> Task) -> Result<(), J>
    where
        Task: Future<Output = ()> + Send + 'static,
    {
        let sender = {
            let mut sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
            match sender.as_ref() {
                Some(running) if !running.is_closed() => running.clone(),
                _ => {
                    let (queue, receiver) = mpsc::unbounded_channel();
                    tokio::spawn(start(receiver));
                    sender.insert(queue).clone()
                }
            }
        };
        sender.send(job).map_err(|error| error.0)
    }
}

/// Moves the jobs already waiting in `queue` into `batch`, without waiting,
/// until `batch` holds `max`: how the grouped reader and writer fill a batch.
pub(super) fn take_waiting<J>(queue: &mut mpsc::UnboundedReceiver<J>, batch: &mut Vec<J>, max: usize) {
    while batch.len() < max {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}
