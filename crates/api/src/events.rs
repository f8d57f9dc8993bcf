//! `GET /events`: the engine's event log as docker's JSON messages, one a
//! line: those since `since` (none before the request without it), then
//! new ones as they are recorded, until `until` passes or the client
//! leaves. Filters: type, event, container, image, label.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::events::{self, Event};
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::Api;

/// How often the log is read again for new events while a client waits
/// (other processes write it: CLIs, monitors).
const POLL: Duration = Duration::from_millis(200);
/// Rows read at once.
const BATCH: i64 = 500;

/// docker's time parameters: `SECONDS[.NANOS]` (what its client sends)
/// or RFC 3339; nanoseconds since the epoch.
fn parse_time(k: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {k} {v:?}: want seconds since the epoch or RFC 3339"
        ))
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return t.timestamp_nanos_opt().map(Some).ok_or_else(bad);
    }
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Some(
        secs.saturating_mul(1_000_000_000).saturating_add(nanos),
    ))
}

const FILTERS: &[&str] = &[
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
fn matches(f: &BTreeMap<String, Vec<String>>, e: &Event) -> bool {
    let attr = |k: &str| e.attributes.get(k).map(String::as_str);
    f.iter().all(|(k, vals)| {
        if k == "label" {
            return berth_engine::filters::labels_match(vals, |k| {
                e.attributes.get(k).map(String::as_str)
            });
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

fn message(e: &Event) -> Value {
    let mut v = json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.actor, "Attributes": e.attributes},
        "scope": "local",
        "time": e.time_nano.div_euclid(1_000_000_000),
        "timeNano": e.time_nano,
    });
    // The fields of docker's older format, which its clients still read.
    if e.kind == "container" {
        v["status"] = json!(e.action);
        v["id"] = json!(e.actor);
        if let Some(i) = e.attributes.get("image") {
            v["from"] = json!(i);
        }
    }
    v
}

fn now_nano() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

async fn read(api: &Arc<Api>, after: i64) -> Result<Vec<Event>, ApiError> {
    api.blocking(move |e| events::after(&e.db()?, after, BATCH))
        .await
}

pub async fn events(ctx: Ctx) -> Result<Response, ApiError> {
    let since = parse_time("since", ctx.query.get("since"))?;
    let until = parse_time("until", ctx.query.get("until"))?;
    let filters = ctx.query.filters()?;
    if let Some(k) = filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid filter '{k}': berth filters events by {}",
            FILTERS.join(", ")
        )));
    }
    // Without `since`, only what comes after this request.
    let mut seq = if since.is_some() {
        0
    } else {
        ctx.api.blocking(|e| events::last(&e.db()?)).await?
    };
    let api = ctx.api.clone();
    let (resp, tx) = body::stream("application/json");
    tokio::spawn(async move {
        loop {
            let batch = match read(&api, seq).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e.message, "reading the event log");
                    return;
                }
            };
            let full = batch.len() as i64 == BATCH;
            for e in batch {
                seq = e.seq;
                if since.is_some_and(|s| e.time_nano < s) {
                    continue;
                }
                if until.is_some_and(|u| e.time_nano > u) {
                    return;
                }
                if !matches(&filters, &e) {
                    continue;
                }
                let mut line = serde_json::to_vec(&message(&e)).unwrap_or_default();
                line.push(b'\n');
                if tx.send(line.into()).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            if until.is_some_and(|u| now_nano() > u) {
                return;
            }
            // Idle, or the client gone: a closed body ends the loop too.
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = tx.closed() => return,
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn times_parse_as_dockers_client_sends_them() {
        assert_eq!(
            parse_time("since", Some("1700000000.5")).unwrap(),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_time("since", Some("1700000000")).unwrap(),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("until", Some("2023-11-14T22:13:20Z")).unwrap(),
            Some(1_700_000_000_000_000_000)
        );
        assert!(parse_time("since", Some("yesterday")).is_err());
        assert_eq!(parse_time("since", None).unwrap(), None);
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
        let m = message(&e);
        assert_eq!(m["status"], "start");
        assert_eq!(m["time"], 1_700_000_000);
        assert_eq!(m["Actor"]["Attributes"]["name"], "web");
    }
}
