//! The request's id on every line logged while it is served, without a
//! tracing span per request.
//!
//! The edge used to open a span `request{request_id=…}` (target
//! [`REQUEST_SPAN_TARGET`], level `INFO`) around each request, so that a line
//! logged inside it (a storage error's cause, a panic) carried the id. A span
//! costs thousands of instructions per request (it is created, entered and
//! left at every poll, then closed, each time through every layer of the
//! subscriber) for lines that are rarely logged. Under the subscriber that
//! [`super::init`] installed, the edge instead keeps the id in a task-local
//! ([`RequestLog::scope`]), and the event formatter (`request_line`) writes
//! the span into the rare line logged inside, as the stock formatters would
//! have written it: `request{request_id="…"}: ` in `Full`, `"span"` and
//! `"spans"` in `Json`.
//!
//! The edge falls back to a real span, and to `tracing::info!` for the
//! request line, whenever that could give different output: under any other
//! subscriber (a test's), inside another span, with colours, or with a filter
//! whose directives depend on spans or fields (`[...]` in [`super::FILTER_VAR`]).

use std::future::Future;
use std::sync::OnceLock;

use futures_util::future::Either;
use tracing_appender::non_blocking::NonBlocking;

use super::QueueWriter;
use super::request_line::{RequestLine, Shape};

/// The target of the request's span: the edge's module, where the span was
/// always opened, so that a filter on it (`clientele::http::edge=warn`) keeps
/// silencing the span either way.
pub const REQUEST_SPAN_TARGET: &str = "clientele::http::edge";

/// Decided once, when [`super::init`] installed its subscriber.
pub(super) struct Light {
    pub(super) shape: Shape,
    /// The subscriber's own queue, for the request line written directly.
    pub(super) queue: NonBlocking,
    /// Whether the filter enables the request line (`clientele::request` at `INFO`).
    pub(super) line_enabled: bool,
    /// Whether the filter enables the request's span ([`REQUEST_SPAN_TARGET`] at `INFO`).
    pub(super) span_enabled: bool,
}

/// Set by [`super::init`] when its subscriber can take the light path.
pub(super) static LIGHT: OnceLock<Light> = OnceLock::new();

/// A request id: 1 to 64 characters of `[A-Za-z0-9._-]` (API.md §7), kept inline.
#[derive(Clone, Copy)]
pub(super) struct RequestId {
    bytes: [u8; RequestId::MAX],
    len: u8,
}

impl RequestId {
    const MAX: usize = 64;

    /// `None` for an id that a span's field formatter would have escaped, or too long.
    fn new(id: &str) -> Option<Self> {
        if id.is_empty() || id.len() > Self::MAX || !super::request_line::is_plain(id) {
            return None;
        }
        let mut bytes = [0; Self::MAX];
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Some(Self { bytes, len: id.len() as u8 })
    }

    pub(super) fn as_str(&self) -> &str {
        // Only ever copied from a whole `&str`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

tokio::task_local! {
    /// The id of the request being served by the task, while the edge polls it.
    static REQUEST: RequestId;
}

/// The id of the request being served on this thread now, if the edge set one.
pub(super) fn current_request() -> Option<RequestId> {
    REQUEST.try_with(|id| *id).ok()
}

/// How one request is logged: light (see the module docs) or through `tracing` as before.
pub struct RequestLog {
    light: Option<(&'static Light, RequestId)>,
}

impl RequestLog {
    /// Light when the current subscriber is the one [`super::init`] installed
    /// with [`LIGHT`] set, no span is entered, and `request_id` is 1 to 64
    /// characters a span's field formatter would not escape (as the edge's
    /// ids always are).
    pub fn current(request_id: &str) -> Self {
        let light = LIGHT.get().zip(RequestId::new(request_id)).filter(|_| {
            tracing::dispatcher::get_default(|dispatch| {
                dispatch.downcast_ref::<QueueWriter>().is_some() && dispatch.current_span().id().is_none()
            })
        });
        Self { light }
    }

    /// Whether [`Self::scope`] and [`Self::write`] replace the span and the event.
    pub fn is_light(&self) -> bool {
        self.light.is_some()
    }

    /// Runs `served` with the request's id for every line logged inside it, as
    /// the request's span would; as it is when the filter disables the span
    /// (or the log is not light: then the caller opens the span).
    pub fn scope<F: Future>(&self, served: F) -> impl Future<Output = F::Output> {
        match self.light.filter(|(light, _)| light.span_enabled) {
            Some((_, id)) => Either::Left(REQUEST.scope(id, served)),
            None => Either::Right(served),
        }
    }

    /// Writes the request line straight to the log's queue (or not at all when
    /// the filter disables it), the same bytes the formatter would write for
    /// the event; `false` when it must go through `tracing::info!` instead.
    pub fn write(&self, request: &RequestLine<'_>) -> bool {
        let Some((light, _)) = self.light else { return false };
        if !light.line_enabled {
            return true;
        }
        super::request_line::write_direct(light.shape, request, light.queue.clone())
    }
}

/// A future run with the current request's id, if any (and in the current
/// span): for a task spawned on behalf of a request, whose lines carry its id.
pub fn in_current_request<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let future = tracing::Instrument::in_current_span(future);
    match current_request() {
        Some(id) => Either::Left(REQUEST.scope(id, future)),
        None => Either::Right(future),
    }
}

/// Adds the request's span to a line the stock formatter of `shape` wrote
/// outside any span of its own or under spans opened inside the request.
///
/// `Full`: `request{request_id="…"}:` goes after the level (and a space after
/// it when the event had no span: `has_scope`). `Json`: the request heads
/// `"spans"`, or, with no span at all, `"span"` and `"spans"` are added last.
/// Leaves a line not in the expected shape as it is.
pub(super) fn add_request_span(line: &mut String, shape: Shape, level: &tracing::Level, has_scope: bool, id: &str) {
    match shape {
        Shape::Full => {
            let level_text = match *level {
                tracing::Level::TRACE => "TRACE ",
                tracing::Level::DEBUG => "DEBUG ",
                tracing::Level::INFO => " INFO ",
                tracing::Level::WARN => " WARN ",
                tracing::Level::ERROR => "ERROR ",
            };
            // The timestamp before the level has no spaces nor level names.
            let Some(at) = line.find(level_text) else { return };
            let separator = if has_scope { "" } else { " " };
            let span = ["request{request_id=\"", id, "\"}:", separator].concat();
            line.insert_str(at + level_text.len(), &span);
        }
        Shape::Json => {
            let span = ["{\"request_id\":\"", id, "\",\"name\":\"request\"}"].concat();
            // A quote inside a JSON string is escaped: `"spans":[` is the key itself.
            if let Some(at) = line.rfind("\"spans\":[") {
                let at = at + "\"spans\":[".len();
                let comma = if line[at..].starts_with(']') { "" } else { "," };
                line.insert_str(at, &[span.as_str(), comma].concat());
            } else if let Some(at) = line.rfind('}') {
                line.insert_str(at, &[",\"span\":", &span, ",\"spans\":[", &span, "]"].concat());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::format::Format;

    use super::*;
    use crate::logging::captured::Captured;
    use crate::logging::fields::PlainFields;
    use crate::logging::request_line::{REQUEST_TARGET, RequestLineFormat};

    const ID: &str = "req_Kanl6kuqzm4NYl5aDp6E";

    /// Lines logged while a request is served: ours, a library's, in spans of their own, odd ones.
    fn emit_inside() {
        tracing::error!(code = "a_code", cause = "a handler panicked on /v2/x: boom", "answered with a server error");
        tracing::warn!(code = "another_code", cause = "database \"down\"\tnow", "answered with a server error");
        tracing::info!(target: "sqlx::query", elapsed = 1.5, rows = 3_u64, "summary \u{1b}[31m");
        tracing::info!(target: REQUEST_TARGET, request_id = "r", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, "served");
        tracing::debug!(error = %"connection refused", "cannot record a token's last use");
        tracing::trace!(n = -1_i64, flag = true, "trace");
        let inner = tracing::info_span!("inner", step = 2_u64, name = "a \"b\"");
        inner.in_scope(|| {
            tracing::info!(answer = 42_u64, "in a span opened inside the request");
            tracing::info_span!("innermost").in_scope(|| tracing::warn!("two spans deep"));
            tracing::info!(parent: None, "explicitly a root");
        });
        tracing::info!(parent: &inner, "explicit parent");
        tracing::info!(parent: None, "explicitly a root, outside");
        let empty = tracing::info_span!("empty");
        empty.in_scope(|| tracing::info!(parent: None, "root in an empty span"));
    }

    /// `emit_inside` under `subscriber`'s formatter, with a span or the task-local; timestamps taken out.
    fn lines(json: bool, light: bool) -> Vec<String> {
        let captured = Captured::default();
        let writer = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let emit = move || {
            if light {
                REQUEST.sync_scope(RequestId::new(ID).unwrap(), emit_inside);
            } else {
                tracing::info_span!(target: REQUEST_SPAN_TARGET, "request", request_id = ID).in_scope(emit_inside);
            }
            // And after the request, nothing of it.
            tracing::info!("after");
        };
        match (json, light) {
            (false, false) => {
                let subscriber = builder.fmt_fields(PlainFields::default()).event_format(Format::default()).finish();
                tracing::subscriber::with_default(subscriber, emit);
            }
            (false, true) => {
                let format = RequestLineFormat::new(Format::default(), Shape::Full);
                let subscriber = builder.fmt_fields(PlainFields::default()).event_format(format).finish();
                tracing::subscriber::with_default(subscriber, emit);
            }
            (true, false) => tracing::subscriber::with_default(builder.json().finish(), emit),
            (true, true) => {
                let format = RequestLineFormat::new(Format::default().json(), Shape::Json);
                tracing::subscriber::with_default(builder.json().event_format(format).finish(), emit);
            }
        }
        let timestamp = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z").unwrap();
        captured.text().lines().map(|line| timestamp.replace(line, "TIME").into_owned()).collect()
    }

    #[test]
    fn a_line_inside_a_request_reads_as_if_inside_the_request_span() {
        let full = lines(false, true);
        assert_eq!(full, lines(false, false));
        assert_eq!(full.len(), 13, "{full:#?}");
        assert_eq!(
            full[0],
            "TIME ERROR request{request_id=\"req_Kanl6kuqzm4NYl5aDp6E\"}: clientele::logging::request_scope::tests: \
             answered with a server error code=\"a_code\" cause=\"a handler panicked on /v2/x: boom\""
        );
        let json = lines(true, true);
        assert_eq!(json, lines(true, false));
        assert_eq!(json.len(), 13, "{json:#?}");
        let first: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
        assert_eq!(first["span"], serde_json::json!({"request_id": ID, "name": "request"}));
        assert_eq!(first["spans"], serde_json::json!([{"request_id": ID, "name": "request"}]));
    }

    #[test]
    fn request_ids_that_a_span_would_escape_are_not_kept() {
        assert_eq!(RequestId::new(ID).unwrap().as_str(), ID);
        assert_eq!(RequestId::new(&"a".repeat(64)).unwrap().as_str(), "a".repeat(64));
        for odd in ["", "a\"b", "a\\b", "tab\t", "ü", &"a".repeat(65)] {
            assert!(RequestId::new(odd).is_none(), "{odd:?}");
        }
    }

    #[test]
    fn the_light_path_is_taken_only_under_the_installed_subscriber() {
        // No test installs it: a test's subscriber gets the span and the event.
        let subscriber = tracing_subscriber::fmt().with_writer(Captured::default).finish();
        tracing::subscriber::with_default(subscriber, || assert!(!RequestLog::current(ID).is_light()));
        assert!(!RequestLog::current(ID).is_light());
    }

    /// Installs the process's subscriber (nextest runs each test in a process of its own).
    #[test]
    fn under_the_installed_subscriber_the_line_is_written_directly() {
        let captured = Captured::default();
        let guard = crate::logging::init(crate::logging::Format::Json, captured.clone(), false);
        let log = RequestLog::current(ID);
        assert!(log.is_light());
        let line = RequestLine {
            request_id: ID,
            route: "/r",
            method: "GET",
            status: 200,
            latency: std::time::Duration::from_micros(1500),
            account_id: None,
        };
        assert!(log.write(&line));
        assert!(!RequestLog::current("a\"b").is_light(), "an id a span would escape");
        tracing::info_span!("outer").in_scope(|| assert!(!RequestLog::current(ID).is_light(), "inside a span"));
        drop(guard);
        let text = captured.text();
        let written: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(written["fields"]["latency_ms"], 1.5, "{text}");
    }

    #[test]
    fn the_span_target_is_the_edges_module() {
        assert_eq!(REQUEST_SPAN_TARGET, "clientele::http::edge");
    }
}
