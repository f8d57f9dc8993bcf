//! Snapshots: the filesystems containers run on, built from layers.
//!
//! # The lifecycle
//!
//! A snapshotter holds a tree of snapshots. Each is *committed* (read-only,
//! named, may be a parent), *active* (writable, keyed, has a parent or
//! none) or a *view* (read-only, keyed, for looking at a parent).
//!
//! Unpacking an image, layer by layer, is:
//!
//! 1. `prepare(key, parent)` an active snapshot on top of the previous
//!    layer's committed snapshot (none for the first layer). It returns the
//!    [`Mount`]s that present the snapshot: the caller decides where, and
//!    whether, to mount them ([`crate::layer::apply_to_mounts`] applies a
//!    layer straight into them without mounting at all).
//! 2. Apply the layer into it.
//! 3. `commit(name, key)` it under the layer's *chain id*, the digest that
//!    names a layer together with everything below it. The key is gone; the
//!    name is now a parent anyone can build on. Every image holding the same
//!    layers at the same depth shares this one snapshot.
//!
//! A container is `prepare(container_id, top_chain_id)`: an active
//! snapshot whose writes land in its own upper directory and never touch a
//! committed parent. `view` is the read-only sibling of `prepare`, for
//! `export`, `diff` or a build step that only reads.
//!
//! `remove(key)` deletes an active snapshot or view, or a committed one that
//! no other snapshot has as parent (that is a `Conflict`). `stat` and `list`
//! tell what is there. Keys and names share one namespace.
//!
//! # Unpacking layers side by side
//!
//! Where a layer's directory holds only that layer's changes (overlay),
//! the layers of an image do not need their parents to be unpacked: each
//! can be applied into a [`Staged`] directory from [`Snapshotter::stage`]
//! at the same time as the others, and then adopted in order with
//! [`Snapshotter::commit_staged`] (a rename). Backends that copy the parent
//! (native) return `None` from `stage` and are unpacked one by one.
//!
//! Two backends pass the same conformance tests: [`overlay`] (a committed
//! layer is a directory used as an overlay lowerdir) and [`native`] (every
//! snapshot a full copy, for filesystems without overlay).

mod meta;
mod mount;
pub mod native;
pub mod overlay;

#[cfg(test)]
mod testsuite;

use std::io;
use std::path::{Path, PathBuf};

pub use mount::{bind_idmapped, mount_all, mount_all_idmapped, unmount, Mount};

use crate::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0:?} not found")]
    NotFound(String),
    #[error("snapshot {0:?} already exists")]
    AlreadyExists(String),
    #[error("snapshot {key:?}: {reason}")]
    InvalidArgument { key: String, reason: String },
    #[error("snapshot {key:?}: {reason}")]
    Conflict { key: String, reason: String },
    #[error("snapshot metadata: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl SnapshotError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::NotFound(_) => ErrorKind::NotFound,
            SnapshotError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            SnapshotError::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            SnapshotError::Conflict { .. } => ErrorKind::Conflict,
            SnapshotError::Db(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                ErrorKind::Unavailable
            }
            SnapshotError::Db(_) => ErrorKind::Internal,
            SnapshotError::Io { source, .. } => ErrorKind::of_io(source),
        }
    }
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let context = context.into();
    move |source| SnapshotError::Io { context, source }
}

pub type Result<T> = std::result::Result<T, SnapshotError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Active,
    View,
    Committed,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "active" => Kind::Active,
            "view" => Kind::View,
            _ => Kind::Committed,
        }
    }
}

/// What a snapshotter records about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (active, view) or name (committed).
    pub key: String,
    pub parent: Option<String>,
    pub kind: Kind,
    pub created: chrono::DateTime<chrono::Utc>,
    /// Where the snapshot's own files live, for size accounting and
    /// `diff`; mount the [`Mount`]s to see the whole tree.
    pub dir: PathBuf,
}

/// The snapshot lifecycle; see the module documentation for the story.
pub trait Snapshotter: Send + Sync {
    /// The backend's name (`overlay`, `native`), as `docker info` shows it.
    fn name(&self) -> &'static str;

    /// Facts about `key`, or `NotFound`.
    fn stat(&self, key: &str) -> Result<Info>;

    /// The mounts of an active snapshot or view, again: for a container
    /// being restarted.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;

    /// Creates an active (writable) snapshot `key` on top of the committed
    /// snapshot `parent` (or empty) and returns the mounts that show it.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;

    /// Like `prepare` but read-only; nothing can be committed from it.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;

    /// Turns the active snapshot `key` into the committed snapshot `name`.
    /// Unmount it first: a committed snapshot must not change again.
    fn commit(&self, name: &str, key: &str) -> Result<()>;

    /// Deletes a snapshot with no children.
    fn remove(&self, key: &str) -> Result<()>;

    /// [`Snapshotter::remove`] but for the deletion of the snapshot's
    /// files, which on some filesystems is its slowest part: the record is
    /// gone and the files out of the way on return, and the caller purges
    /// the returned [`Detached`] when it has the time (containerd's
    /// asynchronous remove).
    fn remove_detached(&self, key: &str) -> Result<Detached> {
        self.remove(key).map(|()| Detached::default())
    }

    /// Every snapshot, parents before children.
    fn list(&self) -> Result<Vec<Info>>;

    /// A fresh directory to unpack one layer into before its parent
    /// exists, or `None` when this backend cannot adopt one (see the
    /// module documentation).
    fn stage(&self) -> Result<Option<Staged>> {
        Ok(None)
    }

    /// Adopts `staged` as the committed snapshot `name` on `parent`.
    fn commit_staged(&self, name: &str, _parent: Option<&str>, _staged: Staged) -> Result<()> {
        Err(SnapshotError::InvalidArgument {
            key: name.into(),
            reason: format!("the {} snapshotter cannot adopt staged layers", self.name()),
        })
    }

    /// The directory holding only the changes made in the active snapshot
    /// `key` (overlay's upper directory): what `commit` turns into a layer
    /// at a cost proportional to the change. Backends without one say so.
    fn upper(&self, key: &str) -> Result<PathBuf> {
        Err(SnapshotError::InvalidArgument {
            key: key.into(),
            reason: format!(
                "the {} snapshotter keeps no separate changes to commit",
                self.name()
            ),
        })
    }
}

/// The files of a removed snapshot, moved aside but not yet deleted (see
/// [`Snapshotter::remove_detached`]). Dropped without [`Detached::purge`],
/// they are deleted then; a crash first leaves them to the sweep at the
/// snapshotter's next open.
#[derive(Debug, Default)]
#[must_use = "the files are deleted when it drops"]
pub struct Detached {
    path: Option<PathBuf>,
}

impl Detached {
    pub(crate) fn new(path: PathBuf) -> Detached {
        Detached { path: Some(path) }
    }

    /// Deletes the files.
    pub fn purge(mut self) -> Result<()> {
        match self.path.take() {
            Some(p) => std::fs::remove_dir_all(&p)
                .or_else(|e| match e.kind() {
                    io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(io_err(format!("removing {}", p.display()))),
            None => Ok(()),
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// A directory filled with one layer apart from any snapshot. Dropped
/// without being adopted, it is deleted; a crash leaves it to the sweep at
/// the next open (its name carries the writer's pid).
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    adopted: bool,
}

impl Staged {
    pub(crate) fn new(path: PathBuf) -> Staged {
        Staged {
            path,
            adopted: false,
        }
    }

    /// Where to unpack the layer.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn adopt(mut self) -> PathBuf {
        self.adopted = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.adopted {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
