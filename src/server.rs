//! The HTTP(S) server: listeners, TLS, connection limits, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

mod conns;

use conns::{Conns, GuardedBody, Slot, Tracked};

use crate::config::{Config, TlsConfig};
use crate::gateway::{Gateway, StartError};

#[derive(thiserror::Error, Debug)]
pub enum ServerError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    /// The admin token could not be read.
    #[error("{0}")]
    AdminToken(String),
}

/// A started gateway. Dropping it does not stop it; call `shutdown`.
pub struct Running {
    pub http_addrs: Vec<SocketAddr>,
    pub tls_addrs: Vec<SocketAddr>,
    /// The admin plane's listener, when `[admin]` is enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The dedicated metrics listener, when `[metrics] listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, lets requests in flight and the background workers (repairs, jobs,
    /// upkeep) finish (up to `grace`), then returns: true when everything ended in time.
    /// Connections still busy are not waited for any longer; they end when the runtime does.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let clean = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        self.tasks.abort_all();
        clean
    }

    /// Waits until every listener has stopped (after `shutdown` from elsewhere, or forever).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

pub async fn start(config: Config) -> Result<Running, ServerError> {
    let header_timeout = Duration::from_secs(config.limits.header_timeout_secs);
    let idle_after = Duration::from_secs(config.limits.keepalive_idle_secs.max(1));
    let per_connection = 1 + config.backends.len() as u64;
    let max_connections = match crate::fd_limit::raise_nofile() {
        Ok(lim) => {
            let cap = crate::fd_limit::connection_cap(
                config.limits.max_connections,
                lim.soft,
                per_connection,
            );
            tracing::info!(
                open_files_limit = lim.soft,
                open_files_limit_at_start = lim.initial,
                open_files_hard_limit = lim.hard,
                max_connections = cap,
                open_files_per_busy_connection = per_connection,
                keepalive_idle_secs = idle_after.as_secs(),
                "connection limits"
            );
            cap
        }
        Err(e) => {
            tracing::warn!(error = %e, max_connections = config.limits.max_connections,
                "cannot read the open-file limit; connections capped by configuration only");
            config.limits.max_connections
        }
    };
    let conns = Conns::new(max_connections, idle_after);
    let tls = match &config.server.tls {
        Some(t) => Some((t.listen.clone(), tls_acceptor(t)?)),
        None => None,
    };
    let listen = config.server.listen.clone();
    // Read once, at start: a token file changed later takes effect at the next start.
    let admin = match config.admin.as_ref().filter(|a| a.enabled) {
        Some(a) => Some((
            a.listen,
            a.token
                .resolve()
                .map_err(|e| ServerError::AdminToken(e.to_string()))?,
            a.optional,
        )),
        None => None,
    };
    let gateway = Gateway::open(config).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut http_addrs = Vec::new();
    let mut listeners = Vec::new();
    for addr in listen {
        let listener = bind(addr).await?;
        http_addrs.push(listener.local_addr().unwrap_or(addr));
        listeners.push((listener, None));
    }
    let mut tls_addrs = Vec::new();
    if let Some((addrs, acceptor)) = tls {
        for addr in addrs {
            let listener = bind(addr).await?;
            tls_addrs.push(listener.local_addr().unwrap_or(addr));
            listeners.push((listener, Some(acceptor.clone())));
        }
    }
    // Bound with the S3 listeners, before anything runs: a taken address fails the start.
    let admin_listener = match admin {
        Some((addr, token, optional)) => match bind(addr).await {
            Ok(listener) => Some((listener, addr, token)),
            Err(e) if optional => {
                tracing::warn!(error = %e,
                    "no admin plane: its default address is taken (give serve --admin-listen)");
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let metrics_listener = match gateway.config.metrics.listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    for (listener, acceptor) in listeners {
        tasks.spawn(accept_loop(
            listener,
            acceptor,
            gateway.clone(),
            conns.clone(),
            stopped.clone(),
            header_timeout,
        ));
    }
    tasks.spawn(crate::upkeep::run(
        gateway.store.clone(),
        Duration::from_secs(gateway.config.limits.upload_cleanup_interval_secs),
        stopped.clone(),
    ));
    tasks.spawn(crate::upkeep::run_repairs(
        gateway.store.clone(),
        stopped.clone(),
    ));
    tasks.spawn(crate::store::jobs::run(
        gateway.store.clone(),
        stopped.clone(),
    ));
    tasks.spawn(crate::reload::on_sighup(gateway.clone(), stopped.clone()));
    tasks.spawn(crate::upkeep::run_lifecycle(
        gateway.store.clone(),
        gateway.config.lifecycle.clone(),
        stopped.clone(),
    ));
    tasks.spawn(crate::upkeep::run_anti_entropy(
        gateway.store.clone(),
        Duration::from_secs(gateway.config.repair.anti_entropy_interval_secs),
        stopped.clone(),
    ));
    let mut admin_addr = None;
    if let Some((listener, addr, token)) = admin_listener {
        admin_addr = Some(listener.local_addr().unwrap_or(addr));
        let state = Arc::new(crate::admin::AdminState {
            gateway: gateway.clone(),
            token,
        });
        tasks.spawn(crate::admin::serve(
            listener,
            state,
            stopped.clone(),
            header_timeout,
        ));
    }
    let mut metrics_addr = None;
    if let Some(listener) = metrics_listener {
        metrics_addr = listener.local_addr().ok();
        tasks.spawn(crate::admin::serve_metrics(
            listener,
            gateway.clone(),
            stopped.clone(),
            header_timeout,
        ));
    }
    let store = &gateway.store;
    tasks.spawn(
        store
            .health
            .clone()
            .run_probes(store.backends.iter().cloned().collect(), stopped.clone()),
    );
    Ok(Running {
        http_addrs,
        tls_addrs,
        admin_addr,
        metrics_addr,
        gateway,
        stop,
        tasks,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gateway: Arc<Gateway>,
    conns: Arc<Conns>,
    mut stopped: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = tokio::select! {
            s = conns.admit() => s,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let Some(slot) = slot else {
            match conns.rejecting.clone().try_acquire_owned() {
                Ok(permit) => {
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        reject(stream, tls.as_ref(), peer).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(stream),
            }
            continue;
        };
        let gw = gateway.clone();
        let state = slot.state.clone();
        let connection = crate::access::Connection {
            peer,
            secure: tls.is_some(),
        };
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(connection);
            let gw = gw.clone();
            let guard = state.begin();
            async move {
                let response = crate::s3::handler::handle(gw, req).await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| GuardedBody::new(body, guard)),
                )
            }
        });
        let mut stopped = stopped.clone();
        let idle_after = conns.idle_after();
        let acceptor = tls.clone();
        tokio::spawn(async move {
            let io = Tracked::new(stream, slot.state.clone());
            match acceptor {
                // Plain HTTP speaks HTTP/1.1 only: protocol sniffing would wait for a first
                // byte without any time limit, and S3 clients don't use cleartext HTTP/2.
                None => {
                    serve(
                        io,
                        false,
                        service,
                        (header_timeout, idle_after),
                        &slot,
                        stopped,
                        peer,
                    )
                    .await
                }
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        h = tokio::time::timeout(header_timeout, acceptor.accept(io)) => h,
                        _ = slot.state.evict.notified() => return,
                        _ = stopped.wait_for(|s| *s) => return,
                    };
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    slot.state.set_reads_count(!h2);
                    serve(
                        stream,
                        h2,
                        service,
                        (header_timeout, idle_after),
                        &slot,
                        stopped,
                        peer,
                    )
                    .await
                }
            }
        });
    }
    // Closed now, not once the last connection is done: new clients are refused at once
    // instead of waiting in the backlog of a gateway that is stopping.
    drop(listener);
    conns.drained().await;
}

/// Serves one connection until it ends. It is closed gracefully (requests in flight finish)
/// when the gateway stops or once it has been idle for `idle_after` (hyper's HTTP/1.1 server
/// has no idle timeout of its own, and HTTP/2 pings would keep an idle connection open for
/// ever), and at once when the cap needs its place while it is idle.
async fn serve<I, S>(
    io: I,
    h2: bool,
    service: S,
    (header_timeout, idle_after): (Duration, Duration),
    slot: &Slot,
    mut stopped: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<GuardedBody<crate::s3::response::Body>>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let builder = connection_builder(header_timeout, h2);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let state = &slot.state;
    let mut closing = false;
    loop {
        // Far enough to never fire; the request's end wakes the loop through `quiet`.
        let idle_at = state
            .idle_deadline(idle_after)
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400));
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopped.wait_for(|s| *s), if !closing => {}
            _ = state.evict.notified(), if !closing => {
                // Nothing is owed to an idle connection, and one whose client is dribbling
                // the next request's headers would hold its place until the header timeout.
                if state.is_idle() {
                    return;
                }
            }
            _ = state.quiet.notified(), if !closing => continue,
            _ = tokio::time::sleep_until(idle_at), if !closing => {
                match state.idle_deadline(idle_after) {
                    Some(at) if at <= std::time::Instant::now() => {
                        tracing::trace!("closing an idle connection");
                    }
                    _ => continue,
                }
            }
        }
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
}

/// A connection beyond the cap, while every open one has a request in flight, gets S3's
/// 503 SlowDown (which clients retry with back-off) rather than waiting unseen in the accept
/// queue. HTTP/2 over TLS is simply closed: an HTTP/1.1 answer would not parse.
async fn reject(
    stream: tokio::net::TcpStream,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    peer: SocketAddr,
) {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    const LIMIT: Duration = Duration::from_secs(2);
    const DRAIN: Duration = Duration::from_millis(200);
    async fn answer<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) {
        let request_id = format!("{:016X}", rand_id());
        let body = crate::s3::error::S3Error::slow_down().to_xml("/", &request_id);
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\
             x-amz-request-id: {request_id}\r\n\r\n",
            body.len()
        );
        if io.write_all(head.as_bytes()).await.is_err()
            || io.write_all(body.as_bytes()).await.is_err()
            || io.shutdown().await.is_err()
        {
            return;
        }
        // Read what the client sent for a moment: closing with unread bytes would reset the
        // connection, and the client might never see the answer. Only a moment: a client
        // that keeps its end open would hold one of the few rejecting places meanwhile.
        let mut sink = [0u8; 8192];
        let mut total = 0usize;
        let drain = async {
            while let Ok(n) = io.read(&mut sink).await {
                total += n;
                if n == 0 || total > 1 << 20 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN, drain).await;
    }
    let work = async {
        match tls {
            None => answer(stream).await,
            Some(acceptor) => {
                let Ok(s) = acceptor.accept(stream).await else {
                    return;
                };
                if s.get_ref().1.alpn_protocol() == Some(b"h2") {
                    return;
                }
                answer(s).await
            }
        }
    };
    let _ = tokio::time::timeout(LIMIT, work).await;
    tracing::debug!(%peer, "connection turned away at the connection cap");
}

fn rand_id() -> u64 {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// One protocol per connection, chosen up front (ALPN on TLS), so that the header timeout
/// runs from the first byte.
fn connection_builder(header_timeout: Duration, h2: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(256 << 10);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    }
}

fn tls_acceptor(t: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ServerError::Tls(format!("{}: {e}", p.display())))
    };
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut read(&t.certificate)?.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| ServerError::Tls(format!("{}: {e}", t.certificate.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate found",
            t.certificate.display()
        )));
    }
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut read(&t.private_key)?.as_slice())
            .map_err(|e| ServerError::Tls(format!("{}: {e}", t.private_key.display())))?
            .ok_or_else(|| {
                ServerError::Tls(format!("{}: no private key found", t.private_key.display()))
            })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
