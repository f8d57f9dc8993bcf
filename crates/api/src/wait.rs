//! `POST /containers/{id}/wait?condition=not-running|next-exit|removed`:
//! headers at once (docker flushes them so a client can start the
//! container meanwhile), the `{"StatusCode": N}` when the condition holds.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{protocol, State};
use hyper::StatusCode;
use tokio::io::AsyncBufReadExt;

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::Api;

/// How often a waiter looks at a stopped container that something other
/// than this server may start (the server's own starts wake it at once).
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    NotRunning,
    NextExit,
    Removed,
}

/// Waits for the exit a running container's monitor reports on its
/// socket. `None`: no monitor answered (not running, or it died).
pub async fn monitor_exit(api: &Api, id: &str) -> Option<i32> {
    let (_dir, addr) = berth_engine::monitor::socket_addr(&api.engine.paths, id).ok()?;
    let s = tokio::net::UnixStream::connect(&addr).await.ok()?;
    let mut line = String::new();
    tokio::io::BufReader::new(s)
        .read_line(&mut line)
        .await
        .ok()?;
    match protocol::parse(line.trim_end()) {
        Some(protocol::Event::Exited(code)) => Some(code),
        _ => None,
    }
}

/// The exit of a container gone from the store, as this server recorded
/// it (after `seq`, when given): a `--rm` container's monitor removes its
/// row before it reports the exit, so a record still due is waited for.
/// `None`: no exit of it is known, or coming.
async fn exit_after_removal(
    api: &Api,
    id: &str,
    seq: Option<u64>,
    changes: &mut tokio::sync::watch::Receiver<u64>,
) -> Option<i32> {
    loop {
        if let Some(x) = api.exit_of(id).filter(|x| seq.is_none_or(|s| x.seq > s)) {
            return Some(x.code);
        }
        if !api.exit_due(id) {
            return None;
        }
        // Recording the exit, or giving up on it, bumps.
        changes.changed().await.ok()?;
    }
}

pub async fn wait(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let cond = match ctx.query.get("condition").unwrap_or("") {
        "" | "not-running" => Condition::NotRunning,
        "next-exit" => Condition::NextExit,
        "removed" => Condition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition {other:?}: want not-running, next-exit or removed"
            )))
        }
    };
    let api = ctx.api.clone();
    let seq = api.exit_seq();
    // Before the look: a start that comes after it wakes the waiter.
    let mut changes = api.subscribe();
    let key = id.clone();
    let first = api.blocking(move |e| e.find(&key)).await;
    let c = match first {
        Ok(c) => c,
        // A `--rm` container that ended before this request came.
        Err(e) => match exit_after_removal(&api, &id, None, &mut changes).await {
            Some(code) if cond != Condition::NextExit => {
                return Ok(body::json(
                    StatusCode::OK,
                    &serde_json::json!({"StatusCode": code}),
                ))
            }
            _ => return Err(e),
        },
    };
    let (resp, tx) = body::stream("application/json");
    tokio::spawn(async move {
        let outcome = tokio::select! {
            code = until(&api, c, cond, seq, changes) => code,
            _ = tx.closed() => return,
        };
        let v = match outcome {
            Ok(code) => serde_json::json!({"StatusCode": code}),
            Err(e) => serde_json::json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        berth_engine::timing::mark("api: wait: condition met");
        let _ = tx.send(b.into()).await;
    });
    Ok(resp)
}

/// `first`: the container as the request found it, the first look (a
/// second one at once would only race the start the client sends next,
/// on a database connection of its own). `changes` was subscribed to
/// before that look.
async fn until(
    api: &Arc<Api>,
    first: berth_engine::Container,
    cond: Condition,
    seq: u64,
    mut changes: tokio::sync::watch::Receiver<u64>,
) -> Result<i32, ApiError> {
    let id = first.id.clone();
    let (first_finished, mut last) = (first.finished, first.exit_code);
    let mut seen = Some(first);
    let mut exited = false;
    // After a failed look at a running container's monitor: its exit was
    // just recorded (the row read was older) or it is not listening yet;
    // look again soon, then less often.
    let mut retry = Duration::from_millis(2);
    loop {
        let now = match seen.take() {
            Some(c) => Ok(c),
            None => {
                let key = id.clone();
                api.blocking(move |e| e.find(&key)).await
            }
        };
        // An exit since the wait began, seen by this server.
        if let Some(x) = api.exit_of(&id).filter(|x| x.seq > seq) {
            last = Some(x.code);
            exited = true;
        }
        let c = match now {
            Ok(c) => c,
            Err(ApiError { status, .. }) if status == StatusCode::NOT_FOUND => {
                let code = exit_after_removal(api, &id, Some(seq), &mut changes).await;
                return Ok(code.or(last).unwrap_or(0));
            }
            Err(e) => return Err(e),
        };
        if c.state == State::Running {
            if let Some(code) = monitor_exit(api, &id).await {
                last = Some(code);
                exited = true;
                if cond != Condition::Removed {
                    return Ok(code);
                }
            } else {
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(POLL);
            }
            continue;
        }
        // Stopped; it may have run and ended between two looks.
        if c.finished != first_finished && c.finished.is_some() {
            exited = true;
            last = c.exit_code.or(last);
        }
        match cond {
            Condition::NotRunning => return Ok(c.exit_code.unwrap_or(0)),
            Condition::NextExit if exited => return Ok(last.unwrap_or(0)),
            _ => {}
        }
        if c.state == State::Removing {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Arc<Api> {
        let t = std::env::temp_dir();
        let engine = berth_engine::Engine::new(berth_engine::Paths::new(t.join("r"), t.join("rr")));
        Arc::new(Api::new(engine))
    }

    /// A `--rm` container's row goes before its monitor reports the exit:
    /// a waiter that finds it gone waits for the exit still due.
    #[tokio::test]
    async fn a_removed_containers_exit_still_due_is_waited_for() {
        let api = api();
        let seq = api.exit_seq();
        api.expect_exit("c");
        let mut changes = api.subscribe();
        let later = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            later.record_exit("c", 3);
        });
        assert_eq!(
            exit_after_removal(&api, "c", Some(seq), &mut changes).await,
            Some(3)
        );
        assert!(!api.exit_due("c"));
        // Known already: at once, with or without a sequence to pass.
        assert_eq!(
            exit_after_removal(&api, "c", None, &mut changes).await,
            Some(3)
        );
        // Nothing due, nothing known: none.
        assert_eq!(
            exit_after_removal(&api, "d", None, &mut changes).await,
            None
        );
        // Given up on (a monitor that died): none, without waiting on.
        api.expect_exit("e");
        let later = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.exit_unknown("e");
        });
        assert_eq!(
            exit_after_removal(&api, "e", Some(seq), &mut changes).await,
            None
        );
    }
}
