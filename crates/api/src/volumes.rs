//! The volume endpoints: list, create, inspect, remove, prune.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    let filters = ctx.query.filters()?;
    let mut dangling = None;
    let mut names = Vec::new();
    let mut labels = Vec::new();
    for (k, vs) in &filters {
        match k.as_str() {
            "dangling" => dangling = vs.last().map(|v| v == "true" || v == "1"),
            "name" => names.extend(vs.iter().cloned()),
            "label" => labels.extend(vs.iter().cloned()),
            _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
        }
    }
    let vols = ctx
        .api
        .blocking(move |e| {
            let mut out = Vec::new();
            // Read once for every volume the dangling filter looks at.
            let containers = if dangling.is_some() {
                e.list()?
            } else {
                Vec::new()
            };
            for v in e.volumes()? {
                if !names.is_empty() && !names.iter().any(|n| v.name.contains(n.as_str())) {
                    continue;
                }
                if !berth_engine::filters::labels_match(&labels, |k| {
                    v.labels.get(k).map(String::as_str)
                }) {
                    continue;
                }
                if let Some(d) = dangling {
                    let users = containers
                        .iter()
                        .any(|c| berth_engine::volumes::uses(c, &v.name));
                    if d == users {
                        continue;
                    }
                }
                out.push(e.volume_inspect(&v.name)?);
            }
            Ok(out)
        })
        .await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({"Volumes": vols, "Warnings": []}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateBody {
    name: String,
    driver: String,
    driver_opts: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    cluster_volume_spec: Option<Value>,
}

pub async fn create(mut ctx: Ctx) -> Result<Response, ApiError> {
    let b: CreateBody = ctx.json().await?;
    if !matches!(b.driver.as_str(), "" | "local") {
        return Err(ApiError::bad_request(format!(
            "volume driver {:?} is not supported: berth has the local driver",
            b.driver
        )));
    }
    if !b.driver_opts.is_empty() {
        return Err(ApiError::bad_request(
            "volume DriverOpts are not supported by berth yet",
        ));
    }
    if b.cluster_volume_spec.is_some() {
        return Err(ApiError::bad_request(
            "cluster volumes are not supported by berth",
        ));
    }
    let v = ctx
        .api
        .blocking(move |e| {
            let name = Some(b.name.as_str()).filter(|n| !n.is_empty());
            // docker: creating a volume that exists returns it.
            if let Some(n) = name {
                if let Ok(j) = e.volume_inspect(n) {
                    return Ok(j);
                }
            }
            let v = e.volume_create(name, &b.labels, false)?;
            e.volume_inspect(&v.name)
        })
        .await?;
    Ok(body::json(StatusCode::CREATED, &v))
}

pub async fn inspect(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    let v = ctx.api.blocking(move |e| e.volume_inspect(&name)).await?;
    Ok(body::json(StatusCode::OK, &v))
}

pub async fn remove(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    let force = ctx.query.flag("force");
    ctx.api
        .blocking(move |e| e.volume_remove(&name, force))
        .await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

pub async fn prune(ctx: Ctx) -> Result<Response, ApiError> {
    let (f, own) = ctx.query.prune_filters("volume", true, &["all"])?;
    let all = own
        .get("all")
        .is_some_and(|vs| vs.iter().any(|v| v == "true" || v == "1"));
    let removed = ctx.api.blocking(move |e| e.volume_prune(all, &f)).await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({"VolumesDeleted": removed}),
    ))
}
