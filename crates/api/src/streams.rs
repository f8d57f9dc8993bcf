//! Hijacked connections (`Upgrade: tcp` → 101): `attach` and the exec
//! streams. The client's bytes become stdin frames of the monitor's attach
//! stream; the monitor's stdout and stderr frames go back raw (a tty) or
//! with docker's 8-byte multiplexing header (stream byte, three zeros, a
//! big-endian length).

use std::os::fd::{AsFd, OwnedFd};

use berth_engine::stream::{self, DetachWatch, Kind};
use berth_engine::State;
use hyper::{header, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::sync::mpsc;

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::PendingAttach;

/// docker's default detach keys (ctrl-p ctrl-q).
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// docker's multiplexing header for stdout (1) or stderr (2).
pub fn frame(stream: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub fn content_type(minor: u32, tty: bool) -> &'static str {
    if minor >= 42 && !tty {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// The 101 answer to an upgrade; the caller serves the connection once
/// the response is sent.
pub fn switching(ctype: &str) -> Response {
    let mut r = body::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
    if let Ok(v) = header::HeaderValue::from_str(ctype) {
        h.insert(header::CONTENT_TYPE, v);
    }
    r
}

/// What one side of an attach carries.
#[derive(Debug, Clone)]
pub struct Streams {
    pub tty: bool,
    /// Output with docker's multiplexing header (a hijacked connection
    /// without a tty); raw otherwise (a tty, a websocket).
    pub mux: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Watched for in a tty's input; empty: none.
    pub detach_keys: Vec<u8>,
}

impl Streams {
    /// The client's output for one frame of the monitor's.
    fn output(&self, kind: Kind, body: &[u8]) -> Option<Vec<u8>> {
        let (want, n) = match kind {
            Kind::Stdout => (self.stdout, 1),
            Kind::Stderr => (self.stderr, 2),
            _ => return None,
        };
        if !want || body.is_empty() {
            return None;
        }
        Some(if self.mux {
            frame(n, body)
        } else {
            body.to_vec()
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The process exited with this code.
    Exited(i32),
    /// The client typed the detach keys.
    Detached,
    /// Either side went away.
    Closed,
}

/// Watches a unix socket client for its hang-up. docker's client closes
/// its sending side once its stdin ends (or at once, without stdin) and
/// goes on reading: the end of its input is not its leaving. A client
/// that closed the whole connection (or died) is told apart only by the
/// socket's hang-up. Watched for writability: its end of input is a
/// lasting state that a watch for reading would report again and again,
/// while writability comes and goes as the client reads, and a hang-up
/// ends it for good.
pub struct Hangup(AsyncFd<OwnedFd>);

impl Hangup {
    fn new(s: &tokio::net::UnixStream) -> Option<Hangup> {
        let fd = s.as_fd().try_clone_to_owned().ok()?;
        // Deprecated for fds the AsyncFd does not own (it could outlive
        // them); this one owns its OwnedFd. The sound replacement is
        // unsafe, which only berth-sys may be.
        #[allow(deprecated)]
        AsyncFd::with_interest(fd, Interest::WRITABLE)
            .ok()
            .map(Hangup)
    }

    pub(crate) async fn wait(h: Option<&Hangup>) {
        let Some(Hangup(fd)) = h else {
            return std::future::pending().await;
        };
        loop {
            match fd.ready(Interest::WRITABLE).await {
                Ok(g) if g.ready().is_write_closed() => return,
                Ok(mut g) => g.clear_ready(),
                Err(_) => return std::future::pending().await,
            }
        }
    }
}

/// Something a hijacked client speaks over.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}

/// The connection of an upgraded request, and on a unix socket a watch
/// for its hang-up.
pub fn hijacked(up: hyper::upgrade::Upgraded) -> (Box<dyn ClientIo>, Option<Hangup>) {
    match up.downcast::<TokioIo<tokio::net::UnixStream>>() {
        Ok(parts) => {
            let sock = parts.io.into_inner();
            let hangup = Hangup::new(&sock);
            let (rd, wr) = sock.into_split();
            // What hyper read past the request is the client's first input.
            let rd = std::io::Cursor::new(parts.read_buf).chain(rd);
            (Box::new(tokio::io::join(rd, wr)), hangup)
        }
        Err(up) => (Box::new(TokioIo::new(up)), None),
    }
}

/// Serves a client connection against a monitor's attach stream until
/// the process exits, the client detaches or either side closes (or
/// `gone` says the client left: its input ends then too). The client
/// connection is left open for the caller to finish.
pub async fn bridge<C>(
    client: &mut C,
    mut monitor: tokio::net::UnixStream,
    s: &Streams,
    mut resize: Option<mpsc::Receiver<(u16, u16)>>,
    gone: impl std::future::Future<Output = ()>,
) -> Ended
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::pin!(gone);
    let mut frames = stream::Decoder::default();
    let mut watch = DetachWatch::new(if s.tty {
        s.detach_keys.clone()
    } else {
        Vec::new()
    });
    let mut input_open = true;
    let mut mbuf = vec![0u8; 32 * 1024];
    let mut cbuf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            n = monitor.read(&mut mbuf) => {
                let n = match n { Ok(0) | Err(_) => return Ended::Closed, Ok(n) => n };
                frames.push(&mbuf[..n]);
                loop {
                    match frames.next_frame() {
                        Ok(Some((Kind::Exit, b))) => {
                            let code = String::from_utf8_lossy(&b).trim().parse().unwrap_or(255);
                            let _ = client.flush().await;
                            return Ended::Exited(code);
                        }
                        Ok(Some((kind, b))) => {
                            if let Some(out) = s.output(kind, &b) {
                                if client.write_all(&out).await.is_err() {
                                    return Ended::Closed;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(_) => return Ended::Closed,
                    }
                }
                if client.flush().await.is_err() {
                    return Ended::Closed;
                }
            }
            n = client.read(&mut cbuf), if input_open => {
                match n {
                    Ok(0) | Err(_) => {
                        input_open = false;
                        // The client closed its side: its stdin ended.
                        if s.stdin {
                            let _ = monitor.write_all(&stream::encode(Kind::StdinEof, &[])).await;
                        }
                    }
                    Ok(n) if s.stdin => {
                        let (data, detach) = watch.feed(&cbuf[..n]);
                        if !data.is_empty()
                            && monitor.write_all(&stream::encode(Kind::Stdin, &data)).await.is_err()
                        {
                            return Ended::Closed;
                        }
                        if detach {
                            return Ended::Detached;
                        }
                    }
                    // Input without stdin attached is dropped, as docker does.
                    Ok(_) => {}
                }
            }
            Some((rows, cols)) = async { match resize.as_mut() { Some(r) => r.recv().await, None => None } } => {
                let _ = monitor.write_all(&stream::resize(rows, cols)).await;
            }
            () = &mut gone => {
                if input_open && s.stdin {
                    let _ = monitor.write_all(&stream::encode(Kind::StdinEof, &[])).await;
                }
                return Ended::Closed;
            }
        }
    }
}

pub fn to_tokio(s: std::os::unix::net::UnixStream) -> Result<tokio::net::UnixStream, ApiError> {
    s.set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(s))
        .map_err(|e| ApiError::internal(format!("attach stream: {e}")))
}

pub fn detach_keys(ctx: &Ctx, given: Option<&str>) -> Result<Vec<u8>, ApiError> {
    let k = given
        .or(ctx.query.get("detachKeys"))
        .filter(|k| !k.is_empty())
        .unwrap_or(DEFAULT_DETACH_KEYS);
    Ok(stream::parse_detach_keys(k)?)
}

/// An attach made ready before its connection is taken: the log so far
/// when asked for, and the monitor's stream (or the one it will be handed
/// at the start) when streaming.
pub(crate) struct Attach {
    streams: Streams,
    history: Vec<u8>,
    monitor: Option<tokio::net::UnixStream>,
    /// A stream left for the start to hand over; forgotten if the client
    /// goes first.
    pending: Option<PendingAttach>,
    id: String,
    tty: bool,
}

/// How long an attach before the start waits for another client's, which
/// holds the place, to go before it is refused.
const HELD_ATTACH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// docker's `attach` query (logs, stream, stdin, stdout, stderr) on
/// container `id`; `all_streams` for the websocket of API versions before
/// 1.42, which attach every stream whatever the query says.
pub(crate) async fn prepare(
    ctx: &Ctx,
    id: String,
    mux: bool,
    all_streams: bool,
) -> Result<Attach, ApiError> {
    let q = &ctx.query;
    let (logs, stream_on) = (q.flag("logs"), q.flag("stream"));
    if !logs && !stream_on {
        return Err(ApiError::bad_request(
            "attach needs stream=1 or logs=1 (nothing to send otherwise)",
        ));
    }
    let mut c = ctx.api.blocking(move |e| e.find(&id)).await?;
    let s = Streams {
        tty: c.config.tty,
        mux: mux && !c.config.tty,
        stdin: (all_streams || q.flag("stdin")) && c.config.open_stdin,
        stdout: all_streams || q.flag("stdout"),
        stderr: all_streams || q.flag("stderr"),
        detach_keys: detach_keys(ctx, None)?,
    };
    let history = if logs {
        crate::logs::history(&ctx.api, &c, s.stdout, s.stderr, s.mux).await?
    } else {
        Vec::new()
    };
    let mut pending = None;
    // Another client's attach may hold the place at the start: one that
    // left but whose hangup is not seen yet, or one the start is about to
    // take. Its going wakes this one, which looks again.
    let mut changes = ctx.api.subscribe();
    let deadline = tokio::time::Instant::now() + HELD_ATTACH_WAIT;
    let monitor = loop {
        if !stream_on {
            break None;
        }
        if c.state == State::Running {
            let key = c.id.clone();
            let (_, sock) = ctx.api.blocking(move |e| e.attach(&key)).await?;
            break Some(to_tokio(sock)?);
        }
        // Not started yet: the stream is handed to the monitor at start.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| ApiError::internal(format!("creating a socket pair: {e}")))?;
        let theirs = OwnedFd::from(theirs);
        let mine = PendingAttach::of(&theirs);
        if ctx.api.set_pending_attach(&c.id, theirs) {
            pending = mine;
            break Some(to_tokio(ours)?);
        }
        if !matches!(
            tokio::time::timeout_at(deadline, changes.changed()).await,
            Ok(Ok(()))
        ) {
            return Err(ApiError::conflict(format!(
                "container {} already has a client waiting to attach at its start",
                c.id
            )));
        }
        let key = c.id.clone();
        c = ctx.api.blocking(move |e| e.find(&key)).await?;
    };
    Ok(Attach {
        streams: s,
        history,
        monitor,
        pending,
        id: c.id,
        tty: c.config.tty,
    })
}

impl Attach {
    /// Serves `client` to the end, then lets go of a stream still pending.
    pub(crate) async fn serve<C>(
        mut self,
        api: &crate::state::Api,
        client: &mut C,
        gone: impl std::future::Future<Output = ()>,
    ) where
        C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        if client.write_all(&self.history).await.is_ok() {
            if let Some(m) = self.monitor.take() {
                bridge(client, m, &self.streams, None, gone).await;
            }
        }
        let _ = client.shutdown().await;
        berth_engine::timing::mark("api: attach: ended");
        self.forget(api);
    }

    /// A client gone before the start leaves no stream waiting for it
    /// (which would refuse the next client's attach).
    pub(crate) fn forget(&self, api: &crate::state::Api) {
        if let Some(p) = &self.pending {
            api.forget_pending_attach(&self.id, p);
        }
    }
}

pub async fn attach(mut ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let upgrade = ctx.upgrade.take().ok_or_else(|| {
        ApiError::bad_request(
            "attach needs a hijacked connection (Connection: Upgrade, Upgrade: tcp)",
        )
    })?;
    let a = prepare(&ctx, id, true, false).await?;
    let ctype = content_type(ctx.minor, a.tty);
    let api = ctx.api.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                let (mut client, hangup) = hijacked(up);
                a.serve(&api, &mut client, Hangup::wait(hangup.as_ref()))
                    .await;
            }
            Err(_) => a.forget(&api),
        }
    });
    Ok(switching(ctype))
}
