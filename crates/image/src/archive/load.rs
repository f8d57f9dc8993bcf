//! Reading a docker-archive or OCI layout tar stream into the store.
//!
//! One pass over the stream: every blob goes into the content store as it
//! streams past (verified against its name when named by digest), the
//! small JSON files are kept. Each layer blob is unpacked on worker
//! threads as soon as it is stored, while the stream goes on
//! ([`EarlyUnpack`]); then each image is recorded, adopting those layers
//! (and unpacking in parallel any they missed). All of it happens under
//! one lease: on any error the lease takes back what this load created,
//! so the store is as it was.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::sync::mpsc;

use serde_json::{json, Value};

use super::{
    ArchiveError, Result, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, DOCKER_LIST, OCI_INDEX,
};
use crate::content::{read_blob, ContentError, ContentWriter, Ingester, Provider};
use crate::digest::Digest;
use crate::layer::{decompress, Compression};
use crate::reference::Reference;
use crate::store::{
    go_arch, EarlyUnpack, Image, Lease, Store, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST,
};

/// JSON files are read into memory; nothing honest comes near this.
const MAX_JSON: u64 = 16 << 20;
const METADATA: &[&str] = &["manifest.json", "index.json", "repositories", "oci-layout"];

/// `docker load`: reads `input` (tar, tar+gzip or tar+zstd) and records
/// every image in it, tags applied (a tag naming another image moves).
/// Returns the images loaded, in archive order.
pub fn load<R: Read>(store: &Store, input: R) -> Result<Vec<Image>> {
    let _span = tracing::info_span!("load").entered();
    let lease = store.lease()?;
    match load_in(store, &lease, input) {
        Ok(images) => {
            // Blobs no image turned out to need (other platforms, legacy
            // metadata) go now rather than wait for gc.
            lease.collect()?;
            Ok(images)
        }
        Err(e) => {
            if let Err(undo) = lease.collect() {
                tracing::warn!(error = %undo, "could not take back a failed load");
            }
            Err(e)
        }
    }
}

/// What the stream held: blobs by archive path, aliases, small files.
#[derive(Default)]
struct Contents {
    blobs: HashMap<String, Digest>,
    links: HashMap<String, String>,
    json: HashMap<String, Vec<u8>>,
}

impl Contents {
    /// The blob at `path`, following links (which were checked to stay
    /// inside the archive when read).
    fn blob(&self, path: &str) -> Result<Digest> {
        let mut p = normalize(path.as_bytes()).map_err(|reason| unsafe_entry(path, reason))?;
        for _ in 0..32 {
            if let Some(d) = self.blobs.get(&p) {
                return Ok(d.clone());
            }
            match self.links.get(&p) {
                Some(next) => p = next.clone(),
                None => break,
            }
        }
        Err(ArchiveError::Invalid(format!(
            "{path:?} is not in the archive"
        )))
    }
}

fn load_in<R: Read>(store: &Store, lease: &Lease<'_>, input: R) -> Result<Vec<Image>> {
    let early = EarlyUnpack::new(None);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c = std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| early.work(store));
        }
        let read = read_archive(store, lease, input, &early);
        early.close(read.is_err());
        read
    })?;
    let plans = if let Some(m) = c.json.get("manifest.json") {
        docker_plans(store, &c, m)?
    } else if let Some(i) = c.json.get("index.json") {
        oci_plans(store, &c, i)?
    } else {
        return Err(ArchiveError::Invalid(
            "no manifest.json or index.json: not a docker-archive or OCI layout".into(),
        ));
    };
    let mut out = Vec::with_capacity(plans.len());
    for p in plans {
        let config = read_blob(store.content(), &p.config)?;
        out.push(store.register_early(lease, &p.manifest, &config, &p.tags, Some(&early))?);
    }
    Ok(out)
}

/// A blob written but not yet committed.
struct Pending {
    writer: Box<dyn ContentWriter>,
    expected: Option<Digest>,
    size: u64,
    entry: String,
}

/// The stream into the content store, each blob offered to `early` once
/// written. Commits (an fsync each) run on their own thread, so the
/// stream and the unpacking go on while the disk catches up.
fn read_archive<R: Read>(
    store: &Store,
    lease: &Lease<'_>,
    input: R,
    early: &EarlyUnpack<'_>,
) -> Result<Contents> {
    // Two blobs at most wait for their commit: their bytes are on disk
    // (or in the page cache) already, not in memory.
    let (tx, rx) = mpsc::sync_channel::<Pending>(2);
    std::thread::scope(|s| {
        let committer = s.spawn(move || -> Result<()> {
            for p in rx {
                p.writer
                    .commit(p.expected.as_ref(), Some(p.size))
                    .map_err(|source| corrupt(&p.entry, source))?;
            }
            Ok(())
        });
        let read = read_entries(store, lease, input, &tx, early);
        drop(tx);
        let committed = committer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        // A failed commit is about an earlier entry than a failed read.
        committed.and(read)
    })
}

fn read_entries<R: Read>(
    store: &Store,
    lease: &Lease<'_>,
    input: R,
    commits: &mpsc::SyncSender<Pending>,
    early: &EarlyUnpack<'_>,
) -> Result<Contents> {
    let stream =
        decompress(BufReader::with_capacity(1 << 20, input)).map_err(ArchiveError::Read)?;
    let mut archive = tar::Archive::new(stream);
    let mut c = Contents::default();
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = normalize(&raw).map_err(|reason| unsafe_entry(&shown, reason))?;
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Directory | T::XGlobalHeader | T::XHeader => {}
            T::Symlink | T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&shown, "link without a target".into()))?;
                // A symlink is relative to its directory; a hardlink names
                // a path from the archive's root.
                let base = if entry.header().entry_type() == T::Symlink {
                    path.rsplit_once('/').map_or("", |(d, _)| d)
                } else {
                    ""
                };
                if target.starts_with(b"/") {
                    return Err(unsafe_entry(&shown, "link to an absolute path".into()));
                }
                let mut joined = base.as_bytes().to_vec();
                if !joined.is_empty() {
                    joined.push(b'/');
                }
                joined.extend_from_slice(&target);
                let to = normalize(&joined)
                    .map_err(|reason| unsafe_entry(&shown, format!("link target: {reason}")))?;
                c.links.insert(path, to);
            }
            T::Regular | T::Continuous => {
                if path.is_empty() {
                    continue;
                }
                if METADATA.contains(&path.as_str())
                    || (path.ends_with(".json")
                        && !path.contains('/')
                        && entry.size() <= MAX_JSON
                        && !is_config_name(&path))
                {
                    let mut buf = Vec::new();
                    (&mut entry)
                        .take(MAX_JSON + 1)
                        .read_to_end(&mut buf)
                        .map_err(ArchiveError::Read)?;
                    if buf.len() as u64 > MAX_JSON {
                        return Err(ArchiveError::Invalid(format!(
                            "{shown:?} is larger than {MAX_JSON} bytes"
                        )));
                    }
                    c.json.insert(path, buf);
                    continue;
                }
                // Legacy per-layer metadata docker itself ignores on load.
                if path.ends_with("/json") || path.ends_with("/VERSION") {
                    continue;
                }
                let named = path
                    .strip_prefix("blobs/")
                    .and_then(|p| p.split_once('/'))
                    .map(|(alg, hex)| Digest::parse(&format!("{alg}:{hex}")));
                let size = entry.size();
                let mut w = store.content().writer()?;
                let (digest, expected) = match named {
                    Some(Ok(d)) => {
                        lease.add_blob(&d)?;
                        copy(&mut entry, &mut w)?;
                        (d.clone(), Some(d))
                    }
                    Some(Err(e)) => return Err(ArchiveError::Invalid(format!("{shown:?}: {e}"))),
                    None => {
                        copy(&mut entry, &mut w)?;
                        let d = w.status().digest;
                        lease.add_blob(&d)?;
                        (d, None)
                    }
                };
                if let Ok(bytes) = w.reopen() {
                    early.offer(&digest, size, Box::new(bytes));
                }
                let pending = Pending {
                    writer: w,
                    expected,
                    size,
                    entry: shown,
                };
                if commits.send(pending).is_err() {
                    // The committer stopped at a failed commit, which
                    // read_archive reports instead of this.
                    return Err(ArchiveError::Invalid("commit stopped".into()));
                }
                c.blobs.insert(path, digest);
            }
            other => {
                return Err(unsafe_entry(
                    &shown,
                    format!("unexpected entry type {other:?}"),
                ));
            }
        }
    }
    // The tar reader stops at the end-of-archive marker; what follows
    // (padding, a compressor's trailer) must still be intact.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(ArchiveError::Read)?;
    Ok(c)
}

/// `<64 hex>.json` at the top is a legacy image config: a blob, not
/// metadata.
fn is_config_name(path: &str) -> bool {
    path.strip_suffix(".json")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

struct Plan {
    manifest: Vec<u8>,
    config: Digest,
    tags: Vec<Reference>,
}

fn docker_plans(store: &Store, c: &Contents, manifest_json: &[u8]) -> Result<Vec<Plan>> {
    let entries: Vec<Value> = serde_json::from_slice(manifest_json)
        .map_err(|e| ArchiveError::Invalid(format!("manifest.json: {e}")))?;
    // Manifests of the OCI layout beside it, by config: reusing one keeps
    // the image's manifest digest as it was pulled.
    let mut by_config: HashMap<Digest, Vec<Vec<u8>>> = HashMap::new();
    if let Some(index) = c.json.get("index.json") {
        for (bytes, _) in index_manifests(store, c, index)? {
            if let Some(cfg) = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|m| digest_of(&m["config"]))
            {
                by_config.entry(cfg).or_default().push(bytes);
            }
        }
    }
    let mut plans = Vec::new();
    for e in entries {
        let config_path = e["Config"]
            .as_str()
            .ok_or_else(|| ArchiveError::Invalid("manifest.json entry without Config".into()))?;
        let config = c.blob(config_path)?;
        let mut layers = Vec::new();
        for l in e["Layers"].as_array().into_iter().flatten() {
            let p = l
                .as_str()
                .ok_or_else(|| ArchiveError::Invalid(format!("bad layer path {l}")))?;
            layers.push(c.blob(p)?);
        }
        let mut tags = Vec::new();
        for t in e["RepoTags"].as_array().into_iter().flatten() {
            let t = t.as_str().unwrap_or_default();
            tags.push(
                Reference::parse(t)
                    .map_err(|err| ArchiveError::Invalid(format!("RepoTags: {err}")))?,
            );
        }
        let reuse = by_config.get(&config).and_then(|ms| {
            ms.iter().find(|m| {
                serde_json::from_slice::<Value>(m).ok().is_some_and(|m| {
                    let ds: Vec<Option<Digest>> = m["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(digest_of)
                        .collect();
                    ds.len() == layers.len()
                        && ds.iter().zip(&layers).all(|(a, b)| a.as_ref() == Some(b))
                })
            })
        });
        let manifest = match reuse {
            Some(m) => m.clone(),
            None => synthesize(store, &config, &layers)?,
        };
        plans.push(Plan {
            manifest,
            config,
            tags,
        });
    }
    Ok(plans)
}

/// An OCI manifest for a legacy archive's image, with each layer's media
/// type read from its magic bytes.
fn synthesize(store: &Store, config: &Digest, layers: &[Digest]) -> Result<Vec<u8>> {
    let mut descs = Vec::new();
    for l in layers {
        let mut r = store.content().reader(l)?;
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < 4 {
            match r.read(&mut head[n..]).map_err(ArchiveError::Read)? {
                0 => break,
                k => n += k,
            }
        }
        let size = store.content().info(l)?.size;
        descs.push(json!({"mediaType": Compression::detect(&head[..n]).media_type(), "digest": l.as_str(), "size": size}));
    }
    let config_size = store.content().info(config)?.size;
    Ok(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config.as_str(), "size": config_size},
        "layers": descs,
    }))
    .expect("json values serialize"))
}

fn oci_plans(store: &Store, c: &Contents, index: &[u8]) -> Result<Vec<Plan>> {
    let mut plans: Vec<Plan> = Vec::new();
    for (manifest, tag) in index_manifests(store, c, index)? {
        let m: Value = serde_json::from_slice(&manifest)
            .map_err(|e| ArchiveError::Invalid(format!("manifest: {e}")))?;
        let config = digest_of(&m["config"])
            .ok_or_else(|| ArchiveError::Invalid("manifest without config".into()))?;
        match plans.iter_mut().find(|p| p.manifest == manifest) {
            Some(p) => p.tags.extend(tag),
            None => plans.push(Plan {
                manifest,
                config,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    Ok(plans)
}

/// The image manifests an index names (descending into nested indexes,
/// picking this platform), each with the reference its annotations give.
fn index_manifests(
    store: &Store,
    c: &Contents,
    index: &[u8],
) -> Result<Vec<(Vec<u8>, Option<Reference>)>> {
    let idx: Value = serde_json::from_slice(index)
        .map_err(|e| ArchiveError::Invalid(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for d in idx["manifests"].as_array().into_iter().flatten() {
        let tag = reference_of(d);
        let Some(bytes) = resolve_manifest(store, c, d, 0)? else {
            continue;
        };
        out.push((bytes, tag));
    }
    Ok(out)
}

fn resolve_manifest(
    store: &Store,
    c: &Contents,
    desc: &Value,
    depth: usize,
) -> Result<Option<Vec<u8>>> {
    let digest =
        digest_of(desc).ok_or_else(|| ArchiveError::Invalid(format!("bad descriptor {desc}")))?;
    if !c.blobs.values().any(|d| *d == digest) {
        return Err(ArchiveError::Invalid(format!(
            "index names {digest}, which is not in the archive"
        )));
    }
    let bytes = read_blob(store.content(), &digest)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::Invalid(format!("{digest}: {e}")))?;
    let media = desc["mediaType"]
        .as_str()
        .or(v["mediaType"].as_str())
        .unwrap_or_default();
    if media != OCI_INDEX && media != DOCKER_LIST && v.get("manifests").is_none() {
        return Ok(Some(bytes));
    }
    if depth > 4 {
        return Err(ArchiveError::Invalid("indexes nested too deep".into()));
    }
    let list = v["manifests"].as_array().cloned().unwrap_or_default();
    let ours = |m: &&Value| {
        m["platform"]["os"].as_str() == Some("linux")
            && m["platform"]["architecture"].as_str() == Some(go_arch())
    };
    // Only the platform this machine runs, present in the archive.
    let pick = list
        .iter()
        .filter(ours)
        .find(|m| digest_of(m).is_some_and(|d| c.blobs.values().any(|b| *b == d)));
    match pick {
        Some(m) => resolve_manifest(store, c, m, depth + 1),
        None => Ok(None),
    }
}

fn reference_of(desc: &Value) -> Option<Reference> {
    let ann = &desc["annotations"];
    if let Some(r) = ann[ANNOTATION_IMAGE_NAME]
        .as_str()
        .and_then(|s| Reference::parse(s).ok())
    {
        return Some(r);
    }
    // A bare tag names no repository; podman and skopeo write whole names.
    ann[ANNOTATION_REF_NAME]
        .as_str()
        .filter(|s| s.contains('/') || s.contains(':'))
        .and_then(|s| Reference::parse(s).ok())
}

fn digest_of(desc: &Value) -> Option<Digest> {
    desc["digest"].as_str().and_then(|s| Digest::parse(s).ok())
}

fn copy(from: &mut impl Read, to: &mut impl io::Write) -> Result<()> {
    io::copy(from, to).map(|_| ()).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ArchiveError::Read(e),
        _ if e.raw_os_error().is_some() => ArchiveError::Store(crate::store::StoreError::Io {
            context: "writing blob".into(),
            source: e,
        }),
        _ => ArchiveError::Read(e),
    })
}

fn corrupt(entry: &str, source: ContentError) -> ArchiveError {
    match source {
        e @ (ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. }) => {
            ArchiveError::Corrupt {
                entry: entry.to_string(),
                source: e,
            }
        }
        e => e.into(),
    }
}

fn unsafe_entry(entry: &str, reason: String) -> ArchiveError {
    ArchiveError::Unsafe {
        entry: entry.to_string(),
        reason,
    }
}

/// An archive path as a clean relative path (`./a//b` is `a/b`), or why
/// it is refused: absolute, or climbing out with `..`.
fn normalize(raw: &[u8]) -> std::result::Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "path is not UTF-8".to_string())?;
    if s.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("path leads out of the archive".into());
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}
