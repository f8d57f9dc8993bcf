//! `docker commit`: a container's changes become a new layer and image.
//!
//! The container's upper directory already is its change set, so the cost
//! is the size of the change, never of the image: one walk of the upper
//! directory (overlay whiteouts become OCI ones), gzip into the content
//! store, and that one new layer unpacked as the next snapshot. The parent
//! layers are shared as they are.

use std::io::{self, Write};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{apply_change, Image, Result, Store, StoreError};
use crate::content::{ContentWriter, Ingester};
use crate::layer::{diff, Compression, DiffOptions, LayerError};
use crate::reference::Reference;

/// What `docker commit` takes besides the container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub reference: Option<Reference>,
    /// `-a`
    pub author: Option<String>,
    /// `-m`: the image's comment and its history entry's.
    pub message: Option<String>,
    /// `-c`: instructions applied to the config, in order.
    pub changes: Vec<String>,
    /// What the history entry says made the layer (docker leaves the
    /// container's command here); empty if `None`.
    pub created_by: Option<String>,
    /// Told how many bytes of the change have been read so far.
    pub progress: Option<Progress>,
}

/// A callback for a progress display, given a running byte count.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(u64) + Send + Sync>);

impl Progress {
    pub fn new(f: impl Fn(u64) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(f))
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Counts the bytes written through it for a [`Progress`].
struct Counting<'a, W> {
    inner: W,
    done: u64,
    progress: Option<&'a Progress>,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if let Some(p) = self.progress {
            (p.0)(self.done);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

impl Store {
    /// Commits the changes of the active snapshot `container_key`, which
    /// was prepared from `image` (see [`Store::rootfs`]), as a new image.
    /// Pause or stop the container first for a consistent layer.
    pub fn commit(
        &self,
        image: &Image,
        container_key: &str,
        opts: &CommitOptions,
    ) -> Result<Image> {
        let _span =
            tracing::info_span!("commit", container = container_key, image = %image.id).entered();
        let parent_cfg = self.config(image)?;
        let mut inner = match &parent_cfg["config"] {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        // Bad instructions fail before anything is written.
        for c in &opts.changes {
            apply_change(&mut inner, c)?;
        }
        let upper = self.snapshotter.upper(container_key)?;
        let parent_man: Value =
            serde_json::from_slice(&crate::content::read_blob(&self.content, &image.manifest)?)
                .map_err(|e| StoreError::Corrupt {
                    id: image.id.to_string(),
                    reason: format!("manifest: {e}"),
                })?;

        self.with_lease(|lease| {
            let writer = self.content.writer()?;
            let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
            let counted = Counting {
                inner: &mut gz,
                done: 0,
                progress: opts.progress.as_ref(),
            };
            let applied = diff(&upper, counted, &DiffOptions::default())?;
            let writer: Box<dyn ContentWriter> = gz.finish().map_err(|source| LayerError::Io {
                context: "compressing layer".into(),
                source,
            })?;
            lease.add_blob(&writer.status().digest)?;
            let blob = writer.commit(None, None)?;

            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let mut cfg = parent_cfg.clone();
            cfg["created"] = json!(now);
            cfg["config"] = Value::Object(inner.clone());
            if let Some(a) = &opts.author {
                cfg["author"] = json!(a);
            }
            // The image's comment is this commit's message, as docker's
            // (never the parent's, e.g. an import's "Imported from").
            match &opts.message {
                Some(m) => cfg["comment"] = json!(m),
                None => {
                    if let Some(o) = cfg.as_object_mut() {
                        o.remove("comment");
                    }
                }
            }
            let mut entry =
                json!({"created": now, "created_by": opts.created_by.clone().unwrap_or_default()});
            if let Some(a) = &opts.author {
                entry["author"] = json!(a);
            }
            if let Some(m) = &opts.message {
                entry["comment"] = json!(m);
            }
            push(&mut cfg, "history", entry);
            push(
                &mut cfg["rootfs"],
                "diff_ids",
                json!(applied.diff_id.as_str()),
            );
            let config = serde_json::to_vec(&cfg).expect("json values serialize");

            let mut man = parent_man.clone();
            let docker = man["mediaType"].as_str() == Some(DOCKER_MANIFEST);
            let layer_type = if docker {
                DOCKER_LAYER_GZIP
            } else {
                Compression::Gzip.media_type()
            };
            push(
                &mut man,
                "layers",
                json!({"mediaType": layer_type, "digest": blob.digest.as_str(), "size": blob.size}),
            );
            man["config"] = json!({
                "mediaType": if docker { DOCKER_CONFIG } else { super::MEDIA_TYPE_CONFIG },
                "digest": crate::Digest::of(&config).as_str(),
                "size": config.len(),
            });
            let manifest = serde_json::to_vec(&man).expect("json values serialize");
            let tags: Vec<Reference> = opts.reference.iter().cloned().collect();
            self.register_in(lease, &manifest, &config, &tags)
        })
    }
}

/// Appends to the list `obj[key]`, making it if absent.
fn push(obj: &mut Value, key: &str, v: Value) {
    match obj.get_mut(key).and_then(Value::as_array_mut) {
        Some(list) => list.push(v),
        None => obj[key] = json!([v]),
    }
}
