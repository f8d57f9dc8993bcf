//! Exec instances: `POST /containers/{id}/exec` makes one, `/exec/{id}/start`
//! runs it (hijacked, or detached), `/exec/{id}/json` reports its exit
//! code, which docker's client reads once the stream ends: it is recorded
//! before the stream is closed.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use berth_engine::ExecOptions;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::sync::mpsc;

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::lock;
use crate::streams::{self, ClientIo, Ended, Hangup, Streams};

pub struct Instance {
    pub id: String,
    pub container: String,
    opts: ExecOptions,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    detach_keys: Option<String>,
    run: Mutex<Run>,
}

#[derive(Default)]
struct Run {
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    console: Option<(u16, u16)>,
    resize: Option<mpsc::Sender<(u16, u16)>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    pub(crate) console_size: Option<Vec<u16>>,
    detach_keys: String,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    privileged: bool,
    user: String,
    working_dir: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct StartBody {
    detach: bool,
    tty: bool,
    pub(crate) console_size: Option<Vec<u16>>,
}

pub(crate) fn console(v: &Option<Vec<u16>>) -> Result<Option<(u16, u16)>, ApiError> {
    match v.as_deref() {
        None | Some([0, 0]) => Ok(None),
        Some([h, w]) => Ok(Some((*h, *w))),
        Some(_) => Err(ApiError::bad_request("ConsoleSize must be [height, width]")),
    }
}

fn find(ctx: &Ctx, id: &str) -> Result<Arc<Instance>, ApiError> {
    lock(&ctx.api.execs)
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

pub async fn create(mut ctx: Ctx, container: String) -> Result<Response, ApiError> {
    let b: CreateBody = ctx.json().await?;
    let opts = ExecOptions {
        cmd: b.cmd.unwrap_or_default(),
        env: b.env.unwrap_or_default(),
        workdir: Some(b.working_dir).filter(|w| !w.is_empty()),
        user: Some(b.user).filter(|u| !u.is_empty()),
        tty: b.tty,
        privileged: b.privileged,
    };
    if opts.cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let c = ctx
        .api
        .blocking(move |e| {
            let c = e.find(&container)?;
            if c.state != berth_engine::State::Running {
                return Err(berth_engine::Error::WrongState {
                    id: c.id,
                    state: c.state.to_string(),
                    op: "exec (it is not running)",
                });
            }
            Ok(c)
        })
        .await?;
    let id = berth_engine::names::new_id()?;
    let inst = Instance {
        id: id.clone(),
        container: c.id,
        opts,
        stdin: b.attach_stdin,
        stdout: b.attach_stdout,
        stderr: b.attach_stderr,
        detach_keys: Some(b.detach_keys).filter(|k| !k.is_empty()),
        run: Mutex::new(Run {
            console: console(&b.console_size)?,
            ..Run::default()
        }),
    };
    lock(&ctx.api.execs).insert(id.clone(), Arc::new(inst));
    Ok(body::json(StatusCode::CREATED, &json!({ "Id": id })))
}

pub async fn inspect(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let i = find(&ctx, &id)?;
    let r = lock(&i.run);
    Ok(body::json(
        StatusCode::OK,
        &json!({
            "ID": i.id,
            "ContainerID": i.container,
            "Running": r.running,
            "ExitCode": r.exit_code,
            "OpenStdin": i.stdin,
            "OpenStdout": i.stdout,
            "OpenStderr": i.stderr,
            "CanRemove": false,
            "DetachKeys": i.detach_keys.clone().unwrap_or_default(),
            "ProcessConfig": {
                "tty": i.opts.tty,
                "entrypoint": i.opts.cmd.first(),
                "arguments": i.opts.cmd.get(1..).unwrap_or_default(),
                "privileged": false,
                "user": i.opts.user.clone().unwrap_or_default(),
            },
        }),
    ))
}

pub async fn resize(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let size = crate::containers::size(&ctx)?;
    let i = find(&ctx, &id)?;
    let tx = {
        let mut r = lock(&i.run);
        if r.resize.is_none() {
            r.console = Some(size);
        }
        r.resize.clone()
    };
    if let Some(tx) = tx {
        let _ = tx.send(size).await;
    }
    Ok(body::empty(StatusCode::OK))
}

impl Instance {
    fn finish(&self, code: i32) {
        let mut r = lock(&self.run);
        r.running = false;
        r.exit_code = Some(code);
        r.resize = None;
    }
}

pub async fn start(mut ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let b: StartBody = ctx.json().await?;
    let i = find(&ctx, &id)?;
    if b.tty != i.opts.tty {
        return Err(ApiError::bad_request(
            "exec start: Tty must match the exec's create",
        ));
    }
    let (resize_rx, console) = {
        let mut r = lock(&i.run);
        if r.started {
            return Err(ApiError::conflict(format!(
                "exec {id} has already been started"
            )));
        }
        r.started = true;
        r.running = true;
        let (tx, rx) = mpsc::channel(4);
        r.resize = Some(tx);
        (rx, console(&b.console_size)?.or(r.console))
    };
    let s = Streams {
        tty: i.opts.tty,
        mux: !i.opts.tty,
        stdin: i.stdin,
        stdout: i.stdout,
        stderr: i.stderr,
        detach_keys: streams::detach_keys(&ctx, i.detach_keys.as_deref())?,
    };
    let started = if i.opts.tty {
        let (key, opts) = (i.container.clone(), i.opts.clone());
        ctx.api
            .blocking(move |e| e.exec_attached(&key, &opts))
            .await
            .and_then(|(child, sock, file)| Ok(Proc::Tty(child, streams::to_tokio(sock)?, file)))
    } else {
        let (key, opts) = (i.container.clone(), i.opts.clone());
        let piped = !b.detach;
        let (stdin, out, err) = (i.stdin && piped, i.stdout && piped, i.stderr && piped);
        ctx.api
            .blocking(move |e| e.exec_command(&key, &opts))
            .await
            .and_then(|(cmd, file)| {
                let mut cmd = tokio::process::Command::from(cmd);
                let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
                cmd.stdin(pipe(stdin)).stdout(pipe(out)).stderr(pipe(err));
                match cmd.spawn() {
                    Ok(child) => Ok(Proc::Piped(child, file)),
                    Err(e) => {
                        let _ = std::fs::remove_file(&file);
                        Err(ApiError::internal(format!(
                            "running berth-monitor exec: {e}"
                        )))
                    }
                }
            })
    };
    let proc = match started {
        Ok(p) => p,
        Err(e) => {
            i.finish(126);
            return Err(e);
        }
    };
    if b.detach {
        let i = i.clone();
        tokio::spawn(async move {
            let code = proc.detached().await;
            i.finish(code);
        });
        return Ok(body::empty(StatusCode::OK));
    }
    let upgrade = ctx.upgrade.take().ok_or_else(|| {
        ApiError::bad_request(
            "exec start needs a hijacked connection (Connection: Upgrade, Upgrade: tcp) or Detach",
        )
    })?;
    if let (Some(size), Proc::Tty(..)) = (console, &proc) {
        let _ = lock(&i.run).resize.clone().map(|tx| tx.try_send(size));
    }
    let ctype = streams::content_type(ctx.minor, i.opts.tty);
    tokio::spawn(async move {
        let up = match upgrade.await {
            Ok(up) => up,
            Err(_) => {
                let code = proc.detached().await;
                i.finish(code);
                return;
            }
        };
        let (client, hangup) = streams::hijacked(up);
        proc.attached(client, hangup, &s, resize_rx, &i).await;
    });
    Ok(streams::switching(ctype))
}

enum Proc {
    /// `berth-monitor exec --stream`, serving a pty on the socket.
    Tty(
        std::process::Child,
        tokio::net::UnixStream,
        std::path::PathBuf,
    ),
    /// `berth-monitor exec` with pipes.
    Piped(tokio::process::Child, std::path::PathBuf),
}

/// Waits for `child` through a pidfd: no thread is parked for a process
/// that may run on for days after its client left. (Without pidfds, a
/// blocking thread waits.)
async fn reap(mut child: std::process::Child) -> i32 {
    let code =
        |s: std::io::Result<std::process::ExitStatus>| s.ok().and_then(|s| s.code()).unwrap_or(255);
    let pid = rustix::process::Pid::from_child(&child);
    if let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        // The AsyncFd owns its OwnedFd (see streams::Hangup).
        #[allow(deprecated)]
        if let Ok(fd) = AsyncFd::with_interest(fd, Interest::READABLE) {
            // Readable once the process has exited.
            let _ = fd.readable().await;
            return code(child.wait());
        }
    }
    tokio::task::spawn_blocking(move || code(child.wait()))
        .await
        .unwrap_or(255)
}

impl Proc {
    /// Runs to its end with nobody attached; its exit code.
    async fn detached(self) -> i32 {
        match self {
            Proc::Tty(child, sock, file) => {
                // The helper serves the pty on until the process exits;
                // nobody reads it.
                drop(sock);
                let code = reap(child).await;
                let _ = std::fs::remove_file(file);
                code
            }
            Proc::Piped(mut child, file) => finish_piped(&mut child, &file).await,
        }
    }

    /// Serves `client` until the process exits (its code is recorded in
    /// `inst` before the stream closes) or the client leaves: then the
    /// connection goes at once and, as with dockerd, the process runs on
    /// (its stdin closed, its output dropped) until its code is recorded.
    async fn attached(
        self,
        mut client: Box<dyn ClientIo>,
        hangup: Option<Hangup>,
        s: &Streams,
        resize: mpsc::Receiver<(u16, u16)>,
        inst: &Instance,
    ) {
        match self {
            Proc::Tty(child, sock, file) => {
                // With this stream gone, the helper serves the pty on to
                // the process's exit, as for a detached exec.
                let ended = streams::bridge(
                    &mut client,
                    sock,
                    s,
                    Some(resize),
                    streams::Hangup::wait(hangup.as_ref()),
                )
                .await;
                match ended {
                    Ended::Exited(code) => {
                        let _ = std::fs::remove_file(&file);
                        inst.finish(code);
                        let _ = client.shutdown().await;
                        tokio::task::spawn(reap(child));
                    }
                    Ended::Detached | Ended::Closed => {
                        let _ = client.shutdown().await;
                        drop((client, hangup));
                        // The process file goes once the helper is done
                        // with it: a client gone at once may leave before
                        // the helper has read it.
                        let code = reap(child).await;
                        let _ = std::fs::remove_file(&file);
                        inst.finish(code);
                    }
                }
            }
            Proc::Piped(mut child, file) => {
                let gone = pump(&mut client, hangup.as_ref(), &mut child).await;
                // A client gone is let go now, not at the process's end,
                // and what the process still writes is read to nowhere so
                // that it never blocks on a full pipe (dockerd drops it too).
                let mut client = (!gone).then_some(client);
                drop(hangup);
                drain(child.stdout.take(), child.stderr.take()).await;
                // The process file goes only now: a client gone at once
                // may leave before the helper has read it.
                inst.finish(finish_piped(&mut child, &file).await);
                if let Some(c) = client.as_mut() {
                    let _ = c.shutdown().await;
                }
            }
        }
    }
}

/// Waits for a piped exec's end: its exit code, its process file removed.
async fn finish_piped(child: &mut tokio::process::Child, file: &std::path::Path) -> i32 {
    let code = child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(255);
    let _ = std::fs::remove_file(file);
    code
}

/// A piped exec: its stdout and stderr to the client, framed; the
/// client's bytes to its stdin. Returns once its output has ended, or
/// with true once the client is gone (hung up, or a write failed), its
/// stdin then closed.
async fn pump(
    client: &mut Box<dyn ClientIo>,
    hangup: Option<&Hangup>,
    child: &mut tokio::process::Child,
) -> bool {
    let mut stdin = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let (mut ob, mut eb, mut cb) = (vec![0u8; 32768], vec![0u8; 32768], vec![0u8; 32768]);
    let mut client_open = true;
    let mut gone = false;
    while !gone && (out.is_some() || err.is_some()) {
        tokio::select! {
            n = async { out.as_mut().unwrap().read(&mut ob).await }, if out.is_some() => {
                match n {
                    Ok(n) if n > 0 => gone = send(client, 1, &ob[..n]).await.is_err(),
                    _ => out = None,
                }
            }
            n = async { err.as_mut().unwrap().read(&mut eb).await }, if err.is_some() => {
                match n {
                    Ok(n) if n > 0 => gone = send(client, 2, &eb[..n]).await.is_err(),
                    _ => err = None,
                }
            }
            n = client.read(&mut cb), if client_open => {
                match n {
                    Ok(n) if n > 0 => {
                        if let Some(i) = stdin.as_mut() {
                            if i.write_all(&cb[..n]).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    // The client's stdin ended: so does the process's.
                    _ => {
                        client_open = false;
                        stdin = None;
                    }
                }
            }
            () = Hangup::wait(hangup) => gone = true,
        }
    }
    // What is left of the output is the caller's to drain.
    (child.stdout, child.stderr) = (out, err);
    gone
}

async fn send(client: &mut Box<dyn ClientIo>, stream: u8, body: &[u8]) -> std::io::Result<()> {
    client.write_all(&streams::frame(stream, body)).await?;
    client.flush().await
}

/// Reads both pipes to their ends, keeping nothing.
async fn drain(out: Option<tokio::process::ChildStdout>, err: Option<tokio::process::ChildStderr>) {
    let to_nowhere = |p: Option<Box<dyn AsyncRead + Unpin + Send>>| async move {
        if let Some(mut p) = p {
            let _ = tokio::io::copy(&mut p, &mut tokio::io::sink()).await;
        }
    };
    tokio::join!(
        to_nowhere(out.map(|o| Box::new(o) as _)),
        to_nowhere(err.map(|e| Box::new(e) as _)),
    );
}
