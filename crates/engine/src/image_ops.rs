//! The image commands' engine half: what needs both the image store and
//! the containers table (`rmi` and `image prune` refuse images containers
//! use, `system df` counts both, `commit`, `export` and `diff` read a
//! container's snapshot), docker's JSON views of an image, and the image
//! operations that record dockerd's events (load, save, import, tag).
//!
//! It prints nothing: the CLI renders what these return.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::archive::SaveOptions;
use berth_image::layer::{diff as layer_diff, DiffOptions};
use berth_image::store::{
    CheckReport, CommitOptions, DfReport, Image, ImportOptions, Removed, Store, StoreError,
};
use berth_image::{Digest, Reference};
use serde_json::{json, Value};

use crate::container::{unmount, Engine};
use crate::db::{Container, State};
use crate::error::{io_err, Error, Result};
use crate::images;

/// Maps the store's "no such image" to the engine's, which names what the
/// user typed.
fn not_found(name: &str) -> impl FnOnce(StoreError) -> Error + '_ {
    move |e| match e {
        StoreError::NotFound(_) => Error::NoSuchImage(name.to_string()),
        e => Error::Image(e),
    }
}

/// The ids of the images containers were created from: what `rmi` and
/// `prune` must not take away unasked.
pub fn in_use(engine: &Engine) -> Result<HashSet<Digest>> {
    Ok(engine
        .list()?
        .iter()
        .filter_map(|c| Digest::parse(&c.image_id).ok())
        .collect())
}

/// `docker rmi NAME`: docker's Untagged/Deleted lines, in order.
pub fn remove(engine: &Engine, store: &Store, name: &str, force: bool) -> Result<Vec<Removed>> {
    let used = in_use(engine)?;
    let removed = store
        .remove_image(name, force, &used)
        .map_err(not_found(name))?;
    engine.image_events(&removed);
    Ok(removed)
}

/// Each image's parent, where it has one: the image a build step
/// started from (the build cache knows it; see berth-build's `lineage`).
pub type Parents = std::collections::HashMap<String, String>;

/// `docker image prune [-a] [--filter]`: dangling (or, with `all`,
/// unused) images that `filters` pick by label and creation time, and the
/// bytes their blobs took. As dockerd, an image another image that stays
/// was built from (its `parents`) stays too: a build's intermediate
/// images go with the last image built on them.
pub fn prune(
    engine: &Engine,
    store: &Store,
    all: bool,
    filters: &crate::filters::PruneFilters,
    parents: &Parents,
) -> Result<(Vec<Removed>, u64)> {
    prune_where(engine, store, all, filters, &|_| true, parents)
}

/// [`prune`] of the images `chosen` also picks (`builder prune`: those
/// of the build cache).
pub fn prune_where(
    engine: &Engine,
    store: &Store,
    all: bool,
    filters: &crate::filters::PruneFilters,
    chosen: &dyn Fn(&Image) -> bool,
    parents: &Parents,
) -> Result<(Vec<Removed>, u64)> {
    let used = in_use(engine)?;
    let picked = |i: &Image| {
        if !(all || i.tags.is_empty()) || used.contains(&i.id) || !chosen(i) {
            return false;
        }
        if filters.labels.is_empty() && filters.not_labels.is_empty() {
            return filters.matches(|_| None, Some(i.created));
        }
        // An image whose config cannot be read is kept: its labels are
        // unknown.
        let Ok(config) = store.config(i) else {
            return false;
        };
        let labels = &config["config"]["Labels"];
        filters.matches(|k| labels[k].as_str(), Some(i.created))
    };
    let images = store.images()?;
    let victims: HashSet<String> = images
        .iter()
        .filter(|i| picked(i))
        .map(|i| i.id.to_string())
        .collect();
    let kept = ancestors(
        images
            .iter()
            .map(|i| i.id.to_string())
            .filter(|id| !victims.contains(id)),
        parents,
    );
    let (removed, report) = store.prune(all, &used, &|i| {
        let id = i.id.to_string();
        victims.contains(&id) && !kept.contains(&id)
    })?;
    engine.image_events(&removed);
    Ok((removed, report.bytes_reclaimed))
}

/// Every ancestor of `ids` by `parents` (not the ids themselves).
fn ancestors(ids: impl Iterator<Item = String>, parents: &Parents) -> HashSet<String> {
    let mut found = HashSet::new();
    for id in ids {
        let mut at = parents.get(&id);
        // A cycle cannot come from builds, but the walk must end anyway.
        while let Some(p) = at.filter(|p| found.insert((*p).clone())) {
            at = parents.get(p);
        }
    }
    found
}

/// `docker tag SOURCE TARGET`.
pub fn tag(engine: &Engine, store: &Store, source: &str, target: &str) -> Result<()> {
    let image = store.image(source).map_err(not_found(source))?;
    let r = Reference::parse(target).map_err(|e| Error::Image(e.into()))?;
    if r.digest().is_some() {
        return Err(Error::InvalidArgument(format!(
            "refusing to create a tag with a digest reference: {target}"
        )));
    }
    store.tag(&image.id, &r)?;
    engine.tag_event(store, &image, &r);
    Ok(())
}

/// `docker load`: the images of a docker or OCI archive, each with
/// dockerd's `load` event (named by its id).
pub fn load(engine: &Engine, store: &Store, input: impl Read) -> Result<Vec<Image>> {
    let loaded = berth_image::archive::load(store, input)?;
    for i in &loaded {
        engine.image_event(store, i, "load", i.id.as_str(), i.id.as_str());
    }
    Ok(loaded)
}

/// `docker save`: `names` as one archive on `out`, with dockerd's `save`
/// event for each image in it.
pub fn save<W: Write>(
    engine: &Engine,
    store: &Store,
    names: &[&str],
    out: W,
    opts: &SaveOptions,
) -> Result<W> {
    let mut images: Vec<Image> = Vec::new();
    for n in names {
        let i = store.image(n).map_err(not_found(n))?;
        if !images.iter().any(|seen| seen.id == i.id) {
            images.push(i);
        }
    }
    let out = berth_image::archive::save(store, names, out, opts)?;
    for i in &images {
        engine.image_event(store, i, "save", i.id.as_str(), i.id.as_str());
    }
    Ok(out)
}

/// `docker import`: a root filesystem tar as a one-layer image, with
/// dockerd's events: `tag` when named, then `import` (by id).
pub fn import(
    engine: &Engine,
    store: &Store,
    input: impl Read,
    opts: &ImportOptions,
) -> Result<Image> {
    let image = store.import(input, opts)?;
    if let Some(r) = &opts.reference {
        engine.tag_event(store, &image, r);
    }
    engine.image_event(
        store,
        &image,
        "import",
        image.id.as_str(),
        image.id.as_str(),
    );
    Ok(image)
}

/// One container in `system df`.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub container: Container,
    /// Bytes of its own changes (the snapshot's upper directory).
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct SystemDf {
    pub images: DfReport,
    /// Containers made from each image, by image id.
    pub image_containers: Vec<(Digest, usize)>,
    pub containers: Vec<ContainerUsage>,
}

impl SystemDf {
    /// How many containers were made from image `id`.
    pub fn containers_of(&self, id: &Digest) -> usize {
        self.image_containers
            .iter()
            .find(|(i, _)| i == id)
            .map_or(0, |(_, n)| *n)
    }
}

/// `docker system df`.
pub fn df(engine: &Engine, store: &Store) -> Result<SystemDf> {
    let containers = engine.list()?;
    let used: HashSet<Digest> = containers
        .iter()
        .filter_map(|c| Digest::parse(&c.image_id).ok())
        .collect();
    let report = store.df(&used)?;
    let image_containers = report
        .images
        .iter()
        .map(|i| {
            let n = containers
                .iter()
                .filter(|c| c.image_id == i.id.as_str())
                .count();
            (i.id.clone(), n)
        })
        .collect();
    let containers = containers
        .into_iter()
        .map(|c| ContainerUsage {
            size: container_size(store, &c.id),
            container: c,
        })
        .collect();
    Ok(SystemDf {
        images: report,
        image_containers,
        containers,
    })
}

/// Bytes of container `id`'s writable layer; one whose snapshot is gone
/// (half removed) counts 0.
pub fn container_size(store: &Store, id: &str) -> u64 {
    images::rootfs_dir(store, id)
        .map(|d| dir_size(&d))
        .unwrap_or(0)
}

/// docker's `SizeRw` and `SizeRootFs` of container `c`: the bytes of its
/// writable layer, and those plus its image's.
pub fn container_sizes(store: &Store, c: &crate::Container) -> (u64, u64) {
    let rw = container_size(store, &c.id);
    let image = store.image(&c.image_id).map_or(0, |i| i.size);
    (rw, rw + image)
}

/// Bytes of the files under `dir`, symlinks not followed; unreadable
/// entries count nothing (they are the container's, not ours to fail on).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// `system check`: the store's own verification.
pub fn check(store: &Store) -> Result<CheckReport> {
    Ok(store.system_check()?)
}

/// `docker image inspect`'s JSON, fields in docker's order.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: Value,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    pub size: u64,
    pub graph_driver: Value,
    #[serde(rename = "RootFS")]
    pub rootfs: Value,
    pub metadata: Value,
    /// The config of the container the image was committed from (empty
    /// for built and pulled OCI images). Docker's CLI no longer shows it;
    /// `berth serve` still sends it, as compose 1.29 reads it.
    #[serde(skip)]
    pub container_config: Value,
}

/// `docker image inspect`: docker's JSON for one image; its `Parent` is
/// the image it was built on, by `parents`.
pub fn inspect(store: &Store, image: &Image, parents: &Parents) -> Result<ImageInspect> {
    let cfg = store.config(image)?;
    let s = |k: &str| cfg[k].as_str().unwrap_or_default().to_string();
    // The manifest digest is what a registry knows the image by (pull and
    // push keep the manifest's bytes as served), so each repository holding
    // the image gets a digest reference, as docker's RepoDigests.
    let mut repo_digests: Vec<String> = image
        .tags
        .iter()
        .map(|t| format!("{}@{}", t.familiar_name(), image.manifest))
        .collect();
    repo_digests.dedup();
    let diff_ids = match &cfg["rootfs"]["diff_ids"] {
        Value::Array(a) => Value::Array(a.clone()),
        _ => json!([]),
    };
    Ok(ImageInspect {
        id: image.id.to_string(),
        repo_tags: image.tags.iter().map(|t| t.familiar()).collect(),
        repo_digests,
        parent: parents.get(image.id.as_str()).cloned().unwrap_or_default(),
        comment: s("comment"),
        created: cfg["created"].as_str().map_or_else(
            || {
                image
                    .created
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            },
            String::from,
        ),
        docker_version: s("docker_version"),
        author: s("author"),
        config: docker_config(&cfg["config"]),
        architecture: s("architecture"),
        variant: cfg["variant"].as_str().map(String::from),
        os: s("os"),
        size: image.size,
        graph_driver: json!({"Data": null, "Name": store.snapshotter().name()}),
        rootfs: json!({"Type": "layers", "Layers": diff_ids}),
        metadata: json!({"LastTagTime": "0001-01-01T00:00:00Z"}),
        container_config: docker_config(&cfg["container_config"]),
    })
}

/// The image config's `config` as docker shows it: every field present,
/// empty ones as docker leaves them.
fn docker_config(c: &Value) -> Value {
    let mut out = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false, "Tty": false,
        "OpenStdin": false, "StdinOnce": false, "Env": null, "Cmd": null,
        "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": null,
    });
    if let (Some(o), Some(src)) = (out.as_object_mut(), c.as_object()) {
        for (k, v) in src {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

/// One row of `docker history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image's id on the top row; `None` (docker's `<missing>`) below.
    pub id: Option<Digest>,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

/// `docker history`: the config's history, each entry that made a layer
/// paired with that layer's size.
pub fn history(store: &Store, image: &Image, parents: &Parents) -> Result<Vec<HistoryEntry>> {
    let cfg = store.config(image)?;
    let diff_ids: Vec<Digest> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
        .collect();
    let sizes: Vec<u64> = berth_image::store::chain_ids(&diff_ids)
        .iter()
        .map(|c| store.layer(c).map(|l| l.size).unwrap_or(0))
        .collect();
    let mut layer = 0;
    let mut out = Vec::new();
    let entries = cfg["history"].as_array().cloned().unwrap_or_default();
    for h in &entries {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            0
        } else {
            layer += 1;
            sizes.get(layer - 1).copied().unwrap_or(0)
        };
        out.push(HistoryEntry {
            id: None,
            created: h["created"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.to_utc()),
            created_by: h["created_by"].as_str().unwrap_or_default().to_string(),
            size,
            comment: h["comment"].as_str().unwrap_or_default().to_string(),
        });
    }
    // Layers the history does not account for (a hand-made config).
    for s in sizes.iter().skip(layer) {
        out.push(HistoryEntry {
            id: None,
            created: None,
            created_by: String::new(),
            size: *s,
            comment: String::new(),
        });
    }
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = Some(image.id.clone());
        // A built image's steps are the images it was built on, each the
        // top of its own history, one entry shorter: docker's classic
        // builder shows their ids, and `<missing>` only below them.
        let mut at = parents.get(image.id.as_str());
        let mut depth = 1;
        while let (Some(p), true) = (at, depth < out.len()) {
            let Ok(parent) = store.image(p) else { break };
            let len = store
                .config(&parent)
                .ok()
                .and_then(|c| c["history"].as_array().map(Vec::len));
            if len != entries.len().checked_sub(depth) {
                break;
            }
            out[depth].id = Some(parent.id.clone());
            at = parents.get(p);
            depth += 1;
        }
    } else {
        out.push(HistoryEntry {
            id: Some(image.id.clone()),
            created: Some(image.created),
            created_by: String::new(),
            size: image.size,
            comment: String::new(),
        });
    }
    Ok(out)
}

/// What docker's commit accepts as a change: no instruction that would
/// need a build.
const COMMIT_CHANGES: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "USER",
    "VOLUME",
    "WORKDIR",
    "STOPSIGNAL",
];

/// `docker commit`: the container's changes as a new image. With `pause`
/// (docker's default) a running container is frozen for the walk, so the
/// layer is one moment of its filesystem, and thawed whatever happens.
pub fn commit(
    engine: &Engine,
    store: &Store,
    key: &str,
    opts: &CommitOptions,
    pause: bool,
) -> Result<Image> {
    for c in &opts.changes {
        let instr = c
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if !COMMIT_CHANGES.contains(&instr.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "{instr} is not a valid change command"
            )));
        }
    }
    let c = engine.find(key)?;
    let image = store.image(&c.image_id).map_err(not_found(&c.image_id))?;
    let mut opts = opts.clone();
    if opts.created_by.is_none() {
        opts.created_by = Some(crate::spec::args(&c.config).join(" "));
    }
    let paused = pause && c.state == State::Running && engine.runtime().pause(&c.id).is_ok();
    let result = store.commit(&image, &c.id, &opts);
    if paused {
        if let Err(e) = engine.runtime().resume(&c.id) {
            tracing::warn!(container = %c.id, error = %e, "could not resume after commit");
        }
    }
    let made = result?;
    // dockerd's: the new tag's event, then the container's `commit`.
    if let Some(r) = &opts.reference {
        engine.tag_event(store, &made, r);
    }
    let image_ref = opts.reference.as_ref().map(Reference::familiar);
    let db = engine.db()?;
    crate::events::container(
        &db,
        &c,
        "commit",
        &[
            ("comment", opts.message.clone().unwrap_or_default()),
            ("imageID", made.id.to_string()),
            ("imageRef", image_ref.unwrap_or_default()),
        ],
    );
    Ok(made)
}

/// `docker export`: the container's whole filesystem as one tar on `out`.
/// A running container's root is already mounted; any other's snapshot
/// is mounted for the walk under the runroot and unmounted after.
pub fn export(engine: &Engine, store: &Store, key: &str, out: impl Write) -> Result<()> {
    let c = engine.find(key)?;
    let running = engine.paths.rootfs(&c.id);
    if c.state == State::Running && is_mountpoint(&running) {
        layer_diff(&running, out, &DiffOptions::default()).map_err(|e| Error::Image(e.into()))?;
        return Ok(());
    }
    let mounts = images::container_mounts(&engine.paths.root, store, &c.id)?;
    let dir = engine
        .paths
        .runroot
        .join("export")
        .join(format!("{}-{}", c.id, std::process::id()));
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let result = (|| {
        berth_image::snapshot::mount_all(&mounts, &dir).map_err(|e| Error::Image(e.into()))?;
        layer_diff(&dir, out, &DiffOptions::default()).map_err(|e| Error::Image(e.into()))?;
        Ok(())
    })();
    let undone = unmount(&dir);
    let _ = fs::remove_dir(&dir);
    result.and(undone)
}

fn is_mountpoint(p: &Path) -> bool {
    match (fs::metadata(p), p.parent().map(fs::metadata)) {
        (Ok(m), Some(Ok(parent))) => m.dev() != parent.dev(),
        _ => false,
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// `docker diff`: the container's upper directory against its image's
/// layers, sorted by path. An overlay whiteout (a 0/0 character device)
/// is a deletion; anything else is a change when a lower layer has the
/// path, an addition otherwise.
pub fn diff(engine: &Engine, store: &Store, key: &str) -> Result<Vec<Change>> {
    let c = engine.find(key)?;
    let upper = store
        .snapshotter()
        .upper(&c.id)
        .map_err(|e| Error::Image(e.into()))?;
    let lowers: Vec<PathBuf> = images::rootfs_mounts(store, &c.id)?
        .iter()
        .filter(|m| m.kind == "overlay")
        .filter_map(|m| m.option_value("lowerdir"))
        .flat_map(|l| l.split(':').map(PathBuf::from).collect::<Vec<_>>())
        .collect();
    let mut out = Vec::new();
    let mut stack = vec![(upper.clone(), Vec::<String>::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(io_err(format!("reading {}", dir.display())))?;
        for e in rd {
            let e = e.map_err(io_err(format!("reading {}", dir.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let m = e
                .metadata()
                .map_err(io_err(format!("reading {}", e.path().display())))?;
            let mut comps = rel.clone();
            comps.push(name);
            let path = format!("/{}", comps.join("/"));
            if is_mount_stub(&path, &m) {
                continue;
            }
            if is_whiteout(&m) {
                out.push(Change {
                    path,
                    kind: ChangeKind::Deleted,
                });
                continue;
            }
            let kind = if in_lowers(&lowers, &comps) {
                ChangeKind::Changed
            } else {
                ChangeKind::Added
            };
            out.push(Change { path, kind });
            if m.is_dir() {
                stack.push((e.path(), comps));
            }
        }
    }
    // A directory made or copied up only to hold mount stubs (/etc for
    // /etc/hosts) is the runtime's too, as long as nothing else changed in it.
    let holds_changes = |dir: &str| {
        out.iter()
            .any(|c| c.path.len() > dir.len() + 1 && c.path.starts_with(&format!("{dir}/")))
    };
    let stub_only: Vec<String> = out
        .iter()
        .filter(|c| c.kind != ChangeKind::Deleted && STUB_PARENTS.contains(&c.path.as_str()))
        .filter(|c| !holds_changes(&c.path))
        .map(|c| c.path.clone())
        .collect();
    out.retain(|c| !stub_only.contains(&c.path));
    out.sort();
    Ok(out)
}

/// The directories [`is_mount_stub`]'s files are made in.
const STUB_PARENTS: &[&str] = &["/etc"];

/// Mount points the runtime makes in a container's root before its
/// mounts (docker keeps these in an "init" layer below the container's,
/// so its diff never shows them): an empty directory or file at one of
/// these paths is ours, not the container's change.
fn is_mount_stub(path: &str, m: &fs::Metadata) -> bool {
    const STUBS: &[&str] = &[
        "/dev",
        "/proc",
        "/sys",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/dev/shm",
        "/dev/pts",
        "/dev/mqueue",
    ];
    STUBS.contains(&path) && (m.is_dir() || (m.is_file() && m.len() == 0))
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(n) if n >= 1 && buf[0] == b'y')
}

/// Whether the merged view of `lowers` (top first) has the path `comps`.
/// Resolved one component at a time without following symlinks: a
/// symlink or file where a directory should be hides the lower layers,
/// as overlay does, and so do whiteouts and opaque directories.
fn in_lowers(lowers: &[PathBuf], comps: &[String]) -> bool {
    for lower in lowers {
        let mut cur = lower.clone();
        let mut hidden = false;
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Err(_) => break,
                Ok(m) if is_whiteout(&m) => {
                    hidden = true;
                    break;
                }
                Ok(_) if i + 1 == comps.len() => return true,
                Ok(m) if m.is_dir() => {
                    if is_opaque(&cur) {
                        // Lower layers' contents of this directory are gone;
                        // only this layer's count.
                        return in_one(&cur, &comps[i + 1..]);
                    }
                }
                Ok(_) => {
                    hidden = true;
                    break;
                }
            }
        }
        if hidden {
            return false;
        }
    }
    false
}

fn in_one(dir: &Path, rest: &[String]) -> bool {
    let mut cur = dir.to_path_buf();
    for (i, c) in rest.iter().enumerate() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if is_whiteout(&m) => return false,
            Ok(_) if i + 1 == rest.len() => return true,
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_follow_parents_to_the_root() {
        let parents: Parents = [("c", "b"), ("b", "a"), ("y", "x"), ("x", "y")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = ancestors(["c".to_string()].into_iter(), &parents);
        assert_eq!(got, HashSet::from(["b".to_string(), "a".to_string()]));
        // Two images on one chain: each ancestor once.
        let got = ancestors(["c".to_string(), "b".to_string()].into_iter(), &parents);
        assert_eq!(got.len(), 2);
        assert!(ancestors(["a".to_string()].into_iter(), &parents).is_empty());
        // A cycle ends.
        let got = ancestors(["y".to_string()].into_iter(), &parents);
        assert_eq!(got, HashSet::from(["x".to_string(), "y".to_string()]));
    }

    #[test]
    fn lower_lookup_honours_whiteouts_and_files() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("top");
        let bottom = t.path().join("bottom");
        fs::create_dir_all(bottom.join("etc/sub")).unwrap();
        fs::write(bottom.join("etc/sub/f"), "x").unwrap();
        fs::write(bottom.join("etc/g"), "x").unwrap();
        fs::create_dir_all(top.join("etc")).unwrap();
        // In the top layer, "sub" became a file: bottom's etc/sub/f is hidden.
        fs::write(top.join("etc/sub"), "file").unwrap();
        let lowers = [top, bottom];
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        assert!(in_lowers(&lowers, &p("etc/g")));
        assert!(in_lowers(&lowers, &p("etc/sub")));
        assert!(!in_lowers(&lowers, &p("etc/sub/f")));
        assert!(!in_lowers(&lowers, &p("etc/nope")));
    }
}
