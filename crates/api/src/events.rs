//! `GET /events`: the engine's event log as docker's JSON messages, one a
//! line: those since `since` (none before the request without it), then
//! new ones as they are recorded, until `until` passes or the client
//! leaves. Filters: type, event, container, image, label.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::events::{self, Event, Take};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::Api;

/// How often the log is read again for new events while a client waits
/// (other processes write it: CLIs, monitors).
const POLL: Duration = Duration::from_millis(200);

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

fn now_nano() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

async fn read(api: &Arc<Api>, after: i64) -> Result<Vec<Event>, ApiError> {
    api.blocking(move |e| events::after(&e.db()?, after, events::BATCH))
        .await
}

pub async fn events(ctx: Ctx) -> Result<Response, ApiError> {
    let q = events::Query {
        since: parse_time("since", ctx.query.get("since"))?,
        until: parse_time("until", ctx.query.get("until"))?,
        filters: ctx.query.filters()?,
    };
    events::check_filters(&q.filters).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let start = q.clone();
    let mut seq = ctx.api.blocking(move |e| start.start(&e.db()?)).await?;
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
            let full = batch.len() as i64 == events::BATCH;
            for e in batch {
                seq = e.seq;
                match q.take(&e) {
                    Take::Stop => return,
                    Take::Skip => continue,
                    Take::Show => {}
                }
                let mut line = serde_json::to_vec(&e.docker_message()).unwrap_or_default();
                line.push(b'\n');
                if tx.send(line.into()).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            if q.over(now_nano()) {
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
}
