//! Response compression around the whole application (API.md §1), with
//! tower-http's [`CompressionLayer`](super::encoding::compression) doing the
//! work, applied only where it pays.
//!
//! tower-http's layer gives every response its own body type, an enum able to
//! hold any of its encoders: 5.8 KB, moved several times per request even when
//! nothing is compressed, which cost about 10 % of a small `GET`. So this
//! service looks first: a response is handed to tower-http only when the
//! client sent `Accept-Encoding` and the body may be over 1 KiB; every other
//! response passes through untouched, in axum's own 16-byte body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use futures_util::FutureExt;
use http_body::Body as _;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::encoding::{COMPRESS_ABOVE_BYTES, compression};

/// Wraps a service so that its large responses are compressed; see the module's documentation.
#[derive(Debug, Clone)]
pub struct Compress<S> {
    inner: S,
}

impl<S> Compress<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> Service<Request<B>> for Compress<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = CompressFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let accept = request.headers().get(header::ACCEPT_ENCODING).cloned();
        CompressFuture { inner: self.inner.call(request), accept }
    }
}

pin_project_lite::pin_project! {
    /// The inner response, compressed when it is worth it.
    pub struct CompressFuture<F> {
        #[pin]
        inner: F,
        accept: Option<HeaderValue>,
    }
}

impl<F> Future for CompressFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let compressible = !response.headers().contains_key(header::CONTENT_ENCODING)
            && response.body().size_hint().exact().is_none_or(|length| length > u64::from(COMPRESS_ABOVE_BYTES));
        match this.accept.take() {
            Some(accept) if compressible => Poll::Ready(Ok(compress(response, accept))),
            _ => Poll::Ready(Ok(response)),
        }
    }
}

/// tower-http's compression of a response already made: its layer around a
/// service that answers with it, called with the client's `Accept-Encoding`.
fn compress(response: Response<Body>, accept: HeaderValue) -> Response<Body> {
    let mut request = Request::new(());
    request.headers_mut().insert(header::ACCEPT_ENCODING, accept);
    let mut response = Some(response);
    let ready = service_fn(move |_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(response.take().expect("called once")))
    });
    match compression().layer(ready).oneshot(request).now_or_never() {
        Some(Ok(compressed)) => compressed.map(Body::new),
        // The service answers at once, so its compression does too.
        None => unreachable!("compressing a ready response completes at once"),
    }
}
