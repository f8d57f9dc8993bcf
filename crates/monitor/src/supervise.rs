//! `berth-monitor start`: detach, create and start the container with our
//! pipes as its stdout and stderr, then copy its output to the json-file
//! log until it exits, and record the exit.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use berth_engine::logs::{LineSplitter, Stream};
use berth_engine::protocol;
use berth_engine::{Engine, Error, ErrorKind};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};

/// One of the container's output streams.
struct Output {
    pipe: Option<File>,
    stream: Stream,
    lines: LineSplitter,
    /// The starter's terminal or pipe, for `run` without `-d`.
    attach: Option<File>,
}

impl Output {
    /// Reads what is there; false at end of stream.
    fn pump(&mut self, log: &mut File, buf: &mut [u8]) -> bool {
        let Some(p) = self.pipe.as_mut() else {
            return false;
        };
        match p.read(buf) {
            Ok(0) => {
                self.close(log);
                false
            }
            Ok(n) => {
                if let Err(e) = self.lines.feed(&buf[..n], self.stream, log) {
                    eprintln!("berth-monitor: writing the log: {e}");
                }
                if let Some(a) = self.attach.as_mut() {
                    // The starter went away: keep logging, stop copying.
                    if a.write_all(&buf[..n]).is_err() {
                        self.attach = None;
                    }
                }
                true
            }
            Err(e) if e.kind() == IoKind::Interrupted => true,
            Err(e) if e.kind() == IoKind::WouldBlock => false,
            Err(_) => {
                self.close(log);
                false
            }
        }
    }

    fn close(&mut self, log: &mut File) {
        self.pipe = None;
        let _ = self.lines.finish(self.stream, log);
    }
}

fn dup(fd: impl AsFd) -> std::io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

/// Runs the whole life of container `id`; returns our exit code (only
/// the short-lived first process's is seen by anyone).
pub fn start(engine: &Engine, id: &str, attach: bool) -> i32 {
    let status = match dup(std::io::stdin()) {
        Ok(fd) => File::from(fd),
        Err(e) => {
            eprintln!("berth-monitor: no status pipe on stdin: {e}");
            return 125;
        }
    };
    // Our own session, so the starter's terminal signals (ctrl-c) reach
    // the starter and not us, then a fork so the starter's wait returns
    // at once and we are nobody's child but init's.
    let _ = rustix::process::setsid();
    match berth_sys::process::fork_with_flags(0, false, None) {
        Ok(berth_sys::process::Forked::Parent { .. }) => return 0,
        Ok(berth_sys::process::Forked::Child) => {}
        Err(e) => return report_failure(status, 125, &format!("forking the monitor: {e}")),
    }
    match supervise(engine, id, attach, &status) {
        Ok(code) => {
            let _ = (&status).write_all(protocol::exited(code).as_bytes());
            0
        }
        Err((code, msg)) => report_failure(status, code, &msg),
    }
}

fn report_failure(mut status: File, code: i32, msg: &str) -> i32 {
    eprintln!("berth-monitor: {msg}");
    let _ = status.write_all(protocol::failed(code, msg).as_bytes());
    code
}

/// Docker's code for a failed start.
fn start_code(e: &Error) -> i32 {
    match e.kind() {
        ErrorKind::CommandNotFound => 127,
        ErrorKind::CannotInvoke => 126,
        _ => 125,
    }
}

fn supervise(
    engine: &Engine,
    id: &str,
    attach: bool,
    mut status: &File,
) -> Result<i32, (i32, String)> {
    let paths = &engine.paths;
    let fail = |what: &str, e: &dyn std::fmt::Display| (125, format!("{what}: {e}"));
    let mlog = OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.monitor_log(id))
        .map_err(|e| fail("opening the monitor log", &e))?;
    let attached = if attach {
        Some((
            File::from(dup(std::io::stdout()).map_err(|e| fail("dup", &e))?),
            File::from(dup(std::io::stderr()).map_err(|e| fail("dup", &e))?),
        ))
    } else {
        None
    };
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| fail("creating a pipe", &e))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| fail("opening /dev/null", &e))?;
    let log_path = paths.log_file(id);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| fail(&format!("opening {}", log_path.display()), &e))?;
    let sock_path = paths.monitor_socket(id);
    let _ = std::fs::remove_file(&sock_path);
    let (_dir, addr) =
        berth_engine::monitor::socket_addr(paths, id).map_err(|e| fail("monitor socket", &e))?;
    let listener = UnixListener::bind(&addr)
        .map_err(|e| fail(&format!("binding {}", sock_path.display()), &e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail("socket", &e))?;

    // The runtime gives the container our fds 0, 1 and 2: point them at
    // /dev/null and the pipes for the create, then take them back so that
    // we hold no write end (the pipes then end when the container does).
    let set_stdio = |i: &File, o: &dyn AsFd, e: &dyn AsFd| -> std::io::Result<()> {
        rustix::stdio::dup2_stdin(i)?;
        rustix::stdio::dup2_stdout(o)?;
        rustix::stdio::dup2_stderr(e)?;
        Ok(())
    };
    set_stdio(&devnull, &out_w, &err_w).map_err(|e| fail("redirecting stdio", &e))?;
    drop((out_w, err_w));
    let rt = engine.runtime();
    let bundle = paths.bundle(id);
    let created = rt
        .create(id, &bundle, &berth_runtime::CreateOptions::default())
        .and_then(|pid| rt.start(id).map(|()| pid));
    set_stdio(&devnull, &devnull, &mlog).map_err(|e| fail("restoring stdio", &e))?;
    let pid = match created {
        Ok(pid) => pid,
        Err(e) => {
            let _ = rt.delete(id, true);
            let e = match e {
                berth_runtime::Error::Init(msg) => Error::from_start_failure(msg),
                e => Error::from(e),
            };
            let code = start_code(&e);
            let msg = e.to_string();
            if let Err(re) = engine.record_start_failed(id, code, &msg) {
                eprintln!("berth-monitor: recording the failed start of {id}: {re}");
            }
            let _ = std::fs::remove_file(&sock_path);
            return Err((code, msg));
        }
    };
    if let Err(e) = engine.record_started(id, pid) {
        eprintln!("berth-monitor: recording the start of {id}: {e}");
    }
    let _ = status.write_all(protocol::started(pid).as_bytes());

    let (ao, ae) = attached.map_or((None, None), |(o, e)| (Some(o), Some(e)));
    let mut outs = [
        Output {
            pipe: Some(File::from(out_r)),
            stream: Stream::Stdout,
            lines: LineSplitter::default(),
            attach: ao,
        },
        Output {
            pipe: Some(File::from(err_r)),
            stream: Stream::Stderr,
            lines: LineSplitter::default(),
            attach: ae,
        },
    ];
    let (code, mut waiters) = watch(pid, &mut outs, &mut log, &listener)?;
    waiters.extend(accept_all(&listener));
    drop(outs);
    drop(log);
    if let Err(e) = engine.record_exit(id, code) {
        eprintln!("berth-monitor: recording the exit of {id}: {e}");
    }
    // Waiters hear of the exit only once it is recorded: `stop` then `rm`
    // must find the row exited.
    for mut w in waiters {
        let _ = w.write_all(protocol::exited(code).as_bytes());
    }
    let _ = std::fs::remove_file(&sock_path);
    Ok(code)
}

/// Copies output and collects waiters until the init exits; reaps it and
/// returns its code and the waiters.
fn watch(
    pid: i32,
    outs: &mut [Output; 2],
    log: &mut File,
    listener: &UnixListener,
) -> Result<(i32, Vec<UnixStream>), (i32, String)> {
    let p = Pid::from_raw(pid).ok_or((125, format!("bad pid {pid}")))?;
    let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| (125, format!("pidfd_open {pid}: {e}")))?;
    let mut waiters: Vec<UnixStream> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (exited, ready_out, ready_err, ready_sock) = {
            let mut fds = vec![
                PollFd::new(&pidfd, PollFlags::IN),
                PollFd::new(listener, PollFlags::IN),
            ];
            let idx: Vec<usize> = outs
                .iter()
                .enumerate()
                .filter_map(|(i, o)| {
                    o.pipe.as_ref().map(|f| {
                        fds.push(PollFd::new(f, PollFlags::IN));
                        i
                    })
                })
                .collect();
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err((125, format!("poll: {e}"))),
            }
            let ready = |k: usize| !fds[k].revents().is_empty();
            let mut r = [false; 2];
            for (k, i) in idx.iter().enumerate() {
                r[*i] = ready(k + 2);
            }
            (ready(0), r[0], r[1], ready(1))
        };
        if ready_out {
            outs[0].pump(log, &mut buf);
        }
        if ready_err {
            outs[1].pump(log, &mut buf);
        }
        if ready_sock {
            waiters.extend(accept_all(listener));
        }
        if exited {
            break;
        }
    }
    let code = match rustix::process::waitpid(Some(p), WaitOptions::empty()) {
        Ok(Some((_, st))) => berth_runtime::exit_code(st),
        Ok(None) => 255,
        Err(e) => return Err((125, format!("waiting for {pid}: {e}"))),
    };
    // What the container wrote before it died is still in the pipes; its
    // other processes died with it (pid namespace), so the drain ends.
    for o in outs.iter_mut() {
        if let Some(p) = &o.pipe {
            let _ = rustix::fs::fcntl_setfl(p, rustix::fs::OFlags::NONBLOCK);
        }
        while o.pump(log, &mut buf) {}
        o.close(log);
    }
    Ok((code, waiters))
}

fn accept_all(listener: &UnixListener) -> Vec<UnixStream> {
    let mut v = Vec::new();
    while let Ok((s, _)) = listener.accept() {
        v.push(s);
    }
    v
}
