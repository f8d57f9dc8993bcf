//! `events` (and `system events`): the engine's event log as docker's CLI
//! prints it, one line an event: those since `--since` (none before the
//! command without it), then new ones as they are recorded, until
//! `--until` passes or the command is interrupted.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use berth_engine::events::{self, Event, Take};
use berth_engine::filters::time_flag;
use berth_engine::Engine;
use chrono::{DateTime, Utc};
use clap::Args;

/// How often the log is read again for new events (other processes write
/// it: CLIs, monitors, the server).
const POLL: Duration = Duration::from_millis(200);

#[derive(Args)]
pub struct EventsArgs {
    /// Show events since a time: RFC 3339, Unix seconds, or a duration
    /// before now ("10m").
    #[arg(long)]
    since: Option<String>,
    /// Stop at a time, in the same forms as --since.
    #[arg(long)]
    until: Option<String>,
    /// type=, event=, container=, image=, network=, volume=, label=
    /// (several values of a key: any of them; several keys: all).
    #[arg(short, long)]
    filter: Vec<String>,
    /// A Go template over docker's event message, or json.
    #[arg(long)]
    format: Option<String>,
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// docker's line for an event: its time (nanoseconds, here in UTC), type,
/// action, actor and the attributes sorted by name.
fn line(e: &Event) -> String {
    let t = DateTime::from_timestamp_nanos(e.time_nano);
    let mut s = format!(
        "{} {} {} {}",
        t.format("%Y-%m-%dT%H:%M:%S%.9fZ"),
        e.kind,
        e.action,
        e.actor
    );
    if !e.attributes.is_empty() {
        let attrs: Vec<String> = e
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

pub fn events(engine: &Engine, a: EventsArgs) -> Result<u8> {
    let since = time_flag("since", a.since.as_deref())?.map(nanos);
    let until = time_flag("until", a.until.as_deref())?.map(nanos);
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in berth_engine::filters::flag_pairs(&a.filter)? {
        filters
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    events::check_filters(&filters)?;
    let template = match a.format.as_deref() {
        None | Some("") => None,
        Some(f) => Some(crate::template::Format::parse(Some(f), "")?),
    };
    let q = events::Query {
        since,
        until,
        filters,
    };
    let db = engine.db()?;
    let mut seq = q.start(&db)?;
    let mut out = std::io::stdout().lock();
    loop {
        let batch = events::after(&db, seq, events::BATCH)?;
        let full = batch.len() as i64 == events::BATCH;
        for e in batch {
            seq = e.seq;
            match q.take(&e) {
                Take::Stop => return Ok(0),
                Take::Skip => continue,
                Take::Show => {}
            }
            match &template {
                None => writeln!(out, "{}", line(&e))?,
                Some(t) => write!(out, "{}", t.render(&[e.docker_message()], &[])?)?,
            }
        }
        out.flush()?;
        if full {
            continue;
        }
        if q.over(nanos(Utc::now())) {
            return Ok(0);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_dockers() {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), "web".to_string());
        attributes.insert("image".to_string(), "bb".to_string());
        let e = Event {
            seq: 1,
            time_nano: 1_700_000_000_000_000_042,
            kind: "container".into(),
            action: "start".into(),
            actor: "abc".into(),
            attributes,
        };
        assert_eq!(
            line(&e),
            "2023-11-14T22:13:20.000000042Z container start abc (image=bb, name=web)"
        );
        let bare = Event {
            attributes: BTreeMap::new(),
            ..e
        };
        assert!(line(&bare).ends_with("start abc"));
    }
}
