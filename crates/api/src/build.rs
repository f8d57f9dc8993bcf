//! `POST /build`: the classic builder. The body is the context as a tar
//! (the Dockerfile inside it, named by `dockerfile`); the build crate
//! runs it; the answer streams its transcript as docker's JSON messages
//! (`{"stream": ...}`, `{"aux": {"ID": ...}}`, then the error if any).
//! BuildKit sessions (`version=2`) and a remote context are refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_build::exec::transcript::{Line, Transcript};
use berth_build::exec::{self, BuildOptions, Event};
use berth_engine::hostconfig as hc;
use berth_engine::Network;
use berth_image::Reference;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiError;
use crate::router::Ctx;

type R<T> = Result<T, ApiError>;

/// A query parameter holding JSON (`buildargs`, `labels`, `cachefrom`).
fn json_param(ctx: &Ctx, k: &str) -> R<Option<Value>> {
    match ctx.query.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => serde_json::from_str(v)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("invalid {k}: {e}"))),
    }
}

/// `{"K": "V"}`; docker's build args may be null (taken from nowhere,
/// so left out).
fn string_map(ctx: &Ctx, k: &str) -> R<BTreeMap<String, String>> {
    let Some(v) = json_param(ctx, k)? else {
        return Ok(BTreeMap::new());
    };
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("invalid {k}: want an object")))?;
    let mut out = BTreeMap::new();
    for (key, val) in obj {
        match val {
            Value::Null => {}
            Value::String(s) => {
                out.insert(key.clone(), s.clone());
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid {k}: {key} is not a string"
                )))
            }
        }
    }
    Ok(out)
}

/// The limits of RUN containers docker's build query gives (0 unset).
fn limits(ctx: &Ctx) -> R<hc::HostConfig> {
    let q = &ctx.query;
    let int = |k: &str| -> R<i64> { Ok(q.int(k)?.unwrap_or(0)) };
    let text = |k: &str| q.get(k).unwrap_or_default().to_string();
    let h = hc::HostConfig {
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpuset_cpus: text("cpusetcpus"),
        cpuset_mems: text("cpusetmems"),
        cpu_period: int("cpuperiod")?,
        cpu_quota: int("cpuquota")?,
        ..Default::default()
    };
    hc::validate(&h)?;
    hc::check_host(&h, &hc::HostLimits::probe())?;
    Ok(h)
}

/// What docker's build query asks for, as the build crate's options.
fn options(ctx: &Ctx) -> R<BuildOptions> {
    let q = &ctx.query;
    if q.get("version").is_some_and(|v| v == "2") {
        return Err(ApiError::bad_request(
            "BuildKit builds (version=2) are not supported by berth: use the classic builder (DOCKER_BUILDKIT=0)",
        ));
    }
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "a remote build context is not supported by berth: send the context as a tar",
        ));
    }
    // Resource limits of RUN steps, and other things berth's builder
    // does not offer: refused when set.
    for k in ["isolation", "session", "outputs"] {
        if q.get(k).is_some_and(|v| !v.is_empty() && v != "0") {
            return Err(ApiError::bad_request(format!(
                "build {k} is not supported by berth"
            )));
        }
    }
    let mut tags = Vec::new();
    for t in q.all("t") {
        let r = Reference::parse(&t)
            .map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?;
        if r.digest().is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid tag {t:?}: a tag cannot hold a digest"
            )));
        }
        tags.push(r);
    }
    let build_args = string_map(ctx, "buildargs")?;
    let source_date_epoch = match build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) if !v.is_empty() => Some(v.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a number of seconds"
            ))
        })?),
        _ => None,
    };
    let cache_from = match json_param(ctx, "cachefrom")? {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?,
    };
    // docker's client sends "default": RUN steps get the default network.
    let network = match q.get("networkmode").filter(|n| !n.is_empty()) {
        None => Network::parse("default")?,
        Some(n) => Network::parse(n)?,
    };
    let add_hosts: Vec<String> = q
        .get("extrahosts")
        .map(|h| {
            h.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut ulimits: Vec<hc::Ulimit> = Vec::new();
    if let Some(v) = json_param(ctx, "ulimits")? {
        for u in v.as_array().into_iter().flatten() {
            let (Some(name), Some(soft), Some(hard)) =
                (u["Name"].as_str(), u["Soft"].as_i64(), u["Hard"].as_i64())
            else {
                return Err(ApiError::bad_request(
                    "invalid ulimits: want [{\"Name\", \"Soft\", \"Hard\"}]",
                ));
            };
            let u = hc::parse_ulimit(&format!("{name}={soft}:{hard}"))?;
            ulimits.retain(|x| x.name != u.name);
            ulimits.push(u);
        }
    }
    Ok(BuildOptions {
        tags,
        build_args,
        target: q.get("target").filter(|t| !t.is_empty()).map(String::from),
        no_cache: q.flag("nocache"),
        pull: q.flag("pull"),
        cache_from,
        labels: string_map(ctx, "labels")?,
        network,
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(String::from),
        secrets: BTreeMap::new(),
        add_hosts,
        shm_size: q.int("shmsize")?.unwrap_or(0),
        ulimits,
        source_date_epoch,
        squash: q.flag("squash"),
        limits: limits(ctx)?,
    })
}

fn stream(text: &[u8]) -> Value {
    json!({ "stream": String::from_utf8_lossy(text) })
}

pub async fn build(mut ctx: Ctx) -> R<Response> {
    let opts = options(&ctx)?;
    let quiet = ctx.query.flag("q");
    let dockerfile = ctx
        .query
        .get("dockerfile")
        .filter(|d| !d.is_empty())
        .map(String::from);
    let body = ctx
        .take_body()
        .ok_or_else(|| ApiError::bad_request("build needs the context as a tar body"))?;
    let (mut reader, feed) = body::reader(body);
    let cancel = Arc::new(exec::Cancel::new());
    let job_cancel = cancel.clone();
    let api = ctx.api.clone();
    let on_gone = move || {
        // The client left: the build is cancelled (its step containers
        // killed), as docker does.
        cancel.cancel(&api.engine);
    };
    Ok(body::json_job(&ctx.api, on_gone, move |e, send| {
        // The upload is read to its end (or failure) by then.
        let _feed = FeedGuard(feed);
        let scratch = e.paths.runroot.join("build");
        let input =
            exec::load("-", dockerfile.as_deref(), &mut reader, &scratch).map_err(build_err)?;
        let transcript = Mutex::new(Transcript::new(|l: Line<'_>| match l {
            // docker's daemon sends warnings in the stream too.
            Line::Warning(w) => send(stream(format!("[Warning] {w}\n").as_bytes())),
            Line::Text(_) if quiet => {}
            Line::Text(t) => send(stream(t)),
        }));
        let events = |ev: Event| crate::state::lock(&transcript).handle(ev);
        let result = exec::build(e, &input, &opts, &events, &job_cancel);
        crate::state::lock(&transcript).finish();
        let built = result.map_err(build_err)?;
        let id = built.image.id.to_string();
        send(json!({"aux": {"ID": id}}));
        if quiet {
            send(json!({"stream": format!("{id}\n")}));
        } else {
            send(json!({"stream": format!(
                "Successfully built {}\n",
                &built.image.id.hex()[..12]
            )}));
            for t in &built.tags {
                send(json!({"stream": format!("Successfully tagged {}\n", t.familiar())}));
            }
        }
        Ok(())
    }))
}

/// Stops feeding the upload when the build is over.
struct FeedGuard(tokio::task::JoinHandle<()>);

impl Drop for FeedGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A build failure as the engine's error: only its message is used (the
/// answer is already streaming when a build fails).
fn build_err(e: exec::BuildError) -> berth_engine::Error {
    berth_engine::Error::InvalidArgument(e.to_string())
}

/// Which image each built image was built from (the build cache's
/// lineage): what the image list hides and `image prune` keeps by.
pub async fn lineage(api: &Arc<crate::state::Api>) -> R<berth_engine::image_ops::Parents> {
    let api = api.clone();
    tokio::task::spawn_blocking(move || exec::lineage(&api.engine.paths.db()))
        .await
        .map_err(|e| ApiError::internal(format!("reading the build cache failed: {e}")))?
        .map_err(|e| ApiError::new(crate::error::status_of(e.kind()), e.to_string()))
}

/// `POST /build/prune` (`docker builder prune`, and `docker system prune`
/// after the rest): berth's build cache is the images its build steps
/// made, so this removes those no tag and no container keeps (with `all`;
/// without, those of builds whose images are gone), as docker's
/// `CachesDeleted` (their ids). A storage budget to keep is not offered.
pub async fn prune(ctx: Ctx) -> R<Response> {
    for k in [
        "keep-storage",
        "reserved-space",
        "max-used-space",
        "min-free-space",
    ] {
        if ctx.query.int(k)?.is_some_and(|n| n != 0) {
            return Err(ApiError::bad_request(format!(
                "build prune with {k} is not supported by berth (it removes all unused build cache)"
            )));
        }
    }
    let (filters, _) = ctx.query.prune_filters("build cache", true, &[])?;
    let all = ctx.query.flag("all");
    let api = ctx.api.clone();
    let (ids, bytes) =
        tokio::task::spawn_blocking(move || exec::prune_cache(&api.engine, &filters, all))
            .await
            .map_err(|e| ApiError::internal(format!("build prune failed: {e}")))?
            .map_err(|e| ApiError::new(crate::error::status_of(e.kind()), e.to_string()))?;
    Ok(body::json(
        hyper::StatusCode::OK,
        &json!({"CachesDeleted": ids, "SpaceReclaimed": bytes}),
    ))
}
