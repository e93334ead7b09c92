//! Body wrappers of the connection layer: a request body with a deadline
//! (API.md §1: the body within `--body-timeout`), and a response body that
//! tells the watchdog when the response is done.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::watch;
use tokio::time::Instant;

use super::activity::{Activity, Phase};
pub use crate::http::encoding::{BodyCutAtShutdown, BodyTimedOut, is_body_timeout};

type BoxError = Box<dyn StdError + Send + Sync>;

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyTimedOut`] once `deadline` has
    /// passed while it waits for more, or with [`BodyCutAtShutdown`] when it
    /// waits [`STALLED_AT_SHUTDOWN`] once the server is stopping. The wait is made only when the body
    /// actually has to wait, so a request without a body costs none.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        deadline: Instant,
        stop: watch::Receiver<bool>,
        wait: Option<Pin<Box<dyn Future<Output = BoxError> + Send + Sync>>>,
    }
}

impl<B> TimedBody<B> {
    /// `stop` turns `true` when the server starts shutting down.
    pub fn new(inner: B, deadline: Instant, stop: watch::Receiver<bool>) -> Self {
        Self { inner, deadline, stop, wait: None }
    }
}

/// Once the server is stopping, how long a body may go without a byte before it
/// is cut: a body still arriving finishes (within the shutdown timeout), a
/// stalled one does not hold the shutdown (API.md §1).
pub const STALLED_AT_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves to the error that ends a body's wait: its deadline, or
/// [`STALLED_AT_SHUTDOWN`] without a byte once the server is stopping.
async fn end_of_wait(deadline: Instant, mut stop: watch::Receiver<bool>) -> BoxError {
    let stopping = async move {
        // Never, if the server is gone without saying it stops: the deadline ends the wait.
        let seen = stop.wait_for(|stopping| *stopping).await.is_ok();
        if !seen {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(STALLED_AT_SHUTDOWN).await;
    };
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => Box::new(BodyTimedOut),
        () = stopping => Box::new(BodyCutAtShutdown),
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            // Progress: the next wait starts afresh (the deadline stays the same).
            *this.wait = None;
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        let (deadline, stop) = (*this.deadline, this.stop);
        let wait = this.wait.get_or_insert_with(|| Box::pin(end_of_wait(deadline, stop.clone())));
        match wait.as_mut().poll(cx) {
            Poll::Ready(error) => Poll::Ready(Some(Err(error))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that marks its connection idle when dropped: hyper drops
    /// it once the whole body has been taken (or the connection is gone).
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        activity: Arc<Activity>,
    }

    impl<B> PinnedDrop for TrackedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            this.project().activity.enter(Phase::Idle);
        }
    }
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_found_through_wrappers() {
        let direct: BoxError = Box::new(BodyTimedOut);
        assert!(is_body_timeout(direct.as_ref()));
        let in_io = std::io::Error::other(BodyTimedOut);
        assert!(is_body_timeout(&in_io));
        let in_axum = axum::Error::new(std::io::Error::other(BodyTimedOut));
        assert!(is_body_timeout(&in_axum));
        assert!(!is_body_timeout(&std::io::Error::other("connection reset")));
    }
}
