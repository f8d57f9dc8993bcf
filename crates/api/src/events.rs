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

fn nanos(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    // Past what nanoseconds hold (before 1677, after 2262): the ends.
    t.map(|t| {
        t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    })
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
        since: nanos(ctx.query.time("since")?),
        until: nanos(ctx.query.time("until")?),
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
