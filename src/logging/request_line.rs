//! The request line (README, "Operations": one line per request, target
//! [`REQUEST_TARGET`]) formatted without `core::fmt`, byte for byte as
//! tracing-subscriber's stock formatters would write it.
//!
//! [`RequestLineFormat`] wraps a stock event formatter (`Format<Full>` or
//! `Format<Json>`). It writes an event itself only when the event is the
//! request line in its usual shape: target [`REQUEST_TARGET`], level `INFO`,
//! outside any span, its fields exactly `message` (the text `served`),
//! `request_id`, `route`, `method` (strings), `status` (an integer),
//! `latency_ms` (milliseconds with at most three decimals, as the edge
//! computes them from whole microseconds) and optionally `account_id` (a
//! string), every string printable ASCII without `"` or `\` (so neither
//! `Debug` nor JSON would escape it), and the writer is not colouring. Every
//! other event, and any request line that differs in any way, goes to the
//! stock formatter, so what is written never depends on which path wrote it:
//! the unit tests compare both paths' bytes.
//!
//! The fast path formats integers with `itoa`, copies strings as they are and
//! reuses the formatted date and time up to the second (a thread's cache),
//! where the stock path goes through `Debug` escaping, `core::fmt::write`, a
//! calendar computation and, for JSON, serde's map serializer on every line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::request_scope::{add_request_span, current_request};

/// The `tracing` target of the one line logged per request.
pub const REQUEST_TARGET: &str = "clientele::request";

/// How the lines of the wrapped formatter look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Format<Full>` without colours: `TIME  INFO clientele::request: served request_id="…" …`.
    Full,
    /// `Format<Json>` with its defaults: `{"timestamp":…,"level":"INFO","fields":{…},"target":…}`.
    Json,
}

/// A [`FormatEvent`] writing the request line itself and every other event through `stock`.
pub struct RequestLineFormat<F> {
    stock: F,
    shape: Shape,
}

impl<F> RequestLineFormat<F> {
    /// `stock` must be tracing-subscriber's `Format<Full>` (for [`Shape::Full`]) or
    /// `Format<Json>` (for [`Shape::Json`]) with the default options and the
    /// `SystemTime` timer, whose bytes the fast path reproduces.
    pub fn new(stock: F, shape: Shape) -> Self {
        Self { stock, shape }
    }
}

/// The fields of the request line, in the order the edge records them.
const FIELDS: [&str; 7] = ["message", "request_id", "route", "method", "status", "latency_ms", "account_id"];
/// The fields every request line has (`account_id` only when a token was accepted).
const REQUIRED_FIELDS: usize = 6;

thread_local! {
    /// The line being written, reused from line to line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The second of the last timestamp written and its text up to the second, `YYYY-MM-DDTHH:MM:SS.`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl<S, N, F> FormatEvent<S, N> for RequestLineFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if !writer.has_ansi_escapes() {
            // Inside a request served without a span (`request_scope`): the stock line, with the span added.
            if let Some(request) = current_request().filter(|_| self.shape == Shape::Json || !event.is_root()) {
                let mut line = String::new();
                self.stock.format_event(ctx, Writer::new(&mut line), event)?;
                let has_scope = ctx.event_scope().is_some();
                add_request_span(&mut line, self.shape, event.metadata().level(), has_scope, request.as_str());
                return writer.write_str(&line);
            }
        }
        let metadata = event.metadata();
        if metadata.target() == REQUEST_TARGET
            && *metadata.level() == Level::INFO
            && !writer.has_ansi_escapes()
            && ctx.event_scope().is_none()
        {
            let written = LINE.with(|line| {
                let Ok(mut line) = line.try_borrow_mut() else { return None };
                line.clear();
                format_request_line(&mut line, self.shape, event, SystemTime::now())?;
                Some(writer.write_str(&line))
            });
            if let Some(result) = written {
                return result;
            }
        }
        self.stock.format_event(ctx, writer, event)
    }
}

/// The request line's fields as the edge has them.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    pub request_id: &'a str,
    /// The matched route's template, or `unmatched`.
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    /// From the request's arrival to its response; logged in milliseconds.
    pub latency: Duration,
    /// The account of an accepted token.
    pub account_id: Option<&'a str>,
}

impl RequestLine<'_> {
    /// The latency in milliseconds, from whole microseconds (the field `latency_ms`).
    pub fn latency_ms(&self) -> f64 {
        self.latency.as_micros() as f64 / 1000.0
    }

    /// Logs the line as a `tracing` event (target [`REQUEST_TARGET`], `INFO`,
    /// message `served`), for when it cannot be written directly
    /// ([`super::RequestLog::write`]). No header or body is logged: they may
    /// hold a token or personal data. The fields are only evaluated when the
    /// line is enabled.
    pub fn log_event(&self) {
        tracing::info!(
            target: REQUEST_TARGET,
            request_id = self.request_id,
            route = self.route,
            method = self.method,
            status = self.status,
            latency_ms = self.latency_ms(),
            account_id = self.account_id,
            "served"
        );
    }
}

/// Writes `request` to `queue` as one write of the line the formatter of
/// `shape` writes for the edge's event; `false` (and nothing written) when it
/// is not in the usual shape, for the event to be logged instead.
pub(super) fn write_direct(shape: Shape, request: &RequestLine<'_>, mut queue: impl std::io::Write) -> bool {
    LINE.with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else { return false };
        line.clear();
        if format_direct(&mut line, shape, request, SystemTime::now()).is_none() {
            return false;
        }
        // As the fmt layer does: a line the queue cannot take is counted by it, not reported.
        let _ = queue.write_all(line.as_bytes());
        true
    })
}

/// [`format_request_line`] from the edge's values rather than an event.
fn format_direct(line: &mut String, shape: Shape, request: &RequestLine<'_>, now: SystemTime) -> Option<()> {
    frame(line, shape, now, |line| {
        let millis = Millis::exact(request.latency_ms())?;
        let mut fields = FieldWriter { line, shape, next: 0, ok: true };
        fields.push_name("message");
        fields.line.push_str(if shape == Shape::Json { "\"served\"" } else { "served" });
        fields.push_quoted("request_id", request.request_id);
        fields.push_quoted("route", request.route);
        fields.push_quoted("method", request.method);
        fields.push_name("status");
        fields.line.push_str(itoa::Buffer::new().format(request.status));
        fields.push_name("latency_ms");
        millis.push_to(fields.line);
        if let Some(account_id) = request.account_id {
            fields.push_quoted("account_id", account_id);
        }
        fields.ok.then_some(())
    })
}

/// Appends the whole line (with its newline) to `line`; `None`, with `line` in
/// an unspecified state, when the event is not in the usual shape.
fn format_request_line(line: &mut String, shape: Shape, event: &Event<'_>, now: SystemTime) -> Option<()> {
    frame(line, shape, now, |line| record_fields(line, shape, event))
}

/// The line around its fields, which `fields` appends.
fn frame(
    line: &mut String,
    shape: Shape,
    now: SystemTime,
    fields: impl FnOnce(&mut String) -> Option<()>,
) -> Option<()> {
    match shape {
        Shape::Full => {
            push_timestamp(line, now)?;
            line.push_str("  INFO ");
            line.push_str(REQUEST_TARGET);
            line.push_str(": ");
            fields(line)?;
            line.push('\n');
        }
        Shape::Json => {
            line.push_str("{\"timestamp\":\"");
            push_timestamp(line, now)?;
            line.push_str("\",\"level\":\"INFO\",\"fields\":{");
            fields(line)?;
            line.push_str("},\"target\":\"");
            line.push_str(REQUEST_TARGET);
            line.push_str("\"}\n");
        }
    }
    Some(())
}

/// Appends the event's fields as the stock formatter of `shape` would.
fn record_fields(line: &mut String, shape: Shape, event: &Event<'_>) -> Option<()> {
    let mut visitor = FieldWriter { line, shape, next: 0, ok: true };
    event.record(&mut visitor);
    (visitor.ok && visitor.next >= REQUIRED_FIELDS).then_some(())
}

/// Writes fields as they are visited, checking each is the one expected next.
struct FieldWriter<'a> {
    line: &'a mut String,
    shape: Shape,
    /// The index in [`FIELDS`] of the field expected next.
    next: usize,
    /// False once a field was not the one expected, or not safe to copy.
    ok: bool,
}

impl FieldWriter<'_> {
    /// Whether `field` is the one expected next (and of the expected kind); moves on if so.
    fn expect(&mut self, field: &Field, kind_fits: bool) -> bool {
        self.ok = self.ok && kind_fits && FIELDS.get(self.next) == Some(&field.name());
        self.next += 1;
        self.ok
    }

    /// The separator before a field and its name: ` name=` or `,"name":`; nothing for the message in `Full`.
    fn push_name(&mut self, name: &str) {
        match self.shape {
            Shape::Full if name == "message" => {}
            Shape::Full => {
                self.line.push(' ');
                self.line.push_str(name);
                self.line.push('=');
            }
            Shape::Json => {
                if name != "message" {
                    self.line.push(',');
                }
                self.line.push('"');
                self.line.push_str(name);
                self.line.push_str("\":");
            }
        }
    }

    /// A string field, quoted (`Debug` and JSON quote a string without escapes alike).
    fn push_quoted(&mut self, name: &str, value: &str) {
        if !is_plain(value) {
            self.ok = false;
            return;
        }
        self.push_name(name);
        self.line.push('"');
        self.line.push_str(value);
        self.line.push('"');
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // request_id, route, method, account_id
        if self.expect(field, matches!(self.next, 1 | 2 | 3 | 6)) {
            self.push_quoted(field.name(), value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.expect(field, self.next == 4) {
            self.push_name("status");
            self.line.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if !self.expect(field, self.next == 5) {
            return;
        }
        match Millis::exact(value) {
            Some(millis) => {
                self.push_name("latency_ms");
                millis.push_to(self.line);
            }
            None => self.ok = false,
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.expect(field, self.next == 0) {
            return;
        }
        // The message as `Debug` shows it (format_args! shows its text), directly
        // after the name; then checked, and taken back if it would need escaping.
        self.push_name("message");
        let quoted = self.shape == Shape::Json;
        if quoted {
            self.line.push('"');
        }
        let start = self.line.len();
        self.ok =
            write!(self.line, "{value:?}").is_ok() && is_plain(&self.line[start..]) && !self.line[start..].is_empty();
        if quoted {
            self.line.push('"');
        }
    }

    fn record_i64(&mut self, field: &Field, _: i64) {
        self.expect(field, false);
    }

    fn record_bool(&mut self, field: &Field, _: bool) {
        self.expect(field, false);
    }

    fn record_error(&mut self, field: &Field, _: &(dyn std::error::Error + 'static)) {
        self.expect(field, false);
    }
}

/// Printable ASCII other than `"` and `\`: what `str`'s `Debug` and JSON both copy unescaped.
///
/// Every byte is tested, without stopping at the first that fails, so the
/// compiler can test 16 or 32 at a time: the strings are short and usually plain.
pub(super) fn is_plain(text: &str) -> bool {
    text.bytes().fold(true, |plain, byte| plain & (b' '..=b'~').contains(&byte) & (byte != b'"') & (byte != b'\\'))
}

/// A latency of whole microseconds, shown in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Millis {
    micros: u64,
}

impl Millis {
    /// Below 10^15 µs (about 31 years), f64's `Debug` and serde_json (ryu) both
    /// show `micros / 1000.0` in positional notation with the fewest digits
    /// that read back as the same number, which is the exact decimal with its
    /// trailing zeros dropped (and `.0` for a whole number): a different
    /// decimal of at most three places is a different number, more than 10^-3
    /// apart, and reads back as a different f64 at this magnitude.
    const LIMIT: u64 = 1_000_000_000_000_000;

    /// `value` if it is exactly `micros as f64 / 1000.0` for whole microseconds below [`Self::LIMIT`].
    fn exact(value: f64) -> Option<Self> {
        if !(value.is_finite() && value >= 0.0 && value < (Self::LIMIT / 1000) as f64) {
            return None;
        }
        let micros = (value * 1000.0).round() as u64;
        (micros as f64 / 1000.0 == value).then_some(Self { micros })
    }

    fn push_to(self, line: &mut String) {
        let mut buffer = itoa::Buffer::new();
        line.push_str(buffer.format(self.micros / 1000));
        line.push('.');
        let fraction = self.micros % 1000;
        if fraction == 0 {
            line.push('0');
            return;
        }
        let digits = [fraction / 100, fraction / 10 % 10, fraction % 10];
        let significant = if digits[2] != 0 {
            3
        } else if digits[1] != 0 {
            2
        } else {
            1
        };
        for digit in &digits[..significant] {
            line.push(char::from(b'0' + *digit as u8));
        }
    }
}

/// Appends `now` as tracing-subscriber's `SystemTime` timer shows it,
/// `2026-11-29T02:00:59.601769Z` (UTC, microseconds); `None` before 1970 or after 9999.
fn push_timestamp(line: &mut String, now: SystemTime) -> Option<()> {
    let since_epoch = now.duration_since(UNIX_EPOCH).ok()?;
    let second = since_epoch.as_secs();
    SECOND.with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        if cache.0 != second {
            let date_time = time::OffsetDateTime::from_unix_timestamp(i64::try_from(second).ok()?).ok()?;
            if date_time.year() > 9999 {
                return None;
            }
            cache.1.clear();
            write!(
                cache.1,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                date_time.year(),
                u8::from(date_time.month()),
                date_time.day(),
                date_time.hour(),
                date_time.minute(),
                date_time.second()
            )
            .ok()?;
            cache.0 = second;
        }
        line.push_str(&cache.1);
        Some(())
    })?;
    let micros = since_epoch.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    line.push_str(std::str::from_utf8(&digits).ok()?);
    line.push('Z');
    Some(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::{self, Format};

    use super::*;
    use crate::logging::captured::Captured;

    /// Everything the edge and the connection layer log with the request target, and a few look-alikes.
    fn emit_events() {
        let latencies =
            [0.0, 0.001, 0.01, 0.1, 0.948, 1.0, 1.5, 12.345, 999.999, 1000.0, 86_400_000.25, 0.0005, 2.0e13];
        for (index, latency) in latencies.into_iter().enumerate() {
            let account = (index % 2 == 0).then_some("acct_01M8JGHDZF8VN6R8EW84HNCENZ");
            tracing::info!(
                target: REQUEST_TARGET,
                request_id = "req_Kanl6kuqzm4NYl5aDp6E",
                route = "/v2/customers/{id}",
                method = "GET",
                status = 200_u16,
                latency_ms = latency,
                account_id = account,
                "served"
            );
        }
        let odd = ["a \"quoted\" id", "back\\slash", "tab\there", "ünïcode", "\u{1b}[31mred", ""];
        for text in odd {
            tracing::info!(target: REQUEST_TARGET, request_id = text, route = "/r", method = "GET", status = 404_u16, latency_ms = 0.5, "served");
            tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = text, method = text, status = 404_u16, latency_ms = 0.5, account_id = text, "served");
        }
        tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = "unmatched", status = 431_u16, "refused a request head");
        tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, "say \"hi\"");
        tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = "/r", method = "GET", status = -1_i64, latency_ms = 0.5, "served");
        tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = "/r", method = "GET", status = 200_u16, latency_ms = f64::NAN, "served");
        tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.12345, "served");
        tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, account_id = "a", extra = 1, "served");
        tracing::warn!(target: REQUEST_TARGET, request_id = "req_1", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, "served");
        tracing::info!(
            request_id = "req_1",
            route = "/r",
            method = "GET",
            status = 200_u16,
            latency_ms = 0.5,
            "served"
        );
        let span = tracing::info_span!("request", request_id = "req_in_span");
        span.in_scope(|| {
            tracing::info!(target: REQUEST_TARGET, request_id = "req_1", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, "served");
        });
    }

    /// The lines `emit_events` gives with `event_format`, the timestamps taken out.
    fn lines_of<E>(json: bool, event_format: E) -> Vec<String>
    where
        E: for<'w> FormatEvent<tracing_subscriber::Registry, format::DefaultFields>
            + for<'w> FormatEvent<tracing_subscriber::Registry, format::JsonFields>
            + Send
            + Sync
            + 'static,
    {
        let captured = Captured::default();
        let writer = captured.clone();
        let builder = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone());
        if json {
            let subscriber = builder.json().event_format(event_format).finish();
            tracing::subscriber::with_default(subscriber, emit_events);
        } else {
            let subscriber = builder.event_format(event_format).finish();
            tracing::subscriber::with_default(subscriber, emit_events);
        }
        let timestamp = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z").unwrap();
        captured.text().lines().map(|line| timestamp.replace(line, "TIME").into_owned()).collect()
    }

    #[test]
    fn the_fast_path_writes_the_stock_formatters_bytes() {
        let full = lines_of(false, RequestLineFormat::new(Format::default(), Shape::Full));
        let stock_full = lines_of(false, Format::default());
        assert_eq!(full, stock_full);
        let json = lines_of(true, RequestLineFormat::new(Format::default().json(), Shape::Json));
        let stock_json = lines_of(true, Format::default().json());
        assert_eq!(json, stock_json);
        assert_eq!(
            full[0],
            "TIME  INFO clientele::request: served request_id=\"req_Kanl6kuqzm4NYl5aDp6E\" \
             route=\"/v2/customers/{id}\" method=\"GET\" status=200 latency_ms=0.0 \
             account_id=\"acct_01M8JGHDZF8VN6R8EW84HNCENZ\""
        );
        assert_eq!(
            json[4],
            "{\"timestamp\":\"TIME\",\"level\":\"INFO\",\"fields\":{\"message\":\"served\",\
             \"request_id\":\"req_Kanl6kuqzm4NYl5aDp6E\",\"route\":\"/v2/customers/{id}\",\"method\":\"GET\",\
             \"status\":200,\"latency_ms\":0.948,\"account_id\":\"acct_01M8JGHDZF8VN6R8EW84HNCENZ\"},\
             \"target\":\"clientele::request\"}"
        );
    }

    /// Request lines as the edge has them, with odd values among them.
    fn edge_lines() -> Vec<RequestLine<'static>> {
        let usual = RequestLine {
            request_id: "req_Kanl6kuqzm4NYl5aDp6E",
            route: "/v2/customers/{id}",
            method: "GET",
            status: 200,
            latency: Duration::ZERO,
            account_id: Some("acct_01M8JGHDZF8VN6R8EW84HNCENZ"),
        };
        let mut lines = Vec::new();
        for micros in [0, 1, 10, 100, 948, 1000, 1500, 12_345, 999_999, 1_000_000, 86_400_000_250, 10_u64.pow(16)] {
            lines.push(RequestLine { latency: Duration::from_micros(micros), ..usual });
            lines.push(RequestLine { latency: Duration::from_micros(micros), account_id: None, ..usual });
        }
        lines.push(RequestLine { latency: Duration::from_nanos(1_234_567), status: 503, method: "DELETE", ..usual });
        for odd in ["a \"quoted\" id", "back\\slash", "tab\there", "ünïcode", "\u{1b}[31mred", ""] {
            lines.push(RequestLine { request_id: odd, ..usual });
            lines.push(RequestLine { route: odd, ..usual });
            lines.push(RequestLine { method: odd, ..usual });
            lines.push(RequestLine { account_id: Some(odd), ..usual });
        }
        lines
    }

    #[test]
    fn the_direct_line_is_the_events_line_or_none() {
        let emit = || {
            for line in edge_lines() {
                line.log_event();
            }
        };
        let timestamp = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z").unwrap();
        for shape in [Shape::Full, Shape::Json] {
            let captured = Captured::default();
            let writer = captured.clone();
            let builder = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone());
            if shape == Shape::Json {
                tracing::subscriber::with_default(builder.json().finish(), emit);
            } else {
                tracing::subscriber::with_default(builder.finish(), emit);
            }
            let text = captured.text();
            let stock: Vec<_> = text.lines().map(|line| timestamp.replace(line, "TIME")).collect();
            let mut direct_lines = 0;
            for (request, stock) in edge_lines().iter().zip(&stock) {
                let mut written = Vec::new();
                if write_direct(shape, request, &mut written) {
                    let line = String::from_utf8(written).unwrap();
                    assert_eq!(line.matches('\n').count(), 1, "{line}");
                    assert_eq!(timestamp.replace(line.trim_end(), "TIME"), *stock);
                    direct_lines += 1;
                } else {
                    assert!(written.is_empty());
                }
            }
            assert_eq!(stock.len(), edge_lines().len());
            // All but the latency of 317 years and the 20 odd values that need escaping (not the empty ones).
            assert_eq!(direct_lines, edge_lines().len() - 2 - 20, "{shape:?}");
        }
    }

    /// The fast path is taken for the usual line and not for the others (the
    /// comparison above would pass with no fast path at all).
    #[test]
    fn the_fast_path_takes_the_usual_line_only() {
        let fields = |shape, emit: fn()| {
            let captured = Captured::default();
            let writer = captured.clone();
            let taken = Arc::new(Mutex::new(Vec::new()));
            let record = Arc::clone(&taken);
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .event_format(FieldFn(move |event: &Event<'_>| {
                    let mut line = String::new();
                    record
                        .lock()
                        .unwrap()
                        .push(format_request_line(&mut line, shape, event, SystemTime::now()).is_some());
                }))
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
            let taken: Vec<bool> = taken.lock().unwrap().clone();
            taken
        };
        for shape in [Shape::Full, Shape::Json] {
            let usual = fields(shape, || {
                tracing::info!(target: REQUEST_TARGET, request_id = "r", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, "served");
                tracing::info!(target: REQUEST_TARGET, request_id = "r", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, account_id = "a", "served");
            });
            assert_eq!(usual, [true, true]);
            let unusual = fields(shape, || {
                tracing::info!(target: REQUEST_TARGET, request_id = "r", route = "unmatched", status = 431_u16, "refused a request head");
                tracing::info!(target: REQUEST_TARGET, request_id = "a\"b", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.5, "served");
                tracing::info!(target: REQUEST_TARGET, request_id = "r", route = "/r", method = "GET", status = 200_u16, latency_ms = 0.1234, "served");
            });
            assert_eq!(unusual, [false, false, false]);
        }
    }

    /// A `FormatEvent` calling a closure, to watch which events the fast path accepts.
    struct FieldFn<G>(G);

    impl<S, N, G> FormatEvent<S, N> for FieldFn<G>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        G: Fn(&Event<'_>),
    {
        fn format_event(&self, _: &FmtContext<'_, S, N>, _: Writer<'_>, event: &Event<'_>) -> fmt::Result {
            (self.0)(event);
            Ok(())
        }
    }

    #[test]
    fn latencies_are_shown_as_debug_and_serde_json_show_them() {
        let mut micros: Vec<u64> = (0..200_000).collect();
        micros.extend([999_999_999, 1_000_000_000_001, Millis::LIMIT - 1, 123_456_789_012_345, 86_400_000_000]);
        for micros in micros {
            let value = micros as f64 / 1000.0;
            let millis = Millis::exact(value).unwrap_or_else(|| panic!("{micros} µs"));
            assert_eq!(millis.micros, micros);
            let mut line = String::new();
            millis.push_to(&mut line);
            assert_eq!(line, format!("{value:?}"), "{micros} µs");
            assert_eq!(line, serde_json::to_string(&value).unwrap(), "{micros} µs");
        }
        for odd in [f64::NAN, f64::INFINITY, -1.0, 0.0005, 0.12345, 1.0e13] {
            assert_eq!(Millis::exact(odd), None, "{odd}");
        }
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let at = |seconds: u64, micros: u64| {
            let mut line = String::new();
            push_timestamp(&mut line, UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros))
                .unwrap();
            line
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_795_917_659, 601_769), "2026-11-29T02:00:59.601769Z");
        assert_eq!(at(1_795_917_659, 7), "2026-11-29T02:00:59.000007Z");
        assert_eq!(at(1_795_917_660, 999_999), "2026-11-29T02:01:00.999999Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        let mut line = String::new();
        assert_eq!(push_timestamp(&mut line, UNIX_EPOCH + Duration::from_secs(253_402_300_800)), None);
    }
}
