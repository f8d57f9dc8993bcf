//! Name resolution on user networks: one small server process per
//! network, listening on the network's gateway addresses (UDP and TCP
//! port 53, on the host side of the bridge), which a container's
//! resolv.conf names. It answers containers' names, aliases and short ids
//! from the leases ([`crate::store`]), and relays every other question
//! to the host's resolvers (or the container's `--dns` servers) from the
//! host's namespace, so loopback resolvers such as systemd-resolved work.
//!
//! docker puts its server at 127.0.0.11 inside every container instead;
//! a server per network needs no socket in each container's namespace
//! and no per-container process, and records follow leases by
//! construction.
//!
//! The server's lifetime is its network's: the engine starts it when a
//! container first joins (and again if it died), [`stop`] ends it when
//! the network goes, and it ends by itself when it finds the network (or
//! the whole store) gone. A pid file under the runroot, locked with flock
//! for as long as the server lives, tells the others whether it runs.

mod server;
pub mod wire;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

pub use server::{ServeOptions, Server};

use crate::error::{Error, Result};

/// What a server prints on stdout once it answers (see [`spawn_detached`]).
pub const READY: &str = "ready";

/// `<runroot>/dns/<network>.pid`.
pub fn pid_path(runroot: &Path, network: &str) -> PathBuf {
    runroot.join("dns").join(format!("{network}.pid"))
}

/// `<runroot>/dns/<network>.log`: what the server says on stderr.
pub fn log_path(runroot: &Path, network: &str) -> PathBuf {
    runroot.join("dns").join(format!("{network}.log"))
}

/// Opens (making it and its directory if need be) a lock file.
fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// Opens and locks the pid file; None if a live server holds it.
pub(crate) fn take_lock(path: &Path) -> Result<Option<File>> {
    let f = open_lock_file(path)?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        // A dead server's pid must not read as "running" while we bind.
        Ok(()) => f
            .set_len(0)
            .map(|()| Some(f))
            .map_err(|e| Error::io(format!("truncate {}", path.display()), e)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io(format!("lock {}", path.display()), e.into())),
    }
}

pub(crate) fn write_pid(mut f: &File) -> Result<()> {
    f.set_len(0)
        .and_then(|()| f.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(|e| Error::io("write the DNS server's pid", e))
}

/// True while a server for `network` answers: it holds the lock and
/// has written its pid, which it does only once its sockets are bound.
/// (One open, one flock and one small read: this is on every attach.)
pub fn running(runroot: &Path, network: &str) -> bool {
    let Ok(mut f) = File::open(pid_path(runroot, network)) else {
        return false;
    };
    let held = matches!(
        flock(&f, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
    let mut pid = String::new();
    held && f.read_to_string(&mut pid).is_ok() && !pid.trim().is_empty()
}

/// Serialises the starters of one network's server (held until dropped).
pub fn launch_lock(runroot: &Path, network: &str) -> Result<File> {
    let path = runroot.join("dns").join(format!("{network}.launch"));
    let f = open_lock_file(&path)?;
    flock(&f, FlockOperation::LockExclusive)
        .map_err(|e| Error::io(format!("lock {}", path.display()), e.into()))?;
    Ok(f)
}

fn read_pid(f: &mut File) -> Option<rustix::process::Pid> {
    use std::io::Seek;
    let mut text = String::new();
    f.rewind().ok()?;
    f.read_to_string(&mut text).ok()?;
    text.trim()
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// Ends the server of `network`, if one runs, and waits until it has
/// (so its port is free for a network made next with the same gateway).
pub fn stop(runroot: &Path, network: &str) -> Result<()> {
    let path = pid_path(runroot, network);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sig = rustix::process::Signal::TERM;
    // While the lock is held the pid is the holder's, not a reused one;
    // a server still binding has not written it yet.
    while flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
        // An in-process server (tests) must not signal its own process.
        let own = rustix::process::getpid();
        if let Some(pid) = read_pid(&mut f).filter(|p| *p != own) {
            match rustix::process::kill_process(pid, sig) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => return Err(Error::io(format!("signal DNS server {pid:?}"), e.into())),
            }
        }
        if Instant::now() > deadline {
            if sig == rustix::process::Signal::KILL {
                return Err(Error::io(
                    format!("stop the DNS server of network {network}"),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
            sig = rustix::process::Signal::KILL;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for p in [path, runroot.join("dns").join(format!("{network}.launch"))] {
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("remove {}", p.display()), e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The nameservers of a resolv.conf, loopback ones included: the server
/// runs in the host's namespace, where they answer.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next().and_then(|ip| ip.parse().ok()))
                .flatten()
        })
        .collect()
}

/// Starts `cmd` (a server) in its own process group, its stderr going
/// to `log`, and returns once it printed [`READY`], leaving it running:
/// the caller exits next, so the server is adopted by init rather than
/// left a zombie of a long-lived engine process. Anything else it prints
/// is the error.
pub fn spawn_detached(mut cmd: Command, log: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(format!("open {}", log.display()), e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("start {:?}", cmd.get_program()), e))?;
    let out = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() == READY {
        return Ok(());
    }
    let _ = child.wait();
    let msg = line.trim();
    Err(Error::io(
        "start the DNS server",
        std::io::Error::other(if msg.is_empty() {
            "it exited before answering".to_string()
        } else {
            msg.to_string()
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_of_a_resolv_conf() {
        let text =
            "# x\nnameserver 127.0.0.53\nnameserver  fd00::53 \nsearch lan\nnameserver bad\n";
        assert_eq!(
            nameservers(text),
            [
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "fd00::53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn lock_tells_whether_a_server_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!running(dir.path(), "n"));
        let f = take_lock(&pid_path(dir.path(), "n")).unwrap().unwrap();
        assert!(!running(dir.path(), "n"), "locked but not yet bound");
        write_pid(&f).unwrap();
        assert!(running(dir.path(), "n"));
        assert!(take_lock(&pid_path(dir.path(), "n")).unwrap().is_none());
        drop(f);
        assert!(!running(dir.path(), "n"));
        stop(dir.path(), "n").unwrap();
        assert!(!pid_path(dir.path(), "n").exists());
        stop(dir.path(), "n").unwrap();
    }
}
