//! `--restart`: the policy, docker's backoff, and the bookkeeping the
//! monitor needs across restarts (how many, and whether the user stopped
//! the container, which ends any policy). The bookkeeping has a table of
//! its own so the containers table keeps its schema.

use std::time::Duration;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::{Error, Result};

/// docker's `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no` (also empty), `on-failure`, `always`, `unless-stopped`.
    pub name: String,
    /// With `on-failure`: at most this many restarts; 0 for no limit.
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// Parses `--restart no|on-failure[:N]|always|unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let bad =
            |why: &str| Error::InvalidArgument(format!("invalid restart policy {s:?}: {why}"));
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let maximum_retry_count = match (name, count) {
            ("on-failure", Some(c)) => c
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad("the count must be a number >= 0"))?,
            (_, Some(_)) => return Err(bad("only on-failure takes a count")),
            _ => 0,
        };
        match name {
            "" | "no" | "on-failure" | "always" | "unless-stopped" => Ok(RestartPolicy {
                name: if name.is_empty() { "no" } else { name }.to_string(),
                maximum_retry_count,
            }),
            _ => Err(bad("use no, on-failure[:N], always or unless-stopped")),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self.name.as_str(), "" | "no")
    }

    /// Whether an exit with `code` after `restarts` restarts is followed by
    /// another; a container the user stopped never is.
    pub fn should_restart(&self, code: i32, restarts: i64, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0 && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }
}

/// docker's restart delay: 100 ms, doubling at each restart up to a
/// minute, back to 100 ms once a run lasted 10 seconds.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(60);
const RESET_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    /// The wait before the next start, after a run that lasted `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        let d = match self.delay {
            Some(d) if ran < RESET_AFTER => (d * 2).min(MAX),
            _ => FIRST,
        };
        self.delay = Some(d);
        d
    }
}

/// A container's restart bookkeeping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restarts {
    pub count: i64,
    pub stopped_by_user: bool,
}

/// The restarts table, made with the others when the database opens.
pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS restarts (
    id TEXT PRIMARY KEY,
    count INTEGER NOT NULL DEFAULT 0,
    stopped_by_user INTEGER NOT NULL DEFAULT 0
);";

pub fn get(db: &Db, id: &str) -> Result<Restarts> {
    let r = db
        .conn()
        .query_row(
            "SELECT count, stopped_by_user FROM restarts WHERE id = ?1",
            params![id],
            |r| {
                Ok(Restarts {
                    count: r.get(0)?,
                    stopped_by_user: r.get::<_, i64>(1)? != 0,
                })
            },
        )
        .optional()
        .map_err(db.err())?;
    Ok(r.unwrap_or_default())
}

fn put(db: &Db, id: &str, r: Restarts) -> Result<()> {
    db.conn()
        .execute(
            "INSERT INTO restarts (id, count, stopped_by_user) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET count = ?2, stopped_by_user = ?3",
            params![id, r.count, i64::from(r.stopped_by_user)],
        )
        .map_err(db.err())?;
    Ok(())
}

/// `stop`: no policy restarts the container after this.
pub fn mark_stopped(db: &Db, id: &str) -> Result<()> {
    let r = get(db, id)?;
    put(
        db,
        id,
        Restarts {
            stopped_by_user: true,
            ..r
        },
    )
}

/// A start by the user: the policy applies again, counted afresh.
pub fn reset(db: &Db, id: &str) -> Result<()> {
    // No row reads as the defaults; a read costs no write lock, and a new
    // container has no row.
    if get(db, id)? == Restarts::default() {
        return Ok(());
    }
    forget(db, id)
}

/// The monitor restarts the container: one more.
pub fn count_one(db: &Db, id: &str) -> Result<()> {
    let r = get(db, id)?;
    put(
        db,
        id,
        Restarts {
            count: r.count + 1,
            ..r
        },
    )
}

pub fn forget(db: &Db, id: &str) -> Result<()> {
    db.conn()
        .execute("DELETE FROM restarts WHERE id = ?1", params![id])
        .map_err(db.err())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_docker_does() {
        assert_eq!(RestartPolicy::parse("no").unwrap().name, "no");
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 3));
        assert!(RestartPolicy::parse("always:2").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn decisions() {
        let of = RestartPolicy::parse("on-failure:2").unwrap();
        assert!(of.should_restart(1, 0, false));
        assert!(of.should_restart(1, 1, false));
        assert!(!of.should_restart(1, 2, false));
        assert!(!of.should_restart(0, 0, false));
        let always = RestartPolicy::parse("always").unwrap();
        assert!(always.should_restart(0, 100, false));
        assert!(!always.should_restart(0, 0, true));
        assert!(!RestartPolicy::parse("no")
            .unwrap()
            .should_restart(1, 0, false));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        assert_eq!(b.next(quick), Duration::from_millis(100));
        assert_eq!(b.next(quick), Duration::from_millis(200));
        assert_eq!(b.next(quick), Duration::from_millis(400));
        for _ in 0..20 {
            b.next(quick);
        }
        assert_eq!(b.next(quick), MAX);
        assert_eq!(b.next(Duration::from_secs(11)), FIRST);
    }
}
