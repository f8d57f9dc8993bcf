//! Starting `berth-monitor` and hearing from it: the engine's half of the
//! protocol. The monitor is found next to the running binary (`berth` and
//! `berth-monitor` ship together), or at `$BERTH_MONITOR`.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{io_err, Error, Result};
use crate::paths::Paths;
use crate::protocol::{self, Event, Reader};

pub const BINARY: &str = "berth-monitor";

/// The monitor's `start` flag that makes it run from a sealed copy.
pub const SEALED: &str = "--sealed";

pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_MONITOR") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(io_err("finding the berth binary"))?;
    let p = exe.with_file_name(BINARY);
    if p.exists() {
        return Ok(p);
    }
    Err(Error::Monitor {
        id: String::new(),
        reason: format!(
            "{} not found (build it: cargo build -p berth-monitor)",
            p.display()
        ),
    })
}

pub const INIT_BINARY: &str = "berth-init";

/// berth-init, the static `--init` of containers: next to the running
/// binary (the monitor's build puts it there), or at `$BERTH_INIT`.
pub fn init_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_INIT") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(io_err("finding the berth binary"))?;
    let p = exe.with_file_name(INIT_BINARY);
    if p.exists() {
        return Ok(p);
    }
    Err(Error::InvalidArgument(format!(
        "--init: {} not found (build it: cargo build -p berth-monitor)",
        p.display()
    )))
}

/// A base command for the monitor with the global flags.
pub fn command(paths: &Paths) -> Result<Command> {
    let mut cmd = Command::new(binary()?);
    cmd.arg("--root")
        .arg(&paths.root)
        .arg("--runroot")
        .arg(&paths.runroot);
    Ok(cmd)
}

/// `berth-monitor exec` of the process described in `process`.
pub fn exec_command(paths: &Paths, id: &str, process: &std::path::Path) -> Result<Command> {
    let mut cmd = command(paths)?;
    cmd.arg("exec").arg(id).arg(process);
    Ok(cmd)
}

/// A running container's monitor, as its starter sees it.
pub struct Handle {
    pub id: String,
    pub pid: i32,
    events: Reader<UnixStream>,
}

impl Handle {
    /// The monitor's status socket and what was already read from it, for
    /// a starter that waits for the exit without a thread of its own (a
    /// server, for every container it started): the exit comes as one
    /// line [`protocol::parse`] reads.
    pub fn into_parts(self) -> (String, UnixStream, Vec<u8>) {
        let (sock, rest) = self.events.into_parts();
        (self.id, sock, rest)
    }

    /// Blocks until the container exited (and with `--rm` was removed);
    /// returns its exit code.
    pub fn wait(mut self) -> Result<i32> {
        match self.events.next_event()? {
            Event::Exited(code) => Ok(code),
            other => Err(Error::Monitor {
                id: self.id,
                reason: format!("unexpected report {other:?}"),
            }),
        }
    }
}

/// A monitor started before its container's bundle is ready: it loads,
/// reads the row, opens the log and its socket while the starter mounts
/// the root and writes the spec, and creates the container on
/// [`Pending::go`]. Dropped instead, it exits without touching anything.
pub struct Pending {
    id: String,
    child: MonitorProcess,
    status: UnixStream,
}

/// The monitor's process; one not waited for here goes to the reaper, if
/// its starter has one, when this is dropped.
struct MonitorProcess {
    child: Option<Child>,
    reaper: Option<crate::reaper::Reaper>,
}

impl MonitorProcess {
    fn wait(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(Error::Monitor {
                id: String::new(),
                reason: "waited for twice".into(),
            });
        };
        child
            .wait()
            .map_err(io_err(format!("waiting for {BINARY}")))
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        if let (Some(child), Some(r)) = (self.child.take(), &self.reaper) {
            r.adopt(child);
        }
    }
}

/// How [`launch`] starts a monitor.
#[derive(Clone, Default)]
pub struct Launch {
    /// It runs from a sealed copy of itself (see `berth_runtime::cloned`):
    /// for a container whose init other processes can see while it is
    /// still the monitor.
    pub sealed: bool,
    /// Who reaps it, for a starter that outlives it. Without one it
    /// stays our child, in a session of its own, until we exit (the CLI
    /// exits first) and init adopts it.
    pub reaper: Option<crate::reaper::Reaper>,
}

/// Starts the monitor for container `id`, whose bundle directory exists.
/// With `attach` (a socket) the monitor serves the container's stdio on
/// it as [`crate::stream`] frames.
pub fn launch(paths: &Paths, id: &str, attach: Option<OwnedFd>, how: Launch) -> Result<Pending> {
    let mut cmd = command(paths)?;
    cmd.arg("start").arg(id);
    if how.sealed {
        cmd.arg(SEALED);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.monitor_log(id))
        .map_err(io_err("opening the monitor log"))?;
    cmd.stderr(Stdio::from(log));
    if let Some(s) = attach {
        cmd.arg("--attach");
        cmd.stdout(Stdio::from(s));
    } else {
        cmd.stdout(Stdio::null());
    }
    crate::timing::mark("spawn: spawning");
    let (child, status) = spawn(cmd, how.reaper)?;
    crate::timing::mark("spawn: spawned");
    Ok(Pending {
        id: id.to_string(),
        child,
        status,
    })
}

/// Starts `cmd`, a monitor, with a status socket on its stdin; the
/// process and our end of the socket.
fn spawn(
    mut cmd: Command,
    reaper: Option<crate::reaper::Reaper>,
) -> Result<(MonitorProcess, UnixStream)> {
    let (ours, theirs) = UnixStream::pair().map_err(io_err("creating a socket pair"))?;
    // The status socket rides on the monitor's stdin: only 0, 1 and 2
    // pass through exec without unsafe code on either side.
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().map_err(io_err(format!("starting {BINARY}")))?;
    // Our copy of its end must go, or a dead monitor never reads as EOF.
    drop(cmd);
    let child = MonitorProcess {
        child: Some(child),
        reaper,
    };
    Ok((child, ours))
}

/// The monitor's `start` flag for a spare: see [`Spare`].
pub const SPARE: &str = "--spare";

/// A monitor started before its container is known: it loads and opens
/// the state database while the starter creates the container (the CLI's
/// `run`) or waits for the next start (a server), then [`Spare::take`]
/// gives it a container and it goes on as [`launch`]'s monitor. Dropped
/// instead, it exits without touching anything. Never for a container
/// that needs a sealed monitor.
pub struct Spare {
    child: MonitorProcess,
    status: UnixStream,
}

/// Starts a spare monitor.
pub fn spare(paths: &Paths, reaper: Option<crate::reaper::Reaper>) -> Result<Spare> {
    let mut cmd = command(paths)?;
    cmd.arg("start").arg(SPARE);
    // It has no log of its own until it has a container.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let (child, status) = spawn(cmd, reaper)?;
    Ok(Spare { child, status })
}

impl Spare {
    /// Gives the spare container `id`, whose bundle directory exists, and
    /// the attach stream if any. A spare that died meanwhile is an error,
    /// and `attach` is still the caller's to give to another monitor.
    pub fn take(self, id: &str, attach: &mut Option<OwnedFd>) -> Result<Pending> {
        let word = protocol::take(id, attach.is_some()).ok_or_else(|| Error::Monitor {
            id: id.to_string(),
            reason: "not a container id".into(),
        })?;
        use std::os::fd::AsFd;
        protocol::send_take(&self.status, &word, attach.as_ref().map(|f| f.as_fd())).map_err(
            |e| Error::Monitor {
                id: id.to_string(),
                reason: format!("the spare monitor went away: {e}"),
            },
        )?;
        // Ours must go now that it has a copy, or the stream never ends.
        attach.take();
        Ok(Pending {
            id: id.to_string(),
            child: self.child,
            status: self.status,
        })
    }
}

impl Pending {
    /// The bundle is ready: the monitor creates and starts the container.
    /// Returns once it reports the start.
    pub fn go(self) -> Result<Handle> {
        let Pending {
            id,
            mut child,
            mut status,
        } = self;
        let id = id.as_str();
        // A monitor that already died shows in its report (none).
        let _ = status.write_all(protocol::GO.as_bytes());
        let mut events = Reader::new(status, id);
        let first = events.next_event();
        crate::timing::mark("spawn: reported");
        let first = match first {
            Ok(Event::Started(pid)) => Event::Started(pid),
            // It ends right after reporting anything else, or it ended
            // without a word and its status tells.
            other => {
                let status = child.wait()?;
                match other {
                    Err(_) if !status.success() => {
                        return Err(Error::Monitor {
                            id: id.into(),
                            reason: format!("exited with {status} before starting the container"),
                        })
                    }
                    other => other?,
                }
            }
        };
        let pid = started(first, id)?;
        Ok(Handle {
            id: id.to_string(),
            pid,
            events,
        })
    }
}

/// `exec -d`: a monitor that starts the process described in `process`
/// and stays its parent; returns the process's pid once it runs. It
/// forks away at once (an exec ends when its process does, and nobody
/// waits for it) and reports the start on a pipe.
pub fn spawn_exec_detached(paths: &Paths, id: &str, process: &std::path::Path) -> Result<i32> {
    let mut cmd = exec_command(paths, id, process)?;
    cmd.arg("--detach");
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io_err("creating a pipe")(e.into()))?;
    // On stdin, as the status socket of `launch`.
    cmd.stdin(Stdio::from(w));
    let mut child = cmd.spawn().map_err(io_err(format!("starting {BINARY}")))?;
    // Our copy of the write end must go, or a dead monitor never reads as EOF.
    drop(cmd);
    // This reaps the half that forked away.
    let status = child
        .wait()
        .map_err(io_err(format!("waiting for {BINARY}")))?;
    let mut events = Reader::new(File::from(r), id);
    let first = events.next_event();
    if !status.success() && first.is_err() {
        return Err(Error::Monitor {
            id: id.into(),
            reason: format!("exited with {status} before starting the process"),
        });
    }
    started(first?, id)
}

/// The pid in a monitor's first report, or the error it reports.
fn started(first: Event, id: &str) -> Result<i32> {
    match first {
        Event::Started(pid) => Ok(pid),
        Event::Failed(127, msg) => Err(Error::CommandNotFound(msg)),
        Event::Failed(126, msg) => Err(Error::CannotInvoke(msg)),
        Event::Failed(_, msg) => Err(Error::Monitor {
            id: id.to_string(),
            reason: msg,
        }),
        Event::Exited(c) => Err(Error::Monitor {
            id: id.to_string(),
            reason: format!("reported an exit ({c}) before a start"),
        }),
    }
}

/// A short name for the monitor's socket: its real path, under a long
/// `--runroot` and a 64-digit id, passes the 108 bytes a socket address
/// holds. The returned fd (the bundle directory) must outlive the use.
pub fn socket_addr(paths: &Paths, id: &str) -> Result<(OwnedFd, PathBuf)> {
    use std::os::fd::AsRawFd;
    let dir = paths.bundle(id);
    let fd = rustix::fs::open(
        &dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| io_err(format!("opening {}", dir.display()))(e.into()))?;
    let name = paths.monitor_socket(id);
    let name = name.file_name().unwrap_or_default();
    let short = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name);
    Ok((fd, short))
}

/// Waits for the exit of a container whose monitor listens at its socket.
/// `Ok(None)`: no monitor there (the container is not running), or the
/// timeout passed.
pub fn wait_socket(paths: &Paths, id: &str, timeout: Option<Duration>) -> Result<Option<i32>> {
    let Ok((_dir, addr)) = socket_addr(paths, id) else {
        return Ok(None);
    };
    let s = match UnixStream::connect(addr) {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    s.set_read_timeout(timeout)
        .map_err(io_err("setting a socket timeout"))?;
    let mut r = Reader::new(s, id);
    match r.next_event() {
        Ok(Event::Exited(code)) => Ok(Some(code)),
        Ok(_) => Ok(None),
        // A timeout, or the monitor closed without a word: the caller
        // looks at the database.
        Err(_) => Ok(None),
    }
}
