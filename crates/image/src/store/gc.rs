//! Removing images (`rmi`, `image prune`) and collecting garbage: blobs and
//! committed snapshots no image, lease or container snapshot holds.
//!
//! Collection runs inside one write transaction on the image database.
//! Leases are written through the same database, so while it runs no new
//! lease can name a resource; a load that named its resources before it
//! started is seen, one that starts after it finds the store as gc left it.

use std::collections::HashSet;

use rusqlite::{params, Connection, TransactionBehavior};

use super::lease::{lease_liveness, BLOB, SNAPSHOT};
use super::{load_image, Image, Result, Store, StoreError};
use crate::content::{Manager, Provider};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::snapshot::{Info, Kind, SnapshotError};
use crate::ErrorKind;

/// What a collection took back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: Vec<Digest>,
    pub snapshots_removed: Vec<String>,
    /// Bytes of the removed blobs (snapshot directories are not measured).
    pub bytes_reclaimed: u64,
}

/// One line of `docker rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A tag removed, and the image it named (docker's untag event
    /// names the image by id).
    Untagged(Reference, Digest),
    Deleted(Digest),
}

/// Which resources a collection may remove.
pub(crate) enum Scope<'a> {
    /// Everything unreferenced (`gc`), and expired leases.
    All,
    /// What this lease named; the lease ends.
    Lease(&'a str),
    /// These candidates only (what a removed image held).
    Only {
        blobs: Vec<Digest>,
        snapshots: Vec<String>,
    },
}

/// What must stay: computed from the database and the snapshot list.
pub(crate) struct Reachable {
    pub blobs: HashSet<String>,
    pub snapshots: HashSet<String>,
    /// Leases whose process is gone.
    pub expired: Vec<String>,
}

/// Marks everything referenced by an image, a live lease or a container
/// (an active or view snapshot not left by a dead lease), with parents.
/// `ending` is a lease treated as already gone.
pub(crate) fn reachable(
    conn: &Connection,
    infos: &[Info],
    ending: Option<&str>,
) -> Result<Reachable> {
    let leases = lease_liveness(conn)?;
    let live: HashSet<&str> = leases
        .iter()
        .filter(|(id, alive)| *alive && Some(id.as_str()) != ending)
        .map(|(id, _)| id.as_str())
        .collect();
    let strings = |sql: &str| -> Result<Vec<String>> {
        let mut stmt = conn.prepare(sql)?;
        let v = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    };
    let resources = {
        let mut stmt = conn.prepare("SELECT lease_id, kind, key FROM lease_resources")?;
        let v = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        v
    };
    let mut blobs: HashSet<String> = strings(
        "SELECT id FROM images UNION SELECT manifest FROM images
         UNION SELECT digest FROM image_blobs UNION SELECT blob FROM layers",
    )?
    .into_iter()
    .collect();
    let mut snapshots: HashSet<String> = strings("SELECT snapshot_key FROM layers")?
        .into_iter()
        .collect();
    let mut dead_snapshots = HashSet::new();
    for (lease, kind, key) in resources {
        let alive = live.contains(lease.as_str());
        match (kind.as_str(), alive) {
            (BLOB, true) => {
                blobs.insert(key);
            }
            (SNAPSHOT, true) => {
                snapshots.insert(key);
            }
            (SNAPSHOT, false) => {
                dead_snapshots.insert(key);
            }
            _ => {}
        }
    }
    // Containers: every active or view snapshot, unless it is the scratch
    // space of work that died.
    for i in infos {
        if i.kind != Kind::Committed && !dead_snapshots.contains(&i.key) {
            snapshots.insert(i.key.clone());
        }
    }
    // Parents come before children in the list: walking it backwards,
    // one pass marks every ancestor.
    for i in infos.iter().rev() {
        if snapshots.contains(&i.key) {
            if let Some(p) = &i.parent {
                snapshots.insert(p.clone());
            }
        }
    }
    let expired = leases
        .into_iter()
        .filter(|(_, alive)| !alive)
        .map(|(id, _)| id)
        .collect();
    Ok(Reachable {
        blobs,
        snapshots,
        expired,
    })
}

/// Layer rows no image's chain reaches any more.
fn drop_unreachable_layers(conn: &Connection) -> Result<()> {
    // One statement: SQLite checks the parent foreign key at its end, when
    // a removed parent's children are gone too.
    conn.execute(
        "WITH RECURSIVE chain(c) AS (
             SELECT top_chain_id FROM images WHERE top_chain_id IS NOT NULL
             UNION SELECT l.parent FROM layers l JOIN chain ON l.chain_id = chain.c
                   WHERE l.parent IS NOT NULL)
         DELETE FROM layers WHERE chain_id NOT IN (SELECT c FROM chain)",
        [],
    )?;
    Ok(())
}

impl Store {
    /// Removes every blob and committed snapshot nothing holds, and ends
    /// leases whose process died (taking back what they named).
    pub fn gc(&self) -> Result<GcReport> {
        self.collect(Scope::All)
    }

    pub(crate) fn collect_lease(&self, id: &str) -> Result<GcReport> {
        self.collect(Scope::Lease(id))
    }

    pub(crate) fn collect(&self, scope: Scope<'_>) -> Result<GcReport> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        drop_unreachable_layers(&tx)?;
        let infos = self.snapshotter.list()?;
        let ending = match &scope {
            Scope::Lease(id) => Some(*id),
            _ => None,
        };
        let reach = reachable(&tx, &infos, ending)?;
        let (blobs, snapshots): (Vec<Digest>, Option<HashSet<String>>) = match scope {
            Scope::All => (
                self.content.list()?.into_iter().map(|i| i.digest).collect(),
                None,
            ),
            Scope::Lease(id) => {
                let mut stmt =
                    tx.prepare("SELECT kind, key FROM lease_resources WHERE lease_id = ?1")?;
                let rows = stmt
                    .query_map([id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let blobs = rows
                    .iter()
                    .filter(|(k, _)| k == BLOB)
                    .filter_map(|(_, d)| Digest::parse(d).ok())
                    .collect();
                let snaps = rows
                    .into_iter()
                    .filter(|(k, _)| k == SNAPSHOT)
                    .map(|(_, s)| s)
                    .collect();
                (blobs, Some(snaps))
            }
            Scope::Only { blobs, snapshots } => (blobs, Some(snapshots.into_iter().collect())),
        };

        let mut report = GcReport::default();
        for d in blobs {
            if reach.blobs.contains(d.as_str()) {
                continue;
            }
            let size = self.content.info(&d).map(|i| i.size).unwrap_or(0);
            match self.content.delete(&d) {
                Ok(()) => {
                    report.bytes_reclaimed += size;
                    report.blobs_removed.push(d);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Children first, so a parent is free by the time it is reached.
        for i in infos.iter().rev() {
            let candidate = snapshots.as_ref().is_none_or(|s| s.contains(&i.key));
            if !candidate || reach.snapshots.contains(&i.key) {
                continue;
            }
            match self.snapshotter.remove(&i.key) {
                Ok(()) => report.snapshots_removed.push(i.key.clone()),
                Err(SnapshotError::NotFound(_)) | Err(SnapshotError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match ending {
            Some(id) => {
                tx.execute("DELETE FROM leases WHERE id = ?1", [id])?;
            }
            None if snapshots.is_none() => {
                for id in &reach.expired {
                    tx.execute("DELETE FROM leases WHERE id = ?1", [id])?;
                }
            }
            None => {}
        }
        tx.commit()?;
        if !report.blobs_removed.is_empty() || !report.snapshots_removed.is_empty() {
            tracing::info!(
                blobs = report.blobs_removed.len(),
                snapshots = report.snapshots_removed.len(),
                bytes = report.bytes_reclaimed,
                "collected garbage"
            );
        }
        Ok(report)
    }

    /// `docker rmi NAME`: by a reference, untags it, and deletes the image
    /// with its last tag; by id, deletes the image (with `force` even when
    /// several references name it). An image in `in_use` (the ids of
    /// images the engine's containers were created from) is refused
    /// unless `force`; its layers survive as its containers' parents.
    pub fn remove_image(
        &self,
        name: &str,
        force: bool,
        in_use: &HashSet<Digest>,
    ) -> Result<Vec<Removed>> {
        let image = self.image(name)?;
        let by_ref = Digest::parse(name)
            .is_err()
            .then(|| Reference::parse(name).ok())
            .flatten()
            .filter(|r| image.tags.contains(r));
        let used = in_use.contains(&image.id);
        let short = image.id.short().to_string();
        if let Some(r) = &by_ref {
            if image.tags.len() > 1 {
                self.untag(r)?;
                return Ok(vec![Removed::Untagged(r.clone(), image.id.clone())]);
            }
            if used && !force {
                return Err(StoreError::Conflict(format!(
                    "unable to remove repository reference \"{}\" (must force) - image {short} is being used by a container",
                    r.familiar()
                )));
            }
        } else if !force {
            if image.tags.len() > 1 {
                return Err(StoreError::Conflict(format!(
                    "unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                )));
            }
            if used {
                return Err(StoreError::Conflict(format!(
                    "unable to delete {short} (must be forced) - image is being used by a container"
                )));
            }
        }
        let mut out: Vec<Removed> = image
            .tags
            .iter()
            .map(|t| Removed::Untagged(t.clone(), image.id.clone()))
            .collect();
        self.delete_images(std::slice::from_ref(&image.id))?;
        out.push(Removed::Deleted(image.id));
        Ok(out)
    }

    /// `docker image prune`: deletes dangling images (with `all`, every
    /// image) not in `in_use` that `chosen` picks, and what only they held.
    pub fn prune(
        &self,
        all: bool,
        in_use: &HashSet<Digest>,
        chosen: &dyn Fn(&Image) -> bool,
    ) -> Result<(Vec<Removed>, GcReport)> {
        let victims: Vec<_> = self
            .images()?
            .into_iter()
            .filter(|i| (all || i.tags.is_empty()) && !in_use.contains(&i.id) && chosen(i))
            .collect();
        let mut out = Vec::new();
        for i in &victims {
            out.extend(
                i.tags
                    .iter()
                    .map(|t| Removed::Untagged(t.clone(), i.id.clone())),
            );
            out.push(Removed::Deleted(i.id.clone()));
        }
        let ids: Vec<Digest> = victims.into_iter().map(|i| i.id).collect();
        let report = self.delete_images(&ids)?;
        Ok((out, report))
    }

    fn untag(&self, r: &Reference) -> Result<()> {
        self.lock()
            .execute("DELETE FROM tags WHERE reference = ?1", [r.to_string()])?;
        Ok(())
    }

    /// Deletes the records, then collects what only they held.
    fn delete_images(&self, ids: &[Digest]) -> Result<GcReport> {
        let (mut blobs, mut snapshots) = (Vec::new(), Vec::new());
        {
            let mut conn = self.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for id in ids {
                let Some(image) = load_image(&tx, id.as_str())? else {
                    continue;
                };
                let mut stmt = tx.prepare("SELECT digest FROM image_blobs WHERE image_id = ?1")?;
                for d in stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))? {
                    if let Ok(d) = Digest::parse(&d?) {
                        blobs.push(d);
                    }
                }
                blobs.extend([image.id.clone(), image.manifest.clone()]);
                let mut next = image.top_chain_id.map(|d| d.to_string());
                while let Some(c) = next {
                    let row: Option<(String, Option<String>, String)> = tx
                        .query_row(
                            "SELECT snapshot_key, parent, blob FROM layers WHERE chain_id = ?1",
                            [&c],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )
                        .ok();
                    let Some((key, parent, blob)) = row else {
                        break;
                    };
                    snapshots.push(key);
                    blobs.extend(Digest::parse(&blob).ok());
                    next = parent;
                }
                tx.execute("DELETE FROM images WHERE id = ?1", params![id.as_str()])?;
            }
            tx.commit()?;
        }
        self.collect(Scope::Only { blobs, snapshots })
    }
}
