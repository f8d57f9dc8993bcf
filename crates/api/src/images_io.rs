//! Images to and from tar streams: `get` (save, a docker-archive), `load`,
//! `create?fromSrc` (import a root filesystem) and `commit` (a
//! container's changes as an image). The work is the image store's and
//! the engine's, as for `berth save/load/import/commit`.

use berth_image::archive::{ArchiveFormat, SaveOptions};
use berth_image::layer::Compression;
use berth_image::store::{CommitOptions, ImportOptions};
use berth_image::Reference;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

fn reference(name: &str) -> Result<Reference, ApiError> {
    Reference::parse(name).map_err(|e| ApiError::from(berth_engine::Error::Image(e.into())))
}

/// `repo` and `tag` as one reference (`None` without a repo).
fn repo_tag(ctx: &Ctx) -> Result<Option<Reference>, ApiError> {
    let Some(repo) = ctx.query.get("repo").filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let name = match ctx.query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    reference(&name).map(Some)
}

/// `GET /images/{name}/get` and `GET /images/get?names=...`: one
/// docker-archive holding every image named.
pub async fn get(ctx: Ctx, names: Vec<String>) -> Result<Response, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("images/get needs at least one name"));
    }
    if ctx.query.get("platform").is_some_and(|p| !p.is_empty()) {
        return Err(ApiError::bad_request(
            "images/get with a platform is not supported by berth",
        ));
    }
    // Every name is checked before a byte is sent, so an unknown image is
    // a 404, not a cut archive.
    let check = names.clone();
    ctx.api
        .blocking(move |e| {
            let store = berth_engine::images::open(&e.paths)?;
            for n in &check {
                berth_engine::images::find(&store, n)?;
            }
            Ok(())
        })
        .await?;
    body::streamed(&ctx.api, "application/x-tar", move |e, w| {
        let store = berth_engine::images::open(&e.paths)?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let opts = SaveOptions {
            format: ArchiveFormat::Docker,
            compression: Compression::None,
        };
        berth_engine::image_ops::save(e, &store, &names, w, &opts)?;
        Ok(())
    })
    .await
}

fn stream_line(text: String) -> Value {
    json!({ "stream": text })
}

/// One JSON message a line, as docker's JSON streams.
fn lines(msgs: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend(serde_json::to_vec(m).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// `POST /images/load`: a docker-archive or OCI archive in the body.
pub async fn load(mut ctx: Ctx) -> Result<Response, ApiError> {
    let body = ctx
        .take_body()
        .ok_or_else(|| ApiError::bad_request("load needs an archive in the body"))?;
    let (reader, feed) = body::reader(body);
    let loaded = ctx
        .api
        .blocking(move |e| {
            let store = berth_engine::images::open(&e.paths)?;
            berth_engine::image_ops::load(e, &store, reader)
        })
        .await;
    feed.abort();
    let mut msgs = Vec::new();
    for i in &loaded? {
        if i.tags.is_empty() {
            msgs.push(stream_line(format!("Loaded image ID: {}\n", i.id)));
        }
        for t in &i.tags {
            msgs.push(stream_line(format!("Loaded image: {}\n", t.familiar())));
        }
    }
    Ok(body::bytes(
        StatusCode::OK,
        "application/json",
        lines(&msgs),
    ))
}

/// `POST /images/create?fromSrc=-`: a root filesystem tar in the body
/// becomes a one-layer image.
pub async fn import(mut ctx: Ctx) -> Result<Response, ApiError> {
    let src = ctx.query.get("fromSrc").unwrap_or_default().to_string();
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from a URL ({src}) is not supported by berth: send the tar in the body (fromSrc=-)"
        )));
    }
    if let Some(p) = ctx.query.get("platform").filter(|p| !p.is_empty()) {
        let want = berth_engine::pull::parse_platform(p)?;
        if !want.matches(&berth_registry::Platform::host()) {
            return Err(ApiError::bad_request(format!(
                "import for platform {p} is not supported: only this machine's"
            )));
        }
    }
    let opts = ImportOptions {
        reference: repo_tag(&ctx)?,
        changes: ctx.query.all("changes"),
        message: ctx
            .query
            .get("message")
            .filter(|m| !m.is_empty())
            .map(String::from),
        source: src,
    };
    let body = ctx
        .take_body()
        .ok_or_else(|| ApiError::bad_request("import needs a tar in the body"))?;
    let (reader, feed) = body::reader(body);
    let image = ctx
        .api
        .blocking(move |e| {
            let store = berth_engine::images::open(&e.paths)?;
            berth_engine::image_ops::import(e, &store, reader, &opts)
        })
        .await;
    feed.abort();
    let image = image?;
    Ok(body::bytes(
        StatusCode::OK,
        "application/json",
        lines(&[json!({ "status": image.id.to_string() })]),
    ))
}

/// `POST /commit?container=...`: the container's changes as an image.
pub async fn commit(mut ctx: Ctx) -> Result<Response, ApiError> {
    let container = ctx
        .query
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("commit needs a container"))?
        .to_string();
    // The body is a container Config to merge into the image's: refused
    // unless empty (`--change` is the supported way).
    let config: Value = ctx.json().await?;
    if !(config.is_null()
        || config
            .as_object()
            .is_some_and(|o| o.values().all(Value::is_null)))
    {
        return Err(ApiError::bad_request(
            "commit with a Config body is not supported by berth: use changes",
        ));
    }
    // docker pauses unless told pause=0.
    let pause = ctx.query.get("pause").is_none() || ctx.query.flag("pause");
    let opts = CommitOptions {
        reference: repo_tag(&ctx)?,
        author: ctx
            .query
            .get("author")
            .filter(|a| !a.is_empty())
            .map(String::from),
        message: ctx
            .query
            .get("comment")
            .filter(|m| !m.is_empty())
            .map(String::from),
        changes: ctx.query.all("changes"),
        created_by: None,
        progress: None,
    };
    let image = ctx
        .api
        .blocking(move |e| {
            let store = berth_engine::images::open(&e.paths)?;
            berth_engine::image_ops::commit(e, &store, &container, &opts, pause)
        })
        .await?;
    Ok(body::json(
        StatusCode::CREATED,
        &json!({ "Id": image.id.to_string() }),
    ))
}
