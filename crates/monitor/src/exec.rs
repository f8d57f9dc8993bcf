//! `berth-monitor exec`: a process in a running container. Without
//! `--stream` it has the caller's stdio and we exit with its code (or
//! docker's 126/127/125). With `--stream` (`exec -t`) our stdin is a
//! socket speaking the attach stream: the process gets a pty whose master
//! we serve on it, as the monitor does for the container's own. With
//! `--detach` (`exec -d`) our stdin is a pipe back to the caller, as for
//! `start`: we leave its session, report the start there, and stay the
//! process's parent (with no stdio) until it ends.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_engine::logfile::LogWriter;
use berth_engine::{ContainerConfig, Engine, Error, ErrorKind};
use oci_spec::runtime::Process;

use crate::clients::Clients;
use crate::console;
use crate::output::Stdio;

/// The flags of `exec`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct How {
    pub stream: bool,
    pub detach: bool,
}

impl How {
    /// `[--stream|--detach]`.
    pub fn parse(flags: &[&str]) -> Option<How> {
        let mut h = How::default();
        for f in flags {
            match *f {
                "--stream" => h.stream = true,
                "--detach" => h.detach = true,
                _ => return None,
            }
        }
        (!(h.stream && h.detach)).then_some(h)
    }
}

pub fn run(engine: &Engine, id: &str, process: &Path, how: How) -> i32 {
    if how.detach {
        return detached(engine, id, process);
    }
    let p = match read_process(process) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: exec in {id}: {e}");
            return 125;
        }
    };
    let result = if how.stream {
        streamed(engine, id, &p)
    } else {
        let opts = berth_runtime::ExecOptions {
            ..Default::default()
        };
        engine.runtime().exec(id, &p, &opts).map_err(classify)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: exec in {id}: {e}");
            code_of(&e)
        }
    }
}

/// docker's exit code for an exec that did not start.
pub fn code_of(e: &Error) -> i32 {
    match e.kind() {
        ErrorKind::CommandNotFound => 127,
        ErrorKind::CannotInvoke => 126,
        _ => 125,
    }
}

/// The process an exec (or a probe) runs, as the engine wrote it.
pub fn read_process(process: &Path) -> Result<Process, String> {
    std::fs::read(process)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("reading {}: {e}", process.display()))
}

/// `exec -d`: see the module's doc.
fn detached(engine: &Engine, id: &str, process: &Path) -> i32 {
    let mut status = match rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3) {
        Ok(fd) => File::from(fd),
        Err(e) => {
            eprintln!("berth-monitor: no status pipe on stdin: {e}");
            return 125;
        }
    };
    let mut report = |line: String| {
        let _ = std::io::Write::write_all(&mut status, line.as_bytes());
    };
    // The process inherits our stdio: none of it may be the caller's.
    let null = match File::options().read(true).write(true).open("/dev/null") {
        Ok(f) => f,
        Err(e) => {
            report(berth_engine::protocol::failed(
                125,
                &format!("/dev/null: {e}"),
            ));
            return 125;
        }
    };
    for r in [
        rustix::stdio::dup2_stdin(&null),
        rustix::stdio::dup2_stdout(&null),
        rustix::stdio::dup2_stderr(&null),
    ] {
        if let Err(e) = r {
            report(berth_engine::protocol::failed(125, &format!("stdio: {e}")));
            return 125;
        }
    }
    // Out of the caller's session and process tree: its wait returns at
    // once, and its terminal's signals do not reach us.
    let _ = rustix::process::setsid();
    match berth_sys::process::fork_with_flags(0, false, None) {
        Ok(berth_sys::process::Forked::Parent { .. }) => return 0,
        Ok(berth_sys::process::Forked::Child) => {}
        Err(e) => {
            report(berth_engine::protocol::failed(
                125,
                &format!("forking: {e}"),
            ));
            return 125;
        }
    }
    let p = match read_process(process) {
        Ok(p) => p,
        Err(e) => {
            report(berth_engine::protocol::failed(125, &e));
            return 125;
        }
    };
    let pid_file = engine
        .paths
        .bundle(id)
        .join(format!("exec-{}.pid", std::process::id()));
    let opts = berth_runtime::ExecOptions {
        pid_file: Some(pid_file.clone()),
        detach: true,
        ..Default::default()
    };
    let started = engine.runtime().exec(id, &p, &opts).map_err(classify);
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let _ = std::fs::remove_file(&pid_file);
    let pid = match (started, pid) {
        (Ok(_), Some(pid)) => pid,
        (Err(e), _) => {
            report(berth_engine::protocol::failed(code_of(&e), &e.to_string()));
            return code_of(&e);
        }
        (Ok(_), None) => {
            report(berth_engine::protocol::failed(125, "the exec wrote no pid"));
            return 125;
        }
    };
    report(berth_engine::protocol::started(pid));
    // The caller reads to the first line only; closing tells it nothing more.
    drop(status);
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => match rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, st))) => berth_runtime::exit_code(st),
            _ => 0,
        },
        None => 125,
    }
}

pub fn classify(e: berth_runtime::Error) -> Error {
    match e {
        berth_runtime::Error::Init(msg) => Error::from_start_failure(msg),
        e => Error::from(e),
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Monitor {
        id: String::new(),
        reason: format!("{what}: {e}"),
    }
}

fn streamed(engine: &Engine, id: &str, p: &Process) -> Result<i32, Error> {
    let sock = rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3)
        .map(UnixStream::from)
        .map_err(|e| io("the stream on stdin")(e.into()))?;
    let (dir, _) = berth_engine::monitor::socket_addr(&engine.paths, id)?;
    let me = std::process::id();
    // The runtime connects from this process: the short path is valid.
    let addr = PathBuf::from(format!("/proc/self/fd/{}/exec-{me}.sock", dir.as_raw_fd()));
    let pid_file = engine.paths.bundle(id).join(format!("exec-{me}.pid"));
    let listener = console::listen(&addr).map_err(io("console socket"))?;
    let opts = berth_runtime::ExecOptions {
        console_socket: Some(addr.clone()),
        pid_file: Some(pid_file.clone()),
        detach: true,
        ..Default::default()
    };
    let started = engine.runtime().exec(id, p, &opts).map_err(classify);
    let master = started.and_then(|_| console::receive(&listener).map_err(io("receiving the pty")));
    let _ = std::fs::remove_file(&addr);
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let _ = std::fs::remove_file(&pid_file);
    let master = master?;
    let pid = pid.ok_or_else(|| io("reading the exec pid")(std::io::ErrorKind::NotFound.into()))?;
    // An exec's output goes to its client only: no log, no attributes.
    let mut stdio = Stdio::pty(File::from(master), &Default::default()).map_err(io("pty"))?;
    let mut clients = Clients::default();
    clients.add_attached(sock);
    // An exec has no json-file log of its own: docker logs only the
    // container's main process.
    let mut log = LogWriter::discard();
    let cfg = ContainerConfig {
        tty: true,
        ..Default::default()
    };
    let code = crate::supervise::watch(
        pid,
        &mut stdio,
        &mut log,
        None,
        &mut clients,
        &cfg,
        None,
        None,
    )
    .map_err(|(_, msg)| Error::Monitor {
        id: id.to_string(),
        reason: msg,
    })?;
    clients.exited(code);
    Ok(code)
}
