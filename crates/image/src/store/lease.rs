//! Leases: in-flight work (a load, a pull, a commit) names the blobs and
//! snapshots it is creating before it creates them, so garbage collection
//! running at the same time keeps them although no image points at them
//! yet. A lease lives as long as its guard and its process: one left by a
//! killed process (pid and start time no longer match) is expired, and the
//! next lease taken or gc run takes back what it named: so the command
//! that follows a crash (typically the same one, run again) clears what
//! the crash left.

use rusqlite::{params, Connection};

use super::{Result, Store};
use crate::digest::Digest;
use crate::fsutil::{process_start, unique_name};

pub(crate) const BLOB: &str = "blob";
pub(crate) const SNAPSHOT: &str = "snapshot";

/// A lease recorded in the database; released when dropped. See the
/// module documentation.
pub struct Lease<'a> {
    store: &'a Store,
    id: String,
    released: bool,
}

impl Store {
    /// Starts a lease. Name each resource with [`Lease::add_blob`] or
    /// [`Lease::add_snapshot`] *before* creating it. Leases of dead
    /// processes are collected first.
    pub fn lease(&self) -> Result<Lease<'_>> {
        // Best effort: leftovers that cannot go now (a directory still
        // busy) must not stop new work; the next lease tries again.
        if let Err(e) = self.collect_expired() {
            tracing::warn!(error = %e, "could not collect the work of dead processes");
        }
        let id = unique_name("lease-");
        let pid = std::process::id();
        self.lock().execute(
            "INSERT INTO leases (id, pid, pid_start, created) VALUES (?1, ?2, ?3, ?4)",
            params![
                id,
                pid,
                process_start(pid).map(|s| s as i64),
                chrono::Utc::now().to_rfc3339()
            ],
        )?;
        Ok(Lease {
            store: self,
            id,
            released: false,
        })
    }

    /// Runs `work` under a new lease: released when it succeeds (what it
    /// made is then held by the records it wrote), collected when it fails
    /// (what it made goes, and the store is as it was).
    pub fn with_lease<T>(&self, work: impl FnOnce(&Lease<'_>) -> Result<T>) -> Result<T> {
        let lease = self.lease()?;
        match work(&lease) {
            Ok(v) => {
                lease.release()?;
                Ok(v)
            }
            Err(e) => {
                if let Err(undo) = lease.collect() {
                    tracing::warn!(error = %undo, "could not take back failed work");
                }
                Err(e)
            }
        }
    }

    /// Takes back what the leases of dead processes named and ends them;
    /// past a failure it goes on with the next lease and returns the first
    /// error. Cheap when there are none: one read of the leases table.
    pub fn collect_expired(&self) -> Result<()> {
        let dead: Vec<String> = lease_liveness(&self.lock())?
            .into_iter()
            .filter(|(_, alive)| !alive)
            .map(|(id, _)| id)
            .collect();
        let mut first = Ok(());
        for id in dead {
            tracing::info!(lease = id, "collecting the work of a dead process");
            if let Err(e) = self.collect_lease(&id) {
                first = first.and(Err(e));
            }
        }
        first
    }
}

impl Lease<'_> {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Protects the blob `digest` (existing or about to be written).
    pub fn add_blob(&self, digest: &Digest) -> Result<()> {
        self.add(BLOB, digest.as_str())
    }

    /// Protects the snapshot `key` (existing or about to be created) and,
    /// through it, its parents.
    pub fn add_snapshot(&self, key: &str) -> Result<()> {
        self.add(SNAPSHOT, key)
    }

    fn add(&self, kind: &str, key: &str) -> Result<()> {
        self.store.lock().execute(
            "INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?1, ?2, ?3)",
            params![self.id, kind, key],
        )?;
        Ok(())
    }

    /// Ends the lease: what it named is now garbage unless an image (or
    /// another lease) holds it.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.store
            .lock()
            .execute("DELETE FROM leases WHERE id = ?1", [&self.id])?;
        Ok(())
    }

    /// Ends the lease and removes at once whatever it named that nothing
    /// else holds: how a failed load or commit takes back its partial work
    /// without touching what a concurrent one shares with it, and how a
    /// load drops archive blobs no image turned out to need.
    pub fn collect(mut self) -> Result<()> {
        self.released = true;
        self.store.collect_lease(&self.id).map(|_| ())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self
                .store
                .lock()
                .execute("DELETE FROM leases WHERE id = ?1", [&self.id]);
        }
    }
}

/// Leases whose process is gone: (id, alive) for every lease.
pub(crate) fn lease_liveness(conn: &Connection) -> Result<Vec<(String, bool)>> {
    let mut stmt = conn.prepare("SELECT id, pid, pid_start FROM leases")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .map(|(id, pid, start)| {
            let alive = u32::try_from(pid)
                .ok()
                .and_then(process_start)
                .is_some_and(|now| start.is_none_or(|s| s as u64 == now));
            (id, alive)
        })
        .collect())
}
