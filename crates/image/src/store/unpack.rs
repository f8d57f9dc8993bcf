//! Unpacking an image's layers into snapshots named by chain id: a layer
//! already unpacked (by any image) is reused; the rest are applied side by
//! side on threads when the snapshotter can stage them (overlay), one by
//! one on top of each other otherwise. Every layer's diff id is checked
//! against the image config while it is applied.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{chain_ids, Layer, Lease, Result, Store, StoreError};
use crate::content::Provider;
use crate::digest::{Digest, HashingReader};
use crate::layer::{apply, apply_to_mounts, Applied, ApplyOptions, Whiteouts};
use crate::snapshot::{SnapshotError, Staged};
use crate::ErrorKind;

/// One layer to unpack: its blob (any compression) in the content store
/// and the diff id the image config promises for it.
#[derive(Debug, Clone)]
pub(crate) struct LayerSpec {
    pub blob: Digest,
    pub diff_id: Digest,
}

/// A worker's result for one layer, filled in when it is done.
type Slot = Mutex<Option<Result<(Staged, Applied)>>>;

impl Store {
    /// Makes sure every layer of `specs` (bottom first) is a committed
    /// snapshot and returns their records. Everything created is named in
    /// `lease` first, so a failure or a crash leaves only leased garbage.
    pub(crate) fn unpack(&self, specs: &[LayerSpec], lease: &Lease<'_>) -> Result<Vec<Layer>> {
        let diff_ids: Vec<Digest> = specs.iter().map(|s| s.diff_id.clone()).collect();
        let chain = chain_ids(&diff_ids);
        let mut done: Vec<Option<Layer>> = vec![None; specs.len()];
        let mut todo = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            // Leased before looking, so a concurrent gc cannot take it
            // between the look and our record.
            lease.add_snapshot(chain[i].as_str())?;
            let parent = i.checked_sub(1).map(|p| chain[p].clone());
            match self.snapshotter.stat(chain[i].as_str()) {
                Ok(_) => {
                    let layer = match self.layer(&chain[i]) {
                        // Unpacked from this very blob: checked then.
                        Ok(l) if l.blob == spec.blob => l,
                        // Unpacked from another blob of the same diff id
                        // (another compression) — or so the config says:
                        // this blob's bytes are checked before the image
                        // may record it.
                        Ok(l) => {
                            check_diff_id(spec, &self.measure(&spec.blob)?)?;
                            l
                        }
                        // A snapshot without a record: left by a crash or
                        // a concurrent load. Its size is the one thing
                        // missing; reading the blob gives it and checks
                        // the diff id on the way.
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            let applied = self.measure(&spec.blob)?;
                            check_diff_id(spec, &applied)?;
                            Layer {
                                chain_id: chain[i].clone(),
                                diff_id: spec.diff_id.clone(),
                                parent,
                                size: applied.size,
                                blob: spec.blob.clone(),
                                snapshot_key: chain[i].to_string(),
                            }
                        }
                        Err(e) => return Err(e),
                    };
                    done[i] = Some(layer);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => todo.push(i),
                Err(e) => return Err(e.into()),
            }
        }
        if !todo.is_empty() {
            let staged = match self.snapshotter.stage()? {
                Some(first) => Some(self.apply_staged(specs, &todo, first)?),
                None => None,
            };
            let mut staged = staged.map(|v| v.into_iter());
            for &i in &todo {
                let parent = i.checked_sub(1).map(|p| chain[p].to_string());
                let applied = match staged.as_mut() {
                    Some(it) => {
                        let (stage, applied) = it.next().expect("one staged layer per todo");
                        match self.snapshotter.commit_staged(
                            chain[i].as_str(),
                            parent.as_deref(),
                            stage,
                        ) {
                            Ok(()) | Err(SnapshotError::AlreadyExists(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                        applied
                    }
                    None => {
                        self.apply_in_place(&specs[i], chain[i].as_str(), parent.as_deref(), lease)?
                    }
                };
                done[i] = Some(Layer {
                    chain_id: chain[i].clone(),
                    diff_id: specs[i].diff_id.clone(),
                    parent: parent
                        .as_deref()
                        .map(|p| Digest::parse(p).expect("chain ids are digests")),
                    size: applied.size,
                    blob: specs[i].blob.clone(),
                    snapshot_key: chain[i].to_string(),
                });
            }
        }
        Ok(done
            .into_iter()
            .map(|l| l.expect("every layer done"))
            .collect())
    }

    /// Applies the layers `todo` into staged directories on up to one
    /// thread per core; results in the order of `todo`.
    fn apply_staged(
        &self,
        specs: &[LayerSpec],
        todo: &[usize],
        first: Staged,
    ) -> Result<Vec<(Staged, Applied)>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(todo.len());
        let next = AtomicUsize::new(0);
        let first = Mutex::new(Some(first));
        let results: Vec<Slot> = todo.iter().map(|_| Mutex::new(None)).collect();
        let failed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= todo.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = todo[n];
                    let stage = match first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        Some(st) => Ok(Some(st)),
                        None => self.snapshotter.stage(),
                    };
                    let r = stage.map_err(StoreError::from).and_then(|st| {
                        let st = st.expect("the snapshotter staged once, so it stages");
                        // The bottom layer is a plain directory: its
                        // whiteouts hide nothing. Above it, whiteouts
                        // must stay, in overlay's form.
                        let whiteouts = if i == 0 {
                            Whiteouts::Apply
                        } else {
                            Whiteouts::Overlay
                        };
                        let opts = ApplyOptions {
                            whiteouts,
                            ..ApplyOptions::default()
                        };
                        let _span = tracing::debug_span!("unpack", blob = %specs[i].blob).entered();
                        let reader = self.content.reader(&specs[i].blob)?;
                        let applied = apply(
                            io::BufReader::with_capacity(1 << 20, reader),
                            st.path(),
                            &opts,
                        )?;
                        check_diff_id(&specs[i], &applied)?;
                        Ok((st, applied))
                    });
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    *results[n].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                });
            }
        });
        let mut out = Vec::with_capacity(todo.len());
        let mut first_err = None;
        for r in results {
            match r.into_inner().unwrap_or_else(|p| p.into_inner()) {
                Some(Ok(v)) => out.push(v),
                Some(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The sequential path: prepare on the parent, apply, commit.
    fn apply_in_place(
        &self,
        spec: &LayerSpec,
        name: &str,
        parent: Option<&str>,
        lease: &Lease<'_>,
    ) -> Result<Applied> {
        let key = crate::fsutil::unique_name("unpack-");
        lease.add_snapshot(&key)?;
        let mounts = self.snapshotter.prepare(&key, parent)?;
        let applied = (|| {
            let reader = self.content.reader(&spec.blob)?;
            let applied = apply_to_mounts(
                &mounts,
                io::BufReader::with_capacity(1 << 20, reader),
                &ApplyOptions::default(),
            )?;
            check_diff_id(spec, &applied)?;
            Ok(applied)
        })();
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                let _ = self.snapshotter.remove(&key);
                return Err(e);
            }
        };
        match self.snapshotter.commit(name, &key) {
            Ok(()) => Ok(applied),
            Err(SnapshotError::AlreadyExists(_)) => {
                self.snapshotter.remove(&key)?;
                Ok(applied)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Diff id and size of a stored layer blob, without unpacking it.
    pub(crate) fn measure(&self, blob: &Digest) -> Result<Applied> {
        let reader = self.content.reader(blob)?;
        let mut h = HashingReader::new(
            crate::layer::decompress(io::BufReader::new(reader))
                .map_err(crate::layer::LayerError::Read)?,
        );
        io::copy(&mut h, &mut io::sink()).map_err(|source| StoreError::Io {
            context: format!("reading layer {blob}"),
            source,
        })?;
        Ok(Applied {
            diff_id: h.digester().digest(),
            size: h.digester().size(),
        })
    }
}

fn check_diff_id(spec: &LayerSpec, applied: &Applied) -> Result<()> {
    if applied.diff_id != spec.diff_id {
        return Err(StoreError::LayerMismatch {
            blob: spec.blob.clone(),
            expected: spec.diff_id.clone(),
            actual: applied.diff_id.clone(),
        });
    }
    Ok(())
}
