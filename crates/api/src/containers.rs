//! The container endpoints that are one engine call each: list, inspect,
//! start, stop, restart, kill, pause, rename, resize, top, remove, prune.

use std::time::Duration;

use berth_engine::{Container, Engine, State};
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

fn no_content() -> Result<Response, ApiError> {
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// docker's `Ports` of a list entry, from inspect's port map.
fn list_ports(settings: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(ports) = settings["Ports"].as_object() else {
        return out;
    };
    for (key, bindings) in ports {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let private: u16 = port.parse().unwrap_or(0);
        match bindings.as_array() {
            Some(list) => {
                for b in list {
                    out.push(json!({
                        "IP": b["HostIp"],
                        "PrivatePort": private,
                        "PublicPort": b["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()),
                        "Type": proto,
                    }));
                }
            }
            None => out.push(json!({"PrivatePort": private, "Type": proto})),
        }
    }
    out
}

pub fn list_entry(e: &Engine, c: &Container, state: &str) -> Value {
    let settings = e.network_settings(c);
    let mut status = berth_engine::status::status(c);
    if state == "paused" {
        status.push_str(" (Paused)");
    }
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": berth_engine::spec::args(&c.config).join(" "),
        "Created": c.created.timestamp(),
        "Ports": list_ports(&settings),
        "Labels": c.config.labels,
        "State": state,
        "Status": status,
        "HostConfig": {"NetworkMode": c.config.network_mode},
        "NetworkSettings": {"Networks": settings["Networks"].clone()},
        "Mounts": c.config.host_config.mounts.iter().map(|m| json!({
            "Type": m.kind,
            "Name": if m.kind == "volume" { json!(m.source) } else { Value::Null },
            "Source": m.source,
            "Destination": m.target,
            "Mode": if m.read_only { "ro" } else { "" },
            "RW": !m.read_only,
            "Propagation": m.propagation,
        })).collect::<Vec<_>>(),
    })
}

/// docker's filters as `key=value` flags for the engine's parser.
fn filter_flags(ctx: &Ctx) -> Result<Vec<String>, ApiError> {
    Ok(ctx
        .query
        .filters()?
        .into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |v| format!("{k}={v}")))
        .collect())
}

pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    let flags = filter_flags(&ctx)?;
    let all = ctx.query.flag("all");
    let limit = ctx.query.int("limit")?.filter(|n| *n > 0);
    let size = ctx.query.flag("size");
    let v = ctx
        .api
        .blocking(move |e| {
            let mut filters = berth_engine::filters::Filters::parse(&flags)?;
            let store = if size { Some(e.store()?) } else { None };
            let healths = e.health_statuses()?;
            filters.resolve(|k| Ok(e.find(k)?.created))?;
            let mut list = e.list()?;
            // Newest first, as docker lists them.
            list.sort_by_key(|c| std::cmp::Reverse(c.created));
            let mut out = Vec::new();
            for c in &list {
                let state = berth_engine::status::docker_state(e, c);
                if !(all || limit.is_some() || c.state == State::Running) {
                    continue;
                }
                let health = healths
                    .get(&c.id)
                    .map_or(berth_engine::health::NONE, String::as_str);
                if !filters.matches(c, state, health) {
                    continue;
                }
                if limit.is_some_and(|n| out.len() >= n as usize) {
                    break;
                }
                let mut v = list_entry(e, c, state);
                if let Some(store) = &store {
                    let (rw, rootfs) = berth_engine::image_ops::container_sizes(store, c);
                    v["SizeRw"] = json!(rw);
                    v["SizeRootFs"] = json!(rootfs);
                }
                out.push(v);
            }
            Ok(out)
        })
        .await?;
    Ok(body::json(StatusCode::OK, &Value::Array(v)))
}

pub async fn inspect(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let size = ctx.query.flag("size");
    let v = ctx
        .api
        .blocking(move |e| e.inspect_sized(&id, size))
        .await?;
    Ok(body::json(StatusCode::OK, &v))
}

pub async fn start(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    if ctx.query.get("detachKeys").is_some_and(|k| !k.is_empty()) {
        // They belong to attach; docker ignores them here too, but a
        // client that sends them expects them honoured: refuse.
        return Err(ApiError::bad_request(
            "detachKeys on start is not supported: give them to attach",
        ));
    }
    // One trip to a blocking thread for the look and the start: each
    // trip is a thread's wakeup on the path of every `docker run`.
    let api = ctx.api.clone();
    let started = ctx
        .api
        .blocking(move |e| {
            let c = e.find(&id)?;
            if c.state == State::Running {
                return Ok(None);
            }
            let attach =
                api.take_pending_attach(&c.id)
                    .map(|stream| berth_engine::attach::AttachTo {
                        stream,
                        console_size: api.take_console(&c.id),
                    });
            // Before the start: a --rm container can be gone, its row
            // removed, before this call returns, and a waiter that finds
            // it so must know an exit is coming.
            api.expect_exit(&c.id);
            let started = e.start(&c.id, attach);
            if started.is_err() {
                api.exit_unknown(&c.id);
            }
            started.map(Some)
        })
        .await?;
    let Some(handle) = started else {
        return Ok(body::empty(StatusCode::NOT_MODIFIED));
    };
    ctx.api.bump();
    // The monitor reports the exit on the start pipe: remembered for
    // waiters that come late (a `--rm` container is gone by then).
    // Read without a blocking thread: those are few (512), and a server
    // holding one per running container stopped answering past that.
    let api = ctx.api.clone();
    let (id, sock, rest) = handle.into_parts();
    tokio::spawn(async move {
        match exit_of(sock, rest).await {
            Some(code) => api.record_exit(&id, code),
            None => {
                tracing::debug!(id, "the monitor ended without reporting the exit");
                api.exit_unknown(&id);
            }
        }
    });
    no_content()
}

/// The exit code a monitor reports on its status socket (`got`: what was
/// read from it already).
async fn exit_of(sock: std::os::unix::net::UnixStream, mut got: Vec<u8>) -> Option<i32> {
    use tokio::io::AsyncReadExt;
    let mut sock = crate::streams::to_tokio(sock).ok()?;
    loop {
        if let Some(nl) = got.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&got[..=nl]);
            return match berth_engine::protocol::parse(&line) {
                Some(berth_engine::protocol::Event::Exited(code)) => Some(code),
                _ => None,
            };
        }
        let mut b = [0u8; 64];
        match sock.read(&mut b).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
}

fn timeout(ctx: &Ctx) -> Result<Option<Duration>, ApiError> {
    Ok(ctx
        .query
        .int("t")?
        .or(ctx.query.int("timeout")?)
        .map(|t| Duration::from_secs(t.max(0) as u64)))
}

/// The `signal` a stop or restart sends first (API 1.42), if any.
fn stop_signal(ctx: &Ctx) -> Option<String> {
    ctx.query
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(String::from)
}

pub async fn stop(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let signal = stop_signal(&ctx);
    let t = timeout(&ctx)?;
    let asked = signal.clone();
    let c = ctx
        .api
        .blocking(move |e| {
            // A bad signal is a 400 even for a container that is not running.
            if let Some(s) = &asked {
                berth_engine::signal::parse(s)?;
            }
            e.find(&id)
        })
        .await?;
    if c.state != State::Running {
        return Ok(body::empty(StatusCode::NOT_MODIFIED));
    }
    ctx.api
        .blocking(move |e| e.stop(&c.id, t, signal.as_deref()))
        .await?;
    no_content()
}

pub async fn restart(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let signal = stop_signal(&ctx);
    let t = timeout(&ctx)?;
    ctx.api
        .blocking(move |e| e.restart(&id, t, signal.as_deref()))
        .await?;
    ctx.api.bump();
    no_content()
}

pub async fn kill(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let sig = ctx
        .query
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL")
        .to_string();
    ctx.api
        .blocking(move |e| {
            let c = e.find(&id)?;
            if c.state != State::Running {
                return Err(berth_engine::Error::WrongState {
                    id: c.id,
                    state: c.state.to_string(),
                    op: "kill (it is not running)",
                });
            }
            e.kill(&c.id, &sig)
        })
        .await?;
    no_content()
}

pub async fn pause(ctx: Ctx, id: String, pause: bool) -> Result<Response, ApiError> {
    ctx.api
        .blocking(move |e| if pause { e.pause(&id) } else { e.unpause(&id) })
        .await?;
    no_content()
}

pub async fn rename(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let name = ctx
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("rename needs a name"))?
        .to_string();
    ctx.api.blocking(move |e| e.rename(&id, &name)).await?;
    no_content()
}

/// The `h` and `w` of a resize.
pub fn size(ctx: &Ctx) -> Result<(u16, u16), ApiError> {
    let get = |k: &str| -> Result<u16, ApiError> {
        let v = ctx.query.int(k)?.unwrap_or(0);
        u16::try_from(v).map_err(|_| ApiError::bad_request(format!("invalid {k}: {v}")))
    };
    Ok((get("h")?, get("w")?))
}

pub async fn resize(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let (rows, cols) = size(&ctx)?;
    let c = ctx.api.blocking(move |e| e.find(&id)).await?;
    if c.state != State::Running {
        // Before the start (docker's client sizes the tty at once): the
        // size goes with the attach stream handed to the monitor.
        ctx.api.set_console(&c.id, (rows, cols));
        return Ok(body::empty(StatusCode::OK));
    }
    let (_id, mut s) = ctx.api.blocking(move |e| e.attach(&c.id)).await?;
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        s.write_all(&berth_engine::stream::resize(rows, cols))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("resizing: {e}")))?;
    Ok(body::empty(StatusCode::OK))
}

pub async fn top(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let args: Vec<String> = ctx
        .query
        .get("ps_args")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let (header, lines) = ctx.api.blocking(move |e| e.top(&id, &args)).await?;
    let titles: Vec<&str> = header.split_whitespace().collect();
    let n = titles.len().max(1);
    let processes: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            // The last column (the command) keeps its spaces.
            let mut cols: Vec<String> = Vec::new();
            let mut rest = l.trim_start();
            while cols.len() + 1 < n {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                cols.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            cols.push(rest.to_string());
            cols
        })
        .collect();
    Ok(body::json(
        StatusCode::OK,
        &json!({"Titles": titles, "Processes": processes}),
    ))
}

pub async fn remove(ctx: Ctx, id: &str) -> Result<Response, ApiError> {
    if ctx.query.flag("link") {
        return Err(ApiError::bad_request("links are not supported by berth"));
    }
    let (force, volumes) = (ctx.query.flag("force"), ctx.query.flag("v"));
    let key = id.to_string();
    let id = ctx
        .api
        .blocking(move |e| {
            let id = e.find(&key)?.id;
            e.remove(&key, force, volumes)?;
            Ok(id)
        })
        .await?;
    // A client attached before a start that will not come now: its
    // stream ends.
    drop(ctx.api.take_pending_attach(&id));
    no_content()
}

pub async fn prune(ctx: Ctx) -> Result<Response, ApiError> {
    let (f, _) = ctx.query.prune_filters("container", true, &[])?;
    let (removed, bytes) = ctx.api.blocking(move |e| e.prune(&f)).await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({ "ContainersDeleted": removed, "SpaceReclaimed": bytes }),
    ))
}

/// `GET /containers/{id}/changes`: docker's kinds are 0 modified,
/// 1 added, 2 deleted.
pub async fn changes(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    use berth_engine::image_ops::ChangeKind;
    let list = ctx
        .api
        .blocking(move |e| {
            let store = berth_engine::images::open(&e.paths)?;
            berth_engine::image_ops::diff(e, &store, &id)
        })
        .await?;
    let v: Vec<Value> = list
        .iter()
        .map(|c| {
            let kind = match c.kind {
                ChangeKind::Changed => 0,
                ChangeKind::Added => 1,
                ChangeKind::Deleted => 2,
            };
            json!({"Path": c.path, "Kind": kind})
        })
        .collect();
    Ok(body::json(StatusCode::OK, &Value::Array(v)))
}

/// `GET /containers/{id}/export`: the whole filesystem as a tar.
pub async fn export(ctx: Ctx, id: String) -> Result<Response, ApiError> {
    body::streamed(&ctx.api, "application/x-tar", move |e, w| {
        let store = berth_engine::images::open(&e.paths)?;
        berth_engine::image_ops::export(e, &store, &id, w)
    })
    .await
}

/// `POST /containers/{id}/update`: docker's resources (a zero is "keep")
/// and restart policy; any other field set is refused by name. A body
/// that sets nothing changes nothing and is answered 200, as dockerd
/// answers it (its CLI refuses such an update before sending it).
pub async fn update(mut ctx: Ctx, id: String) -> Result<Response, ApiError> {
    let b: Value = ctx.json().await?;
    let u = crate::create::update_body(&b)?;
    ctx.api.blocking(move |e| e.update(&id, &u)).await?;
    Ok(body::json(StatusCode::OK, &json!({"Warnings": []})))
}
