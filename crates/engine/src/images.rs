//! The engine's view of the image store: open it under `--root`, find an
//! image and its config, prepare and remove containers' root snapshots.
//! The image crate does the work; this module only wires it to our paths.

use berth_image::snapshot::overlay::OverlaySnapshotter;
use berth_image::snapshot::{Detached, Mount};
use berth_image::store::{Image, Store, StoreError};

use crate::error::{Error, Result};
use crate::options::ImageConfig;
use crate::paths::Paths;

pub use berth_image::store::Image as StoredImage;

pub fn open(paths: &Paths) -> Result<Store> {
    let snap = OverlaySnapshotter::open(&paths.root.join("snapshots"))
        .map_err(|e| Error::Image(StoreError::from(e)))?;
    Ok(Store::open(paths.image_root(), Box::new(snap))?)
}

/// Finds an image by reference, id or id prefix.
pub fn find(store: &Store, name: &str) -> Result<Image> {
    store.image(name).map_err(|e| match e {
        StoreError::NotFound(_) => Error::NoSuchImage(name.to_string()),
        e => Error::Image(e),
    })
}

/// The parts of the image's config a container starts from.
pub fn config(store: &Store, image: &Image) -> Result<ImageConfig> {
    let v = store.config(image)?;
    Ok(image_config(&v))
}

/// Reads `config` of an OCI image configuration, tolerating missing fields
/// (an imported tarball has none).
pub fn image_config(v: &serde_json::Value) -> ImageConfig {
    let c = &v["config"];
    let list = |k: &str| -> Vec<String> {
        c[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    ImageConfig {
        env: list("Env"),
        cmd: list("Cmd"),
        entrypoint: list("Entrypoint"),
        working_dir: s("WorkingDir"),
        user: s("User"),
        labels: c["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        stop_signal: s("StopSignal"),
        volumes: c["Volumes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        exposed_ports: c["ExposedPorts"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        healthcheck: c
            .get("Healthcheck")
            .filter(|h| h.is_object())
            .and_then(|h| serde_json::from_value(h.clone()).ok()),
    }
}

/// A writable snapshot for container `id` on top of the image.
pub fn prepare_rootfs(store: &Store, image: &Image, id: &str) -> Result<Vec<Mount>> {
    Ok(store.rootfs(image, id)?)
}

/// The mounts of container `id`'s existing snapshot.
pub fn rootfs_mounts(store: &Store, id: &str) -> Result<Vec<Mount>> {
    store
        .snapshotter()
        .mounts(id)
        .map_err(|e| Error::Image(e.into()))
}

pub fn remove_rootfs(store: &Store, id: &str) -> Result<()> {
    match store.snapshotter().remove(id) {
        Ok(()) => Ok(()),
        Err(berth_image::snapshot::SnapshotError::NotFound(_)) => Ok(()),
        Err(e) => Err(Error::Image(e.into())),
    }
}

/// [`remove_rootfs`], leaving the deletion of the files to the caller.
pub fn detach_rootfs(store: &Store, id: &str) -> Result<Option<Detached>> {
    match store.snapshotter().remove_detached(id) {
        Ok(d) => Ok(Some(d)),
        Err(berth_image::snapshot::SnapshotError::NotFound(_)) => Ok(None),
        Err(e) => Err(Error::Image(e.into())),
    }
}

/// Where container `id`'s own changes live (the overlay upper directory).
pub fn rootfs_dir(store: &Store, id: &str) -> Result<std::path::PathBuf> {
    Ok(store
        .snapshotter()
        .stat(id)
        .map_err(|e| Error::Image(e.into()))?
        .dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_fields() {
        let v = serde_json::json!({"config": {"Env": ["A=1"], "Cmd": ["sh"], "WorkingDir": "/w", "User": "1"}});
        let c = image_config(&v);
        assert_eq!(
            (c.env, c.cmd, c.working_dir, c.user),
            (
                vec!["A=1".to_string()],
                vec!["sh".to_string()],
                "/w".to_string(),
                "1".to_string()
            )
        );
        assert_eq!(image_config(&serde_json::json!({})), ImageConfig::default());
    }
}
