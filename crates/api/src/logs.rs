//! `GET /containers/{id}/logs`: the json-file log as docker streams it
//! (multiplexed frames, or raw for a tty), with follow, tail, since,
//! until and timestamps.

use std::io::SeekFrom;
use std::time::Duration;

use berth_engine::logs::{Record, Stream};
use berth_engine::{Container, State};
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::Api;
use crate::streams::frame;

/// How often a followed log is read again while its container runs.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
struct Opts {
    tty: bool,
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Opts {
    fn render(&self, r: &Record, out: &mut Vec<u8>) {
        let (want, n) = match r.stream {
            Stream::Stdout => (self.stdout, 1),
            Stream::Stderr => (self.stderr, 2),
        };
        if !want {
            return;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(t) = DateTime::parse_from_rfc3339(&r.time) else {
                return;
            };
            let t = t.with_timezone(&Utc);
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return;
            }
        }
        let mut line = Vec::new();
        if self.timestamps {
            line.extend_from_slice(r.time.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(r.log.as_bytes());
        if self.tty {
            out.extend_from_slice(&line);
        } else {
            out.extend_from_slice(&frame(n, &line));
        }
    }

    fn wants(&self, r: &Record) -> bool {
        match r.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

/// docker's `since`/`until`: Unix seconds, maybe with a fraction.
pub(crate) fn parse_time(k: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty() && *v != "0") else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request(format!("invalid {k} {v:?}: want Unix seconds"));
    let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    // Checked before padding and cutting: a cut inside a multi-byte
    // character would panic.
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().map_err(|_| bad())?;
    DateTime::from_timestamp(secs, nanos)
        .map(Some)
        .ok_or_else(bad)
}

/// The complete records of `buf` (a trailing partial line stays) and how
/// many bytes they took.
pub(crate) fn records(buf: &[u8]) -> Result<(Vec<Record>, usize), ApiError> {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some(nl) = buf[used..].iter().position(|&b| b == b'\n') {
        let line = &buf[used..used + nl];
        used += nl + 1;
        let r: Record = serde_json::from_slice(line)
            .map_err(|e| ApiError::internal(format!("malformed log record: {e}")))?;
        out.push(r);
    }
    Ok((out, used))
}

/// Reads what the log holds from `offset`; advances it.
async fn read_from(path: &std::path::Path, offset: &mut u64) -> Result<Vec<Record>, ApiError> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ApiError::internal(format!(
                "opening {}: {e}",
                path.display()
            )))
        }
    };
    let io = |e: std::io::Error| ApiError::internal(format!("reading {}: {e}", path.display()));
    f.seek(SeekFrom::Start(*offset)).await.map_err(io)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).await.map_err(io)?;
    let (recs, used) = records(&buf)?;
    *offset += used as u64;
    Ok(recs)
}

/// The log so far, rendered for `attach?logs=1`.
pub async fn history(
    api: &Api,
    c: &Container,
    stdout: bool,
    stderr: bool,
) -> Result<Vec<u8>, ApiError> {
    let o = Opts {
        tty: c.config.tty,
        stdout,
        stderr,
        timestamps: false,
        since: None,
        until: None,
    };
    let mut offset = 0;
    let mut out = Vec::new();
    for r in read_from(&api.engine.paths.log_file(&c.id), &mut offset).await? {
        o.render(&r, &mut out);
    }
    Ok(out)
}

pub async fn logs(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let q = &ctx.query;
    let c = ctx.api.blocking(move |e| e.find(&id)).await?;
    let o = Opts {
        tty: c.config.tty,
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        timestamps: q.flag("timestamps"),
        since: parse_time("since", q.get("since"))?,
        until: parse_time("until", q.get("until"))?,
    };
    if !o.stdout && !o.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail: Option<usize> = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => Some(n.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid tail {n:?}: want a number or all"))
        })?),
    };
    let follow = q.flag("follow") && c.state == State::Running && o.until.is_none();
    let path = ctx.api.engine.paths.log_file(&c.id);
    let mut offset = 0u64;
    let mut first = read_from(&path, &mut offset).await?;
    if let Some(n) = tail {
        first.retain(|r| o.wants(r));
        let skip = first.len().saturating_sub(n);
        first.drain(..skip);
    }
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
            let Ok(recs) = read_from(&path, &mut offset).await else {
                return;
            };
            let mut out = Vec::new();
            for r in &recs {
                o.render(r, &mut out);
            }
            if !out.is_empty() && tx.send(out.into()).await.is_err() {
                return;
            }
            if done {
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
    fn since_and_until_take_unix_seconds_and_refuse_the_rest() {
        let t = parse_time("since", Some("1700000000.25")).unwrap().unwrap();
        assert_eq!(
            (t.timestamp(), t.timestamp_subsec_nanos()),
            (1700000000, 250_000_000)
        );
        let t = parse_time("since", Some("1700000000.1234567891"))
            .unwrap()
            .unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(parse_time("since", Some("0")).unwrap(), None);
        // A fraction of multi-byte characters once panicked cutting it.
        for bad in [
            "1.\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
            "1.",
            "1.-5",
            "x",
            "1.5.5",
        ] {
            let e = parse_time("until", Some(bad)).unwrap_err();
            assert!(
                e.message.contains("invalid until"),
                "{bad:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn records_render_framed_filtered_and_stamped() {
        let log = concat!(
            r#"{"log":"out\n","stream":"stdout","time":"2024-01-01T00:00:01.5Z"}"#,
            "\n",
            r#"{"log":"err\n","stream":"stderr","time":"2024-01-01T00:00:03Z"}"#,
            "\n",
            r#"{"log":"part"#
        );
        let (recs, used) = records(log.as_bytes()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(&log[used..], r#"{"log":"part"#);
        let mut o = Opts {
            tty: false,
            stdout: true,
            stderr: true,
            timestamps: false,
            since: None,
            until: None,
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
        o.tty = true;
        o.timestamps = true;
        o.since = parse_time("since", Some("1704067202")).unwrap();
        let mut out = Vec::new();
        recs.iter().for_each(|r| o.render(r, &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-01-01T00:00:03Z err\n"
        );
        assert_eq!(
            parse_time("until", Some("1704067201.5"))
                .unwrap()
                .unwrap()
                .timestamp_subsec_millis(),
            500
        );
        assert!(parse_time("since", Some("yesterday")).is_err());
    }
}
