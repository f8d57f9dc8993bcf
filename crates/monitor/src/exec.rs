//! `berth-monitor exec`: a process in a running container. Without
//! `--stream` it has the caller's stdio and we exit with its code (or
//! docker's 126/127/125). With `--stream` (`exec -t`) our stdin is a
//! socket speaking the attach stream: the process gets a pty whose master
//! we serve on it, as the monitor does for the container's own.

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

pub fn run(engine: &Engine, id: &str, process: &Path, stream: bool) -> i32 {
    let p = match read_process(process) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: exec in {id}: reading {}: {e}", process.display());
            return 125;
        }
    };
    let result = if stream {
        streamed(engine, id, &p)
    } else {
        engine
            .runtime()
            .exec(id, &p, &berth_runtime::ExecOptions::default())
            .map_err(classify)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: exec in {id}: {e}");
            code_of(&e)
        }
    }
}

/// docker's exit code for a process that did not start.
pub fn code_of(e: &Error) -> i32 {
    match e.kind() {
        ErrorKind::CommandNotFound => 127,
        ErrorKind::CannotInvoke => 126,
        _ => 125,
    }
}

/// The process an exec (or a probe) runs, as the engine wrote it.
pub fn read_process(path: &Path) -> Result<Process, String> {
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
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
    let mut stdio = Stdio::pty(File::from(master)).map_err(io("pty"))?;
    let mut clients = Clients::default();
    clients.add_attached(sock);
    // An exec has no json-file log of its own: docker logs only the
    // container's main process.
    let mut log = LogWriter::discard();
    let cfg = ContainerConfig {
        tty: true,
        ..Default::default()
    };
    let code = crate::supervise::watch(pid, &mut stdio, &mut log, None, &mut clients, &cfg, None)
        .map_err(|(_, msg)| Error::Monitor {
        id: id.to_string(),
        reason: msg,
    })?;
    clients.exited(code);
    Ok(code)
}
