//! From a request to a handler: the API version prefix (`/v1.41/...` or
//! none), the path, the query; docker's headers on every answer and its
//! error JSON on every failure.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{header, HeaderMap, Method, Request, StatusCode};
use serde::de::DeserializeOwned;

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::query::{self, Query};
use crate::state::Api;
use crate::{containers, create, exec, images, images_io, networks, system, volumes, wait};
use crate::{API_VERSION, MIN_API_VERSION};

/// A JSON body larger than this is refused (they are small; uploads of
/// tars stream through [`crate::body::reader`] instead).
const MAX_BODY: usize = 16 << 20;

/// One request, taken apart.
pub struct Ctx {
    pub api: Arc<Api>,
    /// The minor API version the client asked for (1.`minor`).
    pub minor: u32,
    pub query: Query,
    pub headers: HeaderMap,
    body: Option<Incoming>,
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Ctx {
    pub async fn body_bytes(&mut self) -> Result<Bytes, ApiError> {
        let Some(b) = self.body.take() else {
            return Ok(Bytes::new());
        };
        let limited = http_body_util::Limited::new(b, MAX_BODY);
        Ok(limited
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
            .to_bytes())
    }

    /// The body as it arrives, for uploads too large to gather.
    pub fn take_body(&mut self) -> Option<Incoming> {
        self.body.take()
    }

    /// The JSON body; an empty one is `{}` (docker's clients send none for
    /// optional bodies).
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let b = self.body_bytes().await?;
        let b: &[u8] = if b.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &b
        };
        serde_json::from_slice(b)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
    }
}

fn parse_version(v: &str) -> Option<u32> {
    let minor = v.strip_prefix("1.")?;
    minor.parse().ok()
}

pub(crate) fn minor_of(v: &str) -> u32 {
    parse_version(v).unwrap_or(0)
}

/// Splits `/v1.41/containers/json` into the version and the segments.
pub(crate) fn split_path(path: &str) -> (Option<&str>, Vec<String>) {
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut version = None;
    if let Some(v) = segs.first().and_then(|s| s.strip_prefix('v')) {
        if parse_version(v).is_some() {
            version = Some(v);
            segs.remove(0);
        }
    }
    (version, segs.into_iter().map(query::decode_path).collect())
}

pub async fn handle(api: Arc<Api>, mut req: Request<Incoming>) -> Response {
    let upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let (version, segs) = split_path(parts.uri.path());
    let step = berth_engine::timing::on().then(|| {
        let what = format!(
            "api: {} {}",
            parts.method,
            segs.last().map_or("", |s| s.as_str())
        );
        berth_engine::timing::mark(&what);
        what
    });
    let mut resp = match version.map(check_version).transpose() {
        Err(e) => error(e),
        Ok(v) => {
            let ctx = Ctx {
                api,
                minor: v.unwrap_or_else(crate::api_minor),
                query: Query::parse(parts.uri.query()),
                headers: parts.headers,
                body: Some(body),
                upgrade,
            };
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            match route(ctx, &parts.method, &segs).await {
                Ok(r) => r,
                Err(e) => error(e),
            }
        }
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", header::HeaderValue::from_static(API_VERSION));
    h.insert(
        "Docker-Experimental",
        header::HeaderValue::from_static("false"),
    );
    h.insert("Ostype", header::HeaderValue::from_static("linux"));
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "Docker/{} (linux) berth/{}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    )) {
        h.insert(header::SERVER, v);
    }
    if let Some(what) = step {
        berth_engine::timing::mark(&format!("{what}: answered {}", resp.status().as_u16()));
    }
    resp
}

pub(crate) fn check_version(v: &str) -> Result<u32, ApiError> {
    let (want, max, min) = (minor_of(v), crate::api_minor(), minor_of(MIN_API_VERSION));
    if want > max {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if want < min {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(want)
}

pub fn error(e: ApiError) -> Response {
    body::json(e.status, &serde_json::json!({ "message": e.message }))
}

async fn route(ctx: Ctx, method: &Method, segs: &[&str]) -> Result<Response, ApiError> {
    use Method as M;
    let get = method == M::GET || method == M::HEAD;
    let post = method == M::POST;
    let delete = method == M::DELETE;
    match segs {
        ["_ping"] if get => Ok(system::ping(method == M::HEAD)),
        ["version"] if get => system::version(ctx).await,
        ["info"] if get => system::info(ctx).await,
        ["events"] if get => crate::events::events(ctx).await,
        ["system", "df"] if get => system::df(ctx).await,
        ["containers", "json"] if get => containers::list(ctx).await,
        ["containers", "create"] if post => create::create(ctx).await,
        ["containers", "prune"] if post => containers::prune(ctx).await,
        ["containers", id] if delete => containers::remove(ctx, id).await,
        ["containers", id, op] => {
            let id = id.to_string();
            match (*op, method) {
                ("json", _) if get => containers::inspect(ctx, id).await,
                ("logs", _) if get => crate::logs::logs(ctx, id).await,
                ("top", _) if get => containers::top(ctx, id).await,
                ("stats", _) if get => crate::stats::stats(ctx, id).await,
                ("changes", _) if get => containers::changes(ctx, id).await,
                ("export", _) if get => containers::export(ctx, id).await,
                ("update", &M::POST) => containers::update(ctx, id).await,
                ("archive", &M::HEAD) => crate::archive::head(ctx, id).await,
                ("archive", &M::GET) => crate::archive::get(ctx, id).await,
                ("archive", &M::PUT) => crate::archive::put(ctx, id).await,
                ("start", &M::POST) => containers::start(ctx, id).await,
                ("stop", &M::POST) => containers::stop(ctx, id).await,
                ("restart", &M::POST) => containers::restart(ctx, id).await,
                ("kill", &M::POST) => containers::kill(ctx, id).await,
                ("wait", &M::POST) => wait::wait(ctx, id).await,
                ("pause", &M::POST) => containers::pause(ctx, id, true).await,
                ("unpause", &M::POST) => containers::pause(ctx, id, false).await,
                ("rename", &M::POST) => containers::rename(ctx, id).await,
                ("resize", &M::POST) => containers::resize(ctx, id).await,
                ("attach", &M::POST) => crate::streams::attach(ctx, id).await,
                ("exec", &M::POST) => exec::create(ctx, id).await,
                _ => Err(not_found()),
            }
        }
        ["containers", id, "attach", "ws"] if method == M::GET => {
            crate::websocket::attach(ctx, id.to_string()).await
        }
        ["exec", id, "start"] if post => exec::start(ctx, id.to_string()).await,
        ["exec", id, "resize"] if post => exec::resize(ctx, id.to_string()).await,
        ["exec", id, "json"] if get => exec::inspect(ctx, id.to_string()).await,
        ["images", "json"] if get => images::list(ctx).await,
        ["images", "create"] if post => images::create(ctx).await,
        ["images", "load"] if post => images_io::load(ctx).await,
        ["images", "prune"] if post => images::prune(ctx).await,
        ["images", "get"] if get => {
            let names = ctx.query.all("names");
            images_io::get(ctx, names).await
        }
        ["commit"] if post => images_io::commit(ctx).await,
        ["auth"] if post => images::auth(ctx).await,
        ["build"] if post => crate::build::build(ctx).await,
        ["build", "prune"] if post => crate::build::prune(ctx).await,
        ["images", "search"] if get => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "image search is not supported by berth",
        )),
        // Image names hold slashes: the verb is the last segment.
        ["images", name @ .., "json"] if get && !name.is_empty() => {
            images::inspect(ctx, name.join("/")).await
        }
        ["images", name @ .., "history"] if get && !name.is_empty() => {
            images::history(ctx, name.join("/")).await
        }
        ["images", name @ .., "get"] if get && !name.is_empty() => {
            images_io::get(ctx, vec![name.join("/")]).await
        }
        ["images", name @ .., "push"] if post && !name.is_empty() => {
            images::push(ctx, name.join("/")).await
        }
        ["images", name @ .., "tag"] if post && !name.is_empty() => {
            images::tag(ctx, name.join("/")).await
        }
        ["images", name @ ..] if delete && !name.is_empty() => {
            images::remove(ctx, name.join("/")).await
        }
        ["volumes"] if get => volumes::list(ctx).await,
        ["volumes", "create"] if post => volumes::create(ctx).await,
        ["volumes", "prune"] if post => volumes::prune(ctx).await,
        ["volumes", name] if get => volumes::inspect(ctx, name.to_string()).await,
        ["volumes", name] if delete => volumes::remove(ctx, name.to_string()).await,
        ["networks"] if get => networks::list(ctx).await,
        ["networks", "create"] if post => networks::create(ctx).await,
        ["networks", "prune"] if post => networks::prune(ctx).await,
        ["networks", id] if get => networks::inspect(ctx, id.to_string()).await,
        ["networks", id] if delete => networks::remove(ctx, id.to_string()).await,
        ["networks", id, "connect"] if post => networks::connect(ctx, id.to_string()).await,
        ["networks", id, "disconnect"] if post => networks::disconnect(ctx, id.to_string()).await,
        _ => Err(not_found()),
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stripped_and_checked() {
        let (v, s) = split_path("/v1.41/containers/a%2Fb/json");
        assert_eq!(v, Some("1.41"));
        assert_eq!(s, ["containers", "a/b", "json"]);
        let (v, s) = split_path("/images/docker.io/library/bb:latest/json");
        assert_eq!(v, None);
        assert_eq!(s, ["images", "docker.io", "library", "bb:latest", "json"]);
        assert_eq!(check_version("1.40").unwrap(), 40);
        assert_eq!(check_version("1.49").unwrap(), 49);
        let e = check_version("1.50").unwrap_err();
        assert!(e.message.contains("too new"), "{}", e.message);
        assert!(check_version("1.39")
            .unwrap_err()
            .message
            .contains("too old"));
    }
}
