//! `RUN --mount`: what a step's container sees besides the image, none of
//! which reaches the layer.
//!
//! - `type=bind`: a path of the context (as the build sees it, ignored
//!   files left out) or of a stage or image (`from=`), read-only unless
//!   `rw`, in which case the step writes to a throwaway copy.
//! - `type=cache`: a directory under `--root` that outlives builds, one per
//!   `id` (the target by default). `sharing=locked` takes it exclusively;
//!   `private` takes a fresh directory when another step holds it.
//! - `type=tmpfs`: a tmpfs (`size=`).
//! - `type=secret`: a `--secret` file at `/run/secrets/ID` (or `target`),
//!   mode 0400 unless `mode=`, or in an environment variable (`env=`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_engine::hostconfig::MountSpec;
use berth_image::Digest;
use rustix::fs::FlockOperation;

use super::error::{io_err, BuildError, Result};
use super::resolve::{resolve, Escape};
use super::source::{Item, Kind, Tree};
use super::view::View;
use crate::dockerfile::{CacheSharing, Mount, MountKind};

/// A step's mounts, and what must live as long as the step.
#[derive(Default)]
pub(crate) struct RunMounts<'a> {
    pub binds: Vec<MountSpec>,
    pub tmpfs: BTreeMap<String, String>,
    pub env: Vec<String>,
    /// Every mount target, to take the runtime's mount points back out of
    /// the layer.
    pub targets: Vec<String>,
    pub views: Vec<View<'a>>,
    pub temps: Vec<tempfile::TempDir>,
    /// Locks held on cache directories (`sharing=locked|private`).
    pub locks: Vec<fs::File>,
}

/// Where a mount's `from=` points, resolved by the stage.
pub(crate) enum From<'a> {
    Context,
    View(View<'a>),
}

fn bind(source: &Path, target: &str, read_only: bool) -> MountSpec {
    MountSpec {
        kind: "bind".into(),
        source: source.display().to_string(),
        target: target.to_string(),
        read_only,
        propagation: "rprivate".into(),
        options: String::new(),
    }
}

fn absolute(target: &str, workdir: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        super::config::join_workdir(workdir, target)
    }
}

impl<'a> RunMounts<'a> {
    /// Adds `m`. `from` says what a bind's `from=` names.
    pub fn add(
        &mut self,
        m: &Mount,
        from: From<'a>,
        workdir: &str,
        b: &super::Build<'_>,
    ) -> Result<()> {
        let target = m.target.as_deref().map(|t| absolute(t, workdir));
        let need_target = || {
            target
                .clone()
                .ok_or_else(|| BuildError::Invalid("RUN --mount: target is required".into()))
        };
        match m.kind {
            MountKind::Bind => {
                let target = need_target()?;
                let rw = m.read_only == Some(false);
                let source = m.source.as_deref().unwrap_or("/");
                match from {
                    From::View(v) if !rw => {
                        let rel =
                            resolve(v.root(), source.as_bytes(), Escape::Clamp).map_err(|_| {
                                BuildError::Invalid(format!(
                                    "--mount source {source}: too many links"
                                ))
                            })?;
                        let path = v.root().join(rel);
                        if !path.exists() {
                            return Err(BuildError::NotInImage(
                                source.to_string(),
                                "the mount's image".into(),
                            ));
                        }
                        self.binds.push(bind(&path, &target, true));
                        self.views.push(v);
                    }
                    from => {
                        let root = match &from {
                            From::View(v) => v.root().to_path_buf(),
                            From::Context => b.context.root().to_path_buf(),
                        };
                        let context = matches!(from, From::Context);
                        let t = Tree {
                            root: &root,
                            ignore: context.then(|| b.context.ignore()),
                            escape: if context {
                                Escape::Refuse
                            } else {
                                Escape::Clamp
                            },
                            keep_owner: !context,
                            name: "the mount's source",
                        };
                        let items = t.select(source)?;
                        let tmp = tempfile::Builder::new()
                            .prefix("mount-")
                            .tempdir_in(&b.scratch)
                            .map_err(io_err("creating a mount directory"))?;
                        let path = copy_out(&items, tmp.path())?;
                        self.binds.push(bind(&path, &target, !rw));
                        self.temps.push(tmp);
                        if let From::View(v) = from {
                            self.views.push(v);
                        }
                    }
                }
                self.targets.push(target);
            }
            MountKind::Cache => {
                let target = need_target()?;
                if m.from.is_some() {
                    return Err(BuildError::Unsupported(
                        "RUN --mount=type=cache,from=".into(),
                    ));
                }
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let dir = b
                    .engine
                    .paths
                    .root
                    .join("build-cache")
                    .join(Digest::of(id.as_bytes()).hex());
                if !dir.exists() {
                    let mode = parse_mode(m.mode.as_deref(), 0o755)?;
                    let uid = parse_id(m.uid.as_deref())?;
                    let gid = parse_id(m.gid.as_deref())?;
                    let parent = dir.parent().expect("cache directories have a parent");
                    fs::create_dir_all(parent)
                        .map_err(io_err(format!("creating {}", parent.display())))?;
                    // Made aside and moved in whole, so no step ever sees
                    // it half set up.
                    let tmp = parent.join(super::view::unique("new-")?);
                    fs::create_dir(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
                    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
                        .map_err(io_err("setting the cache mount's mode"))?;
                    rustix::fs::chown(
                        &tmp,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                    )
                    .map_err(|e| io_err("setting the cache mount's owner")(e.into()))?;
                    // Another step may have made it meanwhile: theirs wins,
                    // never replaced (a plain rename would swap an empty
                    // one from under a step already using it).
                    if rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &tmp,
                        rustix::fs::CWD,
                        &dir,
                        rustix::fs::RenameFlags::NOREPLACE,
                    )
                    .is_err()
                    {
                        let _ = fs::remove_dir(&tmp);
                    }
                }
                let mut source = dir.clone();
                match m.sharing.unwrap_or(CacheSharing::Shared) {
                    CacheSharing::Shared => {}
                    sharing => {
                        let lock = fs::File::open(&dir)
                            .map_err(io_err(format!("opening {}", dir.display())))?;
                        let exclusive = if sharing == CacheSharing::Locked {
                            FlockOperation::LockExclusive
                        } else {
                            FlockOperation::NonBlockingLockExclusive
                        };
                        match rustix::fs::flock(&lock, exclusive) {
                            Ok(()) => self.locks.push(lock),
                            Err(_) => {
                                // private, and in use: a directory of its own.
                                let tmp = tempfile::Builder::new()
                                    .prefix("cache-")
                                    .tempdir_in(&b.scratch)
                                    .map_err(io_err("creating a private cache directory"))?;
                                source = tmp.path().to_path_buf();
                                self.temps.push(tmp);
                            }
                        }
                    }
                }
                self.binds
                    .push(bind(&source, &target, m.read_only == Some(true)));
                self.targets.push(target);
            }
            MountKind::Tmpfs => {
                let target = need_target()?;
                let opts = m
                    .size
                    .as_ref()
                    .map(|s| format!("size={s}"))
                    .unwrap_or_default();
                self.tmpfs.insert(target.clone(), opts);
                self.targets.push(target);
            }
            MountKind::Secret => {
                let id = match (&m.id, &target) {
                    (Some(id), _) => id.clone(),
                    (None, Some(t)) => super::source::base_name(t).to_string(),
                    (None, None) => {
                        return Err(BuildError::Invalid(
                            "RUN --mount=type=secret: id is required".into(),
                        ))
                    }
                };
                let Some(data) = b.opts.secrets.get(&id).cloned() else {
                    if m.required == Some(true) {
                        return Err(BuildError::Invalid(format!(
                            "secret {id} not found: give it with --secret id={id},src=PATH"
                        )));
                    }
                    return Ok(());
                };
                if let Some(var) = &m.env {
                    let text = String::from_utf8(data.clone()).map_err(|_| {
                        BuildError::Invalid(format!(
                            "secret {id} is not text: it cannot be an environment variable"
                        ))
                    })?;
                    self.env.push(format!("{var}={text}"));
                    if target.is_none() {
                        return Ok(());
                    }
                }
                let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
                let tmp = tempfile::Builder::new()
                    .prefix("secret-")
                    .tempdir_in(&b.scratch)
                    .map_err(io_err("creating a secret directory"))?;
                let file = tmp.path().join("secret");
                fs::write(&file, &data).map_err(io_err("writing a secret"))?;
                let mode = parse_mode(m.mode.as_deref(), 0o400)?;
                fs::set_permissions(&file, fs::Permissions::from_mode(mode))
                    .map_err(io_err("setting a secret's mode"))?;
                let (uid, gid) = (parse_id(m.uid.as_deref())?, parse_id(m.gid.as_deref())?);
                rustix::fs::chown(
                    &file,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| io_err("setting a secret's owner")(e.into()))?;
                self.binds.push(bind(&file, &target, true));
                self.temps.push(tmp);
                self.targets.push(target);
            }
            MountKind::Ssh => return Err(BuildError::Unsupported("RUN --mount=type=ssh".into())),
        }
        Ok(())
    }
}

fn parse_mode(text: Option<&str>, default: u32) -> Result<u32> {
    match text {
        None => Ok(default),
        Some(t) => u32::from_str_radix(t, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| BuildError::Invalid(format!("RUN --mount: invalid mode {t:?}"))),
    }
}

fn parse_id(text: Option<&str>) -> Result<u32> {
    match text {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| BuildError::Invalid(format!("RUN --mount: invalid uid/gid {t:?}"))),
    }
}

/// Copies the selected items into `dir` (one file, or one directory's
/// contents); returns what to mount.
fn copy_out(items: &[Item], dir: &Path) -> Result<PathBuf> {
    let [item] = items else {
        return Err(BuildError::Invalid(
            "RUN --mount=type=bind takes one source".into(),
        ));
    };
    let top = if item.is_dir {
        dir.join("src")
    } else {
        dir.join(&item.name)
    };
    for e in &item.entries {
        let at = if e.rel.is_empty() {
            top.clone()
        } else {
            top.join(&e.rel)
        };
        let err = io_err(format!("copying to {}", at.display()));
        match &e.kind {
            Kind::Dir => fs::create_dir_all(&at).map_err(err)?,
            Kind::File { .. } => match (&e.src, &e.data) {
                (Some(src), _) => {
                    fs::copy(src, &at).map_err(err)?;
                }
                (None, Some(d)) => fs::write(&at, d).map_err(err)?,
                (None, None) => {}
            },
            Kind::Symlink { target } => symlink(target, &at).map_err(err)?,
            // Special files have no place in a mount of plain files.
            _ => continue,
        }
        if !matches!(e.kind, Kind::Symlink { .. }) {
            fs::set_permissions(&at, fs::Permissions::from_mode(e.mode))
                .map_err(io_err(format!("copying to {}", at.display())))?;
        }
    }
    Ok(top)
}
