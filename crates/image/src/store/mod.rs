//! Image records in SQLite (images, tags, layers) and `import`, which turns
//! a root filesystem tarball into a one-layer image.
//!
//! The database says what exists; blobs and snapshots are only reachable
//! through it. Every change lands in one transaction after the blobs and
//! snapshots it points at exist, so a crash or failure at any point leaves
//! no record pointing at nothing (at worst unreferenced blobs for gc).

mod changes;
mod check;
mod commit;
mod gc;
mod lease;
mod register;
mod unpack;

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Map, Value};

pub use changes::{apply_change, ChangeError};
pub use check::{CheckReport, DfReport, ImageUsage};
pub use commit::{CommitOptions, Progress};
pub use gc::{GcReport, Removed};
pub use lease::Lease;
pub use unpack::EarlyUnpack;

use crate::content::{self, ContentError, FsContentStore, Ingester};
use crate::digest::Digest;
use crate::layer::{apply_to_mounts, ApplyOptions, Compression, LayerError};
use crate::reference::{Reference, ReferenceError};
use crate::snapshot::{Mount, SnapshotError, Snapshotter};
use crate::ErrorKind;

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("{0:?} matches more than one image; use more of the id")]
    Ambiguous(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("image database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("image {id}: corrupt record: {reason}")]
    Corrupt { id: String, reason: String },
    /// A manifest or config that cannot describe an image.
    #[error("invalid image: {0}")]
    Invalid(String),
    /// A layer whose content is not what the image config promises.
    #[error("layer {blob}: content has diff id {actual}, the image config expects {expected}")]
    LayerMismatch {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Ambiguous(_) => ErrorKind::InvalidArgument,
            StoreError::Reference(e) => e.kind(),
            StoreError::Change(_) => ErrorKind::InvalidArgument,
            StoreError::Content(e) => e.kind(),
            StoreError::Snapshot(e) => e.kind(),
            StoreError::Layer(e) => e.kind(),
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                ErrorKind::Unavailable
            }
            StoreError::Db(_) | StoreError::Corrupt { .. } => ErrorKind::Internal,
            StoreError::Invalid(_) | StoreError::LayerMismatch { .. } => ErrorKind::InvalidArgument,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Io { source, .. } => ErrorKind::of_io(source),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An image as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The config digest, docker's image id.
    pub id: Digest,
    pub manifest: Digest,
    pub created: chrono::DateTime<chrono::Utc>,
    /// Sum of the uncompressed layer sizes, as `docker images` shows.
    pub size: u64,
    /// Chain id of the top layer: the snapshot a container starts from.
    pub top_chain_id: Option<Digest>,
    /// References pointing at it, sorted.
    pub tags: Vec<Reference>,
}

/// A layer known to the store, unpacked once as a snapshot named by its
/// chain id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Uncompressed size.
    pub size: u64,
    /// The compressed blob in the content store.
    pub blob: Digest,
    pub snapshot_key: String,
}

/// What `docker import` takes besides the tarball.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub reference: Option<Reference>,
    /// `--change` instructions, applied in order.
    pub changes: Vec<String>,
    /// `-m`: the history comment.
    pub message: Option<String>,
    /// Where the tarball came from (`-`, a path or URL), for the default
    /// comment "Imported from ...".
    pub source: String,
}

/// The layer diff ids an image config lists, skipping entries that are not
/// digests (readers that report, not refuse, a damaged config).
pub(crate) fn config_diff_ids(config: &serde_json::Value) -> Vec<Digest> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
        .collect()
}

/// Chain ids of a stack of diff ids: the first is its diff id, each next
/// one `sha256(parent + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(p) => Digest::of(format!("{p} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The image store: records in SQLite, blobs in the content store, layers
/// in a snapshotter.
pub struct Store {
    db: Mutex<Connection>,
    content: FsContentStore,
    snapshotter: Box<dyn Snapshotter>,
}

impl Store {
    /// Opens the store under `root`: `root/berth.db`, `root/content`.
    pub fn open(root: &Path, snapshotter: Box<dyn Snapshotter>) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            context: format!("creating {}", root.display()),
            source,
        })?;
        let content = FsContentStore::open(root)?;
        let conn =
            crate::sqlite::open_shared(&root.join("berth.db"), std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // One transaction: each CREATE ... IF NOT EXISTS is a write
        // transaction of its own otherwise, even when nothing is made.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS layers (
                chain_id TEXT PRIMARY KEY,
                diff_id TEXT NOT NULL,
                parent TEXT REFERENCES layers(chain_id),
                size INTEGER NOT NULL,
                blob TEXT NOT NULL,
                snapshot_key TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS images (
                id TEXT PRIMARY KEY,
                manifest TEXT NOT NULL,
                created TEXT NOT NULL,
                size INTEGER NOT NULL,
                top_chain_id TEXT REFERENCES layers(chain_id)
            );
            CREATE TABLE IF NOT EXISTS tags (
                reference TEXT PRIMARY KEY,
                image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
            );
            CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
            -- Every blob an image needs (manifest, config, layer blobs as its
            -- manifest names them): what gc keeps and save reads.
            CREATE TABLE IF NOT EXISTS image_blobs (
                image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
                digest TEXT NOT NULL,
                PRIMARY KEY (image_id, digest)
            );
            CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs(digest);
            -- In-flight work: what a lease names, gc keeps while its
            -- process (pid + start time) lives.
            CREATE TABLE IF NOT EXISTS leases (
                id TEXT PRIMARY KEY,
                pid INTEGER NOT NULL,
                pid_start INTEGER,
                created TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS lease_resources (
                lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                PRIMARY KEY (lease_id, kind, key)
            );
            COMMIT;",
        )?;
        Ok(Store {
            db: Mutex::new(conn),
            content,
            snapshotter,
        })
    }

    pub fn content(&self) -> &FsContentStore {
        &self.content
    }

    pub fn snapshotter(&self) -> &dyn Snapshotter {
        &*self.snapshotter
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `docker import`: `input` (a tar, optionally gzip or zstd compressed)
    /// becomes the single layer of a new image. Streamed once: the bytes
    /// are unpacked into a snapshot and gzip-compressed into the content
    /// store on the same pass.
    pub fn import(&self, input: impl Read, opts: &ImportOptions) -> Result<Image> {
        let _span = tracing::info_span!("import", source = %opts.source).entered();
        // Validate the cheap parts before touching disk.
        let mut config_obj = Map::new();
        for c in &opts.changes {
            apply_change(&mut config_obj, c)?;
        }
        // Under a lease: a failure takes back what was made, and so does
        // the next command after a crash.
        self.with_lease(|lease| self.import_in(lease, input, opts, config_obj))
    }

    fn import_in(
        &self,
        lease: &Lease<'_>,
        input: impl Read,
        opts: &ImportOptions,
        config_obj: Map<String, Value>,
    ) -> Result<Image> {
        let key = crate::fsutil::unique_name("import-");
        lease.add_snapshot(&key)?;
        let mounts = self.snapshotter.prepare(&key, None)?;

        let blob_writer = self.content.writer()?;
        let gz = flate2::write::GzEncoder::new(blob_writer, flate2::Compression::fast());
        let mut tee = Tee {
            inner: crate::layer::decompress(input).map_err(LayerError::Read)?,
            out: gz,
        };
        let applied = apply_to_mounts(&mounts, &mut tee, &ApplyOptions::default())?;
        let blob_writer = tee.out.finish().map_err(|source| StoreError::Io {
            context: "compressing layer".into(),
            source,
        })?;
        lease.add_blob(&blob_writer.status().digest)?;
        let blob = blob_writer.commit(None, None)?;

        let chain_id = applied.diff_id.clone();
        lease.add_snapshot(chain_id.as_str())?;
        match self.snapshotter.stat(chain_id.as_str()) {
            // Same bytes imported before: share the existing snapshot.
            Ok(_) => self.snapshotter.remove(&key)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.snapshotter.commit(chain_id.as_str(), &key)?
            }
            Err(e) => return Err(e.into()),
        }

        let created = chrono::Utc::now();
        let comment = opts
            .message
            .clone()
            .unwrap_or_else(|| format!("Imported from {}", opts.source));
        let config = json!({
            "architecture": go_arch(),
            "os": "linux",
            "created": created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "comment": comment,
            "config": Value::Object(config_obj),
            "rootfs": {"type": "layers", "diff_ids": [applied.diff_id.as_str()]},
            "history": [{"created": created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true), "comment": comment}],
        });
        let config_bytes = serde_json::to_vec(&config).expect("json values serialize");
        let config_info = write_leased(self, lease, &config_bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config_info.digest.as_str(), "size": config_info.size},
            "layers": [{"mediaType": Compression::Gzip.media_type(), "digest": blob.digest.as_str(), "size": blob.size}],
        });
        let manifest_info = write_leased(
            self,
            lease,
            &serde_json::to_vec(&manifest).expect("json values serialize"),
        )?;

        let layer = Layer {
            chain_id: chain_id.clone(),
            diff_id: applied.diff_id,
            parent: None,
            size: applied.size,
            blob: blob.digest,
            snapshot_key: chain_id.to_string(),
        };
        let image = Image {
            id: config_info.digest,
            manifest: manifest_info.digest,
            created,
            size: applied.size,
            top_chain_id: Some(chain_id),
            tags: opts.reference.iter().cloned().collect(),
        };
        let blobs = [layer.blob.clone()];
        self.record(&[layer], &image, &blobs)?;
        Ok(image)
    }

    /// Records layers, the image and its tags in one transaction. A tag
    /// that named another image moves to this one, as `docker tag` does.
    fn record(&self, layers: &[Layer], image: &Image, blobs: &[Digest]) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for l in layers {
            tx.execute(
                "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, size, blob, snapshot_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    l.chain_id.as_str(),
                    l.diff_id.as_str(),
                    l.parent.as_ref().map(Digest::as_str),
                    l.size as i64,
                    l.blob.as_str(),
                    l.snapshot_key
                ],
            )?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO images (id, manifest, created, size, top_chain_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                image.id.as_str(),
                image.manifest.as_str(),
                image.created.to_rfc3339(),
                image.size as i64,
                image.top_chain_id.as_ref().map(Digest::as_str)
            ],
        )?;
        for d in [&image.id, &image.manifest].into_iter().chain(blobs) {
            tx.execute(
                "INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?1, ?2)",
                params![image.id.as_str(), d.as_str()],
            )?;
        }
        for t in &image.tags {
            tx.execute(
                "INSERT INTO tags (reference, image_id) VALUES (?1, ?2)
                 ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id",
                params![t.to_string(), image.id.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Points `reference` at the image `id`.
    pub fn tag(&self, id: &Digest, reference: &Reference) -> Result<()> {
        let conn = self.lock();
        let n = conn.execute(
            "INSERT INTO tags (reference, image_id) SELECT ?1, id FROM images WHERE id = ?2
             ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id",
            params![reference.to_string(), id.as_str()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Finds an image as docker's CLI does: a reference (`busybox`,
    /// `busybox:1.36`), a full id (`sha256:...`), or a unique prefix of the
    /// id's hex (`3f57d9401f8d`).
    pub fn image(&self, name: &str) -> Result<Image> {
        let conn = self.lock();
        if let Ok(d) = Digest::parse(name) {
            return load_image(&conn, d.as_str())?
                .ok_or_else(|| StoreError::NotFound(name.to_string()));
        }
        if let Ok(r) = Reference::parse(name) {
            let id: Option<String> = conn
                .query_row(
                    "SELECT image_id FROM tags WHERE reference = ?1",
                    [r.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                return load_image(&conn, &id)?
                    .ok_or_else(|| StoreError::NotFound(name.to_string()));
            }
        }
        if !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let like = format!("sha256:{}%", name.to_ascii_lowercase());
            let mut stmt = conn.prepare("SELECT id FROM images WHERE id LIKE ?1 LIMIT 2")?;
            let ids = stmt
                .query_map([like], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            match ids.as_slice() {
                [id] => {
                    return load_image(&conn, id)?
                        .ok_or_else(|| StoreError::NotFound(name.to_string()))
                }
                [] => {}
                _ => return Err(StoreError::Ambiguous(name.to_string())),
            }
        }
        Reference::parse(name)?;
        Err(StoreError::NotFound(name.to_string()))
    }

    /// All images, newest first.
    pub fn images(&self) -> Result<Vec<Image>> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id FROM images ORDER BY created DESC, id")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(i) = load_image(&conn, &id)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    pub fn layer(&self, chain_id: &Digest) -> Result<Layer> {
        let conn = self.lock();
        conn.query_row(
            "SELECT chain_id, diff_id, parent, size, blob, snapshot_key FROM layers WHERE chain_id = ?1",
            [chain_id.as_str()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )
        .optional()?
        .map(|(c, d, p, size, blob, key)| {
            let dig = |s: &str| Digest::parse(s).map_err(|e| StoreError::Corrupt { id: c.clone(), reason: e.to_string() });
            Ok(Layer {
                chain_id: dig(&c)?,
                diff_id: dig(&d)?,
                parent: p.as_deref().map(dig).transpose()?,
                size: size as u64,
                blob: dig(&blob)?,
                snapshot_key: key,
            })
        })
        .unwrap_or_else(|| Err(StoreError::NotFound(chain_id.to_string())))
    }

    /// The image's config, as stored.
    pub fn config(&self, image: &Image) -> Result<Value> {
        let bytes = content::read_blob(&self.content, &image.id)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            id: image.id.to_string(),
            reason: e.to_string(),
        })
    }

    /// Prepares a writable snapshot for a container on top of the image's
    /// layers and returns its mounts.
    pub fn rootfs(&self, image: &Image, container_key: &str) -> Result<Vec<Mount>> {
        Ok(self.snapshotter.prepare(
            container_key,
            image.top_chain_id.as_ref().map(Digest::as_str),
        )?)
    }
}

fn load_image(conn: &Connection, id: &str) -> Result<Option<Image>> {
    let row = conn
        .query_row(
            "SELECT id, manifest, created, size, top_chain_id FROM images WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((id, manifest, created, size, top)) = row else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        id: id.clone(),
        reason,
    };
    let mut stmt =
        conn.prepare("SELECT reference FROM tags WHERE image_id = ?1 ORDER BY reference")?;
    let tags = stmt
        .query_map([&id], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| corrupt(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Image {
        id: Digest::parse(&id).map_err(|e| corrupt(e.to_string()))?,
        manifest: Digest::parse(&manifest).map_err(|e| corrupt(e.to_string()))?,
        created: chrono::DateTime::parse_from_rfc3339(&created)
            .map_err(|e| corrupt(e.to_string()))?
            .to_utc(),
        size: size as u64,
        top_chain_id: top
            .as_deref()
            .map(Digest::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?,
        tags,
    }))
}

/// Writes a small blob (a config, a manifest), named in `lease` first.
fn write_leased(store: &Store, lease: &Lease<'_>, bytes: &[u8]) -> Result<content::Info> {
    lease.add_blob(&Digest::of(bytes))?;
    Ok(content::write_blob(&store.content, bytes, None)?)
}

/// Copies everything read through it into `out`.
pub(crate) struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// GOARCH names, which image configs use.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
