//! What the server keeps between requests: attach streams waiting for
//! their container's start (docker's client attaches before it starts),
//! exec instances, and the exits it saw, so that a `wait` which arrives
//! after a `--rm` container is gone still gets its code.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_engine::Engine;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::exec;

/// How long the server is idle before it closes its database
/// connection and image store. Reopening both costs every call after a
/// release (SQLite's open and schema check, the store's): a second keeps
/// them across the gaps of a client's burst (a script's `docker run`s,
/// a bench's rounds), and an idle server still lets go soon.
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(1);

/// Exits remembered for late waiters; older ones are forgotten.
const KEEP_EXITS: usize = 4096;

pub struct Api {
    pub engine: Engine,
    /// Container id to the monitor's end of an attach made before start.
    pending: Mutex<HashMap<String, OwnedFd>>,
    /// Container id to the console size its create asked for.
    console: Mutex<HashMap<String, (u16, u16)>>,
    /// Bumped at every start and exit the server sees.
    changed: watch::Sender<u64>,
    exits: Mutex<HashMap<String, Exit>>,
    /// Containers this server started whose exit it has not heard yet.
    exits_due: Mutex<std::collections::HashSet<String>>,
    exit_seq: Mutex<u64>,
    pub execs: Mutex<HashMap<String, Arc<exec::Instance>>>,
    /// Engine calls running now, and how many ever started (see
    /// [`Api::call_done`]).
    calls: AtomicUsize,
    started: AtomicUsize,
}

/// Which attach waits for a start: the inode of its end of the stream.
pub struct PendingAttach(u64);

impl PendingAttach {
    pub fn of(fd: &OwnedFd) -> Option<PendingAttach> {
        inode(fd).map(PendingAttach)
    }
}

fn inode(fd: &OwnedFd) -> Option<u64> {
    rustix::fs::fstat(fd).ok().map(|st| st.st_ino)
}

/// Ends a call in [`Api::blocking`], even one that panicked.
struct CallDone(Arc<Api>);

impl Drop for CallDone {
    fn drop(&mut self) {
        self.0.call_done();
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub seq: u64,
    pub code: i32,
}

/// A poisoned lock only means another request panicked: the maps stay
/// usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Api {
    pub fn new(engine: Engine) -> Api {
        Api {
            engine,
            pending: Mutex::default(),
            console: Mutex::default(),
            changed: watch::channel(0).0,
            exits: Mutex::default(),
            exits_due: Mutex::default(),
            exit_seq: Mutex::new(0),
            execs: Mutex::default(),
            calls: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        }
    }

    /// Runs a blocking engine call on tokio's blocking threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Engine) -> berth_engine::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let me = self.clone();
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            let _done = CallDone(me.clone());
            f(&me.engine)
        })
        .await
        .map_err(|e| ApiError::internal(format!("engine call failed: {e}")))?
        .map_err(ApiError::from)
    }

    /// Lets go of the engine's database connection and image store once
    /// the server has been idle for [`IDLE_RELEASE`]. Calls side by side
    /// (and builds and pulls, which open their own) open more connections,
    /// and SQLite keeps the files of those closed meanwhile open for as
    /// long as any other stays open (see [`Engine::release`]): without
    /// this, a burst of clients leaves as many fds open for good. A busy
    /// server keeps its connection; an idle one pays one open at its next
    /// call.
    fn call_done(self: &Arc<Self>) {
        if self.calls.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let seen = self.started.load(Ordering::SeqCst);
        let me = self.clone();
        // On a blocking thread of the runtime: its context is entered.
        tokio::spawn(async move {
            tokio::time::sleep(IDLE_RELEASE).await;
            if me.calls.load(Ordering::SeqCst) == 0 && me.started.load(Ordering::SeqCst) == seen {
                // A call that starts meanwhile takes its own connection
                // (or the kept one first, and keeps it).
                let _ = tokio::task::spawn_blocking(move || me.engine.release()).await;
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn set_pending_attach(&self, id: &str, fd: OwnedFd) -> bool {
        let mut p = lock(&self.pending);
        if p.contains_key(id) {
            return false;
        }
        p.insert(id.to_string(), fd);
        true
    }

    pub fn take_pending_attach(&self, id: &str) -> Option<OwnedFd> {
        lock(&self.pending).remove(id)
    }

    /// Forgets the attach `mine` left waiting for `id`'s start, if it is
    /// still that one (the start may have taken it, and another client's
    /// may wait now): its client left, or the container went.
    pub fn forget_pending_attach(&self, id: &str, mine: &PendingAttach) {
        let gone = {
            let mut p = lock(&self.pending);
            let mine = p.get(id).is_some_and(|fd| inode(fd) == Some(mine.0));
            mine && p.remove(id).is_some()
        };
        if gone {
            // Another client's attach may wait for the place.
            self.bump();
        }
    }

    pub fn set_console(&self, id: &str, size: (u16, u16)) {
        lock(&self.console).insert(id.to_string(), size);
    }

    pub fn take_console(&self, id: &str) -> Option<(u16, u16)> {
        lock(&self.console).remove(id)
    }

    /// The latest exit sequence number (waiters compare against it).
    pub fn exit_seq(&self) -> u64 {
        *lock(&self.exit_seq)
    }

    pub fn exit_of(&self, id: &str) -> Option<Exit> {
        lock(&self.exits).get(id).copied()
    }

    /// This server started `id`: its exit will be recorded (or given up
    /// on, [`Api::exit_unknown`]).
    pub fn expect_exit(&self, id: &str) {
        lock(&self.exits_due).insert(id.to_string());
    }

    /// Whether `id`'s exit is still to be recorded.
    pub fn exit_due(&self, id: &str) -> bool {
        lock(&self.exits_due).contains(id)
    }

    /// `id`'s monitor ended without reporting an exit.
    pub fn exit_unknown(&self, id: &str) {
        lock(&self.exits_due).remove(id);
        self.bump();
    }

    pub fn record_exit(&self, id: &str, code: i32) {
        let seq = {
            let mut s = lock(&self.exit_seq);
            *s += 1;
            *s
        };
        {
            let mut e = lock(&self.exits);
            if e.len() >= KEEP_EXITS {
                if let Some(oldest) = e.iter().min_by_key(|(_, x)| x.seq).map(|(k, _)| k.clone()) {
                    e.remove(&oldest);
                }
            }
            e.insert(id.to_string(), Exit { seq, code });
        }
        lock(&self.exits_due).remove(id);
        self.bump();
    }
}
