//! The engine's view of the image store: open it under `--root`, find an
//! image and its config, prepare and remove containers' root snapshots.
//! The image crate does the work; this module only wires it to our paths.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_image::snapshot::overlay::OverlaySnapshotter;
use berth_image::snapshot::{Detached, Mount};
use berth_image::store::{Image, Store, StoreError};

use crate::error::{io_err, Error, Result};
use crate::options::ImageConfig;
use crate::paths::Paths;

pub use berth_image::store::Image as StoredImage;

pub fn open(paths: &Paths) -> Result<Store> {
    let dir = paths.root.join("snapshots");
    let snap = OverlaySnapshotter::open(&dir).map_err(|e| Error::Image(StoreError::from(e)))?;
    // The init layer comes with the store, so that a container's start
    // (or a build's, which may fail) does not change the store's layout.
    // A store that cannot take it now gets it at a start, which says why.
    let _ = init_layer(&dir);
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

/// The mount points the runtime mounts on in every container's root:
/// docker's "init layer". Kept in one read-only layer under every
/// container's own (see [`container_mounts`]), they are made once per
/// store instead of in each container's writable layer at each start,
/// and never show in its diff or commit.
const INIT_LAYER: &[(&str, bool)] = &[
    ("dev", true),
    ("proc", true),
    ("sys", true),
    ("etc", true),
    ("etc/hosts", false),
    ("etc/hostname", false),
    ("etc/resolv.conf", false),
];

/// The init layer in `parent` (as its `init-layer`), made the first time.
fn init_layer(parent: &Path) -> Result<PathBuf> {
    let dir = parent.join("init-layer");
    if dir.is_dir() {
        return Ok(dir);
    }
    sweep_init_layers_aside(parent);
    // Made aside and renamed: a layer that is there is whole. The name
    // aside is this call's own: threads of one process (a build's
    // parallel stages) may make it at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = parent.join(format!("{INIT_ASIDE}{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let made = (|| -> std::io::Result<()> {
        fs::create_dir_all(&tmp)?;
        for (rel, is_dir) in INIT_LAYER {
            let p = tmp.join(rel);
            if *is_dir {
                fs::create_dir(&p)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
            } else {
                fs::File::create(&p)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o644))?;
            }
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        fs::rename(&tmp, &dir)
    })();
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&tmp);
        // Another process made it meanwhile.
        if !dir.is_dir() {
            return Err(io_err(format!("making {}", dir.display()))(e));
        }
    }
    Ok(dir)
}

/// The prefix of an init layer being made, before the pid of its maker.
const INIT_ASIDE: &str = ".init-layer-";

/// Removes the init layers aside whose makers died (a crash, SIGKILL)
/// before renaming them; a live maker's is its own to finish. Done only
/// while the layer is missing, when the next maker comes: a maker that
/// dies while another makes the layer leaves its few empty entries.
fn sweep_init_layers_aside(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(INIT_ASIDE))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The mounts of container `id`'s root as it runs (and as `cp` and
/// `export` see it): its snapshot's, over the store's init layer
/// (ROOT/snapshots/init-layer).
pub fn container_mounts(root: &Path, store: &Store, id: &str) -> Result<Vec<Mount>> {
    let mut mounts = rootfs_mounts(store, id)?;
    if !mounts.iter().any(|m| m.kind == "overlay") {
        return Ok(mounts);
    }
    // Beside the snapshots: a layer like theirs, that no snapshot owns.
    under(&mut mounts, &init_layer(&root.join("snapshots"))?);
    Ok(mounts)
}

/// Puts `layer` under the overlays of `mounts`, as their top lower layer.
fn under(mounts: &mut [Mount], layer: &Path) {
    for m in mounts.iter_mut().filter(|m| m.kind == "overlay") {
        for o in m.options.iter_mut() {
            if let Some(lower) = o.strip_prefix("lowerdir=") {
                *o = format!("lowerdir={}:{lower}", layer.display());
            }
        }
    }
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
    fn the_init_layer_is_made_once_and_goes_under_overlays() {
        let t = tempfile::tempdir().unwrap();
        let layer = init_layer(t.path()).unwrap();
        for (rel, is_dir) in INIT_LAYER {
            let m = fs::metadata(layer.join(rel)).unwrap();
            assert_eq!(m.is_dir(), *is_dir, "{rel}");
            assert!(m.is_dir() || m.len() == 0, "{rel}");
        }
        // Made once: a second call finds it, and leaves nothing aside.
        fs::write(layer.join("etc/hosts"), "kept").unwrap();
        assert_eq!(init_layer(t.path()).unwrap(), layer);
        assert_eq!(fs::read_to_string(layer.join("etc/hosts")).unwrap(), "kept");
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["init-layer"]);
        // Made by many threads at once: each finds it whole.
        let t = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let l = init_layer(t.path()).unwrap();
                    assert!(l.join("etc/hosts").is_file());
                });
            }
        });
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["init-layer"]);
        // What a maker that died left aside goes with the next making; a
        // live maker's stays.
        let t = tempfile::tempdir().unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let left = t.path().join(format!("{INIT_ASIDE}{dead_pid}-0"));
        let live = t
            .path()
            .join(format!("{INIT_ASIDE}{}-999", std::process::id()));
        for d in [&left, &live] {
            fs::create_dir_all(d.join("etc")).unwrap();
        }
        init_layer(t.path()).unwrap();
        assert!(!left.exists() && live.exists());
        let mount = |kind: &str, options: &[&str]| Mount {
            kind: kind.into(),
            source: "x".into(),
            target: None,
            options: options.iter().map(|s| s.to_string()).collect(),
        };
        let mut ms = vec![
            mount(
                "overlay",
                &["lowerdir=/l2:/l1", "upperdir=/u", "workdir=/w"],
            ),
            mount("bind", &["rbind"]),
        ];
        under(&mut ms, Path::new("/init"));
        assert_eq!(ms[0].options[0], "lowerdir=/init:/l2:/l1");
        assert_eq!(ms[0].options[1..], ["upperdir=/u", "workdir=/w"]);
        assert_eq!(ms[1].options, ["rbind"]);
    }

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
