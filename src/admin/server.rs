//! The admin listener, and the dedicated metrics listener: plain HTTP/1.1 on their own
//! addresses, stopped with the gateway.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::routes::AdminState;
use crate::gateway::Gateway;

/// Admin connections open at once. Admin traffic is a handful of operators and scripts; the
/// cap keeps connections that never authenticate from using up the gateway's descriptors.
const MAX_CONNECTIONS: usize = 64;

/// Accepts admin connections until `stopped`, then lets requests in flight finish. Past
/// [`MAX_CONNECTIONS`] new connections are closed at once; the S3 listeners' header timeout
/// applies, so that an idle socket cannot linger.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    stopped: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    let handler = move |req: Request<Incoming>| {
        let state = state.clone();
        async move { super::routes::handle(state, req).await }
    };
    accept_loop(listener, stopped, header_timeout, "admin", handler).await
}

/// The metrics listener (`[metrics] listen`): `/metrics`, `/health/live` and
/// `/health/ready` only, with the admin listener's connection handling and cap.
pub async fn serve_metrics(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    stopped: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    let handler = move |req: Request<Incoming>| super::observe::handle_only(gateway.clone(), req);
    accept_loop(listener, stopped, header_timeout, "metrics", handler).await
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
    header_timeout: Duration,
    what: &'static str,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, listener = what, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, listener = what,
                "connection refused: {MAX_CONNECTIONS} already open");
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let answer = handler(req);
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, listener = what,
                            "connection ended with an error");
                    }
                    return;
                }
                _ = stopped.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
        // Reap finished connections so the set does not grow with every one served.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}
