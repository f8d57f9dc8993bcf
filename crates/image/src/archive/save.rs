//! Writing images as a docker-archive or OCI layout tar stream.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use serde_json::{json, Value};

use super::{
    ArchiveError, Result, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, OCI_INDEX, OCI_LAYOUT,
};
use crate::content::{read_blob, Provider};
use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::layer::{decompress, Compression};
use crate::reference::Reference;
use crate::store::{
    chain_ids, config_diff_ids, Image, Store, StoreError, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// OCI layout plus `manifest.json` and `repositories` (docker >= 25).
    #[default]
    Docker,
    /// The bare OCI image layout.
    Oci,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveOptions {
    pub format: ArchiveFormat,
    /// How layers are written. Uncompressed (docker's choice) streams
    /// straight out of the store; a compression the stored blob already
    /// has is copied as is; any other is recompressed through a scratch
    /// file, since a tar header needs the size first.
    pub compression: Compression,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            format: ArchiveFormat::Docker,
            compression: Compression::None,
        }
    }
}

/// A layer as written: its descriptor in the saved manifest.
#[derive(Debug, Clone)]
struct Written {
    digest: Digest,
    size: u64,
    media_type: &'static str,
}

/// `docker save NAME...`: the images `names` (references or ids) as one
/// tar stream on `out`. An image named by reference carries that tag; one
/// named by id carries none, as in docker. Returns `out` when done.
pub fn save<W: Write>(store: &Store, names: &[&str], out: W, opts: &SaveOptions) -> Result<W> {
    let _span = tracing::info_span!("save", images = names.len()).entered();
    let mut images: Vec<(Image, Vec<Reference>)> = Vec::new();
    for name in names {
        let image = store.image(name)?;
        let tag = Digest::parse(name)
            .is_err()
            .then(|| Reference::parse(name).ok())
            .flatten()
            .filter(|r| image.tags.contains(r));
        match images.iter_mut().find(|(i, _)| i.id == image.id) {
            Some((_, tags)) => tags.extend(tag),
            None => images.push((image, tag.into_iter().collect())),
        }
    }
    // Blobs read below stay while we read them, whatever gc does.
    let lease = store.lease()?;
    let mut w = Writer {
        store,
        tar: tar::Builder::new(out),
        written: HashSet::new(),
        layers: HashMap::new(),
        mtime: images
            .first()
            .map_or(0, |(i, _)| i.created.timestamp().max(0) as u64),
    };
    w.dir("blobs/")?;
    w.dir("blobs/sha256/")?;
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut repositories = serde_json::Map::new();
    for (image, tags) in &images {
        for d in [&image.id, &image.manifest] {
            lease.add_blob(d)?;
        }
        let config = read_blob(store.content(), &image.id)?;
        let cfg: Value =
            serde_json::from_slice(&config).map_err(|e| corrupt(image, format!("config: {e}")))?;
        let stored_bytes = read_blob(store.content(), &image.manifest)?;
        let stored: Value = serde_json::from_slice(&stored_bytes)
            .map_err(|e| corrupt(image, format!("manifest: {e}")))?;
        let diff_ids = config_diff_ids(&cfg);
        let chain = chain_ids(&diff_ids);
        let descs = stored["layers"].as_array().cloned().unwrap_or_default();
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (i, diff_id) in diff_ids.iter().enumerate() {
            let row = store.layer(&chain[i])?;
            let blob = descs
                .get(i)
                .and_then(|d| d["digest"].as_str())
                .and_then(|s| Digest::parse(s).ok())
                .filter(|d| store.content().exists(d).unwrap_or(false))
                .unwrap_or(row.blob);
            lease.add_blob(&blob)?;
            layers.push(w.layer(&blob, diff_id, row.size, opts.compression)?);
        }
        w.blob(&image.id, &config)?;
        let same = layers.len() == descs.len()
            && layers
                .iter()
                .zip(&descs)
                .all(|(l, d)| d["digest"].as_str() == Some(l.digest.as_str()));
        let manifest = if same {
            stored_bytes
        } else {
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_MANIFEST,
                "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": image.id.as_str(), "size": config.len()},
                "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest.as_str(), "size": l.size})).collect::<Vec<_>>(),
            }))
            .expect("json values serialize")
        };
        let manifest_digest = Digest::of(&manifest);
        w.blob(&manifest_digest, &manifest)?;
        let media_type = serde_json::from_slice::<Value>(&manifest)
            .ok()
            .and_then(|m| m["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string());
        let desc = json!({"mediaType": media_type, "digest": manifest_digest.as_str(), "size": manifest.len()});
        if tags.is_empty() {
            index.push(desc.clone());
        }
        for t in tags {
            let mut d = desc.clone();
            d["annotations"] = json!({
                ANNOTATION_IMAGE_NAME: t.to_string(),
                ANNOTATION_REF_NAME: t.tag().unwrap_or("latest"),
            });
            index.push(d);
            if let (Some(tag), Some(top)) = (t.tag(), layers.last()) {
                repositories
                    .entry(t.familiar_name())
                    .or_insert_with(|| json!({}))[tag] = json!(top.digest.hex());
            }
        }
        docker_manifest.push(json!({
            "Config": format!("blobs/sha256/{}", image.id.hex()),
            "RepoTags": tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
            "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }));
    }
    let json_bytes = |v: &Value| serde_json::to_vec(v).expect("json values serialize");
    w.file(
        "index.json",
        &json_bytes(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index})),
    )?;
    if opts.format == ArchiveFormat::Docker {
        w.file("manifest.json", &json_bytes(&Value::Array(docker_manifest)))?;
    }
    w.file("oci-layout", OCI_LAYOUT)?;
    if opts.format == ArchiveFormat::Docker {
        w.file("repositories", &json_bytes(&Value::Object(repositories)))?;
    }
    let out = w.tar.into_inner().map_err(ArchiveError::Write)?;
    lease.release()?;
    Ok(out)
}

fn corrupt(image: &Image, reason: String) -> ArchiveError {
    ArchiveError::Store(StoreError::Corrupt {
        id: image.id.to_string(),
        reason,
    })
}

struct Writer<'a, W: Write> {
    store: &'a Store,
    tar: tar::Builder<W>,
    written: HashSet<Digest>,
    // (stored blob, wanted compression) -> what was written for it.
    layers: HashMap<(Digest, Compression), Written>,
    mtime: u64,
}

impl<W: Write> Writer<'_, W> {
    fn header(&self, size: u64, kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = self.header(0, tar::EntryType::Directory, 0o755);
        self.tar
            .append_data(&mut h, path, io::empty())
            .map_err(ArchiveError::Write)
    }

    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let mut h = self.header(bytes.len() as u64, tar::EntryType::Regular, 0o644);
        self.tar
            .append_data(&mut h, path, bytes)
            .map_err(ArchiveError::Write)
    }

    fn blob(&mut self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        if self.written.insert(digest.clone()) {
            self.file(&format!("blobs/sha256/{}", digest.hex()), bytes)?;
        }
        Ok(())
    }

    /// Streams `size` bytes of `data` as a blob entry, checking that they
    /// are exactly the bytes of `digest`: a short or changed source would
    /// otherwise make a corrupt archive without a word.
    fn stream(&mut self, digest: &Digest, size: u64, data: impl Read) -> Result<()> {
        if !self.written.insert(digest.clone()) {
            return Ok(());
        }
        let mut h = self.header(size, tar::EntryType::Regular, 0o644);
        let mut hashing = HashingReader::new(data.take(size));
        self.tar
            .append_data(
                &mut h,
                format!("blobs/sha256/{}", digest.hex()),
                &mut hashing,
            )
            .map_err(ArchiveError::Write)?;
        let got = hashing.digester();
        if got.size() != size || got.digest() != *digest {
            return Err(ArchiveError::Store(StoreError::Invalid(format!(
                "layer {digest} in the store is corrupt: read {} bytes with digest {}",
                got.size(),
                got.digest()
            ))));
        }
        Ok(())
    }

    fn layer(
        &mut self,
        blob: &Digest,
        diff_id: &Digest,
        size: u64,
        want: Compression,
    ) -> Result<Written> {
        if let Some(w) = self.layers.get(&(blob.clone(), want)) {
            return Ok(w.clone());
        }
        let content = self.store.content();
        let mut reader = content.reader(blob)?;
        let mut head = [0u8; 4];
        let n = read_head(&mut reader, &mut head).map_err(read_err(blob))?;
        reader.seek(SeekFrom::Start(0)).map_err(read_err(blob))?;
        let stored = Compression::detect(&head[..n]);
        let written = if stored == want {
            let size = content.info(blob)?.size;
            self.stream(blob, size, reader)?;
            Written {
                digest: blob.clone(),
                size,
                media_type: want.media_type(),
            }
        } else if want == Compression::None {
            // The uncompressed layer is the diff id's bytes: size and
            // digest are known, so it streams without a scratch copy.
            let plain = decompress(io::BufReader::new(reader)).map_err(read_err(blob))?;
            self.stream(diff_id, size, plain)?;
            Written {
                digest: diff_id.clone(),
                size,
                media_type: want.media_type(),
            }
        } else {
            let mut tmp = content.temp_file()?;
            let mut plain = decompress(io::BufReader::new(reader)).map_err(read_err(blob))?;
            let sink = HashingWriter::new(io::BufWriter::new(&mut tmp.file));
            let sink = match want {
                Compression::Gzip => {
                    let mut e = flate2::write::GzEncoder::new(sink, flate2::Compression::fast());
                    io::copy(&mut plain, &mut e).map_err(read_err(blob))?;
                    e.finish()
                }
                _ => {
                    let mut e =
                        zstd::stream::write::Encoder::new(sink, 3).map_err(read_err(blob))?;
                    io::copy(&mut plain, &mut e).map_err(read_err(blob))?;
                    e.finish()
                }
            }
            .map_err(read_err(blob))?;
            let (mut buf, d) = sink.into_inner();
            buf.flush().map_err(read_err(blob))?;
            drop(buf);
            tmp.file.seek(SeekFrom::Start(0)).map_err(read_err(blob))?;
            let digest = d.digest();
            self.stream(&digest, d.size(), &mut tmp.file)?;
            Written {
                digest,
                size: d.size(),
                media_type: want.media_type(),
            }
        };
        self.layers.insert((blob.clone(), want), written.clone());
        Ok(written)
    }
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_err(blob: &Digest) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| {
        ArchiveError::Store(StoreError::Io {
            context: format!("reading layer {blob}"),
            source,
        })
    }
}
