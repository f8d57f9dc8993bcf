//! `--squash`: the final stage's new layers merged into one, on top of
//! its base's (docker's experimental squash). The new layers are applied
//! in order through an overlay mount of a fresh snapshot on the base, so
//! the kernel carries out their whiteouts, opaque directories included;
//! the snapshot's upper directory is then the merged change and becomes
//! the one layer, as a RUN's does. The steps' history stays, marked as
//! making no layer, followed by a "merge" entry that holds it.

use std::io::Write;
use std::path::Path;

use berth_image::content::Provider;
use berth_image::layer::{ApplyOptions, DiffOptions};
use berth_image::snapshot::{mount_all, unmount};
use berth_image::store::Store;
use serde_json::{json, Value};

use super::commit::{child, Current, Layer};
use super::error::{io_err, store as image_err, BuildError, Result};
use super::view::unique;

/// The image `last` with every layer it has beyond `base` merged into one.
pub(crate) fn squash(
    store: &Store,
    base: &Current,
    last: &Current,
    scratch: &Path,
    opts: &DiffOptions,
    created: &str,
) -> Result<Current> {
    let base_layers = base.diff_ids().len();
    let base_history = base.history().len();
    let descriptors = last.layer_descriptors(store)?;
    let diff_ids = last.diff_ids();
    if descriptors.len() < base_layers || last.history().len() < base_history {
        return Err(BuildError::Invalid(
            "--squash: the final image does not extend its base".into(),
        ));
    }
    let name = unique("squash-")?;
    let lease = store.lease()?;
    let key = format!("build-{name}");
    lease.add_snapshot(&key)?;
    let parent = base.image.as_ref().and_then(|i| i.top_chain_id.as_ref());
    let dir = scratch.join(&name);
    let result = (|| {
        let mounts = store
            .snapshotter()
            .prepare(&key, parent.map(|p| p.as_str()))
            .map_err(image_err)?;
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        mount_all(&mounts, &dir).map_err(image_err)?;
        let applied = (|| -> Result<()> {
            for d in &descriptors[base_layers..] {
                let digest = d["digest"]
                    .as_str()
                    .and_then(|s| berth_image::Digest::parse(s).ok())
                    .ok_or_else(|| BuildError::Invalid(format!("--squash: bad layer {d}")))?;
                let blob = store.content().reader(&digest)?;
                berth_image::layer::apply(blob, &dir, &ApplyOptions::default())
                    .map_err(image_err)?;
            }
            Ok(())
        })();
        unmount(&dir).map_err(image_err)?;
        applied?;
        let upper = store.snapshotter().upper(&key).map_err(image_err)?;
        let mut from = base.clone();
        from.config["rootfs"]["diff_ids"] = json!(diff_ids[..base_layers]
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>());
        let mut history = base.history();
        for mut h in last.history().into_iter().skip(base_history) {
            h["empty_layer"] = json!(true);
            history.push(h);
        }
        from.config["history"] = Value::Array(history);
        let mut write = |w: &mut dyn Write| -> Result<()> {
            berth_image::layer::diff(&upper, w, opts).map_err(image_err)?;
            Ok(())
        };
        let comment = match base.id() {
            Some(b) => format!("merge {} to {b}", id_of(last)),
            None => format!("create new from {}", id_of(last)),
        };
        child(
            store,
            &from,
            last.runtime(),
            json!({"created_by": "", "comment": comment}),
            Layer::Write(&mut write),
            created,
        )
    })();
    if let Err(e) = store.snapshotter().remove(&key) {
        tracing::warn!(snapshot = key, error = %e, "removing the squash snapshot");
    }
    let _ = std::fs::remove_dir(&dir);
    let _ = lease.release();
    result
}

fn id_of(c: &Current) -> String {
    c.id().map(|d| d.to_string()).unwrap_or_default()
}
