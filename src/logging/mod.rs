//! The process's log subscriber, writing off the request path.
//!
//! A request formats its log line (API.md §7: one line per request, target
//! `clientele::request`) on its own thread and hands it to a bounded queue;
//! one thread (`clientele-log`) writes the queued lines, several per system
//! call. The request never waits on stderr: when the queue is full (stderr is
//! a pipe nobody drains, a slow disk) the line is dropped and counted, and
//! `GET /metrics` exports that count as [`LOG_LINES_DROPPED`]. The queue is
//! flushed when the [`LogGuard`] returned by [`init`] is dropped, which
//! `clientele serve` does after its graceful shutdown, so the last lines
//! before SIGTERM are written.
//!
//! The request line itself is formatted by `request_line`, and the fields
//! of the request's span (in `Pretty`) by `fields`, without `core::fmt`,
//! into the same bytes the stock formatters would write. Under this
//! subscriber the edge opens no span per request and logs no event for its
//! line: `request_scope` keeps the request's id for the lines logged inside
//! it and writes the request line straight to the queue, with the same bytes.

mod fields;
mod request_line;
mod request_scope;

/// A writer that keeps what a test subscriber writes, for tests of the formats.
#[cfg(test)]
mod captured {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Everything written so far.
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::{MakeWriter, format};

pub use request_line::{REQUEST_TARGET, RequestLine};
use request_line::{RequestLineFormat, Shape};
pub use request_scope::{REQUEST_SPAN_TARGET, RequestLog, in_current_request};

/// The metric counting log lines dropped because the queue was full.
pub const LOG_LINES_DROPPED: &str = "clientele_log_lines_dropped_total";

/// How many lines may wait for the writing thread: at about 250 bytes a line,
/// at most a few MiB of memory, and about a tenth of a second of requests at
/// this machine's peak rate.
pub const QUEUE_LINES: usize = 16_384;

/// The writing thread's buffer; flushed whenever the queue is empty.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// How long the writing thread pauses after each write to the sink, so that
/// lines arriving meanwhile wait in the queue and go out together in its next
/// write. Without the pause, a busy server woke the thread for nearly every
/// line (a futex wake and a context switch per request); with it, the thread
/// wakes at most about a thousand times a second. A line reaches the sink at
/// most this much later than it would have.
const WRITE_PAUSE: Duration = Duration::from_millis(1);

/// The environment variable holding the level filter (`tracing_subscriber`'s
/// `EnvFilter` syntax, `info` when unset or invalid).
pub const FILTER_VAR: &str = "CLIENTELE_LOG";

/// The counter of the installed queue, if [`init`] installed one.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines for people (`Pretty`: coloured only at a terminal) or for machines (`Json`, one object a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pretty,
    Json,
}

/// Keeps the writing thread; dropping it writes what is still queued (waiting
/// at most about a second) and stops the thread.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Installs the process's subscriber, filtered by [`FILTER_VAR`], writing to
/// `sink` (stderr for `clientele serve`) through the bounded queue. Does
/// nothing but return a guard if a subscriber is already installed.
pub fn init(format: Format, sink: impl Write + Send + 'static, sink_is_terminal: bool) -> LogGuard {
    let (queue, guard) = queue(sink, QUEUE_LINES);
    let counter = queue.error_counter();
    let spec = std::env::var(FILTER_VAR).ok().filter(|spec| EnvFilter::try_new(spec).is_ok());
    let filter = EnvFilter::new(spec.as_deref().unwrap_or("info"));
    let writer = QueueWriter(queue.clone());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let (installed, shape, ansi) = match format {
        Format::Pretty => {
            let installed = builder
                .with_ansi(sink_is_terminal)
                .fmt_fields(fields::PlainFields::default())
                .event_format(RequestLineFormat::new(format::Format::default(), Shape::Full))
                .try_init();
            (installed, Shape::Full, sink_is_terminal)
        }
        Format::Json => {
            let installed = builder
                .json()
                .event_format(RequestLineFormat::new(format::Format::default().json(), Shape::Json))
                .try_init();
            (installed, Shape::Json, false)
        }
    };
    if installed.is_ok() {
        let _ = DROPPED.set(counter);
        // Directives in brackets filter by span or field: only real spans and events meet them.
        let by_span = spec.is_some_and(|spec| spec.contains('['));
        if !ansi && !by_span {
            let _ = request_scope::LIGHT.set(request_scope::Light {
                shape,
                queue,
                line_enabled: tracing::enabled!(target: REQUEST_TARGET, tracing::Level::INFO),
                span_enabled: tracing::span_enabled!(target: REQUEST_SPAN_TARGET, tracing::Level::INFO),
            });
        }
    }
    guard
}

/// The installed subscriber's writer: the queue, in a type of its own by which
/// [`RequestLog::current`] recognises that subscriber.
struct QueueWriter(NonBlocking);

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = NonBlocking;

    fn make_writer(&'a self) -> NonBlocking {
        self.0.clone()
    }
}

/// [`init`] on stderr, coloured in `Pretty` only when stderr is a terminal.
pub fn init_stderr(format: Format) -> LogGuard {
    init(format, std::io::stderr(), std::io::stderr().is_terminal())
}

/// Log lines dropped so far because the queue was full; 0 when no queue is installed.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

/// A lossy queue of at most `lines` lines in front of `sink`, written by its own thread.
fn queue(sink: impl Write + Send + 'static, lines: usize) -> (NonBlocking, LogGuard) {
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(lines)
        .thread_name("clientele-log")
        .finish(Paced { buffer: BufWriter::with_capacity(WRITE_BUFFER_BYTES, sink), pause: WRITE_PAUSE });
    (writer, LogGuard { _worker: worker })
}

/// The writing thread's buffered sink: `flush` (which the thread calls each
/// time it has emptied the queue) writes what is buffered, then pauses for
/// `pause` if it wrote anything ([`WRITE_PAUSE`]).
struct Paced<W: Write> {
    buffer: BufWriter<W>,
    pause: Duration,
}

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buffer.write_all(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let wrote = !self.buffer.buffer().is_empty();
        self.buffer.flush()?;
        if wrote {
            std::thread::sleep(self.pause);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A sink that blocks until told to go on, then records what it got.
    struct Stuck {
        go: mpsc::Receiver<()>,
        written: mpsc::Sender<Vec<u8>>,
        waited: bool,
    }

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if !self.waited {
                let _ = self.go.recv();
                self.waited = true;
            }
            let _ = self.written.send(bytes.to_vec());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_lines_without_blocking_and_the_guard_flushes_the_rest() {
        let (go, go_rx) = mpsc::channel();
        let (written_tx, written) = mpsc::channel();
        // Lines larger than the write buffer go straight to the sink, one write each.
        let line = vec![b'x'; WRITE_BUFFER_BYTES + 1];
        let (writer, guard) = queue(Stuck { go: go_rx, written: written_tx, waited: false }, 4);
        let started = Instant::now();
        for _ in 0..100 {
            writer.make_writer().write_all(&line).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(1), "writing never waited on the stuck sink");
        let dropped = writer.error_counter().dropped_lines();
        // The thread holds one line in its write, the queue four more.
        assert!((95..=96).contains(&dropped), "{dropped} dropped");
        go.send(()).unwrap();
        drop(guard);
        let kept = written.try_iter().count();
        assert_eq!(kept + dropped, 100, "every line not dropped was written by the time the guard was dropped");
    }
}
