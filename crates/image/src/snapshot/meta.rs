//! The metadata both backends share: which keys exist, their kind and
//! parent, and the numeric id naming their directory. SQLite gives the
//! atomic multi-row updates (commit renames a key; remove checks children)
//! that a directory of files would not.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{io_err, Detached, Info, Kind, Result, SnapshotError};

pub(crate) const STAGE_PREFIX: &str = "stage-";

pub(crate) struct Meta {
    conn: Mutex<Connection>,
    pub(crate) dirs: PathBuf,
    /// Where layers are staged and removed snapshots' files wait for
    /// deletion: inside `dirs` (a rename away from a snapshot's place), but
    /// a directory of its own, so that the sweep at every open lists what
    /// is in flight, not every snapshot there is.
    pub(crate) work: PathBuf,
}

/// A row of the snapshots table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub id: i64,
    pub key: String,
    pub parent: Option<String>,
    pub kind: Kind,
    pub created: chrono::DateTime<chrono::Utc>,
}

impl Meta {
    pub(crate) fn open(root: &Path) -> Result<Meta> {
        let dirs = root.join("snapshots");
        let work = dirs.join(".work");
        std::fs::create_dir_all(&work).map_err(io_err(format!("creating {}", work.display())))?;
        let conn = crate::sqlite::open_shared(
            &root.join("metadata.db"),
            std::time::Duration::from_secs(10),
        )?;
        // AUTOINCREMENT: an id is never reused, so a directory left by a
        // crash can never be mistaken for a later snapshot's.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS snapshots (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL UNIQUE,
                parent TEXT REFERENCES snapshots(key),
                kind TEXT NOT NULL,
                created TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
            COMMIT;",
        )?;
        Ok(Meta {
            conn: Mutex::new(conn),
            dirs,
            work,
        })
    }

    pub(crate) fn dir(&self, id: i64) -> PathBuf {
        self.dirs.join(id.to_string())
    }

    pub(crate) fn info(&self, row: &Row) -> Info {
        Info {
            key: row.key.clone(),
            parent: row.parent.clone(),
            kind: row.kind,
            created: row.created,
            dir: self.dir(row.id),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Result<Row> {
        get(&self.lock(), key)?.ok_or_else(|| SnapshotError::NotFound(key.to_string()))
    }

    /// The parent chain of `key`, nearest first (excluding `key`).
    pub(crate) fn parents(&self, row: &Row) -> Result<Vec<Row>> {
        let conn = self.lock();
        let mut out = Vec::new();
        let mut next = row.parent.clone();
        while let Some(p) = next {
            let r = get(&conn, &p)?.ok_or_else(|| SnapshotError::NotFound(p.clone()))?;
            next = r.parent.clone();
            out.push(r);
        }
        Ok(out)
    }

    /// Records a new snapshot and runs `make` to create its directory
    /// inside the same transaction: either both happen or neither.
    pub(crate) fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        make: impl FnOnce(&Path, Option<&Row>) -> Result<()>,
    ) -> Result<Row> {
        if key.is_empty() {
            return Err(SnapshotError::InvalidArgument {
                key: key.into(),
                reason: "empty key".into(),
            });
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if get(&tx, key)?.is_some() {
            return Err(SnapshotError::AlreadyExists(key.to_string()));
        }
        let parent_row = match parent {
            Some(p) => {
                let r = get(&tx, p)?.ok_or_else(|| SnapshotError::NotFound(p.to_string()))?;
                if r.kind != Kind::Committed {
                    return Err(SnapshotError::InvalidArgument {
                        key: key.into(),
                        reason: format!("parent {p:?} is not committed"),
                    });
                }
                Some(r)
            }
            None => None,
        };
        let created = chrono::Utc::now();
        tx.execute(
            "INSERT INTO snapshots (key, parent, kind, created) VALUES (?1, ?2, ?3, ?4)",
            params![key, parent, kind.as_str(), created.to_rfc3339()],
        )?;
        let id = tx.last_insert_rowid();
        let dir = self.dirs.join(id.to_string());
        // A crash between `make` and the commit below leaves a directory
        // whose row was rolled back, so its id comes round again: what is
        // there is stale, and must not leak into the new snapshot.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => tracing::debug!(dir = %dir.display(), "removed a stale snapshot directory"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("removing stale {}", dir.display()))(e)),
        }
        if let Err(e) = make(&dir, parent_row.as_ref()) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        if let Err(e) = tx.commit() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        Ok(Row {
            id,
            key: key.into(),
            parent: parent.map(str::to_string),
            kind,
            created,
        })
    }

    pub(crate) fn commit(&self, name: &str, key: &str) -> Result<Row> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = get(&tx, key)?.ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        if row.kind != Kind::Active {
            return Err(SnapshotError::InvalidArgument {
                key: key.into(),
                reason: format!(
                    "only an active snapshot can be committed, this is {}",
                    row.kind.as_str()
                ),
            });
        }
        if get(&tx, name)?.is_some() {
            return Err(SnapshotError::AlreadyExists(name.to_string()));
        }
        tx.execute(
            "UPDATE snapshots SET key = ?1, kind = 'committed' WHERE id = ?2",
            params![name, row.id],
        )?;
        tx.commit()?;
        Ok(Row {
            key: name.into(),
            kind: Kind::Committed,
            ..row
        })
    }

    /// Forgets `key`, refusing if it has children. The directory is moved
    /// aside inside the transaction and deleted after it, so a crash leaves
    /// at worst a `rm-*` directory, never a row without its directory.
    pub(crate) fn remove(&self, key: &str) -> Result<()> {
        self.detach(key)?.purge()
    }

    /// [`Meta::remove`] up to the deletion of the moved directory, which
    /// the returned guard does.
    pub(crate) fn detach(&self, key: &str) -> Result<Detached> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = get(&tx, key)?.ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        let children: i64 = tx.query_row(
            "SELECT COUNT(*) FROM snapshots WHERE parent = ?1",
            [key],
            |r| r.get(0),
        )?;
        if children > 0 {
            return Err(SnapshotError::Conflict {
                key: key.into(),
                reason: format!("{children} snapshot(s) still have it as parent"),
            });
        }
        tx.execute("DELETE FROM snapshots WHERE id = ?1", [row.id])?;
        let dir = self.dir(row.id);
        // The remover's pid in the name: `sweep` leaves a live one's alone.
        let trash = self
            .work
            .join(format!("rm-{}-{}", row.id, std::process::id()));
        match std::fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("removing {}", dir.display()))(e)),
        }
        if let Err(e) = tx.commit() {
            let _ = std::fs::rename(&trash, &dir);
            return Err(e.into());
        }
        Ok(Detached::new(trash))
    }

    /// Deletes directories a crash left behind in `remove`, and staged
    /// layers of writers that died. A remover killed between moving the
    /// directory aside and committing left its row: the directory goes
    /// back, or the store would hold a snapshot without its files. A
    /// remover still alive (in another process, or a thread of ours) is
    /// left to finish.
    pub(crate) fn sweep(&self) {
        // One listing for both kinds, of the work directory only: every
        // open of the store pays it.
        let Ok(entries) = std::fs::read_dir(&self.work) else {
            return;
        };
        for e in entries.flatten() {
            if crate::fsutil::remove_if_dead(&e, STAGE_PREFIX) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("rm-") else {
                continue;
            };
            let (id, pid) = match rest.split_once('-') {
                Some((id, pid)) => (id, pid.parse::<u32>().ok()),
                None => (rest, None),
            };
            if pid.is_some_and(crate::fsutil::pid_alive) {
                continue;
            }
            let kept = id.parse::<i64>().ok().filter(|id| {
                self.lock()
                    .query_row("SELECT 1 FROM snapshots WHERE id = ?1", [id], |_| Ok(()))
                    .is_ok()
            });
            match kept {
                Some(id) if !self.dir(id).exists() => {
                    let _ = std::fs::rename(e.path(), self.dir(id));
                }
                _ => {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    pub(crate) fn list(&self) -> Result<Vec<Row>> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT id, key, parent, kind, created FROM snapshots ORDER BY id")?;
        let rows = stmt
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let created: String = r.get(4)?;
    Ok(Row {
        id: r.get(0)?,
        key: r.get(1)?,
        parent: r.get(2)?,
        kind: Kind::parse(&r.get::<_, String>(3)?),
        created: chrono::DateTime::parse_from_rfc3339(&created)
            .map(|t| t.to_utc())
            .unwrap_or_default(),
    })
}

fn get(conn: &Connection, key: &str) -> Result<Option<Row>> {
    Ok(conn
        .query_row(
            "SELECT id, key, parent, kind, created FROM snapshots WHERE key = ?1",
            [key],
            row,
        )
        .optional()?)
}
