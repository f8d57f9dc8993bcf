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
    exit_seq: Mutex<u64>,
    pub execs: Mutex<HashMap<String, Arc<exec::Instance>>>,
    /// Engine calls running now, and the most that ran side by side
    /// since the server was last idle (see [`Api::blocking`]).
    calls: AtomicUsize,
    peak: AtomicUsize,
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
            exit_seq: Mutex::new(0),
            execs: Mutex::default(),
            calls: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Runs a blocking engine call on tokio's blocking threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Engine) -> berth_engine::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let me = self.clone();
        let now = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            let r = f(&me.engine);
            me.call_done();
            r
        })
        .await
        .map_err(|e| ApiError::internal(format!("engine call failed: {e}")))?
        .map_err(ApiError::from)
    }

    /// Calls side by side each opened a database connection of their
    /// own, and SQLite keeps the files of those closed meanwhile open for
    /// as long as the kept one is (see [`Engine::release`]): once the
    /// server is idle after such a burst, it lets go of all of them. One
    /// client's calls in turn never open a second one, and pay nothing.
    fn call_done(&self) {
        if self.calls.fetch_sub(1, Ordering::SeqCst) == 1 && self.peak.swap(0, Ordering::SeqCst) > 1
        {
            self.engine.release();
        }
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
        self.bump();
    }
}
