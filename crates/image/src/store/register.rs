//! Recording an image whose blobs are in the content store: what a pull
//! (the registry client) and `load` end with.

use serde_json::Value;

use super::unpack::{EarlyUnpack, LayerSpec};
use super::{load_image, Image, Lease, Result, Store, StoreError};
use crate::content::{self, Provider};
use crate::digest::Digest;
use crate::reference::Reference;

impl Store {
    /// Records a pulled or loaded image: `manifest` (an OCI or Docker v2
    /// image manifest) and `config` are written as blobs, every layer blob
    /// the manifest names must already be in the content store (a puller
    /// writes them first, under its own [`Lease`] so gc leaves them be),
    /// the layers are unpacked by chain id (reusing what exists, checking
    /// each diff id against the config) and the image is recorded with
    /// `tags` in one transaction. On failure what this call created is
    /// taken back; the caller's blobs stay theirs.
    pub fn register(&self, manifest: &[u8], config: &[u8], tags: &[Reference]) -> Result<Image> {
        self.with_lease(|lease| self.register_in(lease, manifest, config, tags))
    }

    /// [`Store::register`] under the caller's lease, which the caller ends
    /// (release or collect).
    pub fn register_in(
        &self,
        lease: &Lease<'_>,
        manifest: &[u8],
        config: &[u8],
        tags: &[Reference],
    ) -> Result<Image> {
        self.register_early(lease, manifest, config, tags, None)
    }

    /// [`Store::register_in`] adopting the layers `early` staged; every
    /// blob must be committed by now.
    pub fn register_early(
        &self,
        lease: &Lease<'_>,
        manifest: &[u8],
        config: &[u8],
        tags: &[Reference],
        early: Option<&EarlyUnpack<'_>>,
    ) -> Result<Image> {
        let invalid = |m: String| StoreError::Invalid(m);
        let man: Value = serde_json::from_slice(manifest)
            .map_err(|e| invalid(format!("manifest is not JSON: {e}")))?;
        let cfg: Value = serde_json::from_slice(config)
            .map_err(|e| invalid(format!("config is not JSON: {e}")))?;
        let config_digest = Digest::of(config);
        let named = descriptor_digest(&man["config"])
            .ok_or_else(|| invalid("manifest has no config descriptor".into()))?;
        if named != config_digest {
            return Err(invalid(format!(
                "manifest names config {named}, the config given is {config_digest}"
            )));
        }
        let layers = man["layers"]
            .as_array()
            .ok_or_else(|| invalid("manifest has no layers list".into()))?;
        let diff_ids = cfg["rootfs"]["diff_ids"]
            .as_array()
            .ok_or_else(|| invalid("config has no rootfs.diff_ids".into()))?;
        if layers.len() != diff_ids.len() {
            return Err(invalid(format!(
                "manifest has {} layers, config {} diff ids",
                layers.len(),
                diff_ids.len()
            )));
        }
        let mut specs = Vec::with_capacity(layers.len());
        for (l, d) in layers.iter().zip(diff_ids) {
            let blob =
                descriptor_digest(l).ok_or_else(|| invalid(format!("bad layer descriptor {l}")))?;
            let diff_id = d
                .as_str()
                .and_then(|s| Digest::parse(s).ok())
                .ok_or_else(|| invalid(format!("bad diff id {d}")))?;
            lease.add_blob(&blob)?;
            let info = self.content.info(&blob)?;
            if let Some(want) = l["size"].as_u64() {
                if want != info.size {
                    return Err(invalid(format!(
                        "layer {blob}: manifest says {want} bytes, the blob has {}",
                        info.size
                    )));
                }
            }
            specs.push(LayerSpec { blob, diff_id });
        }
        let manifest_digest = Digest::of(manifest);
        for (d, bytes) in [(&config_digest, config), (&manifest_digest, manifest)] {
            lease.add_blob(d)?;
            if !self.content.exists(d)? {
                content::write_blob(&self.content, bytes, Some(d))?;
            }
        }

        let layers = self.unpack(&specs, lease, early)?;
        let created = cfg["created"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(chrono::Utc::now, |t| t.to_utc());
        let image = Image {
            id: config_digest,
            manifest: manifest_digest,
            created,
            size: layers.iter().map(|l| l.size).sum(),
            top_chain_id: layers.last().map(|l| l.chain_id.clone()),
            tags: tags.to_vec(),
        };
        let blobs: Vec<Digest> = specs.into_iter().map(|s| s.blob).collect();
        self.record(&layers, &image, &blobs)?;
        Ok(load_image(&self.lock(), image.id.as_str())?.unwrap_or(image))
    }
}

fn descriptor_digest(v: &Value) -> Option<Digest> {
    v["digest"].as_str().and_then(|s| Digest::parse(s).ok())
}
