//! The image endpoints: list, inspect, history, tag, remove, and create
//! (a pull, streamed as docker's JSON progress messages).

use base64::Engine as _;
use berth_image::store::Removed;
use berth_registry::progress::Event;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

fn open(e: &berth_engine::Engine) -> berth_engine::Result<berth_image::store::Store> {
    berth_engine::images::open(&e.paths)
}

pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    let filters = ctx.query.filters()?;
    let mut dangling = None;
    let mut references = Vec::new();
    let mut labels = Vec::new();
    for (k, vs) in &filters {
        match k.as_str() {
            "dangling" => {
                for v in vs {
                    dangling = Some(match v.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "invalid filter 'dangling={v}'"
                            )))
                        }
                    });
                }
            }
            "reference" => references.extend(vs.iter().cloned()),
            "label" => labels.extend(vs.iter().cloned()),
            _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
        }
    }
    if references.iter().any(|r| r.contains(['*', '?', '['])) {
        return Err(ApiError::bad_request(
            "reference filters with wildcards are not supported by berth yet",
        ));
    }
    let v = ctx
        .api
        .blocking(move |e| {
            let store = open(e)?;
            let mut out = Vec::new();
            for i in store.images().map_err(berth_engine::Error::from)? {
                if dangling.is_some_and(|d| d != i.tags.is_empty()) {
                    continue;
                }
                let cfg = store.config(&i).map_err(berth_engine::Error::from)?;
                let img_labels = cfg["config"]["Labels"].clone();
                let label_ok = labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => img_labels[k].as_str() == Some(v),
                    None => img_labels[l.as_str()].is_string(),
                });
                let ref_ok = references.is_empty()
                    || i.tags.iter().any(|t| {
                        let full = format!("{}:{}", t.familiar_name(), t.tag().unwrap_or(""));
                        references.iter().any(|r| *r == t.familiar_name() || *r == full || *r == t.to_string())
                    });
                if !label_ok || !ref_ok {
                    continue;
                }
                let tags: Vec<String> = i.tags.iter().map(|t| t.familiar()).collect();
                let digests: Vec<String> = i
                    .tags
                    .iter()
                    .map(|t| format!("{}@{}", t.familiar_name(), i.manifest))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                out.push(json!({
                    "Id": i.id.to_string(),
                    "ParentId": "",
                    "RepoTags": if tags.is_empty() { json!(["<none>:<none>"]) } else { json!(tags) },
                    "RepoDigests": digests,
                    "Created": i.created.timestamp(),
                    "Size": i.size,
                    "VirtualSize": i.size,
                    "SharedSize": -1,
                    "Labels": if img_labels.is_object() { img_labels } else { json!({}) },
                    "Containers": e.list()?.iter().filter(|c| c.image_id == i.id.to_string()).count(),
                }));
            }
            Ok(out)
        })
        .await?;
    Ok(body::json(StatusCode::OK, &Value::Array(v)))
}

fn find(
    store: &berth_image::store::Store,
    name: &str,
) -> berth_engine::Result<berth_image::store::Image> {
    berth_engine::images::find(store, name)
}

pub async fn inspect(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    let v = ctx
        .api
        .blocking(move |e| {
            let store = open(e)?;
            let image = find(&store, &name)?;
            let i = berth_engine::image_ops::inspect(&store, &image)?;
            serde_json::to_value(i).map_err(|e| berth_engine::Error::InvalidArgument(e.to_string()))
        })
        .await?;
    Ok(body::json(StatusCode::OK, &v))
}

pub async fn history(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    let v = ctx
        .api
        .blocking(move |e| {
            let store = open(e)?;
            let image = find(&store, &name)?;
            let tags: Vec<String> = image.tags.iter().map(|t| t.familiar()).collect();
            let rows = berth_engine::image_ops::history(&store, &image)?;
            Ok(rows
                .into_iter()
                .map(|h| {
                    json!({
                        "Id": h.id.as_ref().map_or_else(|| "<missing>".to_string(), |d| d.to_string()),
                        "Created": h.created.map_or(0, |t| t.timestamp()),
                        "CreatedBy": h.created_by,
                        "Tags": if h.id.is_some() { json!(tags) } else { Value::Null },
                        "Size": h.size,
                        "Comment": h.comment,
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(body::json(StatusCode::OK, &Value::Array(v)))
}

pub async fn tag(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    let repo = ctx
        .query
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("tag needs a repo"))?;
    let target = match ctx.query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    ctx.api
        .blocking(move |e| berth_engine::image_ops::tag(&open(e)?, &name, &target))
        .await?;
    Ok(body::empty(StatusCode::CREATED))
}

pub async fn remove(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    if ctx.query.flag("noprune") {
        return Err(ApiError::bad_request(
            "rmi with noprune is not supported by berth yet",
        ));
    }
    let force = ctx.query.flag("force");
    let removed = ctx
        .api
        .blocking(move |e| berth_engine::image_ops::remove(e, &open(e)?, &name, force))
        .await?;
    let v: Vec<Value> = removed
        .iter()
        .map(|r| match r {
            Removed::Untagged(t) => json!({"Untagged": t.familiar()}),
            Removed::Deleted(d) => json!({"Deleted": d.to_string()}),
        })
        .collect();
    Ok(body::json(StatusCode::OK, &Value::Array(v)))
}

/// Refuses credentials in X-Registry-Auth: pulls use the server's own
/// docker config (a client's credentials would be used silently wrong).
fn check_auth(ctx: &Ctx) -> Result<(), ApiError> {
    match ctx.headers.get("X-Registry-Auth") {
        Some(h) => check_auth_header(h.as_bytes()),
        None => Ok(()),
    }
}

/// [`check_auth`] on the header's value.
pub(crate) fn check_auth_header(raw: &[u8]) -> Result<(), ApiError> {
    if raw.is_empty() {
        return Ok(());
    }
    let trimmed: Vec<u8> = raw.iter().copied().filter(|b| *b != b'=').collect();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&trimmed))
        .map_err(|_| ApiError::bad_request("X-Registry-Auth is not base64"))?;
    let v: Value = serde_json::from_slice(&json)
        .map_err(|_| ApiError::bad_request("X-Registry-Auth is not JSON"))?;
    let given = [
        "username",
        "password",
        "identitytoken",
        "registrytoken",
        "auth",
    ]
    .iter()
    .any(|k| v[k].as_str().is_some_and(|s| !s.is_empty()));
    if given {
        return Err(ApiError::bad_request(
            "credentials in X-Registry-Auth are not supported yet: log in on the server (berth login)",
        ));
    }
    Ok(())
}

fn short(d: &berth_image::Digest) -> String {
    let s = d.to_string();
    let hex = s.split_once(':').map_or(s.as_str(), |(_, h)| h);
    hex[..hex.len().min(12)].to_string()
}

/// docker's message for one progress event.
fn progress_json(e: &Event) -> Option<Value> {
    let status = |s: &str, d: &berth_image::Digest| {
        Some(json!({"status": s, "progressDetail": {}, "id": short(d)}))
    };
    match e {
        Event::Resolving { .. } => None,
        Event::Resolved { .. } => None,
        Event::Waiting { layer } => status("Waiting", layer),
        Event::Downloading { layer, done, total } => Some(json!({
            "status": "Downloading",
            "progressDetail": {"current": done, "total": total},
            "id": short(layer),
        })),
        Event::Uploading { layer, done, total } => Some(json!({
            "status": "Pushing",
            "progressDetail": {"current": done, "total": total},
            "id": short(layer),
        })),
        Event::Verifying { layer } => status("Verifying Checksum", layer),
        Event::Extracting { layer } => status("Extracting", layer),
        Event::Done { layer } => status("Pull complete", layer),
        Event::Exists { layer } => status("Already exists", layer),
        Event::Retrying { layer, offset } => Some(json!({
            "status": format!("Retrying from byte {offset}"),
            "progressDetail": {},
            "id": short(layer),
        })),
    }
}

fn line(v: &Value) -> bytes::Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

pub async fn create(ctx: Ctx) -> Result<Response, ApiError> {
    let q = &ctx.query;
    if q.get("fromSrc").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(
            "image import (fromSrc) is not supported by berth's API yet: use berth import",
        ));
    }
    for k in ["repo", "message", "changes"] {
        if q.get(k).is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "images/create: {k} is not supported by berth yet"
            )));
        }
    }
    check_auth(&ctx)?;
    let from = q
        .get("fromImage")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("images/create needs fromImage"))?;
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_string(),
    };
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(String::from);
    let (resp, tx) = body::stream("application/json");
    let api = ctx.api.clone();
    tokio::spawn(async move {
        let (etx, mut erx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let pull_name = name.clone();
        let job = api.blocking(move |e| {
            let store = open(e)?;
            let before = store.image(&pull_name).ok().map(|i| i.id);
            let client = berth_engine::pull::client()?;
            let reference = berth_image::Reference::parse(&pull_name)
                .map_err(|e| berth_engine::Error::Image(e.into()))?;
            let _ = etx.send(json!({
                "status": format!("Pulling from {}", reference.familiar_name()),
                "id": reference.tag().unwrap_or("latest"),
            }));
            let sink = |ev: Event| {
                if let Some(v) = progress_json(&ev) {
                    let _ = etx.send(v);
                }
            };
            let (reference, pulled) =
                berth_engine::pull::pull(&client, &store, &pull_name, platform.as_deref(), &sink)?;
            let _ = etx.send(json!({"status": format!("Digest: {}", pulled.digest)}));
            let fresh = before.as_ref() != Some(&pulled.image.id);
            let _ = etx.send(json!({"status": format!(
                "Status: {} for {}",
                if fresh { "Downloaded newer image" } else { "Image is up to date" },
                reference.familiar()
            )}));
            Ok(())
        });
        tokio::pin!(job);
        let result = loop {
            tokio::select! {
                Some(v) = erx.recv() => {
                    if tx.send(line(&v)).await.is_err() {
                        // The client left: the pull finishes on its own
                        // thread and stays in the store.
                        return;
                    }
                }
                r = &mut job => break r,
            }
        };
        while let Ok(v) = erx.try_recv() {
            let _ = tx.send(line(&v)).await;
        }
        if let Err(e) = result {
            let _ = tx
                .send(line(
                    &json!({"errorDetail": {"message": e.message}, "error": e.message}),
                ))
                .await;
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_dockers() {
        let d = berth_image::Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let v = progress_json(&Event::Downloading {
            layer: d.clone(),
            done: 5,
            total: 10,
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"status": "Downloading", "progressDetail": {"current": 5, "total": 10}, "id": "abababababab"})
        );
        assert_eq!(
            progress_json(&Event::Done { layer: d }).unwrap()["status"],
            "Pull complete"
        );
    }
}
