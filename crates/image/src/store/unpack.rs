//! Unpacking an image's layers into snapshots named by chain id: a layer
//! already unpacked (by any image) is reused; the rest are applied side by
//! side on threads when the snapshotter can stage them (overlay), one by
//! one on top of each other otherwise. Every layer's diff id is checked
//! against the image config while it is applied. A [`LayerFeed`] lets
//! the blobs arrive while this runs (a pull unpacks layer N while layer
//! N+1 still downloads).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{chain_ids, Layer, Lease, Result, Store, StoreError};
use crate::content::Provider;
use crate::digest::{Digest, HashingReader};
use crate::layer::{apply, apply_to_mounts, Applied, ApplyOptions, Whiteouts};
use crate::snapshot::{SnapshotError, Staged};
use crate::ErrorKind;

/// One layer to unpack: its blob (any compression) in the content store,
/// its size as the manifest gives it, and the diff id the image config
/// promises for it.
#[derive(Debug, Clone)]
pub(crate) struct LayerSpec {
    pub blob: Digest,
    pub diff_id: Digest,
    pub size: Option<u64>,
}

/// Where an image's layer blobs come from while it is unpacked. A pull
/// downloads them as the unpack goes: the store says in which order it
/// will take the layers ([`LayerFeed::plan`]), then reads each one as it
/// arrives ([`LayerFeed::open`]) or once it is in the content store
/// ([`LayerFeed::wait`]). Layers are numbered bottom first, as the
/// manifest lists them.
pub trait LayerFeed: Sync {
    /// The layers the store will read, in the order it will read them;
    /// called once, before any other call.
    fn plan(&self, _order: &[usize]) {}
    /// Layer `i`'s blob as it arrives, or `None` to read it from the
    /// content store after [`LayerFeed::wait`]. The store reads a stream
    /// to its end, which comes only once the blob is committed (verified);
    /// a failed download is a read error.
    fn open(&self, _i: usize) -> Result<Option<Box<dyn io::Read + Send + '_>>> {
        Ok(None)
    }
    /// Blocks until layer `i`'s blob is in the content store; an error
    /// (the download failed) stops the unpack.
    fn wait(&self, i: usize) -> Result<()>;
    /// Layer `i` starts unpacking.
    fn unpacking(&self, _i: usize) {}
    /// Layer `i` is unpacked, now or by an earlier image.
    fn unpacked(&self, _i: usize) {}
}

/// Every blob is in the content store already (load, commit).
pub(crate) struct AllPresent;

impl LayerFeed for AllPresent {
    fn wait(&self, _i: usize) -> Result<()> {
        Ok(())
    }
}

/// A worker's result for one layer, filled in when it is done.
type Slot = Mutex<Option<Result<(Staged, Applied)>>>;

impl Store {
    /// Makes sure every layer of `specs` (bottom first) is a committed
    /// snapshot and returns their records. Everything created is named in
    /// `lease` first, so a failure or a crash leaves only leased garbage.
    pub(crate) fn unpack(
        &self,
        specs: &[LayerSpec],
        lease: &Lease<'_>,
        feed: &dyn LayerFeed,
    ) -> Result<Vec<Layer>> {
        let diff_ids: Vec<Digest> = specs.iter().map(|s| s.diff_id.clone()).collect();
        let chain = chain_ids(&diff_ids);
        let mut done: Vec<Option<Layer>> = vec![None; specs.len()];
        let mut todo = Vec::new();
        // Snapshots there already whose blob must still be read: the
        // record of another blob of the same diff id, or none at all.
        let mut to_check: Vec<(usize, Option<Layer>)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            // Leased before looking, so a concurrent gc cannot take it
            // between the look and our record.
            lease.add_snapshot(chain[i].as_str())?;
            match self.snapshotter.stat(chain[i].as_str()) {
                Ok(_) => match self.layer(&chain[i]) {
                    // Unpacked from this very blob: checked then.
                    Ok(l) if l.blob == spec.blob => {
                        feed.unpacked(i);
                        done[i] = Some(l);
                    }
                    Ok(l) => to_check.push((i, Some(l))),
                    Err(e) if e.kind() == ErrorKind::NotFound => to_check.push((i, None)),
                    Err(e) => return Err(e),
                },
                Err(e) if e.kind() == ErrorKind::NotFound => todo.push(i),
                Err(e) => return Err(e.into()),
            }
        }
        let first = match todo.is_empty() {
            true => None,
            false => self.snapshotter.stage()?,
        };
        // Side by side, the biggest layer goes first: it takes longest.
        // One on top of another, bottom first.
        let mut order = todo.clone();
        if first.is_some() {
            order.sort_by_key(|&i| std::cmp::Reverse(specs[i].size.unwrap_or(0)));
        }
        let plan: Vec<usize> = order
            .iter()
            .copied()
            .chain(to_check.iter().map(|c| c.0))
            .collect();
        feed.plan(&plan);
        if !todo.is_empty() {
            // Results by layer: staged ones are adopted bottom first, as
            // each names its parent.
            let mut staged: Option<Vec<Option<(Staged, Applied)>>> = match first {
                Some(first) => {
                    let mut by_layer: Vec<_> = specs.iter().map(|_| None).collect();
                    for (i, r) in order
                        .iter()
                        .zip(self.apply_staged(specs, &order, first, feed)?)
                    {
                        by_layer[*i] = Some(r);
                    }
                    Some(by_layer)
                }
                None => None,
            };
            for &i in &todo {
                let parent = i.checked_sub(1).map(|p| chain[p].to_string());
                let applied = match staged.as_mut() {
                    Some(by_layer) => {
                        let (stage, applied) =
                            by_layer[i].take().expect("one staged layer per todo");
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
                    None => self.apply_in_place(
                        i,
                        &specs[i],
                        chain[i].as_str(),
                        parent.as_deref(),
                        lease,
                        feed,
                    )?,
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
        for (i, existing) in to_check {
            let spec = &specs[i];
            feed.wait(i)?;
            let applied = self.measure(&spec.blob)?;
            // Another blob of the same diff id (another compression) — or
            // so the config says: this blob's bytes are checked before the
            // image may record it.
            check_diff_id(spec, &applied)?;
            // A snapshot without a record (left by a crash or a concurrent
            // load) lacked only its size, which the blob gave.
            done[i] = Some(existing.unwrap_or_else(|| Layer {
                chain_id: chain[i].clone(),
                diff_id: spec.diff_id.clone(),
                parent: i.checked_sub(1).map(|p| chain[p].clone()),
                size: applied.size,
                blob: spec.blob.clone(),
                snapshot_key: chain[i].to_string(),
            }));
            feed.unpacked(i);
        }
        Ok(done
            .into_iter()
            .map(|l| l.expect("every layer done"))
            .collect())
    }

    /// Opens layer `i`'s blob: as it arrives, or from the content store
    /// once it is there.
    fn open_layer<'a>(
        &'a self,
        i: usize,
        spec: &LayerSpec,
        feed: &'a dyn LayerFeed,
    ) -> Result<Box<dyn io::Read + Send + 'a>> {
        if let Some(stream) = feed.open(i)? {
            return Ok(stream);
        }
        feed.wait(i)?;
        Ok(Box::new(self.content.reader(&spec.blob)?))
    }

    /// Applies layer `i` through `apply`, reading its blob from `feed`, and
    /// checks its diff id once the blob is known good.
    fn apply_layer(
        &self,
        i: usize,
        spec: &LayerSpec,
        feed: &dyn LayerFeed,
        apply: impl FnOnce(&mut dyn io::Read) -> Result<Applied>,
    ) -> Result<Applied> {
        let mut blob = self.open_layer(i, spec, feed)?;
        feed.unpacking(i);
        let applied = apply(&mut io::BufReader::with_capacity(1 << 20, &mut blob))?;
        // A stream ends only with its blob committed; the tar's end can
        // come before the blob's (padding), so read on to it.
        io::copy(&mut blob, &mut io::sink()).map_err(|source| StoreError::Io {
            context: format!("reading layer {}", spec.blob),
            source,
        })?;
        feed.wait(i)?;
        check_diff_id(spec, &applied)?;
        feed.unpacked(i);
        Ok(applied)
    }

    /// Applies the layers `todo` into staged directories on up to one
    /// thread per core, taking them in that order; results in that order.
    fn apply_staged(
        &self,
        specs: &[LayerSpec],
        todo: &[usize],
        first: Staged,
        feed: &dyn LayerFeed,
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
                        let applied = self
                            .apply_layer(i, &specs[i], feed, |r| Ok(apply(r, st.path(), &opts)?))?;
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
        i: usize,
        spec: &LayerSpec,
        name: &str,
        parent: Option<&str>,
        lease: &Lease<'_>,
        feed: &dyn LayerFeed,
    ) -> Result<Applied> {
        let key = crate::fsutil::unique_name("unpack-");
        lease.add_snapshot(&key)?;
        let mounts = self.snapshotter.prepare(&key, parent)?;
        let applied = self.apply_layer(i, spec, feed, |r| {
            Ok(apply_to_mounts(&mounts, r, &ApplyOptions::default())?)
        });
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
