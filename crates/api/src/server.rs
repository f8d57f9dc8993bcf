//! The server: a tokio runtime, one accept loop per socket, HTTP/1.1 on
//! each connection (with upgrades, for attach and exec), until SIGINT or
//! SIGTERM. Containers keep running under their monitors when it stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::listen::{self, Bound, Host};
use crate::state::Api;
use crate::tls::{self, TlsOptions};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub hosts: Vec<Host>,
    /// The unix sockets' group: `Some(name)` must exist; `None` tries
    /// docker's `docker` group and keeps root's when there is none.
    pub group: Option<String>,
    /// TLS on the TCP hosts.
    pub tls: Option<TlsOptions>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            hosts: vec![Host::Unix(listen::DEFAULT_SOCKET.into())],
            group: None,
            tls: None,
        }
    }
}

impl ServeOptions {
    /// What can be refused before anything starts: a TCP host off
    /// loopback without verified clients.
    pub fn check(&self) -> Result<(), Error> {
        tls::check_hosts(&self.hosts, self.tls.as_ref())
    }
}

/// Serves until SIGINT or SIGTERM. `boot` runs once the sockets are bound,
/// before the first request is taken (dockerd's start of the containers
/// whose restart policy says so); `ready` once every socket listens. The
/// monitors of what the engine starts, `boot`'s included, are reaped by
/// the server (see [`Engine::outliving_containers`]).
pub fn serve(
    engine: Engine,
    opts: ServeOptions,
    boot: impl FnOnce(&Engine),
    ready: impl FnOnce(),
) -> Result<(), Error> {
    let gid = match &opts.group {
        Some(g) => Some(listen::group_id(g).ok_or_else(|| Error::NoSuchGroup(g.clone()))?),
        None => listen::group_id("docker"),
    };
    opts.check()?;
    let acceptor = opts
        .tls
        .as_ref()
        .map(tls::server_config)
        .transpose()?
        .map(tokio_rustls::TlsAcceptor::from);
    // Before any thread exists: activation edits the environment.
    let bound = listen::bind(&opts.hosts, gid)?;
    // Its reaper of monitors is the first thread.
    let engine = engine.outliving_containers();
    boot(&engine);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let api = Arc::new(Api::new(engine));
    let mut remove = Vec::new();
    let result = rt.block_on(async {
        for b in bound {
            match b {
                Bound::Unix(l, path) => {
                    l.set_nonblocking(true).map_err(Error::Runtime)?;
                    let l = tokio::net::UnixListener::from_std(l).map_err(Error::Runtime)?;
                    remove.extend(path);
                    let api = api.clone();
                    tokio::spawn(async move {
                        loop {
                            match l.accept().await {
                                Ok((s, _)) => connection(api.clone(), s),
                                Err(e) => accept_failed(e).await,
                            }
                        }
                    });
                }
                Bound::Tcp(l) => {
                    // Activated sockets were not seen by the check above.
                    if let Ok(a) = l.local_addr() {
                        tls::check_hosts(&[Host::Tcp(a)], opts.tls.as_ref())?;
                    }
                    l.set_nonblocking(true).map_err(Error::Runtime)?;
                    let l = tokio::net::TcpListener::from_std(l).map_err(Error::Runtime)?;
                    let api = api.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        loop {
                            match l.accept().await {
                                Ok((s, peer)) => {
                                    let _ = s.set_nodelay(true);
                                    match &acceptor {
                                        None => connection(api.clone(), s),
                                        Some(a) => handshake(api.clone(), a.clone(), s, peer),
                                    }
                                }
                                Err(e) => accept_failed(e).await,
                            }
                        }
                    });
                }
            }
        }
        ready();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::Runtime)?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok(())
    });
    for p in remove {
        let _ = std::fs::remove_file(p);
    }
    // Engine calls in flight (a stop's grace period, a pull) are not
    // waited for: their containers live on under their monitors.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Out of fds or memory: pause rather than spin.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// How long a client has to finish its TLS handshake: one that connects
/// and says nothing would hold its socket for good.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS handshake in the connection's own task, so a slow or hostile
/// client does not hold up the accept loop.
fn handshake(
    api: Arc<Api>,
    acceptor: tokio_rustls::TlsAcceptor,
    s: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) {
    tokio::spawn(async move {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
            Ok(Ok(s)) => connection(api, s),
            Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
            Err(_) => tracing::info!(%peer, "TLS handshake not finished in time"),
        }
    });
}

fn connection<S>(api: Arc<Api>, s: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(crate::router::handle(api, req).await) }
        });
        if let Err(e) = http1::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .with_upgrades()
            .await
        {
            tracing::debug!(error = %e, "connection");
        }
    });
}
