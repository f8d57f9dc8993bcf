//! `GET /containers/{id}/stats`: the engine's cgroup readings as docker's
//! stats JSON, one object (with the reading a second earlier as
//! `precpu_stats`, from which clients work out the CPU share) or a stream
//! of them, one a second.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::lifecycle::Sample;
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;
use crate::state::Api;

/// docker's collection interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// One reading: `sample` is `None` for a container that is not running
/// (docker shows it as zeros).
struct Reading {
    at: DateTime<Utc>,
    system_ns: u64,
    sample: Option<Sample>,
}

/// The host's CPU time in nanoseconds, as docker's `system_cpu_usage`:
/// the first seven fields of /proc/stat's `cpu` line (user to softirq),
/// in clock ticks of 1/100 s.
fn system_cpu_ns(stat: &str) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks * (1_000_000_000 / 100)
}

async fn read(api: &Arc<Api>, id: &str) -> Result<Reading, ApiError> {
    let key = id.to_string();
    let sample = match api.blocking(move |e| e.sample(&key)).await {
        Ok((_, s)) => Some(s),
        Err(e) if e.status == StatusCode::CONFLICT => None,
        Err(e) => return Err(e),
    };
    Ok(Reading {
        at: Utc::now(),
        system_ns: system_cpu_ns(&std::fs::read_to_string("/proc/stat").unwrap_or_default()),
        sample,
    })
}

fn cpu(r: Option<&Reading>) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match r.and_then(|r| r.sample.as_ref().map(|s| (r, s))) {
        Some((r, s)) => json!({
            "cpu_usage": {"total_usage": s.cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": r.system_ns,
            "online_cpus": cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
        None => json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
    }
}

/// docker's stats object for `cur`, `pre` the reading before it.
fn stats_json(id: &str, name: &str, cur: &Reading, pre: Option<&Reading>) -> Value {
    let zero = Sample::default();
    let s = cur.sample.as_ref().unwrap_or(&zero);
    let pre_at = pre.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |p| rfc3339(p.at));
    json!({
        "id": id,
        "name": format!("/{name}"),
        "read": rfc3339(cur.at),
        "preread": pre_at,
        "pids_stats": {"current": s.pids},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.blk_read},
            {"major": 0, "minor": 0, "op": "write", "value": s.blk_write},
        ]},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(Some(cur)),
        "precpu_stats": cpu(pre),
        // The engine's usage is already without the page cache (what
        // docker's clients would subtract), so no cache figure is sent.
        "memory_stats": if cur.sample.is_some() {
            json!({"usage": s.mem_usage, "limit": s.mem_limit, "stats": {}})
        } else {
            json!({})
        },
        // The engine sums every interface but loopback.
        "networks": if cur.sample.is_some() {
            json!({"eth0": {"rx_bytes": s.net_rx, "tx_bytes": s.net_tx,
                "rx_packets": 0, "tx_packets": 0, "rx_errors": 0, "tx_errors": 0,
                "rx_dropped": 0, "tx_dropped": 0}})
        } else {
            Value::Null
        },
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn line(v: &Value) -> bytes::Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

pub async fn stats(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    // docker's default is a stream.
    let stream = ctx.query.get("stream").is_none() || ctx.query.flag("stream");
    let one_shot = ctx.query.flag("one-shot");
    if one_shot && stream {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let c = ctx.api.blocking(move |e| e.find(&id)).await?;
    let api = ctx.api.clone();
    if !stream {
        let pre = if one_shot {
            None
        } else {
            let r = read(&api, &c.id).await?;
            tokio::time::sleep(INTERVAL).await;
            Some(r)
        };
        let cur = read(&api, &c.id).await?;
        return Ok(body::json(
            StatusCode::OK,
            &stats_json(&c.id, &c.name, &cur, pre.as_ref()),
        ));
    }
    let mut pre = read(&api, &c.id).await?;
    let (resp, tx) = body::stream("application/json");
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            // Gone (removed): the stream ends, as docker's does.
            let Ok(cur) = read(&api, &c.id).await else {
                return;
            };
            let v = stats_json(&c.id, &c.name, &cur, Some(&pre));
            if tx.send(line(&v)).await.is_err() {
                return;
            }
            pre = cur;
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_time_is_the_first_seven_fields_in_nanoseconds() {
        let stat = "cpu  10 1 5 100 2 0 3 7 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(system_cpu_ns(stat), 121 * 10_000_000);
        assert_eq!(system_cpu_ns("intr 5\n"), 0);
    }

    #[test]
    fn a_stopped_container_reads_as_zeros() {
        let r = Reading {
            at: Utc::now(),
            system_ns: 5,
            sample: None,
        };
        let v = stats_json("abc", "web", &r, None);
        assert_eq!(v["name"], "/web");
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(v["pids_stats"]["current"], 0);
        assert!(v["memory_stats"].as_object().unwrap().is_empty());
        let live = Reading {
            at: Utc::now(),
            system_ns: 9,
            sample: Some(Sample {
                cpu_ns: 7,
                mem_usage: 3,
                mem_limit: 8,
                ..Sample::default()
            }),
        };
        let v = stats_json("abc", "web", &live, Some(&r));
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 7);
        assert_eq!(v["cpu_stats"]["system_cpu_usage"], 9);
        assert_eq!(v["memory_stats"]["limit"], 8);
    }
}
