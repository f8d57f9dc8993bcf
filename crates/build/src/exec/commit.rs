//! Turning a step's result into an image in the store: the parent's
//! manifest and config, the step's runtime config, one more history entry
//! and at most one more layer. Every step's image is recorded (docker's
//! classic builder does the same): it is what the next RUN starts a
//! container from and what the cache points at.

use std::io::Write;

use berth_image::content::{ContentWriter, Ingester};
use berth_image::digest::HashingWriter;
use berth_image::layer::Compression;
use berth_image::store::{Image, Store, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST};
use berth_image::Digest;
use serde_json::{json, Value};

use super::error::{io_err, Result};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The image a stage is at: the store's record (none yet for a fresh
/// `FROM scratch`) and its full config.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub image: Option<Image>,
    pub config: Value,
}

impl Current {
    /// `FROM scratch`: no layers, no settings.
    pub fn scratch() -> Current {
        let p = crate::plan::Platform::host();
        let mut config = json!({
            "architecture": p.architecture,
            "os": p.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = p.variant {
            config["variant"] = json!(v);
        }
        Current {
            image: None,
            config,
        }
    }

    pub fn of(store: &Store, image: Image) -> Result<Current> {
        let config = store.config(&image)?;
        Ok(Current {
            image: Some(image),
            config,
        })
    }

    /// The runtime config (`config` of the image config), an object.
    pub fn runtime(&self) -> serde_json::Map<String, Value> {
        match &self.config["config"] {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        }
    }

    pub fn id(&self) -> Option<&Digest> {
        self.image.as_ref().map(|i| &i.id)
    }

    pub fn history(&self) -> Vec<Value> {
        self.config["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn diff_ids(&self) -> Vec<Digest> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
            .collect()
    }

    fn manifest(&self, store: &Store) -> Result<Value> {
        match &self.image {
            Some(i) => {
                let bytes = berth_image::content::read_blob(store.content(), &i.manifest)?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    super::error::BuildError::Invalid(format!("image {}: bad manifest: {e}", i.id))
                })
            }
            None => Ok(json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST, "layers": []})),
        }
    }

    /// The layer descriptors of the manifest (for reusing a layer of a
    /// `--cache-from` image).
    pub fn layer_descriptors(&self, store: &Store) -> Result<Vec<Value>> {
        Ok(self.manifest(store)?["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// What a step adds as its layer.
pub(crate) enum Layer<'a> {
    None,
    /// A tar written to the given stream, compressed here.
    Write(&'a mut dyn FnMut(&mut dyn Write) -> Result<()>),
    /// A blob already in the store (from a `--cache-from` image).
    Reuse {
        descriptor: Value,
        diff_id: Digest,
    },
}

/// Records the image `parent` plus `runtime` config, `history` and
/// `layer`. `created` is the RFC 3339 time the config and history carry.
pub(crate) fn child(
    store: &Store,
    parent: &Current,
    runtime: serde_json::Map<String, Value>,
    mut history: Value,
    layer: Layer<'_>,
    created: &str,
) -> Result<Current> {
    let mut man = parent.manifest(store)?;
    let docker = man["mediaType"].as_str() == Some(DOCKER_MANIFEST);
    let mut cfg = parent.config.clone();
    cfg["created"] = json!(created);
    cfg["config"] = Value::Object(runtime);
    history["created"] = json!(created);
    let lease = store.lease()?;
    let result = (|| {
        let added = match layer {
            Layer::None => None,
            Layer::Write(write) => {
                let writer = store.content().writer()?;
                let gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
                let mut hashing = HashingWriter::new(gz);
                write(&mut hashing)?;
                let (gz, d) = hashing.into_inner();
                let writer: Box<dyn ContentWriter> =
                    gz.finish().map_err(io_err("compressing the layer"))?;
                lease.add_blob(&writer.status().digest)?;
                let blob = writer.commit(None, None)?;
                let media = if docker {
                    DOCKER_LAYER_GZIP
                } else {
                    Compression::Gzip.media_type()
                };
                Some((
                    json!({"mediaType": media, "digest": blob.digest.as_str(), "size": blob.size}),
                    d.digest(),
                ))
            }
            Layer::Reuse {
                descriptor,
                diff_id,
            } => {
                if let Some(d) = descriptor["digest"]
                    .as_str()
                    .and_then(|s| Digest::parse(s).ok())
                {
                    lease.add_blob(&d)?;
                }
                Some((descriptor, diff_id))
            }
        };
        // A change that changed nothing is no layer (docker drops the
        // empty tar too); its blob is left to garbage collection.
        let empty_tar = Digest::of(&[0u8; 1024]);
        let added = added.filter(|(_, d)| *d != empty_tar);
        if added.is_none() {
            history["empty_layer"] = json!(true);
        }
        if let Some((descriptor, diff_id)) = added {
            push(&mut man, "layers", descriptor);
            push(&mut cfg["rootfs"], "diff_ids", json!(diff_id.as_str()));
        }
        push(&mut cfg, "history", history);
        let config = serde_json::to_vec(&cfg).expect("json values serialize");
        man["config"] = json!({
            "mediaType": if docker { DOCKER_CONFIG } else { MEDIA_TYPE_CONFIG },
            "digest": Digest::of(&config).as_str(),
            "size": config.len(),
        });
        let manifest = serde_json::to_vec(&man).expect("json values serialize");
        let image = store.register_in(&lease, &manifest, &config, &[])?;
        Ok(Current {
            image: Some(image),
            config: cfg,
        })
    })();
    match result {
        Ok(c) => {
            lease.release()?;
            Ok(c)
        }
        Err(e) => {
            if let Err(undo) = lease.collect() {
                tracing::warn!(error = %undo, "could not take back a failed build step");
            }
            Err(e)
        }
    }
}

/// Records `current` as an image if it is not one yet (a `FROM scratch`
/// stage before its first step): a RUN needs an image to start from.
pub(crate) fn materialize(store: &Store, current: &Current) -> Result<Image> {
    if let Some(i) = &current.image {
        return Ok(i.clone());
    }
    let config = serde_json::to_vec(&current.config).expect("json values serialize");
    let man = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": Digest::of(&config).as_str(), "size": config.len()},
        "layers": [],
    });
    let manifest = serde_json::to_vec(&man).expect("json values serialize");
    Ok(store.register(&manifest, &config, &[])?)
}

fn push(obj: &mut Value, key: &str, v: Value) {
    match obj.get_mut(key).and_then(Value::as_array_mut) {
        Some(list) => list.push(v),
        None => obj[key] = json!([v]),
    }
}
