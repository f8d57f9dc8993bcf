//! Read-only views of images, mounted for as long as a step reads them:
//! the image a COPY writes onto (existing directories, `--chown` names)
//! and the stage or image a `COPY --from` reads. A view's snapshot is
//! named in a lease, so a crash leaves it to garbage collection.

use std::path::{Path, PathBuf};

use berth_image::snapshot::{mount_all, unmount};
use berth_image::store::{Image, Lease, Store};

use super::error::{io_err, Result};

pub(crate) struct View<'a> {
    store: &'a Store,
    dir: PathBuf,
    /// The snapshot and its lease; `None` for an image with no layers,
    /// whose view is an empty directory.
    snapshot: Option<(String, Lease<'a>)>,
}

impl<'a> View<'a> {
    /// Mounts `image` (or nothing, for scratch) read-only in a new
    /// directory under `scratch`.
    pub fn mount(store: &'a Store, image: Option<&Image>, scratch: &Path) -> Result<View<'a>> {
        let name = unique("view-")?;
        let dir = scratch.join(&name);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let mut view = View {
            store,
            dir,
            snapshot: None,
        };
        let Some(top) = image.and_then(|i| i.top_chain_id.as_ref()) else {
            return Ok(view);
        };
        let lease = store.lease()?;
        let key = format!("build-{name}");
        lease.add_snapshot(&key)?;
        let mounts = store
            .snapshotter()
            .view(&key, Some(top.as_str()))
            .map_err(super::error::store)?;
        view.snapshot = Some((key, lease));
        mount_all(&mounts, &view.dir).map_err(super::error::store)?;
        Ok(view)
    }

    pub fn root(&self) -> &Path {
        &self.dir
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        if let Some((key, lease)) = self.snapshot.take() {
            if let Err(e) = unmount(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "unmounting a build view");
            }
            if let Err(e) = self.store.snapshotter().remove(&key) {
                tracing::warn!(snapshot = key, error = %e, "removing a build view");
            }
            let _ = lease.release();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A name no other build picks at the same time.
pub(crate) fn unique(prefix: &str) -> Result<String> {
    Ok(format!("{prefix}{}", &berth_engine::names::new_id()?[..16]))
}
