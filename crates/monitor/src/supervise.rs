//! `berth-monitor start`: detach, create and start the container with our
//! pipes (or a pty) as its stdio, then copy its output to the json-file
//! log and to attached clients until it exits, and record the exit.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Instant;

use berth_engine::leftovers::Leftovers;
use berth_engine::logfile::LogWriter;
use berth_engine::protocol;
use berth_engine::{ContainerConfig, Engine};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};

use crate::clients::{Clients, Input};
use crate::console;
use crate::health::Checker;
use crate::output::Stdio;

fn dup(fd: impl AsFd) -> std::io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

/// A spare's wait for its container (see berth_engine::monitor::Spare):
/// the state database is opened meanwhile, then the container's monitor
/// log becomes our stderr and its attach stream, if any, our stdout, as
/// [`start`] would have had them from its starter.
pub fn spare(engine: &Engine) -> i32 {
    let Some(status) = status_socket() else {
        return 125;
    };
    // Warm: the first connection of a process reads the WAL to build its
    // index, which is better done now than on the start's path.
    let _ = engine.db();
    let (id, attach) = match protocol::recv_take(&status) {
        Ok(Some(x)) => x,
        // The starter gave up (its `run` failed, or the server ended).
        Ok(None) => return 0,
        Err(e) => return report_failure(status, 125, &format!("the starter's word: {e}")),
    };
    if let Ok(log) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(engine.paths.monitor_log(&id))
    {
        let _ = rustix::stdio::dup2_stderr(&log);
    }
    let attached = attach.is_some();
    if let Some(fd) = attach {
        if let Err(e) = rustix::stdio::dup2_stdout(&fd) {
            return report_failure(status, 125, &format!("taking the attach stream: {e}"));
        }
    }
    run(engine, &id, attached, status)
}

/// The starter's status socket, our stdin; `None` (said on stderr)
/// without one.
fn status_socket() -> Option<File> {
    match dup(std::io::stdin()) {
        Ok(fd) => Some(File::from(fd)),
        Err(e) => {
            eprintln!("berth-monitor: no status socket on stdin: {e}");
            None
        }
    }
}

/// Runs the whole life of container `id`; returns our exit code, which
/// the starter reads only when we end without a report.
pub fn start(engine: &Engine, id: &str, attach: bool) -> i32 {
    let Some(status) = status_socket() else {
        return 125;
    };
    run(engine, id, attach, status)
}

/// [`start`] with the starter's status socket in hand.
fn run(engine: &Engine, id: &str, attach: bool, status: File) -> i32 {
    // With --attach our stdout is the starter's end of a socket pair.
    let attached = if attach {
        match dup(std::io::stdout()) {
            Ok(fd) => Some(UnixStream::from(fd)),
            Err(e) => return report_failure(status, 125, &format!("no attach stream: {e}")),
        }
    } else {
        None
    };
    // Our own session, so the starter's terminal signals (ctrl-c) reach
    // the starter and not us. No fork to leave the starter's family: it
    // does not wait for us (see berth_engine::monitor::launch; a server
    // reaps us, a CLI leaves us to init), and a fork here was a
    // scheduling round more on the path of every start.
    if let Err(e) = rustix::process::setsid() {
        return report_failure(status, 125, &format!("starting a session: {e}"));
    }
    let mut later = Leftovers::default();
    match supervise(engine, id, attached, &status, &mut later) {
        // The starter gave up before the bundle was ready.
        Ok(None) => 0,
        Ok(Some(code)) => {
            let _ = (&status).write_all(protocol::exited(code).as_bytes());
            drop(status);
            // Everyone has heard: now the slow part of a --rm teardown,
            // and what monitors that died before theirs left.
            berth_engine::timing::mark("monitor: replied");
            // Nobody waits for the rest: the next container's start (it
            // is often right behind us) goes first on the CPUs.
            let _ = rustix::process::setpriority_process(None, 19);
            for e in later.purge() {
                eprintln!("berth-monitor: removing {id}: {e}");
            }
            engine.sweep_leftovers();
            berth_engine::timing::mark("monitor: purged");
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

type Failure = (i32, String);

fn fail(what: &str, e: &dyn std::fmt::Display) -> Failure {
    (125, format!("{what}: {e}"))
}

fn supervise(
    engine: &Engine,
    id: &str,
    attach: Option<UnixStream>,
    mut status: &File,
    later: &mut Leftovers,
) -> Result<Option<i32>, Failure> {
    let paths = &engine.paths;
    let mut cfg = engine
        .find(id)
        .map_err(|e| fail("reading the container", &e))?
        .config;
    let mut clients = Clients::default();
    if let Some(s) = attach {
        clients.add_attached(s);
    }
    let log_path = paths.log_file(id);
    let mut log = LogWriter::open(&log_path, &cfg.log_config).map_err(|e| fail("the log", &e))?;
    let sock_path = paths.monitor_socket(id);
    let _ = std::fs::remove_file(&sock_path);
    let (_dir, addr) =
        berth_engine::monitor::socket_addr(paths, id).map_err(|e| fail("monitor socket", &e))?;
    let listener = UnixListener::bind(&addr)
        .map_err(|e| fail(&format!("binding {}", sock_path.display()), &e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail("socket", &e))?;
    berth_engine::timing::mark("monitor: listening");
    // Set up while the starter prepared the bundle: now its word.
    match protocol::wait_go(status) {
        Ok(true) => {}
        Ok(false) => {
            let _ = std::fs::remove_file(&sock_path);
            return Ok(None);
        }
        Err(e) => return Err(fail("reading the starter's word", &e)),
    }

    let mut backoff = berth_engine::restart::Backoff::default();
    let mut first = true;
    let mut last_code = None;
    loop {
        // Held from the process's creation to its record: an `rm -f` of
        // the row (still `created`) waits, or comes first and we stop.
        let removed = || {
            let _ = std::fs::remove_file(&sock_path);
            match last_code {
                Some(code) => Ok(Some(code)),
                None => Err((125, format!("container {id} was removed before it started"))),
            }
        };
        let hold = match engine.hold_for_start(id) {
            Ok(Some(h)) => h,
            Ok(None) => return removed(),
            Err(e) => return Err(fail("locking the container", &e)),
        };
        let (pid, mut stdio) = match create(engine, id, &cfg) {
            Ok(x) => x,
            Err((code, msg)) => {
                // The record may tear a --rm container down, under the
                // same lock.
                drop(hold);
                if let Err(re) = engine.record_start_failed(id, code, &msg) {
                    eprintln!("berth-monitor: recording the failed start of {id}: {re}");
                }
                let _ = std::fs::remove_file(&sock_path);
                if first {
                    return Err((code, msg));
                }
                // A restart that failed: the policy ends here, as docker's
                // does when the start itself fails.
                eprintln!("berth-monitor: restarting {id}: {msg}");
                clients.exited(code);
                return Ok(Some(code));
            }
        };
        berth_engine::timing::mark("monitor: container started");
        match engine.record_started(id, pid) {
            Ok(()) => {}
            Err(berth_engine::Error::NoSuchContainer(_)) => {
                // An `rm -f` moved the row to removing while we made the
                // process: it waits for our hold to tear down the rest.
                if let Err(e) = engine.runtime().delete(id, true) {
                    eprintln!("berth-monitor: deleting {id}, removed as it started: {e}");
                }
                drop((stdio, hold));
                return removed();
            }
            Err(e) => eprintln!("berth-monitor: recording the start of {id}: {e}"),
        }
        drop(hold);
        berth_engine::timing::mark("monitor: start recorded");
        // Before the start is reported: a caller's first `inspect` already
        // sees the health as starting.
        let mut checker = Checker::new(engine, id, cfg.healthcheck.as_ref());
        if first {
            let _ = status.write_all(protocol::started(pid).as_bytes());
            first = false;
        } else if engine.stopped_by_user(id) {
            // `stop` came while we were restarting it: it saw the container
            // exited and waits on our socket for this run to end.
            let _ = engine.runtime().kill(id, 9, true);
        }
        // An idle monitor is the engine's cost per container: no database
        // connections or caches, no heap or stack left from the start.
        // Not at once: a container that ends soon (a test's, a `run --rm`
        // of a command) has its exit recorded through them, unopened.
        let mut settle = || {
            engine.release();
            let _ = berth_sys::memory::release_unused_stack();
            berth_sys::memory::trim_heap();
        };
        let began = Instant::now();
        let code = watch(
            pid,
            &mut stdio,
            &mut log,
            Some(&listener),
            &mut clients,
            &cfg,
            checker.as_mut(),
            Some((began + SETTLE_AFTER, &mut settle)),
        )?;
        drop(stdio);
        berth_engine::timing::mark("monitor: container exited");
        if let Some(c) = checker {
            c.stop();
        }
        clients.accept(&listener);
        if let Err(e) = engine.record_exit(id, code, later) {
            eprintln!("berth-monitor: recording the exit of {id}: {e}");
        }
        berth_engine::timing::mark("monitor: exit recorded");
        // Clients hear of the exit only once it is recorded: `stop` then
        // `rm` must find the row exited.
        clients.exited(code);
        last_code = Some(code);
        if !engine.should_restart(id, code) {
            let _ = std::fs::remove_file(&sock_path);
            return Ok(Some(code));
        }
        std::thread::sleep(backoff.next(began.elapsed()));
        match engine.prepare_restart(id) {
            Ok(Some(c)) => cfg = c.config,
            Ok(None) => {
                let _ = std::fs::remove_file(&sock_path);
                return Ok(Some(code));
            }
            Err(e) => {
                eprintln!("berth-monitor: preparing the restart of {id}: {e}");
                let _ = std::fs::remove_file(&sock_path);
                return Ok(Some(code));
            }
        }
    }
}

/// Creates and starts the container with its stdio: pipes, plus a stdin
/// pipe with `-i`, or with `-t` a pty whose master the runtime's init
/// sends to our console socket.
fn create(engine: &Engine, id: &str, cfg: &ContainerConfig) -> Result<(i32, Stdio), Failure> {
    let paths = &engine.paths;
    let mlog = OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.monitor_log(id))
        .map_err(|e| fail("opening the monitor log", &e))?;
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| fail("opening /dev/null", &e))?;
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| fail("creating a pipe", &e))
    };
    let mut opts = berth_runtime::CreateOptions::default();
    let mut console_listener = None;
    let (dir, _) = berth_engine::monitor::socket_addr(paths, id).map_err(|e| fail("bundle", &e))?;
    // The runtime connects from this process, so the short /proc/self/fd
    // path (a long --runroot would overflow a socket address) is valid.
    let console_addr = std::path::PathBuf::from(format!(
        "/proc/self/fd/{}/console.sock",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ));
    let attrs = cfg.log_config.attrs(&cfg.labels, &cfg.env);
    let (stdio, child_in, child_out, child_err): (Stdio, OwnedFd, OwnedFd, OwnedFd);
    if cfg.tty {
        let l = console::listen(&console_addr).map_err(|e| fail("console socket", &e))?;
        console_listener = Some(l);
        opts.console_socket = Some(console_addr.clone());
        stdio = Stdio::default();
        child_in = dup(&devnull).map_err(|e| fail("dup", &e))?;
        child_out = dup(&devnull).map_err(|e| fail("dup", &e))?;
        child_err = dup(&devnull).map_err(|e| fail("dup", &e))?;
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let mut s = Stdio::pipes(out_r, err_r, &attrs);
        if cfg.open_stdin {
            let (in_r, in_w) = pipe()?;
            s.stdin = Some(File::from(in_w));
            child_in = in_r;
        } else {
            child_in = dup(&devnull).map_err(|e| fail("dup", &e))?;
        }
        stdio = s;
        child_out = out_w;
        child_err = err_w;
    }
    // The runtime gives the container our fds 0, 1 and 2: point them at
    // the child's ends for the create, then take them back so that we
    // hold no write end (the pipes then end when the container does).
    let set_stdio = |i: &dyn AsFd, o: &dyn AsFd, e: &dyn AsFd| -> std::io::Result<()> {
        rustix::stdio::dup2_stdin(i)?;
        rustix::stdio::dup2_stdout(o)?;
        rustix::stdio::dup2_stderr(e)?;
        Ok(())
    };
    set_stdio(&child_in, &child_out, &child_err).map_err(|e| fail("redirecting stdio", &e))?;
    drop((child_in, child_out, child_err));
    let rt = engine.runtime();
    let bundle = paths.bundle(id);
    let created = rt.create(id, &bundle, &opts);
    berth_engine::timing::mark("monitor: runtime created");
    set_stdio(&devnull, &devnull, &mlog).map_err(|e| fail("restoring stdio", &e))?;
    let mut stdio = stdio;
    let result = created.map_err(failure).and_then(|pid| {
        if let Some(l) = &console_listener {
            let master = console::receive(l).map_err(|e| fail("receiving the pty", &e))?;
            stdio = Stdio::pty(File::from(master), &attrs).map_err(|e| fail("pty", &e))?;
        }
        rt.start(id).map_err(failure)?;
        Ok(pid)
    });
    drop(console_listener);
    let _ = std::fs::remove_file(bundle.join("console.sock"));
    match result {
        Ok(pid) => Ok((pid, stdio)),
        Err(f) => {
            let _ = rt.delete(id, true);
            Err(f)
        }
    }
}

fn failure(e: berth_runtime::Error) -> Failure {
    let e = crate::exec::classify(e);
    (crate::exec::code_of(&e), e.to_string())
}

/// How long a started container's monitor keeps what the start opened
/// before it settles into its idle size.
const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// Copies output, serves clients and collects waiters until the init
/// exits, running the health check meanwhile, and `settle` once at its
/// time if the init still runs; reaps the init and returns its code.
#[allow(clippy::too_many_arguments)]
pub fn watch(
    pid: i32,
    stdio: &mut Stdio,
    log: &mut LogWriter,
    listener: Option<&UnixListener>,
    clients: &mut Clients,
    cfg: &ContainerConfig,
    mut health: Option<&mut Checker<'_>>,
    mut settle: Option<(Instant, &mut dyn FnMut())>,
) -> Result<i32, Failure> {
    let p = Pid::from_raw(pid).ok_or((125, format!("bad pid {pid}")))?;
    let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| (125, format!("pidfd_open {pid}: {e}")))?;
    // Made at the first output: an idle container's monitor keeps no
    // 64 KiB of zeroed pages.
    let mut buf = Vec::new();
    let buf_len = 64 * 1024;
    loop {
        let (exited, ready_sock, ready_outs, ready_clients) = {
            let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
            if let Some(l) = listener {
                fds.push(PollFd::new(l, PollFlags::IN));
            }
            let first_out = fds.len();
            let outs: Vec<usize> = stdio
                .outs
                .iter()
                .enumerate()
                .filter_map(|(i, o)| {
                    o.file().map(|f| {
                        fds.push(PollFd::new(f, PollFlags::IN));
                        i
                    })
                })
                .collect();
            let first_client = fds.len();
            for s in clients.sockets() {
                fds.push(PollFd::new(s, PollFlags::IN));
            }
            let health_fds = health.as_deref().map(Checker::fds).unwrap_or_default();
            for fd in &health_fds {
                fds.push(PollFd::from_borrowed_fd(*fd, PollFlags::IN));
            }
            let settle_in = settle
                .as_ref()
                .map(|(at, _)| at.saturating_duration_since(Instant::now()));
            let timeout = health
                .as_deref()
                .map(|h| h.timeout())
                .into_iter()
                .chain(settle_in)
                .min()
                .and_then(|d| rustix::time::Timespec::try_from(d).ok());
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err((125, format!("poll: {e}"))),
            }
            let ready = |k: usize| !fds[k].revents().is_empty();
            let ready_outs: Vec<usize> = outs
                .iter()
                .enumerate()
                .filter(|(k, _)| ready(k + first_out))
                .map(|(_, i)| *i)
                .collect();
            let ready_clients: Vec<usize> = (0..clients.len())
                .filter(|i| ready(first_client + i))
                .collect();
            (
                ready(0),
                listener.is_some() && ready(1),
                ready_outs,
                ready_clients,
            )
        };
        for i in ready_outs {
            buf.resize(buf_len, 0);
            stdio.outs[i].pump(log, &mut buf, clients);
        }
        for i in ready_clients {
            for input in clients.read(i) {
                apply(stdio, input, cfg);
            }
        }
        clients.sweep();
        if let Some(l) = listener.filter(|_| ready_sock) {
            clients.accept(l);
        }
        if let Some(h) = health.as_deref_mut() {
            h.service();
        }
        if exited {
            break;
        }
        if settle.as_ref().is_some_and(|(at, _)| Instant::now() >= *at) {
            if let Some((_, f)) = settle.take() {
                f();
            }
        }
    }
    let code = match rustix::process::waitpid(Some(p), WaitOptions::empty()) {
        Ok(Some((_, st))) => berth_runtime::exit_code(st),
        Ok(None) => 255,
        Err(e) => return Err((125, format!("waiting for {pid}: {e}"))),
    };
    buf.resize(buf_len, 0);
    stdio.drain(log, &mut buf, clients);
    Ok(code)
}

/// An attached client's request.
fn apply(stdio: &mut Stdio, input: Input, cfg: &ContainerConfig) {
    match input {
        Input::Stdin(data) => {
            if let Some(s) = stdio.stdin.as_mut() {
                if s.write_all(&data).is_err() {
                    stdio.stdin = None;
                }
            }
        }
        // docker's StdinOnce: the first client's end of input is the
        // container's (a pty has no end of input to pass on).
        Input::StdinEof => {
            if cfg.stdin_once && !cfg.tty {
                stdio.stdin = None;
            }
        }
        Input::Resize(rows, cols) => {
            if let Some(m) = &stdio.master {
                console::resize(m, rows, cols);
            }
        }
    }
}
