//! Opening an SQLite database that many processes (every `berth`, every
//! monitor) open at once: the image store's and the engine's (one file)
//! and the snapshots' metadata.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode};

/// Opens `path` (creating it) in WAL mode with `synchronous=NORMAL`,
/// waiting up to `busy` for locks others hold.
///
/// Switching a new database to WAL needs every other connection's lock
/// released; when several processes open a new store at the same moment
/// each holds the lock the others wait for, and SQLite answers all but one
/// with SQLITE_BUSY at once instead of calling the busy handler. WAL is
/// kept in the file, so only the first open switches: the others retry
/// until they see it.
pub fn open_shared(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy)?;
    let deadline = Instant::now() + busy;
    let mut pause = Duration::from_millis(1);
    loop {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            break;
        }
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => break,
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
    // In WAL mode NORMAL survives any process crash (SIGKILL included);
    // only a power loss can drop the last commits, never corrupt.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // No checkpoint (and WAL deletion, and its recreation by the next
    // writer: four fsyncs) each time the last connection closes: every
    // short-lived `berth` and monitor would pay it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    // Checkpoints at 64 pages instead of 1000: the first connection of
    // every process (each `berth`, each monitor) reads the whole WAL to
    // rebuild its index, about 1.4 us a page here, where a checkpoint's
    // two fsyncs cost about 0.1 ms each: shorter is cheaper.
    conn.pragma_update(None, "wal_autocheckpoint", 64)?;
    bound_wal(&conn, path, busy)?;
    Ok(conn)
}

/// Past this length the WAL is emptied by the process that opens it.
const WAL_LIMIT: u64 = 1 << 20;

/// Empties a WAL grown past [`WAL_LIMIT`]. The autocheckpoint copies the
/// WAL's pages into the database, but SQLite starts writing the WAL over
/// only when a write begins with the whole WAL known to be checkpointed,
/// and a process's first connection rebuilds its index with nothing known
/// as checkpointed. A run of processes that each write once (`create`
/// after `create`, a thousand `run -d`) thus only ever appends, and every
/// open reads the whole WAL: 20 MB and 5 ms after a thousand creates.
/// A truncating checkpoint here costs about what reading a megabyte of
/// WAL does, once a megabyte.
fn bound_wal(conn: &Connection, path: &Path, busy: Duration) -> rusqlite::Result<()> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).map_or(0, |m| m.len()) <= WAL_LIMIT {
        return Ok(());
    }
    // Never waited for: with another process writing or reading, the
    // next open tries again.
    conn.busy_timeout(Duration::ZERO)?;
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        Ok(()) => {}
        Err(e) if is_busy(&e) => {}
        Err(e) => return Err(e),
    }
    conn.busy_timeout(busy)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_processes_that_write_once_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let wal = dir.path().join("x.db-wal");
        open_shared(&p, Duration::from_secs(1))
            .unwrap()
            .execute_batch("CREATE TABLE t (v BLOB)")
            .unwrap();
        // Each connection dropped before the next opens is a new process
        // to SQLite: the last close of a file forgets its WAL index.
        let mut longest = 0;
        for _ in 0..400 {
            let c = open_shared(&p, Duration::from_secs(1)).unwrap();
            c.execute("INSERT INTO t VALUES (zeroblob(6000))", [])
                .unwrap();
            drop(c);
            longest = longest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert!(
            longest < WAL_LIMIT + (64 << 12) * 2,
            "the WAL grew to {longest} bytes"
        );
    }

    #[test]
    fn opens_in_wal_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let c = open_shared(&p, Duration::from_secs(1)).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(c);
        open_shared(&p, Duration::from_secs(1)).unwrap();
    }
}
