//! Measures a request head as its bytes arrive, so that a head too large is
//! refused with the contract's error (API.md §1: a request target over 8 KiB →
//! `414`, a head over 32 KiB → `431`) before hyper gives up on it with a bare
//! status of its own.

use memchr::memchr;

pub use crate::http::limits::{MAX_HEAD_BYTES, MAX_HEADER_LINES, MAX_TARGET_BYTES};
/// Room for the method and the version around a target of [`MAX_TARGET_BYTES`].
/// A line between that target and this length reaches the application, which
/// measures the target itself.
const MAX_REQUEST_LINE_BYTES: usize = MAX_TARGET_BYTES + 64;

/// What the bytes seen so far say about the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limits, not complete yet.
    Incomplete,
    /// Complete (an empty line ended it) and within the limits.
    Complete,
    /// The request line is longer than a target of [`MAX_TARGET_BYTES`] allows.
    TargetTooLong,
    /// More than [`MAX_HEAD_BYTES`] or [`MAX_HEADER_LINES`].
    HeadTooLarge,
}

/// Follows one head across reads: line lengths, line count and total size.
#[derive(Debug, Default, Clone)]
pub struct HeadScanner {
    total: usize,
    /// Bytes of the current line so far, without its `\n`.
    line: usize,
    /// Non-empty lines so far, the request line included.
    lines: usize,
    complete: bool,
}

impl HeadScanner {
    /// Takes the next bytes received. Bytes after the end of the head (a body,
    /// a pipelined request) are not counted.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Verdict {
        if self.complete {
            return Verdict::Complete;
        }
        while let Some(end) = memchr(b'\n', bytes) {
            self.line += end;
            self.total += end + 1;
            bytes = &bytes[end + 1..];
            // An empty line (`\r\n` or `\n`) ends the head; before the request
            // line it is a stray line end that HTTP/1.1 lets a server skip.
            if self.line <= 1 {
                if self.lines > 0 {
                    self.complete = true;
                    return self.judge(Verdict::Complete);
                }
            } else {
                if self.lines == 0 && self.line > MAX_REQUEST_LINE_BYTES {
                    return Verdict::TargetTooLong;
                }
                self.lines += 1;
            }
            self.line = 0;
        }
        self.line += bytes.len();
        self.total += bytes.len();
        if self.lines == 0 && self.line > MAX_REQUEST_LINE_BYTES {
            return Verdict::TargetTooLong;
        }
        self.judge(Verdict::Incomplete)
    }

    fn judge(&self, otherwise: Verdict) -> Verdict {
        if self.total > MAX_HEAD_BYTES || self.lines > MAX_HEADER_LINES + 1 { Verdict::HeadTooLarge } else { otherwise }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Verdict {
        let mut scanner = HeadScanner::default();
        let mut verdict = Verdict::Incomplete;
        for chunk in chunks {
            verdict = scanner.feed(chunk);
        }
        verdict
    }

    #[test]
    fn an_ordinary_head_completes_in_any_split() {
        let head = b"GET /v2/customers HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        assert_eq!(scan(&[head]), Verdict::Complete);
        for split in 0..head.len() {
            let (first, second) = head.split_at(split);
            assert_eq!(scan(&[first, second]), Verdict::Complete, "split at {split}");
        }
        assert_eq!(scan(&[&head[..head.len() - 1]]), Verdict::Incomplete);
        assert_eq!(scan(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]), Verdict::Complete, "stray line ends first");
        assert_eq!(scan(&[b"GET / HTTP/1.1\n\n"]), Verdict::Complete, "bare LF line ends");
    }

    #[test]
    fn a_body_after_the_head_is_not_counted() {
        let mut request = b"POST /v2/customers HTTP/1.1\r\nContent-Length: 40000\r\n\r\n".to_vec();
        request.extend(std::iter::repeat_n(b'\n', 40_000));
        assert_eq!(scan(&[&request]), Verdict::Complete);
    }

    #[test]
    fn long_targets_are_refused_even_before_the_line_ends() {
        let line = |target: usize| format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(target - 1)).into_bytes();
        assert_eq!(scan(&[&line(MAX_TARGET_BYTES)]), Verdict::Complete);
        assert_eq!(scan(&[&line(MAX_TARGET_BYTES + 100)]), Verdict::TargetTooLong);
        let endless = vec![b'a'; 1 << 20];
        assert_eq!(scan(&[b"GET /", &endless]), Verdict::TargetTooLong);
        assert_eq!(scan(&[b"GET /", &endless[..MAX_TARGET_BYTES]]), Verdict::Incomplete);
    }

    #[test]
    fn large_heads_are_refused() {
        let header = format!("X-Big: {}\r\n", "b".repeat(1000));
        let head = |headers: usize| format!("GET / HTTP/1.1\r\n{}\r\n", header.repeat(headers)).into_bytes();
        assert_eq!(scan(&[&head(30)]), Verdict::Complete);
        assert_eq!(scan(&[&head(33)]), Verdict::HeadTooLarge);
        assert_eq!(scan(&[&head(33)[..33_000]]), Verdict::HeadTooLarge, "refused before it ends");
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: 1\r\n".repeat(MAX_HEADER_LINES + 1)).into_bytes();
        assert_eq!(scan(&[&many]), Verdict::HeadTooLarge);
        let enough = format!("GET / HTTP/1.1\r\n{}\r\n", "A: 1\r\n".repeat(MAX_HEADER_LINES)).into_bytes();
        assert_eq!(scan(&[&enough]), Verdict::Complete);
    }
}
