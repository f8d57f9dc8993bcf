//! The containers table of the state database (`<root>/berth.db`, SQLite in
//! WAL mode so many CLIs and monitors read and write at once). A row is
//! the truth about a container's identity and its last known state; the
//! kernel (through the runtime) is the truth about whether it still runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names;

/// The lifecycle states docker shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Exited,
    /// Being torn down (`rm`, or `--rm` after exit).
    Removing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Exited => "exited",
            State::Removing => "removing",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "created" => State::Created,
            "running" => State::Running,
            "removing" => State::Removing,
            _ => State::Exited,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user asked for, kept to answer `inspect` and to rebuild the
/// spec; docker's field names where docker has them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub hostname: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub network_mode: String,
    pub auto_remove: bool,
    // Added after the first rows were written: old rows read as defaults.
    #[serde(default)]
    pub domainname: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The signal `stop` sends; empty is SIGTERM.
    #[serde(default)]
    pub stop_signal: String,
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    #[serde(default)]
    pub host_config: crate::hostconfig::HostConfig,
    /// `-t`: the process gets a pty that the monitor holds.
    #[serde(default)]
    pub tty: bool,
    /// `-i`: the monitor keeps a pipe (or the pty) open to its stdin.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the process's stdin when the first attached client's ends.
    #[serde(default)]
    pub stdin_once: bool,
    /// Networks, ports, DNS and extra hosts (see `network`).
    #[serde(default, rename = "Networking")]
    pub net: crate::network::NetSettings,
    /// The health check: the image's HEALTHCHECK under the `--health-*`
    /// flags; `None` when neither has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::Healthcheck>,
    /// `--log-driver` and `--log-opt`.
    #[serde(default)]
    pub log_config: crate::logfile::LogConfig,
}

/// One container's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    pub config: ContainerConfig,
    pub created: chrono::DateTime<chrono::Utc>,
    pub state: State,
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    pub finished: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the last start failed, if it did.
    pub error: Option<String>,
    /// The kernel's OOM killer killed a process of the container during
    /// its last run (docker's State.OOMKilled).
    pub oom_killed: bool,
}

pub struct Db {
    /// `None` only while being dropped into its [`Pool`].
    conn: Option<Connection>,
    path: PathBuf,
    pool: Option<Pool>,
}

/// One connection kept open between uses by one process: opening costs
/// the schema check, and the first connection of a process to a database
/// nobody has open rebuilds the WAL index from the whole WAL. A [`Db`]
/// taken from it goes back when dropped; a nested use meanwhile opens a
/// second connection, which then is the one kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pool(Arc<Mutex<Option<Connection>>>);

impl Pool {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        // A panic while holding the lock leaves at worst no connection.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, path: &Path) -> Result<Db> {
        let conn = self.slot().take();
        let mut db = match conn {
            Some(conn) => Db {
                conn: Some(conn),
                path: path.to_path_buf(),
                pool: None,
            },
            None => Db::open(path)?,
        };
        db.pool = Some(self.clone());
        Ok(db)
    }

    /// Closes the kept connection (a monitor does, before a long wait).
    pub(crate) fn clear(&self) {
        self.slot().take();
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let (Some(pool), Some(conn)) = (&self.pool, self.conn.take()) {
            pool.slot().get_or_insert(conn);
        }
    }
}

// No `spec` column: the spec lives in the bundle while the container
// runs, and every state change rewrote it (stores made before lose it on
// open, see `schema`).
const COLUMNS: &str =
    "id, name, image, image_id, config, created, state, pid, exit_code, started, finished, error, oom_killed";

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(crate::error::io_err(format!("creating {}", dir.display())))?;
        }
        let db_err = |source| Error::Db {
            path: path.display().to_string(),
            source,
        };
        let mut conn =
            berth_image::sqlite::open_shared(path, Duration::from_secs(30)).map_err(db_err)?;
        schema(&mut conn).map_err(db_err)?;
        Ok(Db {
            conn: Some(conn),
            path: path.to_path_buf(),
            pool: None,
        })
    }

    /// For the other tables' modules (volumes).
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a Db holds its connection until dropped")
    }

    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::Db {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Inserts `c`. With `generate_name` the name is generated (and
    /// regenerated while taken); otherwise a taken name is `NameInUse`.
    /// The UNIQUE constraint decides races between concurrent creates.
    pub fn insert(&self, c: &mut Container, generate_name: bool) -> Result<()> {
        let config =
            serde_json::to_string(&c.config).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        for attempt in 0..64 {
            if generate_name {
                c.name = names::generate(attempt / 8)?;
            }
            let r = self.conn().execute(
                &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                params![
                    c.id,
                    c.name,
                    c.image,
                    c.image_id,
                    config,
                    ts(&c.created),
                    c.state.as_str(),
                    c.pid,
                    c.exit_code,
                    c.started.as_ref().map(ts),
                    c.finished.as_ref().map(ts),
                    c.error,
                    c.oom_killed,
                ],
            );
            match r {
                Ok(_) => return Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation
                        && msg.contains("containers.name") =>
                {
                    if !generate_name {
                        return Err(Error::NameInUse(c.name.clone()));
                    }
                }
                Err(e) => return Err(self.err()(e)),
            }
        }
        Err(Error::Monitor {
            id: c.id.clone(),
            reason: "could not generate a free name".into(),
        })
    }

    /// Finds a container by full id, exact name, or unique id prefix, as
    /// docker does (in that order).
    pub fn find(&self, key: &str) -> Result<Container> {
        let name = key.strip_prefix('/').unwrap_or(key);
        let exact = self
            .conn()
            .query_row(&format!("SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?2 ORDER BY id = ?1 DESC LIMIT 1"), params![key, name], from_row)
            .optional()
            .map_err(self.err())?;
        if let Some(c) = exact {
            return c;
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NoSuchContainer(key.to_string()));
        }
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {COLUMNS} FROM containers WHERE id >= ?1 AND id < ?2 LIMIT 2"
            ))
            .map_err(self.err())?;
        let upper = format!("{key}g");
        let rows: Vec<Result<Container>> = stmt
            .query_map(params![key, upper], from_row)
            .map_err(self.err())?
            .collect::<std::result::Result<_, _>>()
            .map_err(self.err())?;
        match rows.len() {
            0 => Err(Error::NoSuchContainer(key.to_string())),
            1 => rows
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(Error::NoSuchContainer(key.to_string()))),
            _ => Err(Error::InvalidArgument(format!(
                "container id prefix {key} is ambiguous: give more digits"
            ))),
        }
    }

    /// Every container's id.
    pub fn ids(&self) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT id FROM containers")
            .map_err(self.err())?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err())?;
        Ok(ids)
    }

    /// Every container, newest first (as `ps` lists them).
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created DESC, id"
            ))
            .map_err(self.err())?;
        let rows = stmt.query_map([], from_row).map_err(self.err())?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(self.err())??);
        }
        Ok(out)
    }

    pub fn set_running(
        &self,
        id: &str,
        pid: i32,
        started: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        self.update(
            id,
            "UPDATE containers SET state = 'running', pid = ?2, started = ?3, exit_code = NULL, finished = NULL, error = NULL, oom_killed = 0 WHERE id = ?1 AND state != 'removing'",
            params![id, pid, ts(&started)],
        )
    }

    pub fn set_exited(
        &self,
        id: &str,
        code: i32,
        oom_killed: bool,
        finished: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        self.update(
            id,
            "UPDATE containers SET state = 'exited', pid = 0, exit_code = ?2, finished = ?3, oom_killed = ?4 WHERE id = ?1",
            params![id, code, ts(&finished), oom_killed],
        )
    }

    /// The exit of a `--rm` container, which goes straight to removing;
    /// false when it was not running, created or exited (someone else
    /// is removing it).
    pub fn set_exited_removing(
        &self,
        id: &str,
        code: i32,
        finished: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE containers SET state = 'removing', pid = 0, exit_code = ?2, finished = ?3 WHERE id = ?1 AND state IN ('running', 'created', 'exited')",
                params![id, code, ts(&finished)],
            )
            .map_err(self.err())?;
        Ok(n == 1)
    }

    /// A start that failed: the container stays startable, with the reason.
    pub fn set_start_failed(&self, id: &str, code: i32, error: &str) -> Result<()> {
        let now = chrono::Utc::now();
        self.update(
            id,
            "UPDATE containers SET state = CASE WHEN started IS NULL THEN 'created' ELSE 'exited' END, pid = 0, exit_code = ?2, finished = ?3, error = ?4 WHERE id = ?1",
            params![id, code, ts(&now), error],
        )
    }

    pub fn set_state(&self, id: &str, state: State) -> Result<()> {
        self.update(
            id,
            "UPDATE containers SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )
    }

    /// Moves to `to` only from one of `from`; false when the state was
    /// another (someone else got there first).
    pub fn transition(&self, id: &str, from: &[State], to: State) -> Result<bool> {
        let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let n = self
            .conn()
            .execute(
                &format!(
                    "UPDATE containers SET state = ?2 WHERE id = ?1 AND state IN ({})",
                    list.join(",")
                ),
                params![id, to.as_str()],
            )
            .map_err(self.err())?;
        Ok(n == 1)
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(self.err())?;
        Ok(())
    }

    fn update(&self, id: &str, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        let n = self.conn().execute(sql, p).map_err(self.err())?;
        if n == 0 {
            return Err(Error::NoSuchContainer(id.to_string()));
        }
        Ok(())
    }
}

/// Makes the tables, or brings a store made by an earlier berth to this
/// shape, in one write transaction: each statement would be a transaction
/// of its own otherwise (even a CREATE that finds its table), and the
/// IMMEDIATE lock keeps two processes from migrating at once.
fn schema(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS containers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            image TEXT NOT NULL,
            image_id TEXT NOT NULL,
            config TEXT NOT NULL,
            created TEXT NOT NULL,
            state TEXT NOT NULL,
            pid INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            started TEXT,
            finished TEXT,
            error TEXT,
            oom_killed INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS volumes (
            name TEXT PRIMARY KEY,
            created TEXT NOT NULL,
            labels TEXT NOT NULL,
            anonymous INTEGER NOT NULL
        );
        {}
        {}",
        crate::restart::SCHEMA,
        crate::events::SCHEMA
    ))?;
    let columns: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('containers')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let has = |c: &str| columns.iter().any(|x| x == c);
    // `spec` NOT NULL without a default: an insert without it would fail.
    if has("spec") {
        tx.execute_batch("ALTER TABLE containers DROP COLUMN spec")?;
    }
    if !has("oom_killed") {
        tx.execute_batch(
            "ALTER TABLE containers ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    tx.commit()
}

pub(crate) fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

pub(crate) fn parse_ts(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            Error::InvalidArgument(format!("bad timestamp {s:?} in the state database: {e}"))
        })
}

/// A row, with its JSON and timestamps parsed (an inner error when they
/// are malformed, so one bad row names itself).
fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Container>> {
    let config: String = r.get(4)?;
    let created: String = r.get(5)?;
    let started: Option<String> = r.get(9)?;
    let finished: Option<String> = r.get(10)?;
    let state: String = r.get(6)?;
    let id: String = r.get(0)?;
    let build = || -> Result<Container> {
        Ok(Container {
            id: id.clone(),
            name: r.get(1).map_err(db_field)?,
            image: r.get(2).map_err(db_field)?,
            image_id: r.get(3).map_err(db_field)?,
            config: serde_json::from_str(&config).map_err(|e| {
                Error::InvalidArgument(format!(
                    "container {id}: bad config in the state database: {e}"
                ))
            })?,
            created: parse_ts(&created)?,
            state: State::parse(&state),
            pid: r.get(7).map_err(db_field)?,
            exit_code: r.get(8).map_err(db_field)?,
            started: started.as_deref().map(parse_ts).transpose()?,
            finished: finished.as_deref().map(parse_ts).transpose()?,
            error: r.get(11).map_err(db_field)?,
            oom_killed: r.get(12).map_err(db_field)?,
        })
    };
    Ok(build())
}

fn db_field(source: rusqlite::Error) -> Error {
    Error::Db {
        path: "berth.db".into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            config: ContainerConfig {
                cmd: vec!["true".into()],
                ..Default::default()
            },
            created: chrono::Utc::now(),
            state: State::Created,
            pid: 0,
            exit_code: None,
            started: None,
            finished: None,
            error: None,
            oom_killed: false,
        }
    }

    #[test]
    fn insert_find_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        let id = "ab".repeat(32);
        let mut c = sample(&id, "web");
        db.insert(&mut c, false).unwrap();
        assert_eq!(db.find("web").unwrap(), c);
        assert_eq!(db.find(&id).unwrap().name, "web");
        assert_eq!(db.find("abab").unwrap().id, id);
        assert!(matches!(db.find("cd"), Err(Error::NoSuchContainer(_))));
        let now = chrono::Utc::now();
        db.set_running(&id, 42, now).unwrap();
        let r = db.find("web").unwrap();
        assert_eq!((r.state, r.pid, r.started), (State::Running, 42, Some(now)));
        db.set_exited(&id, 3, true, now).unwrap();
        let r = db.find("web").unwrap();
        assert_eq!(
            (r.state, r.exit_code, r.pid, r.oom_killed),
            (State::Exited, Some(3), 0, true)
        );
        // A new run starts without the last one's OOM kill.
        db.set_running(&id, 43, now).unwrap();
        assert!(!db.find("web").unwrap().oom_killed);
        db.set_exited(&id, 3, false, now).unwrap();
        assert!(db
            .transition(&id, &[State::Exited], State::Removing)
            .unwrap());
        assert!(!db
            .transition(&id, &[State::Exited], State::Removing)
            .unwrap());
        db.delete(&id).unwrap();
        assert!(db.find("web").is_err());
    }

    #[test]
    fn names_are_unique_and_prefixes_unambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        db.insert(&mut sample(&format!("aa{}", "0".repeat(62)), "web"), false)
            .unwrap();
        let e = db
            .insert(&mut sample(&format!("ab{}", "0".repeat(62)), "web"), false)
            .unwrap_err();
        assert!(matches!(e, Error::NameInUse(_)), "{e}");
        let mut g = sample(&format!("ab{}", "0".repeat(62)), "");
        db.insert(&mut g, true).unwrap();
        assert!(g.name.contains('_'));
        assert!(matches!(db.find("a"), Err(Error::InvalidArgument(_))));
        assert_eq!(db.list().unwrap().len(), 2);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        Db::open(&path).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let db = Db::open(&path).unwrap();
                    for _ in 0..10 {
                        let mut c = sample(&names::new_id().unwrap(), "");
                        db.insert(&mut c, true).unwrap();
                    }
                    t
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let all = Db::open(&path).unwrap().list().unwrap();
        assert_eq!(all.len(), 40);
        let mut names: Vec<_> = all.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 40);
    }

    #[test]
    fn many_first_opens_at_once_all_succeed() {
        // Every `berth` and monitor opens the database; on a new store the
        // first ones race to switch it to WAL and create the tables.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("berth.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(12));
            let handles: Vec<_> = (0..12)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        Db::open(&path).and_then(|db| db.list()).map(|_| ())
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn a_store_with_the_old_columns_is_brought_up_to_date() {
        // The shape before: a `spec` column (NOT NULL, no default) and no
        // `oom_killed`.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let id = "cd".repeat(32);
        let config = serde_json::to_string(&ContainerConfig::default()).unwrap();
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE containers (
                id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                image TEXT NOT NULL, image_id TEXT NOT NULL,
                config TEXT NOT NULL, spec TEXT NOT NULL,
                created TEXT NOT NULL, state TEXT NOT NULL,
                pid INTEGER NOT NULL DEFAULT 0, exit_code INTEGER,
                started TEXT, finished TEXT, error TEXT);",
        )
        .unwrap();
        old.execute(
            "INSERT INTO containers VALUES (?1, 'old', 'busybox', 'sha256:00', ?2, '{}',
                '2024-01-01T00:00:00Z', 'exited', 0, 1, NULL, NULL, NULL)",
            params![id, config],
        )
        .unwrap();
        drop(old);
        let db = Db::open(&path).unwrap();
        let old = db.find("old").unwrap();
        assert_eq!((old.exit_code, old.oom_killed), (Some(1), false));
        db.insert(&mut sample(&"ef".repeat(32), "new"), false)
            .unwrap();
        assert_eq!(db.list().unwrap().len(), 2);
        drop(db);
        // A second open finds nothing to change.
        assert_eq!(Db::open(&path).unwrap().list().unwrap().len(), 2);
    }
}
