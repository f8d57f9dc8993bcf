//! The event log (docker's `events`): an append-only table of the state
//! database, written where a container's life happens (create, start,
//! die, kill, stop, pause, unpause, rename, destroy) by whichever process
//! does it (a CLI, `berth serve`, a monitor), and read back in order by
//! sequence number. Only the newest [`KEEP`] rows are kept.
//!
//! Recording never fails the operation it reports: a lost event is
//! logged, a lost container is not risked for it.

use std::collections::BTreeMap;

use rusqlite::params;

use crate::db::{Container, Db};
use crate::error::Result;

/// Rows kept; older ones are trimmed as new ones come (at most
/// [`TRIM_EVERY`] more between two trims).
pub const KEEP: i64 = 10_000;

const TRIM_EVERY: i64 = 64;

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attributes TEXT NOT NULL
);";

/// One event, in docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place in the log: later events have larger numbers.
    pub seq: i64,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
    /// `container`, `image`, ...
    pub kind: String,
    /// `create`, `start`, `die`, ...
    pub action: String,
    /// The container's (or image's) id.
    pub actor: String,
    /// name, image, labels, exitCode, signal, ...
    pub attributes: BTreeMap<String, String>,
}

fn now_nano() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// Appends an event and trims the log.
pub fn append(
    db: &Db,
    kind: &str,
    action: &str,
    actor: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<()> {
    append_keeping(db, KEEP, kind, action, actor, attributes)
}

fn append_keeping(
    db: &Db,
    keep: i64,
    kind: &str,
    action: &str,
    actor: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<()> {
    let attrs = serde_json::to_string(attributes)
        .map_err(|e| crate::Error::InvalidArgument(e.to_string()))?;
    let conn = db.conn();
    conn.execute(
        "INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_nano(), kind, action, actor, attrs],
    )
    .map_err(db.err())?;
    let seq = conn.last_insert_rowid();
    // Trimmed now and then, not at every event: each statement here is a
    // commit of its own on the path of every `run`.
    if seq % TRIM_EVERY == 0 {
        conn.execute("DELETE FROM events WHERE seq <= ?1", params![seq - keep])
            .map_err(db.err())?;
    }
    Ok(())
}

/// Records a container event with docker's attributes (its labels, name
/// and image, then `extra`); a failure is logged, not returned.
pub fn container(db: &Db, c: &Container, action: &str, extra: &[(&str, String)]) {
    let mut attrs: BTreeMap<String, String> = c.config.labels.clone();
    attrs.insert("name".into(), c.name.clone());
    attrs.insert("image".into(), c.image.clone());
    for (k, v) in extra {
        attrs.insert((*k).to_string(), v.clone());
    }
    if let Err(e) = append(db, "container", action, &c.id, &attrs) {
        tracing::warn!(id = c.id, action, error = %e, "recording an event");
    }
}

/// Records an event of an image, network or volume with `attributes`; a
/// failure is logged, not returned.
pub fn object(db: &Db, kind: &str, action: &str, actor: &str, attributes: &[(&str, String)]) {
    let attrs: BTreeMap<String, String> = attributes
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    if let Err(e) = append(db, kind, action, actor, &attrs) {
        tracing::warn!(actor, kind, action, error = %e, "recording an event");
    }
}

impl crate::Engine {
    /// [`object`] through this engine's database; a database that cannot
    /// be opened loses the event, as a failed write does.
    pub fn event(&self, kind: &str, action: &str, actor: &str, attributes: &[(&str, String)]) {
        match self.db() {
            Ok(db) => object(&db, kind, action, actor, attributes),
            Err(e) => tracing::warn!(actor, kind, action, error = %e, "recording an event"),
        }
    }

    /// docker's image events for what `rmi` or `image prune` removed:
    /// `untag` with the name, `delete` with the id.
    pub fn image_events(&self, removed: &[berth_image::store::Removed]) {
        for r in removed {
            match r {
                berth_image::store::Removed::Untagged(name) => self.event(
                    "image",
                    "untag",
                    &name.to_string(),
                    &[("name", name.familiar())],
                ),
                berth_image::store::Removed::Deleted(id) => {
                    self.event("image", "delete", id.as_str(), &[("name", id.to_string())])
                }
            }
        }
    }
}

/// The events after sequence number `after`, oldest first, at most
/// `limit` of them.
pub fn after(db: &Db, after: i64, limit: i64) -> Result<Vec<Event>> {
    let mut st = db
        .conn()
        .prepare(
            "SELECT seq, time_nano, type, action, actor, attributes FROM events
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(db.err())?;
    let rows = st
        .query_map(params![after, limit], |r| {
            let attrs: String = r.get(5)?;
            Ok(Event {
                seq: r.get(0)?,
                time_nano: r.get(1)?,
                kind: r.get(2)?,
                action: r.get(3)?,
                actor: r.get(4)?,
                attributes: serde_json::from_str(&attrs).unwrap_or_default(),
            })
        })
        .map_err(db.err())?;
    rows.collect::<std::result::Result<_, _>>()
        .map_err(db.err())
}

/// The newest sequence number (0 for an empty log): a reader that only
/// wants what comes next starts there.
pub fn last(db: &Db) -> Result<i64> {
    db.conn()
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
        .map_err(db.err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_back_in_order_and_old_ones_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        assert_eq!(last(&db).unwrap(), 0);
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), "web".to_string());
        append(&db, "container", "create", "abc", &attrs).unwrap();
        append(&db, "container", "start", "abc", &attrs).unwrap();
        let all = after(&db, 0, 100).unwrap();
        assert_eq!(
            all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["create", "start"]
        );
        assert_eq!(all[0].attributes["name"], "web");
        assert!(all[0].time_nano <= all[1].time_nano);
        assert_eq!(after(&db, all[0].seq, 100).unwrap().len(), 1);
        // Trimmed at every TRIM_EVERY-th event, to the newest `keep`.
        while (last(&db).unwrap() + 1) % TRIM_EVERY != 0 {
            append_keeping(&db, 3, "container", "die", "abc", &attrs).unwrap();
        }
        assert!(after(&db, 0, 100).unwrap().len() > 3);
        append_keeping(&db, 3, "container", "die", "abc", &attrs).unwrap();
        let kept = after(&db, 0, 100).unwrap();
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|e| e.action == "die"));
        assert_eq!(last(&db).unwrap(), kept[2].seq);
    }
}
