//! `GET /containers/{id}/logs`: the json-file log as docker streams it
//! (multiplexed frames, or raw for a tty), with follow, tail, since,
//! until and timestamps.

use std::time::Duration;

use berth_engine::logfile::Reader;
use berth_engine::logs::{Record, Selection, Stream};
use berth_engine::{Container, State};
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use tokio::io::AsyncReadExt;

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::Api;
use crate::streams::frame;

/// How often a followed log is read again while its container runs.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
struct Opts {
    /// Lines as they are (a tty's log, a websocket); else in docker's
    /// multiplexing frames.
    raw: bool,
    timestamps: bool,
    details: bool,
}

impl Opts {
    fn render(&self, r: &Record, out: &mut Vec<u8>) {
        let line = r.line(self.timestamps, self.details);
        if self.raw {
            out.extend_from_slice(&line);
        } else {
            let n = match r.stream {
                Stream::Stdout => 1,
                Stream::Stderr => 2,
            };
            out.extend_from_slice(&frame(n, &line));
        }
    }
}

/// A logs `since`/`until` ([`crate::query::Query::time`]), where 0 is
/// none: docker's client sends it for "from the start" and "no end".
fn log_time(q: &crate::query::Query, k: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(q.time(k)?.filter(|t| t.timestamp() != 0))
}

/// The container's log, read across its rotated files by the engine's
/// reader on a blocking thread; the reader comes back for the next read.
struct Log {
    reader: Option<Reader>,
    path: std::path::PathBuf,
    select: Selection,
}

impl Log {
    fn open(api: &Api, c: &Container, select: Selection) -> Result<Log, ApiError> {
        let path = api.engine.paths.log_file(&c.id);
        let limits = c.config.log_config.limits().map_err(ApiError::from)?;
        Ok(Log {
            reader: Some(Reader::new(&path, limits)),
            path,
            select,
        })
    }

    /// What was written since the last read that the selection keeps; the
    /// first read with `tail` keeps only the last `tail` of it.
    async fn read(&mut self, tail: Option<usize>) -> Result<Vec<Record>, ApiError> {
        let Some(mut reader) = self.reader.take() else {
            return Err(ApiError::internal("the log's last read failed"));
        };
        let select = self.select.clone();
        let (reader, got) = tokio::task::spawn_blocking(move || {
            let mut recs = Vec::new();
            let got = reader.select(&select, tail, |r| {
                recs.push(r);
                Ok(())
            });
            (reader, got.map(|()| recs))
        })
        .await
        .map_err(|e| ApiError::internal(format!("reading the log failed: {e}")))?;
        self.reader = Some(reader);
        got.map_err(|e| ApiError::internal(format!("reading {}: {e}", self.path.display())))
    }
}

/// The log so far, rendered for `attach?logs=1`: multiplexed when `mux`.
pub async fn history(
    api: &Api,
    c: &Container,
    stdout: bool,
    stderr: bool,
    mux: bool,
) -> Result<Vec<u8>, ApiError> {
    let o = Opts {
        raw: !mux,
        timestamps: false,
        details: false,
    };
    let select = Selection {
        stdout,
        stderr,
        ..Default::default()
    };
    let mut out = Vec::new();
    for r in Log::open(api, c, select)?.read(None).await? {
        o.render(&r, &mut out);
    }
    Ok(out)
}

pub async fn logs(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let q = &ctx.query;
    let c = ctx.api.blocking(move |e| e.find(&id)).await?;
    if !c.config.log_config.readable() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "configured logging driver does not support reading",
        ));
    }
    let o = Opts {
        raw: c.config.tty,
        timestamps: q.flag("timestamps"),
        details: q.flag("details"),
    };
    let select = Selection {
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        since: log_time(q, "since")?,
        until: log_time(q, "until")?,
    };
    if !select.stdout && !select.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = q.get("tail").unwrap_or("all");
    let Some(tail) = berth_engine::logs::parse_tail(tail) else {
        return Err(ApiError::bad_request(format!(
            "invalid tail {tail:?}: want a number or all"
        )));
    };
    let follow = q.flag("follow") && c.state == State::Running && !select.over(Utc::now());
    let mut log = Log::open(&ctx.api, &c, select)?;
    let first = log.read(tail).await?;
    // Before the response: the monitor's socket tells when it exits.
    let waiter = if follow {
        match berth_engine::monitor::socket_addr(&ctx.api.engine.paths, &c.id) {
            Ok((dir, addr)) => tokio::net::UnixStream::connect(&addr)
                .await
                .ok()
                .map(|s| (dir, s)),
            Err(_) => None,
        }
    } else {
        None
    };
    let (resp, tx) = body::stream(crate::streams::content_type(ctx.minor, c.config.tty));
    let mut out = Vec::new();
    for r in &first {
        o.render(r, &mut out);
    }
    tokio::spawn(async move {
        if !out.is_empty() && tx.send(out.into()).await.is_err() {
            return;
        }
        let Some((_dir, mut waiter)) = waiter else {
            return;
        };
        let mut b = [0u8; 64];
        loop {
            let done = tokio::select! {
                _ = waiter.read(&mut b) => true,
                _ = tokio::time::sleep(FOLLOW_POLL) => false,
                _ = tx.closed() => return,
            };
            // The clock before the read: once `until` has passed, every
            // record stamped before it is in the file for this last read.
            let over = log.select.over(Utc::now());
            let Ok(recs) = log.read(None).await else {
                return;
            };
            let mut out = Vec::new();
            for r in &recs {
                o.render(r, &mut out);
            }
            if !out.is_empty() && tx.send(out.into()).await.is_err() {
                return;
            }
            if done || over {
                return;
            }
        }
    });
    let mut resp = resp;
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_time_for_logs() {
        let q = crate::query::Query::parse(Some("since=0&until=1704067201.5"));
        assert_eq!(log_time(&q, "since").unwrap(), None);
        assert_eq!(
            log_time(&q, "until")
                .unwrap()
                .unwrap()
                .timestamp_subsec_millis(),
            500
        );
        let q = crate::query::Query::parse(Some("since=yesterday"));
        assert!(log_time(&q, "since").is_err());
    }

    #[test]
    fn records_render_framed_or_raw_and_stamped() {
        let rec = |log: &str, stream, time: &str| Record {
            log: log.into(),
            stream,
            attrs: Default::default(),
            time: time.into(),
        };
        let recs = [
            rec("out\n", Stream::Stdout, "2024-01-01T00:00:01.5Z"),
            rec("err\n", Stream::Stderr, "2024-01-01T00:00:03Z"),
        ];
        let mut o = Opts {
            raw: false,
            timestamps: false,
            details: false,
        };
        let mut out = Vec::new();
        recs.iter().for_each(|r| o.render(r, &mut out));
        assert_eq!(
            out,
            [
                &[1u8, 0, 0, 0, 0, 0, 0, 4][..],
                b"out\n",
                &[2, 0, 0, 0, 0, 0, 0, 4],
                b"err\n"
            ]
            .concat()
        );
        o.raw = true;
        o.timestamps = true;
        let mut out = Vec::new();
        recs.iter().for_each(|r| o.render(r, &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-01-01T00:00:01.5Z out\n2024-01-01T00:00:03Z err\n"
        );
    }
}
