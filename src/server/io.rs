//! The connection's socket as hyper sees it: reads mark the start of each
//! request head for the watchdog, and a head too large is answered here, in the
//! contract's JSON error format, instead of reaching hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::{Activity, Phase};
use super::head::{HeadScanner, Verdict};
use crate::http::edge::{REQUEST_LOG, new_request_id};
use crate::http::error::{ApiError, ErrorCode};

/// After refusing a head, what the client still sends is read and dropped, up
/// to this much, so that closing the socket does not reset the connection
/// (and destroy the answer) while the client is still writing.
const LINGER_BYTES: usize = 2 << 20;

/// A socket whose reads are watched; see the module's documentation.
pub struct WatchedIo<S> {
    stream: S,
    activity: Arc<Activity>,
    head: HeadScanner,
    refusal: Option<Refusal>,
}

impl<S> WatchedIo<S> {
    pub fn new(stream: S, activity: Arc<Activity>) -> Self {
        Self { stream, activity, head: HeadScanner::default(), refusal: None }
    }
}

/// The answer to a head too large, being written, then the rest of the request being drained.
struct Refusal {
    response: Vec<u8>,
    written: usize,
    shut_down: bool,
    discarded: usize,
}

impl Refusal {
    fn new(error: &ApiError) -> Self {
        let request_id = new_request_id();
        let request_id = request_id.to_str().unwrap_or_default();
        tracing::info!(
            target: REQUEST_LOG,
            request_id,
            route = "unmatched",
            status = error.status().as_u16(),
            "refused a request head"
        );
        let body = serde_json::to_vec(&error.envelope(request_id)).unwrap_or_default();
        let status = error.status();
        let mut response = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\n\
             connection: close\r\ndate: {}\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            body.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        )
        .into_bytes();
        response.extend_from_slice(&body);
        Self { response, written: 0, shut_down: false, discarded: 0 }
    }

    /// Writes the answer, ends the sending side, then reads until the client
    /// stops; `Ready(Ok)` with nothing read tells hyper the connection ended.
    fn poll<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.written < self.response.len() {
            match ready!(Pin::new(&mut *stream).poll_write(cx, &self.response[self.written..])) {
                Ok(0) | Err(_) => return Poll::Ready(Ok(())),
                Ok(written) => self.written += written,
            }
        }
        if !self.shut_down {
            let _ = ready!(Pin::new(&mut *stream).poll_shutdown(cx));
            self.shut_down = true;
        }
        let mut scratch = [0u8; 8192];
        while self.discarded < LINGER_BYTES {
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut *stream).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => self.discarded += buf.filled().len(),
                _ => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn refusal_error(verdict: Verdict) -> Option<ApiError> {
    match verdict {
        Verdict::TargetTooLong => Some(ErrorCode::UriTooLong.into()),
        Verdict::HeadTooLarge => Some(ErrorCode::HeadersTooLarge.into()),
        Verdict::Incomplete | Verdict::Complete => None,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(refusal) = &mut this.refusal {
            return refusal.poll(&mut this.stream, cx);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        let received = &buf.filled()[before..];
        if received.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let verdict = match this.activity.phase() {
            Phase::Fresh | Phase::Idle => {
                this.activity.enter(Phase::Head);
                this.head = HeadScanner::default();
                this.head.feed(received)
            }
            Phase::Head => this.head.feed(received),
            // A body, or a request pipelined behind the one being served.
            Phase::Request => return Poll::Ready(Ok(())),
        };
        match refusal_error(verdict) {
            None => Poll::Ready(Ok(())),
            Some(error) => {
                // hyper never sees these bytes: it reads the end of the connection instead.
                buf.set_filled(before);
                let refusal = this.refusal.insert(Refusal::new(&error));
                refusal.poll(&mut this.stream, cx)
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            // The connection has been answered already; whatever hyper writes is dropped.
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return Poll::Ready(Ok(data.iter().map(|slice| slice.len()).sum()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
