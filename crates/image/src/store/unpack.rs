//! Unpacking an image's layers into snapshots named by chain id: a layer
//! already unpacked (by any image) is reused; the rest are applied side by
//! side on threads when the snapshotter can stage them (overlay), one by
//! one on top of each other otherwise. Every layer's diff id is checked
//! against the image config while it is applied.
//!
//! An image's layers need not all be stored before unpacking starts:
//! [`EarlyUnpack`] stages each layer blob as its bytes arrive (a load
//! reading its archive, a pull downloading), before any config says which
//! layer it is, and [`Store::unpack`] adopts what matches.

use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use rusqlite::OptionalExtension;

use super::{chain_ids, Layer, Lease, Result, Store, StoreError};
use crate::content::Provider;
use crate::digest::{Digest, HashingReader};
use crate::layer::{
    apply_seen, apply_tar, apply_to_mounts, read_full, Applied, ApplyOptions, Compression, Seen,
    Whiteouts,
};
use crate::snapshot::{SnapshotError, Staged};
use crate::ErrorKind;

/// Read-ahead for layer blobs: few, large reads.
const READ_BUF: usize = 1 << 20;

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
    pub(crate) fn unpack(
        &self,
        specs: &[LayerSpec],
        lease: &Lease<'_>,
        early: Option<&EarlyUnpack<'_>>,
    ) -> Result<Vec<Layer>> {
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
            // What the load already staged, then the rest side by side.
            let mut ready: Vec<Option<(Staged, Applied)>> = todo
                .iter()
                .map(|&i| early.and_then(|e| e.take(&specs[i], i == 0)))
                .collect();
            let rest: Vec<usize> = todo
                .iter()
                .zip(&ready)
                .filter(|(_, r)| r.is_none())
                .map(|(&i, _)| i)
                .collect();
            let mut staged = if rest.is_empty() {
                Some(Vec::new().into_iter())
            } else {
                match self.snapshotter.stage()? {
                    Some(first) => Some(self.apply_staged(specs, &rest, first)?.into_iter()),
                    None => None,
                }
            };
            for (k, &i) in todo.iter().enumerate() {
                let parent = i.checked_sub(1).map(|p| chain[p].to_string());
                let from_stage = ready[k].take().or_else(|| {
                    staged
                        .as_mut()
                        .map(|it| it.next().expect("one staged layer per todo"))
                });
                let applied = match from_stage {
                    Some((stage, applied)) => {
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
        // Largest first, so one big layer does not start last and run
        // alone while the other threads idle.
        let mut order: Vec<usize> = (0..todo.len()).collect();
        order.sort_by_key(|&n| {
            std::cmp::Reverse(
                self.content
                    .info(&specs[todo[n]].blob)
                    .map_or(0, |i| i.size),
            )
        });
        let next = AtomicUsize::new(0);
        let first = Mutex::new(Some(first));
        let results: Vec<Slot> = todo.iter().map(|_| Mutex::new(None)).collect();
        let failed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= todo.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let n = order[k];
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
                        let (applied, _) = self.apply_blob(&specs[i].blob, st.path(), &opts)?;
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
                io::BufReader::with_capacity(READ_BUF, reader),
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

    /// Applies the layer blob `blob` onto `dir`. An uncompressed blob is
    /// its own diff id, and the content store checked its digest when it
    /// was written: it is not hashed a second time.
    fn apply_blob(
        &self,
        blob: &Digest,
        dir: &std::path::Path,
        opts: &ApplyOptions,
    ) -> Result<(Applied, Seen)> {
        let size = self.content.info(blob)?.size;
        apply_bytes(blob, self.content.reader(blob)?, size, dir, opts)
    }

    /// Stages `job` if it is a layer (tar, gzip or zstd) that no layer
    /// record already holds and the snapshotter can stage.
    fn unpack_early(&self, job: Job<'_>) -> Result<Option<Early>> {
        let blob = &job.blob;
        let known: Option<i64> = self
            .lock()
            .query_row(
                "SELECT 1 FROM layers WHERE blob = ?1 LIMIT 1",
                [blob.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(None);
        }
        let io_err = |source| StoreError::Io {
            context: format!("reading blob {blob}"),
            source,
        };
        let mut bytes = job.bytes;
        let mut head = [0u8; 512];
        let n = read_full(&mut bytes, &mut head).map_err(io_err)?;
        if Compression::detect(&head[..n]) == Compression::None && !is_tar(&head[..n]) {
            return Ok(None);
        }
        let bytes = io::Cursor::new(&head[..n]).chain(bytes);
        let Some(stage) = self.snapshotter.stage()? else {
            return Ok(None);
        };
        // Whiteouts in overlay's form: right for every layer but the
        // bottom one, which `take` turns down if it had any.
        let opts = ApplyOptions {
            whiteouts: Whiteouts::Overlay,
            ..ApplyOptions::default()
        };
        let _span = tracing::debug_span!("unpack_early", blob = %blob).entered();
        let (applied, seen) = apply_bytes(blob, bytes, job.size, stage.path(), &opts)?;
        Ok(Some(Early {
            stage,
            applied,
            seen,
        }))
    }

    /// Diff id and size of a stored layer blob, without unpacking it.
    pub(crate) fn measure(&self, blob: &Digest) -> Result<Applied> {
        let reader = self.content.reader(blob)?;
        let mut h = HashingReader::new(
            crate::layer::decompress(io::BufReader::with_capacity(READ_BUF, reader))
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

/// Applies `bytes`, the `size` bytes of the blob `blob`; see
/// [`Store::apply_blob`].
fn apply_bytes(
    blob: &Digest,
    bytes: impl io::Read,
    size: u64,
    dir: &std::path::Path,
    opts: &ApplyOptions,
) -> Result<(Applied, Seen)> {
    let mut r = io::BufReader::with_capacity(READ_BUF, bytes);
    let head = r.fill_buf().map_err(|source| StoreError::Io {
        context: format!("reading layer {blob}"),
        source,
    })?;
    if Compression::detect(head) != Compression::None {
        return Ok(apply_seen(r, dir, opts)?);
    }
    let seen = apply_tar(r, dir, opts)?;
    let applied = Applied {
        diff_id: blob.clone(),
        size,
    };
    Ok((applied, seen))
}

/// Whether `head` starts with a tar header (POSIX ustar or GNU).
fn is_tar(head: &[u8]) -> bool {
    head.len() >= 512 && &head[257..262] == b"ustar"
}

/// A blob offered to [`EarlyUnpack`]: its digest, size and bytes.
struct Job<'a> {
    blob: Digest,
    size: u64,
    bytes: Box<dyn Read + Send + 'a>,
}

/// One blob staged ahead of its image; see [`EarlyUnpack`].
struct Early {
    stage: Staged,
    applied: Applied,
    seen: Seen,
}

/// What [`EarlyUnpack`] tells of each blob it staged.
pub type OnStaged<'a> = Box<dyn Fn(&Digest) + Send + Sync + 'a>;

/// Layers unpacked while their blobs still arrive: a load reading its
/// archive, a pull downloading. Each layer blob is
/// [`offer`](EarlyUnpack::offer)ed with a reader of its bytes as they
/// come (a load's once written, a pull's while they download), before
/// its commit (fsync, digest check, rename) is done: nothing staged here
/// is adopted unless every blob of the image was committed first, and a
/// blob's digest, which stands for the diff id of an uncompressed one,
/// was checked by then. So a reader must yield exactly the bytes the
/// commit verifies, or fail. Workers ([`work`](EarlyUnpack::work), on
/// the caller's threads) apply every blob that is a layer into a staged
/// directory, not yet knowing its position or the diff id the config
/// promises. [`Store::unpack`] adopts a staged layer whose diff id
/// matches and applies the rest itself. Staged directories nobody took
/// are deleted with this; a crash leaves them to the sweep at the next
/// open, like any staged directory: nothing here is visible in the store
/// before `unpack` commits it under the lease.
pub struct EarlyUnpack<'a> {
    jobs: Mutex<Option<mpsc::Sender<Job<'a>>>>,
    queue: Mutex<mpsc::Receiver<Job<'a>>>,
    cancelled: AtomicBool,
    done: Mutex<HashMap<Digest, Early>>,
    /// Told of each blob once it is staged (a pull's progress).
    staged: Option<OnStaged<'a>>,
}

impl<'a> EarlyUnpack<'a> {
    /// `staged` hears of every blob staged.
    pub fn new(staged: Option<OnStaged<'a>>) -> EarlyUnpack<'a> {
        let (tx, rx) = mpsc::channel();
        EarlyUnpack {
            jobs: Mutex::new(Some(tx)),
            queue: Mutex::new(rx),
            cancelled: AtomicBool::new(false),
            done: Mutex::new(HashMap::new()),
            staged,
        }
    }

    /// Blob `blob` of `size` bytes is arriving, `bytes` reading it from
    /// its first byte: stage it if it is a layer. A reader that fails
    /// stages nothing (the layer is applied again in its place).
    pub fn offer(&self, blob: &Digest, size: u64, bytes: Box<dyn Read + Send + 'a>) {
        if let Some(tx) = lock(&self.jobs).as_ref() {
            let _ = tx.send(Job {
                blob: blob.clone(),
                size,
                bytes,
            });
        }
    }

    /// No more offers; with `cancel`, what is queued is not started.
    pub fn close(&self, cancel: bool) {
        self.cancelled.store(cancel, Ordering::Relaxed);
        lock(&self.jobs).take();
    }

    /// A worker: stages offered blobs until [`close`](EarlyUnpack::close).
    pub fn work(&self, store: &Store) {
        loop {
            let Ok(job) = lock(&self.queue).recv() else {
                return;
            };
            if self.cancelled.load(Ordering::Relaxed) {
                continue;
            }
            let blob = job.blob.clone();
            match store.unpack_early(job) {
                Ok(Some(early)) => {
                    lock(&self.done).insert(blob.clone(), early);
                    if let Some(staged) = &self.staged {
                        staged(&blob);
                    }
                }
                Ok(None) => {}
                // Not fatal: the layer is applied again in its place,
                // and a real fault is reported from there.
                Err(e) => tracing::debug!(blob = %blob, error = %e, "early unpack failed"),
            }
        }
    }

    /// The staged layer for `spec`, if one was made from its blob and has
    /// its diff id; at the bottom only without whiteouts, which overlay
    /// form would leave behind as files.
    fn take(&self, spec: &LayerSpec, bottom: bool) -> Option<(Staged, Applied)> {
        let early = lock(&self.done).remove(&spec.blob)?;
        if early.applied.diff_id != spec.diff_id || (bottom && early.seen.whiteouts) {
            return None;
        }
        Some((early.stage, early.applied))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
