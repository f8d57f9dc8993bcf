//! The event log (docker's `events`): an append-only table of the state
//! database, written where a container's life happens (create, start,
//! die, kill, stop, pause, unpause, rename, commit, destroy), an image's
//! (pull, push, tag, untag, load, save, import, delete), a network's
//! (create, connect, disconnect, destroy) or a volume's, by whichever
//! process does it (a CLI, `berth serve`, a monitor), and read back in
//! order by sequence number. Only the newest [`KEEP`] rows are kept.
//! Events that report a state change are written in its transaction
//! ([`with_state`]): a commit is most of an event's cost.
//!
//! Recording never fails the operation it reports: a lost event is
//! logged, a lost container is not risked for it.

use std::collections::BTreeMap;

use rusqlite::params;

use berth_image::store::{Image, Store};

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

/// An event not yet written: made where the facts are known, written
/// with the state change it reports (see [`with_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub kind: &'static str,
    pub action: String,
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
}

impl Pending {
    /// A container event with docker's attributes: its labels, name and
    /// image, then `extra`.
    pub fn container(c: &Container, action: &str, extra: &[(&str, String)]) -> Pending {
        let mut attributes: BTreeMap<String, String> = c.config.labels.clone();
        attributes.insert("name".into(), c.name.clone());
        attributes.insert("image".into(), c.image.clone());
        for (k, v) in extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        Pending {
            kind: "container",
            action: action.to_string(),
            actor: c.id.clone(),
            attributes,
        }
    }

    /// A network's `connect` or `disconnect` of `container`, as dockerd
    /// reports them, with the network's driver as its `type`.
    /// A network's event (docker's `connect` and `disconnect` name the
    /// container, `create` and `destroy` none).
    pub fn network(action: &str, id: &str, name: &str, container: Option<&str>) -> Pending {
        let driver = crate::network::driver_of(name);
        let attributes = [
            ("container", container),
            ("name", Some(name)),
            ("type", Some(driver)),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
        .collect();
        Pending {
            kind: "network",
            action: action.to_string(),
            actor: id.to_string(),
            attributes,
        }
    }

    fn append(&self, db: &Db) {
        if let Err(e) = append(db, self.kind, &self.action, &self.actor, &self.attributes) {
            tracing::warn!(actor = self.actor, kind = self.kind, action = self.action, error = %e, "recording an event");
        }
    }
}

/// Runs `change` (statements on `db`) and writes `events` in the same
/// transaction: one commit where there would be one for each. A failed
/// change writes nothing; a failed event is logged and the change kept.
pub fn with_state<T>(db: &Db, events: &[Pending], change: impl FnOnce() -> Result<T>) -> Result<T> {
    let tx =
        rusqlite::Transaction::new_unchecked(db.conn(), rusqlite::TransactionBehavior::Immediate)
            .map_err(db.err())?;
    let out = change()?;
    for e in events {
        e.append(db);
    }
    tx.commit().map_err(db.err())?;
    Ok(out)
}

/// Writes `events` in one transaction; a failure is logged, not returned.
pub fn record(db: &Db, events: &[Pending]) {
    match events {
        [] => {}
        [one] => one.append(db),
        _ => {
            if let Err(e) = with_state(db, events, || Ok(())) {
                tracing::warn!(error = %e, "recording events");
            }
        }
    }
}

/// Records a container event with docker's attributes (its labels, name
/// and image, then `extra`); a failure is logged, not returned.
pub fn container(db: &Db, c: &Container, action: &str, extra: &[(&str, String)]) {
    Pending::container(c, action, extra).append(db);
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
    /// `untag` and `delete`, both naming the image by id, with the tag
    /// (or the id) as `name`.
    pub fn image_events(&self, removed: &[berth_image::store::Removed]) {
        for r in removed {
            match r {
                berth_image::store::Removed::Untagged(name, id) => {
                    self.event("image", "untag", id.as_str(), &[("name", name.familiar())])
                }
                berth_image::store::Removed::Deleted(id) => {
                    self.event("image", "delete", id.as_str(), &[("name", id.to_string())])
                }
            }
        }
    }

    /// An image event as dockerd's `LogImageEvent` makes it: the image's
    /// labels, then `name`, for `actor` (the image's id, or for pull and
    /// push the reference as given).
    pub fn image_event(&self, store: &Store, image: &Image, action: &str, actor: &str, name: &str) {
        let mut attributes: BTreeMap<String, String> = store
            .config(image)
            .ok()
            .and_then(|v| v.pointer("/config/Labels").cloned())
            .and_then(|l| serde_json::from_value(l).ok())
            .unwrap_or_default();
        attributes.insert("name".into(), name.to_string());
        self.record(Pending {
            kind: "image",
            action: action.to_string(),
            actor: actor.to_string(),
            attributes,
        });
    }

    /// Records one event built elsewhere; a failure is logged.
    pub(crate) fn record(&self, event: Pending) {
        match self.db() {
            Ok(db) => record(&db, &[event]),
            Err(e) => {
                tracing::warn!(actor = %event.actor, action = %event.action, error = %e, "recording an event")
            }
        }
    }

    /// The `tag` event of `image` newly named `r`.
    pub fn tag_event(&self, store: &Store, image: &Image, r: &berth_image::Reference) {
        self.image_event(store, image, "tag", image.id.as_str(), &r.familiar());
    }
}

/// The keys docker filters events by.
pub const FILTER_KEYS: &[&str] = &[
    "type",
    "event",
    "container",
    "image",
    "network",
    "volume",
    "label",
];

/// Each filter key must match one of its values, but `label` all of
/// them (as dockerd: compose follows its project with two labels); every
/// key must match.
pub fn matches(f: &BTreeMap<String, Vec<String>>, e: &Event) -> bool {
    let attr = |k: &str| e.attributes.get(k).map(String::as_str);
    f.iter().all(|(k, vals)| {
        if k == "label" {
            return crate::filters::labels_match(vals, |k| e.attributes.get(k).map(String::as_str));
        }
        vals.iter().any(|v| match k.as_str() {
            "type" => e.kind == *v,
            "event" => e.action == *v,
            "container" => {
                e.kind == "container"
                    && (e.actor.starts_with(v.as_str()) || attr("name") == Some(v.as_str()))
            }
            "image" => {
                attr("image") == Some(v.as_str())
                    || (e.kind == "image"
                        && (e.actor.starts_with(v.as_str()) || attr("name") == Some(v.as_str())))
            }
            "network" => {
                e.kind == "network"
                    && (e.actor.starts_with(v.as_str()) || attr("name") == Some(v.as_str()))
            }
            "volume" => e.kind == "volume" && e.actor == *v,
            _ => false,
        })
    })
}

/// Refuses a filter key that docker's events do not have.
pub fn check_filters(f: &BTreeMap<String, Vec<String>>) -> Result<()> {
    match f.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
        Some(k) => Err(crate::Error::InvalidArgument(format!(
            "invalid filter '{k}': berth filters events by {}",
            FILTER_KEYS.join(", ")
        ))),
        None => Ok(()),
    }
}

impl Event {
    /// docker's JSON message for it, as `/events` streams and `events
    /// --format` shows it.
    pub fn docker_message(&self) -> serde_json::Value {
        let e = self;
        let mut v = serde_json::json!({
            "Type": e.kind,
            "Action": e.action,
            "Actor": {"ID": e.actor, "Attributes": e.attributes},
            "scope": "local",
            "time": e.time_nano.div_euclid(1_000_000_000),
            "timeNano": e.time_nano,
        });
        // The fields of docker's older format, which its clients still read.
        if e.kind == "container" {
            v["status"] = serde_json::json!(e.action);
            v["id"] = serde_json::json!(e.actor);
            if let Some(i) = e.attributes.get("image") {
                v["from"] = serde_json::json!(i);
            }
        }
        v
    }
}

/// What a reader of the log asked for: docker's `since` and `until`
/// (nanoseconds since the epoch) and filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub filters: BTreeMap<String, Vec<String>>,
}

/// What a reader does with the next event of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Show,
    Skip,
    /// Past `until`: nothing after it is wanted either.
    Stop,
}

impl Query {
    /// Where a reader starts: the whole log with `since`, else only what
    /// comes after now.
    pub fn start(&self, db: &Db) -> Result<i64> {
        match self.since {
            Some(_) => Ok(0),
            None => last(db),
        }
    }

    pub fn take(&self, e: &Event) -> Take {
        if self.until.is_some_and(|u| e.time_nano > u) {
            Take::Stop
        } else if self.since.is_some_and(|s| e.time_nano < s) || !matches(&self.filters, e) {
            Take::Skip
        } else {
            Take::Show
        }
    }

    /// Whether waiting for more is over at `now` (nanoseconds).
    pub fn over(&self, now: i64) -> bool {
        self.until.is_some_and(|u| now > u)
    }
}

/// How many rows a reader reads at once.
pub const BATCH: i64 = 500;

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

    #[test]
    fn events_with_a_state_change_are_written_with_it_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        let events = [
            Pending::network("connect", "n1", "bridge", Some("c1")),
            Pending::network("connect", "n2", "front", Some("c1")),
        ];
        // A change that fails takes its events with it.
        let failed: Result<()> = with_state(&db, &events, || {
            append(&db, "container", "start", "c1", &BTreeMap::new())?;
            Err(crate::Error::NoSuchContainer("c1".into()))
        });
        assert!(failed.is_err());
        assert!(after(&db, 0, 100).unwrap().is_empty());
        with_state(&db, &events, || {
            append(&db, "container", "start", "c1", &BTreeMap::new())
        })
        .unwrap();
        let all = after(&db, 0, 100).unwrap();
        assert_eq!(
            all.iter()
                .map(|e| (e.action.as_str(), e.actor.as_str()))
                .collect::<Vec<_>>(),
            [("start", "c1"), ("connect", "n1"), ("connect", "n2")]
        );
        assert_eq!(all[2].attributes["name"], "front");
        assert_eq!(all[2].attributes["container"], "c1");
        assert_eq!(all[2].attributes["type"], "bridge");
    }

    fn ev(action: &str, name: &str) -> Event {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), name.to_string());
        attributes.insert("image".to_string(), "bb".to_string());
        attributes.insert("tier".to_string(), "web".to_string());
        Event {
            seq: 1,
            time_nano: 1_700_000_000_123_456_789,
            kind: "container".into(),
            action: action.into(),
            actor: "abcdef".into(),
            attributes,
        }
    }

    #[test]
    fn filters_and_within_or_across() {
        let f = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        let e = ev("start", "web");
        assert!(matches(&f(&[]), &e));
        assert!(matches(&f(&[("event", &["die", "start"])]), &e));
        assert!(!matches(&f(&[("event", &["die"])]), &e));
        assert!(matches(
            &f(&[("container", &["web"]), ("type", &["container"])]),
            &e
        ));
        assert!(matches(&f(&[("container", &["abc"])]), &e));
        assert!(!matches(&f(&[("container", &["db"])]), &e));
        assert!(matches(&f(&[("label", &["tier=web"])]), &e));
        assert!(!matches(&f(&[("label", &["tier=db"])]), &e));
        assert!(!matches(&f(&[("label", &["tier=web", "tier=db"])]), &e));
        assert!(matches(&f(&[("label", &["tier=web", "tier"])]), &e));
        assert!(matches(&f(&[("image", &["bb"])]), &e));
        let m = e.docker_message();
        assert_eq!(m["status"], "start");
        assert_eq!(m["time"], 1_700_000_000);
        assert_eq!(m["Actor"]["Attributes"]["name"], "web");
    }
}
