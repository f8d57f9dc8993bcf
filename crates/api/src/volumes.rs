//! The volume endpoints: list, create, inspect, remove, prune.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    let filters = ctx
        .query
        .filters_with(|p| berth_engine::filters::VolumeFilters::parse(p))?;
    let vols = ctx
        .api
        .blocking(move |e| {
            e.volumes_where(&filters)?
                .iter()
                .map(|v| e.volume_inspect(&v.name))
                .collect::<berth_engine::Result<Vec<_>>>()
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
