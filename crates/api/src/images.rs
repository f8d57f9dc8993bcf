//! The image endpoints: list, inspect, history, tag, remove, and create
//! (a pull, streamed as docker's JSON progress messages).

use base64::Engine as _;
use berth_image::store::Removed;
use berth_registry::progress::Event;
use berth_registry::Credentials;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

fn open(e: &berth_engine::Engine) -> berth_engine::Result<berth_image::store::Store> {
    berth_engine::images::open(&e.paths)
}

pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    let mut filters = ctx
        .query
        .filters_with(|p| berth_engine::filters::ImageFilters::parse(p))?;
    // A build's untagged step images are hidden unless asked for, as
    // dockerd hides its intermediate images.
    let all = ctx.query.flag("all");
    let parents = crate::build::lineage(&ctx.api).await?;
    // An untagged image: no names from API 1.43 on; before, dockerd's
    // placeholders, which older clients look for (with either missing,
    // docker's CLI shows nothing of the image).
    let none_names = ctx.minor < 43;
    let v = ctx
        .api
        .blocking(move |e| {
            let store = open(e)?;
            filters.resolve(|name| Ok(berth_engine::images::find(&store, name)?.created))?;
            let intermediate: std::collections::HashSet<&String> = parents.values().collect();
            let mut out = Vec::new();
            for i in store.images().map_err(berth_engine::Error::from)? {
                let id = i.id.to_string();
                if !all && i.tags.is_empty() && intermediate.contains(&id) {
                    continue;
                }
                let cfg = store.config(&i).map_err(berth_engine::Error::from)?;
                let img_labels = cfg["config"]["Labels"].clone();
                // An image passes `reference` by any of its names (dockerd
                // lists it whole, with all its tags).
                let ref_ok = filters.references.is_empty()
                    || i.tags.iter().any(|t| filters.names(&t.familiar_name(), t.tag().unwrap_or("")));
                if !ref_ok || !filters.matches(i.created, !i.tags.is_empty(), || &img_labels) {
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
                let (tags, digests) = if none_names && tags.is_empty() && digests.is_empty() {
                    (vec!["<none>:<none>".to_string()], vec!["<none>@<none>".to_string()])
                } else {
                    (tags, digests)
                };
                out.push(json!({
                    "ParentId": parents.get(&id).map(String::as_str).unwrap_or(""),
                    "Id": id,
                    "RepoTags": tags,
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
    if ctx.query.flag("manifests") {
        return Err(ApiError::bad_request(
            "image inspect with manifests is not supported by berth (one platform per image)",
        ));
    }
    let platform = match ctx.query.get("platform").filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(Platform::parse(p)?),
    };
    let shown = name.clone();
    let parents = crate::build::lineage(&ctx.api).await?;
    let i = ctx
        .api
        .blocking(move |e| {
            let store = open(e)?;
            let image = find(&store, &name)?;
            berth_engine::image_ops::inspect(&store, &image, &parents)
        })
        .await?;
    // API 1.49 picks a variant of a multi-platform image; berth keeps one
    // platform per image, so any other is not there, as dockerd says of a
    // single-platform image.
    if let Some(p) = platform.filter(|p| !p.matches(&i)) {
        return Err(ApiError::not_found(format!(
            "image with reference {shown} was found but does not provide the specified platform ({p})"
        )));
    }
    let container_config = i.container_config.clone();
    let mut v = serde_json::to_value(i).map_err(|e| ApiError::internal(e.to_string()))?;
    // dockerd stopped sending it in API 1.45, which broke every recreate
    // of docker-compose 1.29 (it negotiates the newest version and reads
    // the field); a field more harms no client.
    v["ContainerConfig"] = container_config;
    Ok(body::json(StatusCode::OK, &v))
}

/// An OCI platform as the API sends it: `{"os": ..., "architecture": ...,
/// "variant": ...}`, each part optional.
#[derive(Debug, Default, serde::Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: String,
}

impl Platform {
    fn parse(s: &str) -> Result<Platform, ApiError> {
        serde_json::from_str(s)
            .map_err(|e| ApiError::bad_request(format!("invalid platform {s:?}: {e}")))
    }

    fn matches(&self, i: &berth_engine::image_ops::ImageInspect) -> bool {
        (self.os.is_empty() || self.os == i.os)
            && (self.architecture.is_empty() || self.architecture == i.architecture)
            && (self.variant.is_empty() || Some(&self.variant) == i.variant.as_ref())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

pub async fn history(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    let parents = crate::build::lineage(&ctx.api).await?;
    let v = ctx
        .api
        .blocking(move |e| {
            let store = open(e)?;
            let image = find(&store, &name)?;
            let rows = berth_engine::image_ops::history(&store, &image, &parents)?;
            // Each row with an id is that image's: its own tags.
            let tags = |id: &berth_image::Digest| -> Value {
                let t = store.image(id.as_str()).map(|i| i.tags).unwrap_or_default();
                json!(t.iter().map(|t| t.familiar()).collect::<Vec<_>>())
            };
            Ok(rows
                .into_iter()
                .map(|h| {
                    json!({
                        "Id": h.id.as_ref().map_or_else(|| "<missing>".to_string(), |d| d.to_string()),
                        "Created": h.created.map_or(0, |t| t.timestamp()),
                        "CreatedBy": h.created_by,
                        "Tags": h.id.as_ref().map_or(Value::Null, tags),
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
        .blocking(move |e| berth_engine::image_ops::tag(e, &open(e)?, &name, &target))
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
    Ok(body::json(
        StatusCode::OK,
        &Value::Array(removed_json(&removed)),
    ))
}

fn removed_json(removed: &[Removed]) -> Vec<Value> {
    removed
        .iter()
        .map(|r| match r {
            Removed::Untagged(t, _) => json!({"Untagged": t.familiar()}),
            Removed::Deleted(d) => json!({"Deleted": d.to_string()}),
        })
        .collect()
}

/// `POST /images/prune`: dangling images, or with `dangling=false` every
/// image no container uses; by label and `until` too.
pub async fn prune(ctx: Ctx) -> Result<Response, ApiError> {
    let (f, own) = ctx.query.prune_filters("image", true, &["dangling"])?;
    let all = match own.get("dangling").map(Vec::as_slice) {
        None => false,
        Some([v]) if matches!(v.as_str(), "true" | "1") => false,
        Some([v]) if matches!(v.as_str(), "false" | "0") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'dangling={}': want true or false",
                v.join(",")
            )))
        }
    };
    let parents = crate::build::lineage(&ctx.api).await?;
    let (removed, bytes) = ctx
        .api
        .blocking(move |e| {
            // The server's store, kept open between calls.
            let store = e.store()?;
            berth_engine::image_ops::prune(e, &store, all, &f, &parents)
        })
        .await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({"ImagesDeleted": removed_json(&removed), "SpaceReclaimed": bytes}),
    ))
}

/// The credentials a client sent in `X-Registry-Auth` (base64url JSON,
/// docker's AuthConfig): user and password, or `auth` as base64
/// `user:password`. An empty header or `{}` means none: the server's own
/// docker config is used then. Tokens are refused by name.
pub fn registry_auth(ctx: &Ctx) -> Result<Option<Credentials>, ApiError> {
    match ctx.headers.get("X-Registry-Auth") {
        Some(h) => registry_auth_header(h.as_bytes()),
        None => Ok(None),
    }
}

/// [`registry_auth`] on the header's value.
pub(crate) fn registry_auth_header(raw: &[u8]) -> Result<Option<Credentials>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let trimmed: Vec<u8> = raw.iter().copied().filter(|b| *b != b'=').collect();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&trimmed))
        .map_err(|_| ApiError::bad_request("X-Registry-Auth is not base64"))?;
    let v: Value = serde_json::from_slice(&json)
        .map_err(|_| ApiError::bad_request("X-Registry-Auth is not JSON"))?;
    auth_config(&v)
}

/// docker's AuthConfig object (also `POST /auth`'s body).
pub fn auth_config(v: &Value) -> Result<Option<Credentials>, ApiError> {
    if !(v.is_object() || v.is_null()) {
        return Err(ApiError::bad_request(
            "the auth config must be a JSON object",
        ));
    }
    let field = |k: &str| v[k].as_str().filter(|s| !s.is_empty());
    for k in ["identitytoken", "registrytoken"] {
        if field(k).is_some() {
            return Err(ApiError::bad_request(format!(
                "{k} in the auth config is not supported by berth: send username and password"
            )));
        }
    }
    if let Some(a) = field("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a)
            .map_err(|_| ApiError::bad_request("auth in the auth config is not base64"))?;
        let text = String::from_utf8_lossy(&raw);
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| ApiError::bad_request("auth in the auth config is not user:password"))?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    match (field("username"), field("password")) {
        (None, None) => Ok(None),
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })),
        _ => Err(ApiError::bad_request(
            "the auth config needs both username and password",
        )),
    }
}

/// A registry client with the server's configuration, using `creds` for
/// `reference`'s registry when the client sent some.
fn client_for(
    creds: Option<Credentials>,
    reference: &berth_image::Reference,
) -> berth_engine::Result<berth_registry::Client> {
    let client = berth_engine::pull::client()?;
    if let Some(c) = creds {
        client.set_credentials(reference.domain(), c);
    }
    Ok(client)
}

fn short(d: &berth_image::Digest) -> String {
    let s = d.to_string();
    let hex = s.split_once(':').map_or(s.as_str(), |(_, h)| h);
    hex[..hex.len().min(12)].to_string()
}

/// docker's message for one progress event of a pull (or a push).
fn progress_json(e: &Event, push: bool) -> Option<Value> {
    let status = |s: &str, d: &berth_image::Digest| {
        Some(json!({"status": s, "progressDetail": {}, "id": short(d)}))
    };
    match e {
        Event::Resolving { .. } => None,
        Event::Resolved { .. } => None,
        Event::Waiting { layer } if push => status("Preparing", layer),
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
        Event::Done { layer } if push => status("Pushed", layer),
        Event::Done { layer } => status("Pull complete", layer),
        Event::Exists { layer } if push => status("Layer already exists", layer),
        Event::Exists { layer } => status("Already exists", layer),
        Event::Retrying { layer, offset } => Some(json!({
            "status": format!("Retrying from byte {offset}"),
            "progressDetail": {},
            "id": short(layer),
        })),
    }
}

pub async fn create(ctx: Ctx) -> Result<Response, ApiError> {
    let q = &ctx.query;
    if q.get("fromSrc").is_some_and(|s| !s.is_empty()) {
        return crate::images_io::import(ctx).await;
    }
    for k in ["repo", "message", "changes"] {
        if q.get(k).is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "images/create: {k} goes with fromSrc (an import), not with a pull"
            )));
        }
    }
    let creds = registry_auth(&ctx)?;
    let from = q
        .get("fromImage")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("images/create needs fromImage or fromSrc"))?;
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_string(),
    };
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(String::from);
    Ok(body::json_job(
        &ctx.api,
        || {},
        move |e, send| {
            let store = open(e)?;
            let before = store.image(&name).ok().map(|i| i.id);
            let reference = berth_image::Reference::parse(&name)
                .map_err(|e| berth_engine::Error::Image(e.into()))?;
            let client = client_for(creds, &reference)?;
            send(json!({
                "status": format!("Pulling from {}", reference.familiar_name()),
                "id": reference.tag().unwrap_or("latest"),
            }));
            let sink = |ev: Event| {
                if let Some(v) = progress_json(&ev, false) {
                    send(v);
                }
            };
            let (reference, pulled) =
                berth_engine::pull::pull(e, &client, &store, &name, platform.as_deref(), &sink)?;
            send(json!({"status": format!("Digest: {}", pulled.digest)}));
            let fresh = before.as_ref() != Some(&pulled.image.id);
            send(json!({"status": format!(
                "Status: {} for {}",
                if fresh { "Downloaded newer image" } else { "Image is up to date" },
                reference.familiar()
            )}));
            Ok(())
        },
    ))
}

/// `POST /images/{name}/push?tag=T`: docker's push progress stream.
pub async fn push(ctx: Ctx, name: String) -> Result<Response, ApiError> {
    let creds = registry_auth(&ctx)?;
    let name = match ctx.query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name,
    };
    let reference = berth_image::Reference::parse(&name)
        .map_err(|e| ApiError::from(berth_engine::Error::Image(e.into())))?;
    Ok(body::json_job(
        &ctx.api,
        || {},
        move |e, send| {
            let store = open(e)?;
            let client = client_for(creds, &reference)?;
            send(json!({"status": format!(
                "The push refers to repository [{}]",
                reference.name().trim_start_matches("docker.io/")
            )}));
            let sink = |ev: Event| {
                if let Some(v) = progress_json(&ev, true) {
                    send(v);
                }
            };
            let (reference, image, digest) =
                berth_engine::pull::push(e, &client, &store, &reference.to_string(), &sink)?;
            let size = berth_image::content::read_blob(store.content(), &image.manifest)
                .map(|b| b.len())
                .unwrap_or(0);
            let tag = reference.tag().unwrap_or("latest");
            send(json!({"status": format!("{tag}: digest: {digest} size: {size}")}));
            send(
                json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest.to_string(), "Size": size}}),
            );
            Ok(())
        },
    ))
}

/// `POST /auth`: checks the credentials against the registry, as
/// dockerd does; the client keeps them (nothing is stored here).
pub async fn auth(mut ctx: Ctx) -> Result<Response, ApiError> {
    let v: Value = ctx.json().await?;
    let creds = auth_config(&v)?
        .ok_or_else(|| ApiError::bad_request("auth needs a username and password"))?;
    let server = v["serveraddress"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("docker.io")
        .to_string();
    ctx.api
        .blocking(move |_| {
            let client = berth_engine::pull::client()?;
            let registry = berth_registry::normalize_registry(&server);
            client.check_login(&registry, &creds)?;
            Ok(())
        })
        .await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_matches_the_parts_it_names() {
        let i = berth_engine::image_ops::ImageInspect {
            id: String::new(),
            repo_tags: vec![],
            repo_digests: vec![],
            parent: String::new(),
            comment: String::new(),
            created: String::new(),
            docker_version: String::new(),
            author: String::new(),
            config: Value::Null,
            container_config: Value::Null,
            architecture: "amd64".into(),
            variant: None,
            os: "linux".into(),
            size: 0,
            graph_driver: Value::Null,
            rootfs: Value::Null,
            metadata: Value::Null,
        };
        let p = |s: &str| Platform::parse(s).unwrap();
        assert!(p(r#"{"os":"linux","architecture":"amd64"}"#).matches(&i));
        assert!(p(r#"{"architecture":"amd64"}"#).matches(&i));
        let arm = p(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#);
        assert!(!arm.matches(&i));
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        assert!(!p(r#"{"os":"linux","architecture":"amd64","variant":"v2"}"#).matches(&i));
        assert!(Platform::parse("linux/amd64")
            .unwrap_err()
            .message
            .contains("invalid platform"));
    }

    #[test]
    fn progress_reads_as_dockers() {
        let d = berth_image::Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let v = progress_json(
            &Event::Downloading {
                layer: d.clone(),
                done: 5,
                total: 10,
            },
            false,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"status": "Downloading", "progressDetail": {"current": 5, "total": 10}, "id": "abababababab"})
        );
        assert_eq!(
            progress_json(&Event::Done { layer: d.clone() }, false).unwrap()["status"],
            "Pull complete"
        );
        assert_eq!(
            progress_json(&Event::Done { layer: d }, true).unwrap()["status"],
            "Pushed"
        );
    }
}
