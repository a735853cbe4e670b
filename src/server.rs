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
}

/// A started gateway. Dropping it does not stop it; call `shutdown`.
pub struct Running {
    pub http_addrs: Vec<SocketAddr>,
    pub tls_addrs: Vec<SocketAddr>,
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to `grace`), then returns.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
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
    let tls = match &config.server.tls {
        Some(t) => Some((t.listen.clone(), tls_acceptor(t)?)),
        None => None,
    };
    let listen = config.server.listen.clone();
    let gateway = Gateway::open(config).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut http_addrs = Vec::new();
    for addr in listen {
        let listener = bind(addr).await?;
        http_addrs.push(listener.local_addr().unwrap_or(addr));
        tasks.spawn(accept_loop(
            listener,
            None,
            gateway.clone(),
            stopped.clone(),
            header_timeout,
        ));
    }
    tasks.spawn(crate::upkeep::run(
        gateway.store.clone(),
        Duration::from_secs(gateway.config.limits.upload_cleanup_interval_secs),
        stopped.clone(),
    ));
    let mut tls_addrs = Vec::new();
    if let Some((addrs, acceptor)) = tls {
        for addr in addrs {
            let listener = bind(addr).await?;
            tls_addrs.push(listener.local_addr().unwrap_or(addr));
            tasks.spawn(accept_loop(
                listener,
                Some(acceptor.clone()),
                gateway.clone(),
                stopped.clone(),
                header_timeout,
            ));
        }
    }
    Ok(Running {
        http_addrs,
        tls_addrs,
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
    mut stopped: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => break,
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
        let gw = gateway.clone();
        let service = service_fn(move |req| {
            let gw = gw.clone();
            async move { Ok::<_, std::convert::Infallible>(crate::s3::handler::handle(gw, req).await) }
        });
        match &tls {
            None => {
                // Plain HTTP speaks HTTP/1.1 only: protocol sniffing would wait for a first
                // byte without any time limit, and S3 clients don't use cleartext HTTP/2.
                let builder = connection_builder(header_timeout, false);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(header_timeout, acceptor.accept(stream)).await;
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let builder = connection_builder(header_timeout, h2);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    graceful.shutdown().await;
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
