//! `cp`'s engine half: a container's root filesystem as a directory for
//! the length of one call. A running container's mounted rootfs is used
//! as it is; a stopped (or created) one has its snapshot mounted under
//! the runroot, as `export` does, and unmounted afterwards.
//!
//! It lends the directory; [`tarball`] archives from it and unpacks into
//! it, resolving every path inside it with `RESOLVE_IN_ROOT`, never by
//! joining strings. Docker's rules for where a copy lands stay with the
//! callers (the CLI's `cp`, the API's archive endpoints).

mod tarball;

pub use tarball::{
    archive, lookup, open_root, stat_src, unpack, CopyError, InPath, Owner, SrcInfo,
};

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_image::store::Store;

use crate::container::{unmount, Engine};
use crate::db::Container;
use crate::error::{io_err, Error};
use crate::images;

/// Calls `f` with the container and the host directory its root
/// filesystem is mounted on.
pub fn with_rootfs<T, E: From<Error>>(
    engine: &Engine,
    store: &Store,
    key: &str,
    f: impl FnOnce(&Container, &Path) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let c = engine.find(key)?;
    let running = engine.paths.rootfs(&c.id);
    if is_mountpoint(&running) {
        return f(&c, &running);
    }
    let mounts = images::container_mounts(&engine.paths.root, store, &c.id)?;
    let dir = engine
        .paths
        .runroot
        .join("cp")
        .join(format!("{}-{}", c.id, std::process::id()));
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    if let Err(e) = berth_image::snapshot::mount_all(&mounts, &dir) {
        let _ = unmount(&dir);
        let _ = fs::remove_dir(&dir);
        return Err(Error::Image(e.into()).into());
    }
    let result = f(&c, &dir);
    let undone = unmount(&dir);
    let _ = fs::remove_dir(&dir);
    let v = result?;
    undone?;
    Ok(v)
}

fn is_mountpoint(p: &Path) -> bool {
    match (fs::metadata(p), p.parent().map(fs::metadata)) {
        (Ok(m), Some(Ok(parent))) => m.dev() != parent.dev(),
        _ => false,
    }
}
