//! Images built in memory: gzip layers of given files, a config naming
//! their diff ids, and an OCI manifest.

use std::io::Write;

use berth_image::content;
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use berth_image::store::{Image, Store};
use serde_json::json;

pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub diff_id: Digest,
}

pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    pub fn config_digest(&self) -> Digest {
        Digest::of(&self.config)
    }

    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    /// Writes the blobs into `store` and records the image as `tag`.
    pub fn register(&self, store: &Store, tag: &str) -> Image {
        for l in &self.layers {
            content::write_blob(store.content(), &l.blob, Some(&l.digest)).unwrap();
        }
        store
            .register(
                &self.manifest,
                &self.config,
                &[Reference::parse(tag).unwrap()],
            )
            .unwrap()
    }
}

pub use berth_testutil::noise;

pub fn layer(files: &[(&str, &[u8])]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let blob = gz.finish().unwrap();
    Layer {
        digest: Digest::of(&blob),
        diff_id: Digest::of(&raw),
        blob,
    }
}

/// An image of `layers` for `arch` (GOARCH name), running `echo <tag>`.
pub fn image(layers: Vec<Layer>, arch: &str, label: &str) -> TestImage {
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["echo", label], "Labels": {"test": label}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).as_str(), "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": l.digest.as_str(),
            "size": l.blob.len(),
        })).collect::<Vec<_>>(),
    });
    TestImage {
        layers,
        manifest: serde_json::to_vec(&manifest).unwrap(),
        config,
    }
}

/// A two-layer image: a small file, then `big` bytes of noise.
pub fn two_layers(label: &str, big: usize) -> TestImage {
    let l1 = layer(&[("etc/hello", format!("hello from {label}\n").as_bytes())]);
    let l2 = layer(&[("data/big.bin", &noise(big, label.len() as u64 + big as u64))]);
    image(vec![l1, l2], host_arch(), label)
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The file `path` in the image's root filesystem.
pub fn read_file(store: &Store, image: &Image, path: &str) -> Vec<u8> {
    let top = image.top_chain_id.as_ref().expect("image has layers");
    let info = store.snapshotter().stat(top.as_str()).unwrap();
    std::fs::read(info.dir.join(path))
        .unwrap_or_else(|e| panic!("{path} in {}: {e}", info.dir.display()))
}
