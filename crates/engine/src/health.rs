//! Health checks (`--health-*`, the image's HEALTHCHECK): the schedule a
//! container's check runs on, the state docker shows as `State.Health`,
//! and what one probe's result does to it, by docker's rules. The monitor
//! runs the probes (an exec into the container) and hands each result
//! here; the state lives in a table of its own so the containers table
//! keeps its schema.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

pub use berth_image::healthcheck::{format_duration, parse_duration, Healthcheck};

use crate::container::Engine;
use crate::db::{Container, Db};
use crate::error::{Error, Result};
use crate::options::ExecOptions;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";
/// `ps --filter health=none`: a container without a check.
pub const NONE: &str = "none";

/// The longest output of one probe that is kept (docker's).
pub const MAX_OUTPUT: usize = 4096;
/// How many results `State.Health.Log` keeps.
const MAX_LOG: usize = 5;

/// docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<ProbeResult>,
}

/// One run of the check, as `State.Health.Log` shows it. A probe that
/// could not run, or ran past its timeout, has exit code -1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub exit_code: i64,
    pub output: String,
}

/// A check's options with docker's defaults for those left at zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

fn or_default(nanos: i64, default: Duration) -> Duration {
    if nanos <= 0 {
        default
    } else {
        Duration::from_nanos(nanos as u64)
    }
}

impl Schedule {
    pub fn of(h: &Healthcheck) -> Schedule {
        Schedule {
            interval: or_default(h.interval, Duration::from_secs(30)),
            timeout: or_default(h.timeout, Duration::from_secs(30)),
            start_period: or_default(h.start_period, Duration::ZERO),
            start_interval: or_default(h.start_interval, Duration::from_secs(5)),
            retries: if h.retries <= 0 { 3 } else { h.retries },
        }
    }

    /// The wait before the next probe (and before the first): the start
    /// interval while the container is in its start period and not yet
    /// healthy, the interval otherwise.
    pub fn next_wait(&self, since_start: Duration, status: &str) -> Duration {
        if since_start < self.start_period && status == STARTING {
            self.start_interval
        } else {
            self.interval
        }
    }
}

impl Health {
    /// At each start: starting again, with the log of earlier runs kept.
    pub fn starting(previous: Option<Health>) -> Health {
        Health {
            status: STARTING.into(),
            failing_streak: 0,
            log: previous.map(|h| h.log).unwrap_or_default(),
        }
    }

    /// docker's rules for one result: a success makes the container
    /// healthy; a failure counts toward `retries` consecutive ones (then
    /// unhealthy) unless it started within the start period of a container
    /// that was never healthy yet.
    pub fn record(&mut self, r: ProbeResult, s: &Schedule, started: DateTime<Utc>) {
        let start = r.start;
        let code = r.exit_code;
        self.log.push(r);
        if self.log.len() > MAX_LOG {
            self.log.drain(..self.log.len() - MAX_LOG);
        }
        if code == 0 {
            self.failing_streak = 0;
            self.status = HEALTHY.into();
            return;
        }
        let in_start_period = self.status == STARTING
            && (start - started)
                .to_std()
                .map_or(true, |since| since < s.start_period);
        if !in_start_period {
            self.failing_streak += 1;
            if self.failing_streak >= s.retries {
                self.status = UNHEALTHY.into();
            }
        }
    }
}

/// The probe's output as docker keeps it: at most [`MAX_OUTPUT`] bytes,
/// `...` when more was cut.
pub fn output_text(bytes: &[u8], truncated: bool) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if truncated {
        s.push_str("...");
    }
    s
}

/// The check a new container runs: the user's options over the image's,
/// checked as the daemon checks them.
pub fn resolve(
    image: Option<&Healthcheck>,
    user: Option<&Healthcheck>,
) -> Result<Option<Healthcheck>> {
    let h = match (user, image) {
        (Some(u), Some(i)) => Some(u.over(i)),
        (Some(u), None) => Some(u.clone()),
        (None, i) => i.cloned(),
    };
    if let Some(h) = &h {
        h.validate().map_err(Error::InvalidArgument)?;
    }
    Ok(h)
}

fn table(db: &Db) -> Result<()> {
    db.conn()
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS health (
                id TEXT PRIMARY KEY,
                state TEXT NOT NULL
            )",
        )
        .map_err(db.err())
}

pub fn get(db: &Db, id: &str) -> Result<Option<Health>> {
    table(db)?;
    let json: Option<String> = db
        .conn()
        .query_row("SELECT state FROM health WHERE id = ?1", params![id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db.err())?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| {
            Error::InvalidArgument(format!(
                "container {id}: bad health state in the database: {e}"
            ))
        })
    })
    .transpose()
}

pub fn put(db: &Db, id: &str, h: &Health) -> Result<()> {
    table(db)?;
    let json = serde_json::to_string(h).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    db.conn()
        .execute(
            "INSERT INTO health (id, state) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET state = ?2",
            params![id, json],
        )
        .map_err(db.err())?;
    Ok(())
}

pub fn forget(db: &Db, id: &str) -> Result<()> {
    table(db)?;
    db.conn()
        .execute("DELETE FROM health WHERE id = ?1", params![id])
        .map_err(db.err())?;
    Ok(())
}

impl Engine {
    /// A container's `State.Health`: `None` until a check first ran for it.
    pub fn health(&self, id: &str) -> Result<Option<Health>> {
        get(&self.db()?, id)
    }

    /// Every container's health status, for `ps` (one query for all).
    pub fn health_statuses(&self) -> Result<HashMap<String, String>> {
        let db = self.db()?;
        table(&db)?;
        let mut stmt = db
            .conn()
            .prepare("SELECT id, state FROM health")
            .map_err(db.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db.err())?;
        let mut out = HashMap::new();
        for r in rows {
            let (id, json): (String, String) = r.map_err(db.err())?;
            if let Ok(h) = serde_json::from_str::<Health>(&json) {
                out.insert(id, h.status);
            }
        }
        Ok(out)
    }

    /// The monitor, at each start of a container with a check.
    pub fn health_starting(&self, id: &str) -> Result<()> {
        let db = self.db()?;
        put(&db, id, &Health::starting(get(&db, id)?))
    }

    /// The monitor, after a probe: records it; returns the new status.
    pub fn record_probe(
        &self,
        id: &str,
        r: ProbeResult,
        s: &Schedule,
        started: DateTime<Utc>,
    ) -> Result<String> {
        let db = self.db()?;
        let mut h = get(&db, id)?.unwrap_or_else(|| Health::starting(None));
        h.record(r, s, started);
        put(&db, id, &h)?;
        Ok(h.status)
    }

    /// The monitor, when the container stopped: docker calls a container
    /// whose checks ended unhealthy.
    pub fn health_stopped(&self, id: &str) -> Result<()> {
        let db = self.db()?;
        if let Some(mut h) = get(&db, id)? {
            h.status = UNHEALTHY.into();
            put(&db, id, &h)?;
        }
        Ok(())
    }

    /// The process a probe runs, written where `berth-monitor probe`
    /// reads it: the container's own user, environment and working
    /// directory, as docker's probes have. The caller removes the file.
    pub fn probe_file(&self, id: &str, command: Vec<String>) -> Result<PathBuf> {
        let opts = ExecOptions {
            cmd: command,
            ..Default::default()
        };
        Ok(self.exec_file(id, &opts)?.1)
    }

    /// `State.Health` and `Config.Healthcheck` for `inspect`.
    pub(crate) fn inspect_health(&self, c: &Container, v: &mut serde_json::Value) {
        if let Some(h) = &c.config.healthcheck {
            v["Config"]["Healthcheck"] = serde_json::to_value(h).unwrap_or_default();
        }
        if let Ok(Some(h)) = self.health(&c.id) {
            v["State"]["Health"] = serde_json::to_value(h).unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(at: DateTime<Utc>, code: i64) -> ProbeResult {
        ProbeResult {
            start: at,
            end: at,
            exit_code: code,
            output: String::new(),
        }
    }

    fn schedule(retries: i64, start_period: u64) -> Schedule {
        Schedule::of(&Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            retries,
            start_period: Duration::from_secs(start_period).as_nanos() as i64,
            ..Default::default()
        })
    }

    #[test]
    fn retries_consecutive_failures_make_it_unhealthy() {
        let t0 = Utc::now();
        let s = schedule(3, 0);
        let mut h = Health::starting(None);
        h.record(result(t0, 1), &s, t0);
        h.record(result(t0, 1), &s, t0);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 2));
        h.record(result(t0, 0), &s, t0);
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
        h.record(result(t0, 1), &s, t0);
        h.record(result(t0, -1), &s, t0);
        assert_eq!(h.status, HEALTHY);
        h.record(result(t0, 1), &s, t0);
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 3));
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.log.last().unwrap().exit_code, 1);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_until_healthy() {
        let t0 = Utc::now();
        let s = schedule(1, 60);
        let mut h = Health::starting(None);
        let early = t0 + chrono::Duration::seconds(10);
        h.record(result(early, 1), &s, t0);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        h.record(result(t0 + chrono::Duration::seconds(61), 1), &s, t0);
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 1));
        // Once healthy, a failure counts even within the start period.
        let mut h = Health::starting(None);
        h.record(result(early, 0), &s, t0);
        h.record(result(early, 1), &s, t0);
        assert_eq!(h.status, UNHEALTHY);
    }

    #[test]
    fn defaults_and_the_start_interval() {
        let s = Schedule::of(&Healthcheck::default());
        assert_eq!(
            (s.interval, s.timeout, s.start_period, s.retries),
            (
                Duration::from_secs(30),
                Duration::from_secs(30),
                Duration::ZERO,
                3
            )
        );
        let s = schedule(3, 60);
        let early = Duration::from_secs(1);
        assert_eq!(s.next_wait(early, STARTING), Duration::from_secs(5));
        assert_eq!(s.next_wait(early, HEALTHY), s.interval);
        assert_eq!(s.next_wait(Duration::from_secs(61), STARTING), s.interval);
    }

    #[test]
    fn a_restart_starts_over_but_keeps_the_log() {
        let t0 = Utc::now();
        let mut h = Health::starting(None);
        h.record(result(t0, 1), &schedule(1, 0), t0);
        let again = Health::starting(Some(h));
        assert_eq!((again.status.as_str(), again.failing_streak), (STARTING, 0));
        assert_eq!(again.log.len(), 1);
    }

    #[test]
    fn state_round_trips_in_the_database_in_dockers_shape() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        assert_eq!(get(&db, "c").unwrap(), None);
        let mut h = Health::starting(None);
        let t0 = Utc::now();
        h.record(
            ProbeResult {
                output: output_text(b"ok\n", true),
                ..result(t0, 0)
            },
            &schedule(3, 0),
            t0,
        );
        put(&db, "c", &h).unwrap();
        assert_eq!(get(&db, "c").unwrap(), Some(h.clone()));
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["Status"], "healthy");
        assert_eq!(v["FailingStreak"], 0);
        assert_eq!(v["Log"][0]["ExitCode"], 0);
        assert_eq!(v["Log"][0]["Output"], "ok\n...");
        assert!(v["Log"][0]["Start"].as_str().unwrap().ends_with('Z'));
        forget(&db, "c").unwrap();
        assert_eq!(get(&db, "c").unwrap(), None);
    }

    #[test]
    fn resolving_merges_and_validates() {
        let image = berth_image::healthcheck::parse_instruction("--retries=5 CMD true").unwrap();
        let user = Healthcheck {
            interval: 1_000_000,
            ..Default::default()
        };
        let h = resolve(Some(&image), Some(&user)).unwrap().unwrap();
        assert_eq!((h.interval, h.retries), (1_000_000, 5));
        assert_eq!(resolve(None, None).unwrap(), None);
        let bad = Healthcheck { timeout: 5, ..user };
        assert!(resolve(Some(&image), Some(&bad)).is_err());
    }
}
