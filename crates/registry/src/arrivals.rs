//! The layers of one pull on their way in, shared by the download workers
//! and the image store's unpack (as its [`LayerFeed`]).
//!
//! The store says in which order it will unpack the layers; the workers
//! download in that order, a few at a time. A layer the store opens while
//! (or before) it downloads is read through a [`Follower`], which trails
//! the ingest file as it grows, so unpacking runs alongside the download
//! instead of after it; a follower reaches its end only once the blob is
//! committed under its digest. The first download failure stops
//! everything and is the error the pull reports.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use berth_image::content::Info;
use berth_image::store::{LayerFeed, StoreError};

use crate::error::{RegistryError, Result};
use crate::fetch::Tap;
use crate::manifest::Descriptor;
use crate::progress::{Event, Progress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Not in the content store; not started.
    Pending,
    Downloading,
    /// Committed under its digest.
    Ready,
}

/// One distinct blob (a layer listed twice is one blob).
struct Blob {
    status: Status,
    /// Bumped for every new ingest of the blob (a restart from byte 0).
    generation: u32,
    /// A reader of the current ingest, until a follower takes it.
    ingest: Option<Box<dyn Read + Send>>,
    /// Bytes in the current ingest.
    written: u64,
    /// A follower was handed out; a second reader waits for the commit.
    followed: bool,
}

struct State {
    blobs: Vec<Blob>,
    /// Blobs to download, in order; `None` until the store's plan.
    queue: Option<VecDeque<usize>>,
    /// Per layer: it started unpacking before its blob was committed, so
    /// its `Extracting` is still to be told.
    extract_pending: Vec<bool>,
    /// The first download failure.
    failed: Option<RegistryError>,
    /// No download starts any more.
    closed: bool,
}

pub(crate) struct Arrivals<'a> {
    layers: &'a [Descriptor],
    /// Per layer: its blob in `State::blobs`.
    blob_of: Vec<usize>,
    /// Per blob: its descriptor.
    descs: Vec<&'a Descriptor>,
    state: Mutex<State>,
    changed: Condvar,
    /// Set by a failed download: downloads in flight stop too.
    pub(crate) cancel: AtomicBool,
    progress: Progress<'a>,
}

impl<'a> Arrivals<'a> {
    /// `present(d)`: blob `d` is in the content store already.
    pub(crate) fn new(
        layers: &'a [Descriptor],
        present: impl Fn(&Descriptor) -> bool,
        progress: Progress<'a>,
    ) -> Arrivals<'a> {
        let mut descs: Vec<&Descriptor> = Vec::new();
        let mut blobs = Vec::new();
        let mut blob_of = Vec::with_capacity(layers.len());
        for l in layers {
            let b = match descs.iter().position(|d| d.digest == l.digest) {
                Some(b) => b,
                None => {
                    descs.push(l);
                    blobs.push(Blob {
                        status: if present(l) {
                            Status::Ready
                        } else {
                            Status::Pending
                        },
                        generation: 0,
                        ingest: None,
                        written: 0,
                        followed: false,
                    });
                    descs.len() - 1
                }
            };
            blob_of.push(b);
        }
        Arrivals {
            layers,
            blob_of,
            descs,
            state: Mutex::new(State {
                blobs,
                queue: None,
                extract_pending: vec![false; layers.len()],
                failed: None,
                closed: false,
            }),
            changed: Condvar::new(),
            cancel: AtomicBool::new(false),
            progress,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_on<'g>(&self, st: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.changed.wait(st).unwrap_or_else(|p| p.into_inner())
    }

    /// How many blobs are to be downloaded.
    pub(crate) fn missing(&self) -> usize {
        self.lock()
            .blobs
            .iter()
            .filter(|b| b.status == Status::Pending)
            .count()
    }

    /// For a download worker: the next blob to fetch, once the store has
    /// said its order; `None` when there is none or the pull is over.
    pub(crate) fn next(&self) -> Option<(usize, &'a Descriptor)> {
        let mut st = self.lock();
        loop {
            if st.closed || self.cancel.load(Ordering::SeqCst) {
                return None;
            }
            if st.queue.is_some() {
                let b = st.queue.as_mut().and_then(VecDeque::pop_front)?;
                if st.blobs[b].status == Status::Pending {
                    st.blobs[b].status = Status::Downloading;
                    return Some((b, self.descs[b]));
                }
                continue;
            }
            st = self.wait_on(st);
        }
    }

    /// The tap a worker downloading blob `b` reports through.
    pub(crate) fn tap(&self, b: usize) -> BlobTap<'_, 'a> {
        BlobTap { arrivals: self, b }
    }

    /// Records how the download of blob `b` ended. The first failure is
    /// kept and stops every download.
    pub(crate) fn arrived(&self, b: usize, r: Result<Info>) {
        let mut st = self.lock();
        let mut extracting = Vec::new();
        match r {
            Ok(info) => {
                st.blobs[b].status = Status::Ready;
                st.blobs[b].written = info.size;
                for (i, &lb) in self.blob_of.iter().enumerate() {
                    if lb == b && std::mem::take(&mut st.extract_pending[i]) {
                        extracting.push(i);
                    }
                }
            }
            Err(e) => {
                // Once cancelled, a download fails because of that: the
                // failure that cancelled is the one to tell.
                if !self.cancel.swap(true, Ordering::SeqCst) {
                    st.failed.get_or_insert(e);
                }
                st.closed = true;
            }
        }
        drop(st);
        self.changed.notify_all();
        for i in extracting {
            self.extracting(i);
        }
    }

    /// After the store is done: on success the workers fetch what is left
    /// (a blob the unpack did not read still belongs to the image); on
    /// failure none starts, and those in flight stop unless the failure
    /// may come from the bytes they bring (a corrupt layer shows first as
    /// a bad tar or diff id; its download then names the blob).
    pub(crate) fn store_done(&self, r: &std::result::Result<(), &StoreError>) {
        let mut st = self.lock();
        match r {
            Ok(()) => {
                if st.queue.is_none() {
                    st.queue = Some((0..st.blobs.len()).collect());
                }
            }
            Err(e) => {
                st.closed = true;
                if e.kind() != berth_image::ErrorKind::InvalidArgument {
                    self.cancel.store(true, Ordering::SeqCst);
                }
            }
        }
        drop(st);
        self.changed.notify_all();
    }

    pub(crate) fn into_failure(self) -> Option<RegistryError> {
        self.state
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .failed
    }

    fn extracting(&self, i: usize) {
        (self.progress)(Event::Extracting {
            layer: self.layers[i].digest.clone(),
        });
    }

    /// The error a reader of the store sees when the pull failed; the pull
    /// itself reports the download's own error.
    fn stopped(&self, st: &State, i: usize) -> Option<io::Error> {
        let b = self.blob_of[i];
        if st.blobs[b].status == Status::Ready {
            return None;
        }
        let gone = st.failed.is_some()
            || self.cancel.load(Ordering::SeqCst)
            || (st.closed && st.blobs[b].status == Status::Pending);
        // Not `Interrupted`: readers take that as "try again".
        gone.then(|| {
            io::Error::other(format!(
                "layer {} was not downloaded",
                self.layers[i].digest
            ))
        })
    }
}

pub(crate) struct BlobTap<'s, 'a> {
    arrivals: &'s Arrivals<'a>,
    b: usize,
}

impl Tap for BlobTap<'_, '_> {
    fn ingest(&self, reader: Option<Box<dyn Read + Send>>) {
        let mut st = self.arrivals.lock();
        let blob = &mut st.blobs[self.b];
        blob.generation += 1;
        blob.ingest = reader;
        blob.written = 0;
        drop(st);
        self.arrivals.changed.notify_all();
    }

    fn wrote(&self, size: u64) {
        self.arrivals.lock().blobs[self.b].written = size;
        self.arrivals.changed.notify_all();
    }
}

impl LayerFeed for Arrivals<'_> {
    fn plan(&self, order: &[usize]) {
        let mut st = self.lock();
        let mut queue = VecDeque::new();
        // The store's order first, then what it will not read.
        for b in order
            .iter()
            .map(|&i| self.blob_of[i])
            .chain(0..st.blobs.len())
        {
            if st.blobs[b].status == Status::Pending && !queue.contains(&b) {
                queue.push_back(b);
            }
        }
        st.queue = Some(queue);
        drop(st);
        self.changed.notify_all();
    }

    fn open(&self, i: usize) -> std::result::Result<Option<Box<dyn Read + Send + '_>>, StoreError> {
        let mut st = self.lock();
        let blob = &mut st.blobs[self.blob_of[i]];
        if blob.status == Status::Ready || blob.followed {
            return Ok(None);
        }
        blob.followed = true;
        Ok(Some(Box::new(Follower {
            arrivals: self,
            layer: i,
            generation: 0,
            file: None,
            pos: 0,
            delivered: 0,
        })))
    }

    fn wait(&self, i: usize) -> std::result::Result<(), StoreError> {
        let mut st = self.lock();
        loop {
            if st.blobs[self.blob_of[i]].status == Status::Ready {
                return Ok(());
            }
            if let Some(e) = self.stopped(&st, i) {
                return Err(StoreError::Io {
                    context: "pull".into(),
                    source: e,
                });
            }
            st = self.wait_on(st);
        }
    }

    fn unpacking(&self, i: usize) {
        // Told once the download is done, as docker tells it.
        let mut st = self.lock();
        if st.blobs[self.blob_of[i]].status != Status::Ready {
            st.extract_pending[i] = true;
            return;
        }
        drop(st);
        self.extracting(i);
    }

    fn unpacked(&self, i: usize) {
        (self.progress)(Event::Done {
            layer: self.layers[i].digest.clone(),
        });
    }
}

/// Reads a blob while it downloads: the ingest file up to what has been
/// written, waiting for more, to the end once the blob is committed. A
/// download that starts over (a server that ignored `Range`) is read from
/// where this reader had got to.
struct Follower<'s, 'a> {
    arrivals: &'s Arrivals<'a>,
    layer: usize,
    generation: u32,
    file: Option<Box<dyn Read + Send>>,
    /// Read position in `file`.
    pos: u64,
    /// Bytes handed to the caller.
    delivered: u64,
}

impl Read for Follower<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let a = self.arrivals;
        let b = a.blob_of[self.layer];
        loop {
            let avail = {
                let mut st = a.lock();
                loop {
                    if let Some(e) = a.stopped(&st, self.layer) {
                        return Err(e);
                    }
                    let blob = &mut st.blobs[b];
                    if blob.generation != self.generation {
                        self.generation = blob.generation;
                        self.file = blob.ingest.take();
                        self.pos = 0;
                        if self.file.is_none() {
                            return Err(io::Error::other(format!(
                                "layer {}: the download cannot be read as it arrives",
                                a.layers[self.layer].digest
                            )));
                        }
                    }
                    if self.file.is_some() && blob.written > self.pos {
                        break blob.written - self.pos;
                    }
                    if blob.status == Status::Ready {
                        return Ok(0);
                    }
                    st = a.wait_on(st);
                }
            };
            let want = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
            let file = self.file.as_mut().expect("a file once there are bytes");
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "ingest shorter than written",
                ));
            }
            let start = self.pos;
            self.pos += n as u64;
            // After a restart, the bytes before `delivered` were handed
            // over already.
            if self.pos <= self.delivered {
                continue;
            }
            let skip = self.delivered.saturating_sub(start) as usize;
            buf.copy_within(skip..n, 0);
            self.delivered = self.pos;
            return Ok(n - skip);
        }
    }
}
