//! Span and event fields for the `Pretty` format, written as tracing-subscriber's
//! `DefaultFields` writes them, without `Debug`'s character-by-character
//! escaping when nothing needs escaping.
//!
//! A request may open a span with its `request_id` (src/http/edge.rs, when
//! `request_scope` cannot stand in for it), and the subscriber formats a
//! span's fields into a string when the span opens.
//! [`PlainFields`] writes `name="value" name=42` itself when every field is a
//! string of printable ASCII without `"` or `\`, an integer or a boolean (and
//! none is the message or a raw identifier `r#...`) on a writer without
//! colours; anything else goes to `DefaultFields`, so the bytes are the same
//! either way (the unit tests compare them).

use std::cell::RefCell;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};

/// `DefaultFields`, with a fast path for plain strings and integers.
#[derive(Debug, Default)]
pub struct PlainFields {
    stock: DefaultFields,
}

thread_local! {
    /// The fields being written, reused.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        if !writer.has_ansi_escapes() {
            let written = SCRATCH.with(|scratch| {
                let Ok(mut scratch) = scratch.try_borrow_mut() else { return None };
                scratch.clear();
                let mut visitor = PlainVisitor { line: &mut scratch, ok: true };
                fields.record(&mut visitor);
                let ok = visitor.ok;
                ok.then(|| writer.write_str(&scratch))
            });
            if let Some(result) = written {
                return result;
            }
        }
        self.stock.format_fields(writer, fields)
    }
}

struct PlainVisitor<'a> {
    line: &'a mut String,
    ok: bool,
}

impl PlainVisitor<'_> {
    /// The separator and `name=`, if the field may take the fast path.
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        self.ok = self.ok && name != "message" && !name.starts_with("r#") && !name.starts_with("log.");
        if self.ok {
            if !self.line.is_empty() {
                self.line.push(' ');
            }
            self.line.push_str(name);
            self.line.push('=');
        }
        self.ok
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.ok = self.ok && super::request_line::is_plain(value);
        if self.start(field) {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.line.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.line.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.line.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {
        self.ok = false;
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::format::Format;

    use super::*;
    use crate::logging::captured::Captured;

    fn emit() {
        let texts = ["req_Kanl6kuqzm4NYl5aDp6E", "", "a \"quoted\" id", "back\\slash", "tab\t", "ünï", "\u{1b}[31m"];
        for text in texts {
            let span = tracing::info_span!("request", request_id = text);
            span.in_scope(|| tracing::info!(code = "x", n = 3_u64, "inside"));
            let span =
                tracing::info_span!("other", a = 1_i64, b = -2_i64, c = true, d = text, e = tracing::field::Empty);
            span.record("e", 5_u64);
            span.in_scope(|| tracing::warn!(text, flag = false, "{text}"));
            let span = tracing::info_span!("debug", value = ?text, r#type = "t");
            span.in_scope(|| tracing::info!(count = 7_u64, name = text));
        }
        let empty = tracing::info_span!("empty");
        empty.in_scope(|| tracing::info!(a = 1_u64));
    }

    fn lines(fields: impl for<'w> FormatFields<'w> + Send + Sync + 'static, ansi: bool) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(ansi)
            .fmt_fields(fields)
            .event_format(Format::default().without_time())
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }

    #[test]
    fn fields_are_written_as_default_fields_writes_them() {
        for ansi in [false, true] {
            let plain = lines(PlainFields::default(), ansi);
            assert_eq!(plain, lines(DefaultFields::new(), ansi));
            assert!(plain.lines().count() > 20, "{plain}");
        }
        let plain = lines(PlainFields::default(), false);
        assert!(plain.contains("request{request_id=\"req_Kanl6kuqzm4NYl5aDp6E\"}: "), "{plain}");
        assert!(plain.contains("other{a=1 b=-2 c=true d=\"\" e=5}: "), "{plain}");
    }
}
