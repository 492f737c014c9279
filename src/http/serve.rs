//! The accept loop of the proxy's listeners: every connection is bounded before any
//! request code runs. At most `server.max_connections` are open (one more is answered
//! 503 with `Retry-After` and closed); a request head must arrive complete within
//! `server.header_read_timeout_ms` — counted from when the connection opens or its previous
//! response ends, so a connection that sits idle is closed too — and be at most
//! `server.max_header_bytes` (431). Bodies are bounded in time by [`super::body`]. A
//! client that stops reading its responses is cut off once a write has waited
//! `server.write_timeout_ms` (otherwise it would hold its connection, and a slot, forever:
//! no head is being read then, so the head timeout does not run).
//!
//! Why not `axum::serve`: it sets neither a head size nor a head read time, and has no
//! connection limit. hyper's own HTTP/1 settings do the first two; a semaphore the third.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    time::Sleep,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::{
    config::ConnectionLimits,
    telemetry::{Metrics, Rejection},
};

/// Connections over the limit being answered 503 at once; beyond these they are closed
/// without an answer, so refusing cannot itself hold many descriptors.
const REFUSING_AT_ONCE: usize = 64;
/// How long a refused connection may take to take its 503.
const REFUSE_WRITE: Duration = Duration::from_secs(1);
/// After a failed accept (out of descriptors, say), wait this long before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 33\r\n\
\r\n\
{\"error\":\"too many connections\"}\n";

/// Serves `router` on `listener` until `stop` is cancelled, then waits for the open
/// connections to finish. Each request carries the peer address as
/// [`ConnectInfo<SocketAddr>`] (as `axum`'s `into_make_service_with_connect_info` would).
/// `metrics` counts refusals and open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Option<Arc<Metrics>>,
    stop: CancellationToken,
    tls: Option<Arc<super::tls::Tls>>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(m) = &metrics {
                m.reject(Rejection::ConnectionLimit);
            }
            if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let mut tcp = tcp;
                    let _ = tokio::time::timeout(REFUSE_WRITE, async {
                        tcp.write_all(OVER_LIMIT).await?;
                        tcp.shutdown().await
                    })
                    .await;
                    drop(refusal);
                });
            }
            continue;
        };
        // rmcp writes SSE replies in several small writes: without this, Nagle's
        // algorithm adds tens of milliseconds to every response.
        let _ = tcp.set_nodelay(true);
        let tcp = WriteDeadline {
            inner: tcp,
            limit: limits.write_timeout,
            stalled: None,
            metrics: metrics.clone(),
        };
        if let Some(m) = &metrics {
            m.connections.inc();
        }
        let (router, builder, watcher) = (router.clone(), builder.clone(), graceful.watcher());
        // The TLS configuration in force when the connection came (a reload reaches the
        // next ones).
        let (metrics, tls) = (metrics.clone(), tls.as_ref().map(|t| t.acceptor()));
        tokio::spawn(async move {
            match tls {
                None => {
                    let service = service(&router, peer, None);
                    let connection = builder.serve_connection(TokioIo::new(tcp), service);
                    finished(watcher.watch(connection).await, &metrics);
                }
                Some(tls) => {
                    // The handshake is part of the head: it has the head's time.
                    match tokio::time::timeout(limits.header_read_timeout, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let certificate = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(|leaf| super::tls::ClientCertificate::of(leaf));
                            let service = service(&router, peer, certificate);
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), service);
                            finished(watcher.watch(connection).await, &metrics);
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            if let Some(m) = &metrics {
                                m.reject(Rejection::HeaderTimeout);
                            }
                        }
                    }
                }
            }
            if let Some(m) = &metrics {
                m.connections.dec();
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Counts how a connection ended, when it ended on a bound.
fn finished(result: Result<(), hyper::Error>, metrics: &Option<Arc<Metrics>>) {
    if let Err(e) = result
        && let Some(m) = metrics
    {
        if e.is_timeout() {
            m.reject(Rejection::HeaderTimeout);
        } else if e.is_parse_too_large() {
            m.reject(Rejection::HeaderTooLarge);
        }
    }
}

/// The router for one connection, each request tagged with the peer's address and, over
/// TLS, the client certificate the handshake verified.
fn service(
    router: &Router,
    peer: SocketAddr,
    certificate: Option<super::tls::ClientCertificate>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send + 'static,
> + Send
+ 'static {
    let router = router.clone();
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        router.clone().oneshot(request)
    })
}

/// A socket whose writes may not wait longer than `limit` for the client to read.
struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Running while a write waits.
    stalled: Option<Pin<Box<Sleep>>>,
    metrics: Option<Arc<Metrics>>,
}

impl<T> WriteDeadline<T> {
    /// After the inner write said `Pending`: still waiting, or past the limit (an error
    /// that ends the connection).
    fn waiting<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                if let Some(m) = &self.metrics {
                    m.reject(Rejection::WriteTimeout);
                }
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
        }
    }

    fn progressed<R>(&mut self, ready: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        self.stalled = None;
        ready
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.waiting(cx),
            ready => this.progressed(ready),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.waiting(cx),
            ready => this.progressed(ready),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.waiting(cx),
            ready => this.progressed(ready),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.waiting(cx),
            ready => this.progressed(ready),
        }
    }
}
