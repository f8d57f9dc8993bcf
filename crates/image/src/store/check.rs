//! `system check` and `system df`: read-only looks at the whole store.

use std::collections::{HashMap, HashSet};
use std::io;

use super::gc::reachable;
use super::{chain_ids, config_diff_ids, Result, Store};
use crate::content::{Manager, Provider};
use crate::digest::{Digest, HashingReader};
use crate::snapshot::Kind;

/// What [`Store::system_check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Inconsistencies: a record pointing at nothing, a blob whose bytes
    /// do not match its name, a snapshot whose parent is gone. Each one
    /// line, naming what is wrong.
    pub problems: Vec<String>,
    /// Garbage that `gc` would take back: harmless, not a problem.
    pub unreferenced_blobs: Vec<Digest>,
    pub unreferenced_snapshots: Vec<String>,
}

impl CheckReport {
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One image in `system df -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    pub id: Digest,
    pub tags: Vec<crate::reference::Reference>,
    /// All its layers.
    pub size: u64,
    /// Of which layers other images hold too.
    pub shared_size: u64,
    pub unique_size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DfReport {
    pub images: Vec<ImageUsage>,
    /// Every layer counted once: the disk the images really take.
    pub layers_size: u64,
    /// Bytes in the content store (compressed layers, configs, manifests).
    pub blobs_size: u64,
    /// Layer bytes no image in `in_use` reaches: what removing unused
    /// images would free.
    pub reclaimable: u64,
}

impl Store {
    /// Verifies the store: every blob's bytes against its digest, every
    /// image's blobs, layer records and snapshots, every snapshot's parent.
    /// Reads every blob, so it costs the size of the content store.
    pub fn system_check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let blobs = self.content.list()?;
        for b in &blobs {
            let check = self.content.reader(&b.digest).and_then(|r| {
                let mut h = HashingReader::new(r);
                io::copy(&mut h, &mut io::sink()).map_err(|source| {
                    crate::content::ContentError::Io {
                        context: format!("reading blob {}", b.digest),
                        source,
                    }
                })?;
                Ok(h.digester().digest())
            });
            match check {
                Ok(d) if d == b.digest => {}
                Ok(d) => report
                    .problems
                    .push(format!("blob {} holds content with digest {d}", b.digest)),
                Err(e) => report.problems.push(format!("blob {}: {e}", b.digest)),
            }
        }
        let present: HashSet<&str> = blobs.iter().map(|b| b.digest.as_str()).collect();
        let infos = self.snapshotter.list()?;
        let snaps: HashMap<&str, _> = infos.iter().map(|i| (i.key.as_str(), i)).collect();
        for i in &infos {
            if let Some(p) = &i.parent {
                if !snaps.contains_key(p.as_str()) {
                    report
                        .problems
                        .push(format!("snapshot {:?}: parent {p:?} is missing", i.key));
                }
            }
            if !i.dir.is_dir() {
                report.problems.push(format!(
                    "snapshot {:?}: directory {} is missing",
                    i.key,
                    i.dir.display()
                ));
            }
        }

        for image in self.images()? {
            let id = image.id.short().to_string();
            let needed = self.image_blobs(&image.id)?;
            for d in &needed {
                if !present.contains(d.as_str()) {
                    report
                        .problems
                        .push(format!("image {id}: blob {d} is missing"));
                }
            }
            let config = match self.config(&image) {
                Ok(c) => c,
                Err(e) => {
                    report.problems.push(format!("image {id}: config: {e}"));
                    continue;
                }
            };
            let diff_ids = config_diff_ids(&config);
            let chain = chain_ids(&diff_ids);
            if chain.last() != image.top_chain_id.as_ref() {
                report.problems.push(format!(
                    "image {id}: top layer {:?} does not match its config's diff ids",
                    image.top_chain_id.as_ref().map(Digest::as_str)
                ));
            }
            for c in &chain {
                match self.layer(c) {
                    Ok(l) => {
                        if !present.contains(l.blob.as_str()) {
                            report
                                .problems
                                .push(format!("image {id}: layer {c}: blob {} is missing", l.blob));
                        }
                        match snaps.get(l.snapshot_key.as_str()) {
                            Some(s) if s.kind == Kind::Committed => {}
                            Some(_) => report
                                .problems
                                .push(format!("image {id}: layer {c}: snapshot is not committed")),
                            None => report
                                .problems
                                .push(format!("image {id}: layer {c}: snapshot is missing")),
                        }
                    }
                    Err(e) => report.problems.push(format!("image {id}: layer {c}: {e}")),
                }
            }
        }

        let reach = reachable(&self.lock(), &infos, None)?;
        report.unreferenced_blobs = blobs
            .into_iter()
            .map(|b| b.digest)
            .filter(|d| !reach.blobs.contains(d.as_str()))
            .collect();
        report.unreferenced_snapshots = infos
            .iter()
            .filter(|i| !reach.snapshots.contains(&i.key))
            .map(|i| i.key.clone())
            .collect();
        Ok(report)
    }

    /// The blobs recorded as needed by image `id`.
    pub(crate) fn image_blobs(&self, id: &Digest) -> Result<Vec<Digest>> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT digest FROM image_blobs WHERE image_id = ?1")?;
        let v = stmt
            .query_map([id.as_str()], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v.iter().filter_map(|d| Digest::parse(d).ok()).collect())
    }

    /// `system df`: image sizes split into what they share and what is
    /// theirs alone; `in_use` are the images containers were made from.
    pub fn df(&self, in_use: &HashSet<Digest>) -> Result<DfReport> {
        let images = self.images()?;
        // chain id -> (size, images holding it)
        let mut layers: HashMap<Digest, (u64, usize)> = HashMap::new();
        let mut chains = Vec::with_capacity(images.len());
        for img in &images {
            let mut chain = Vec::new();
            let mut next = img.top_chain_id.clone();
            while let Some(c) = next {
                let l = self.layer(&c)?;
                layers.entry(c.clone()).or_insert((l.size, 0)).1 += 1;
                chain.push(c);
                next = l.parent;
            }
            chains.push(chain);
        }
        let mut used_layers = HashSet::new();
        let mut report = DfReport::default();
        for (img, chain) in images.iter().zip(&chains) {
            let (mut shared, mut unique) = (0, 0);
            for c in chain {
                let (size, holders) = layers[c];
                if holders > 1 {
                    shared += size;
                } else {
                    unique += size;
                }
                if in_use.contains(&img.id) {
                    used_layers.insert(c.clone());
                }
            }
            report.images.push(ImageUsage {
                id: img.id.clone(),
                tags: img.tags.clone(),
                size: shared + unique,
                shared_size: shared,
                unique_size: unique,
            });
        }
        report.layers_size = layers.values().map(|(s, _)| s).sum();
        report.reclaimable = layers
            .iter()
            .filter(|(c, _)| !used_layers.contains(*c))
            .map(|(_, (s, _))| s)
            .sum();
        report.blobs_size = self.content.list()?.iter().map(|b| b.size).sum();
        Ok(report)
    }
}
