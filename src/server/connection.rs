//! One connection: hyper's HTTP/1.1 server over the watched socket, the
//! application as its service, and a watchdog that closes the connection when
//! one of the timeouts of API.md §1 passes, when the accept loop needs its
//! place, or at shutdown once no request is in flight on it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::Service;
use tower::util::{Oneshot, ServiceExt};

use super::ConnectionSettings;
use super::activity::{Activity, Phase};
use super::body::{TimedBody, TrackedBody};
use super::io::WatchedIo;

/// The request type the application's service receives.
pub type AppRequest = Request<TimedBody<Incoming>>;

/// Everything a connection task needs besides its socket.
pub(super) struct Connection<S> {
    pub peer: SocketAddr,
    pub service: S,
    pub settings: Arc<ConnectionSettings>,
    pub http: Arc<http1::Builder>,
    pub activity: Arc<Activity>,
    pub watcher: Watcher,
    pub stop: watch::Receiver<bool>,
}

impl<S, B> Connection<S>
where
    S: Service<AppRequest, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Serves the connection until the client or the watchdog ends it.
    pub async fn run(self, stream: TcpStream) {
        let Self { peer, service, settings, http, activity, watcher, stop } = self;
        let service = AppService {
            service,
            peer,
            activity: activity.clone(),
            body_timeout: settings.body_timeout,
            stop: stop.clone(),
        };
        let connection =
            watcher.watch(http.serve_connection(TokioIo::new(WatchedIo::new(stream, activity.clone())), service));
        tokio::select! {
            result = connection => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            () = watchdog(&activity, &settings, stop) => {}
        }
    }
}

/// Resolves when the connection must be closed: its head took longer than
/// the head timeout, it stayed idle longer than the idle timeout, the accept
/// loop evicted it, or the server is stopping and no request is in flight on it.
/// A request being served is not timed here (its body has its own deadline).
async fn watchdog(activity: &Activity, settings: &ConnectionSettings, mut stop: watch::Receiver<bool>) {
    let mut stopping = *stop.borrow();
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    loop {
        let (phase, since) = activity.load();
        let now = Instant::now();
        let deadline = match phase {
            Phase::Fresh | Phase::Head | Phase::Idle if stopping => return,
            Phase::Fresh | Phase::Head => since + settings.header_timeout,
            Phase::Idle => since + settings.idle_timeout,
            // While stopping, hyper closes the connection after this response;
            // look again soon in case the client keeps it open.
            Phase::Request if stopping => now + Duration::from_millis(100),
            Phase::Request => now + settings.header_timeout.min(settings.idle_timeout),
        };
        if deadline <= now {
            return;
        }
        sleep.as_mut().reset(deadline.into());
        tokio::select! {
            () = &mut sleep => {}
            () = activity.evicted() => return,
            _ = stop.changed(), if !stopping => stopping = true,
        }
    }
}

/// The application as hyper's service: gives each request its body deadline
/// and the peer address (as axum's `ConnectInfo`), and follows the request's
/// phase for the watchdog.
#[derive(Clone)]
struct AppService<S> {
    service: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
    body_timeout: Duration,
    /// `true` once the server is stopping: a body still awaited then is cut.
    stop: watch::Receiver<bool>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for AppService<S>
where
    S: Service<AppRequest, Response = Response<B>, Error = Infallible> + Clone,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = TrackedResponse<Oneshot<S, AppRequest>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let started = self.activity.enter(Phase::Request);
        let deadline = tokio::time::Instant::from_std(started + self.body_timeout);
        let stop = self.stop.clone();
        let mut request = request.map(|body| TimedBody::new(body, deadline, stop));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        TrackedResponse { inner: self.service.clone().oneshot(request), activity: Some(self.activity.clone()) }
    }
}

pin_project_lite::pin_project! {
    /// The application's response, its body wrapped to mark the end of the request.
    pub struct TrackedResponse<F> {
        #[pin]
        inner: F,
        activity: Option<Arc<Activity>>,
    }
}

impl<F, B> Future for TrackedResponse<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<TrackedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let activity = this.activity.take().expect("a response future is not polled after it completes");
        Poll::Ready(Ok(response.map(|body| TrackedBody::new(body, activity))))
    }
}
