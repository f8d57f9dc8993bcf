//! What the engine does about work that died half way: a monitor killed
//! while its container runs, an `rm` killed during its teardown, a
//! machine that restarted (the runroot gone, the root kept). The row is
//! corrected from what the kernel says, never guessed, and `boot` starts
//! again what a restart policy says should run.
//!
//! A monitor is alive while its socket accepts: it binds it before the
//! row says running and removes it only after recording the exit, and
//! the kernel closes it when the monitor dies, however it dies.

use std::fs::File;
use std::os::unix::net::UnixStream;

use crate::container::Engine;
use crate::db::{Container, Db, State};
use crate::error::{io_err, Error, Result};
use crate::paths::Paths;

/// docker's exit code for a container whose exit nobody saw (its shim,
/// or the machine, died first).
pub const UNKNOWN_EXIT: i32 = 255;

/// docker's exit code for a container killed by SIGKILL.
const KILLED: i32 = 128 + 9;

/// Whether container `id`'s monitor still runs.
pub fn monitor_alive(paths: &Paths, id: &str) -> bool {
    crate::monitor::socket_addr(paths, id)
        .is_ok_and(|(_dir, addr)| UnixStream::connect(addr).is_ok())
}

/// A held removal of one container: teardowns of it run one at a time,
/// and one whose holder was killed is taken over by the next `rm`.
pub(crate) struct RemovalLock {
    path: std::path::PathBuf,
    _file: File,
    /// A teardown's lock: the file goes with the container.
    unlink: bool,
}

impl Drop for RemovalLock {
    fn drop(&mut self) {
        // Unlinked while held: a waiter then holds a lock on a file no one
        // else can open, re-reads the row and finds it gone.
        if self.unlink {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A monitor's hold on its container while it creates the container's
/// process and records it running: an `rm` waits for it, and it does not
/// start a container an `rm` has begun to remove (see
/// [`Engine::hold_for_start`]).
pub struct StartHold {
    _lock: RemovalLock,
}

fn lock_path(paths: &Paths, id: &str) -> std::path::PathBuf {
    paths
        .runroot
        .join("containers")
        .join(format!("{id}.removing"))
}

/// Removes the removal lock's file of a container whose row is gone.
pub(crate) fn forget_lock(paths: &Paths, id: &str) {
    let _ = std::fs::remove_file(lock_path(paths, id));
}

/// Takes the removal lock of `id`; with `wait` false, `None` when someone
/// else holds it.
pub(crate) fn lock_removal(paths: &Paths, id: &str, wait: bool) -> Result<Option<RemovalLock>> {
    use rustix::fs::{flock, FlockOperation};
    let path = lock_path(paths, id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match flock(&file, op) {
        Ok(()) => Ok(Some(RemovalLock {
            path,
            _file: file,
            unlink: true,
        })),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(io_err(format!(
            "locking {}",
            lock_path(paths, id).display()
        ))(e.into())),
    }
}

impl Engine {
    /// Taken by a monitor before it creates container `id`'s process, and
    /// held until the start is recorded: the removal lock, so a teardown
    /// of `id` (an `rm -f` of a container still `created`) never runs
    /// while its process is being made, which would leave that process
    /// running with no row. `None` when the container is gone or being
    /// removed: it must not start. [`Engine::record_started`] refuses a
    /// row that an `rm` moved to removing meanwhile.
    pub fn hold_for_start(&self, id: &str) -> Result<Option<StartHold>> {
        let Some(mut lock) = lock_removal(&self.paths, id, true)? else {
            return Ok(None);
        };
        // The teardown unlinks the file when it ends; we leave it for the
        // teardown to come (a waiting `rm` holds it open).
        lock.unlink = false;
        match self.db()?.find(id) {
            Ok(c) if c.state != State::Removing => Ok(Some(StartHold { _lock: lock })),
            Ok(_) | Err(Error::NoSuchContainer(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The row corrected for a monitor that died without recording the
    /// exit: while the container's process runs, it is running; once it
    /// is gone, it exited (with 255: the code died with the monitor), and
    /// what the run held is released. `None` when that exit removed it
    /// (`--rm`).
    pub(crate) fn refresh(&self, c: Container) -> Result<Option<Container>> {
        if c.state != State::Running
            || monitor_alive(&self.paths, &c.id)
            || self.runtime_running(&c.id)
        {
            return Ok(Some(c));
        }
        let db = self.db()?;
        // A monitor that ended normally records the exit before it closes
        // its socket: read again, so that exit is not overwritten.
        match db.find(&c.id) {
            Ok(now) if now.state == State::Running => {}
            Ok(now) => return Ok(Some(now)),
            Err(Error::NoSuchContainer(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
        tracing::warn!(id = c.id, "its monitor died: recording the exit");
        // A teardown that failed in part is reported, not fatal to the
        // reader (`ps` must list the rest); the row says what was done.
        if let Err(e) = self.record_exit_now(&c.id, UNKNOWN_EXIT) {
            tracing::warn!(id = c.id, error = %e, "recording the exit of a dead monitor's container");
        }
        match db.find(&c.id) {
            Ok(now) => Ok(Some(now)),
            Err(Error::NoSuchContainer(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `rm -f` of a container whose monitor is gone: nobody will record
    /// the exit of the process we killed, so we do (the runtime's delete
    /// kills whatever is left and waits for it).
    pub(crate) fn reap_orphan(&self, id: &str) -> Result<()> {
        let db = self.db()?;
        match db.find(id) {
            Ok(c) if c.state == State::Running && !monitor_alive(&self.paths, id) => {
                self.record_exit_now(id, KILLED)
            }
            Ok(_) | Err(Error::NoSuchContainer(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A row left `removing` by an `rm` (or a `--rm` monitor) killed in
    /// its teardown: nobody holds its removal lock, so we finish it.
    /// `false` when someone is still at it (or it is not removing).
    pub(crate) fn finish_abandoned_removal(&self, db: &Db, id: &str) -> Result<bool> {
        match db.find(id) {
            Ok(c) if c.state == State::Removing => {}
            Ok(_) | Err(Error::NoSuchContainer(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        if lock_removal(&self.paths, id, false)?.is_none() {
            return Ok(false);
        }
        tracing::warn!(id, "finishing a removal that was interrupted");
        self.teardown(db, id)?;
        Ok(true)
    }

    /// What a machine's start (or `berth serve`'s) does: every container
    /// whose restart policy says it should run again is started, as
    /// dockerd does for `always`, `unless-stopped` (not stopped by the
    /// user) and `on-failure` (an exit code other than 0, retries left).
    /// Rows whose monitor died are corrected first. Returns each container
    /// tried, with its start's result.
    pub fn boot(&self) -> Result<Vec<(Container, Result<()>)>> {
        let db = self.db()?;
        let mut tried = Vec::new();
        for c in self.list()? {
            if c.state != State::Exited || c.started.is_none() {
                continue;
            }
            let r = crate::restart::get(&db, &c.id)?;
            let policy = &c.config.host_config.restart_policy;
            if !policy.should_restart(c.exit_code.unwrap_or(0), r.count, r.stopped_by_user) {
                continue;
            }
            let started = self.start(&c.id, None).map(drop);
            tried.push((c, started));
        }
        Ok(tried)
    }
}
