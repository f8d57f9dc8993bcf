//! The layers of one pull on their way in, shared by the download workers
//! and the image store's [`EarlyUnpack`].
//!
//! Workers download the missing blobs a few at a time, the biggest first
//! (it takes longest to unpack). Each download is offered to the store as
//! it starts, through a [`Follower`] that trails the ingest file as it
//! grows, so unpacking runs alongside the download instead of after it; a
//! follower reaches its end only once the blob is committed under its
//! digest. The first download failure stops everything and is the error
//! the pull reports.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use berth_image::content::Info;
use berth_image::digest::Digest;
use berth_image::store::EarlyUnpack;

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

/// What a layer's bar has been told after its download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Told {
    Nothing,
    Extracting,
    Done,
}

/// One distinct blob (a layer listed twice is one blob).
struct Blob {
    status: Status,
    /// Bumped for every new ingest of the blob (a restart from byte 0).
    generation: u32,
    /// A reader of the current ingest, until a follower takes it.
    ingest: Option<File>,
    /// Bytes in the current ingest.
    written: u64,
    /// How far its unpack got; told once the download is done, as docker
    /// tells it.
    unpack: Told,
    told: Told,
}

struct State {
    blobs: Vec<Blob>,
    /// Blobs to download, in order.
    queue: VecDeque<usize>,
    /// The first download failure.
    failed: Option<RegistryError>,
}

pub(crate) struct Arrivals<'a> {
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
        for l in layers {
            if !descs.iter().any(|d| d.digest == l.digest) {
                descs.push(l);
            }
        }
        let blobs: Vec<Blob> = descs
            .iter()
            .map(|d| {
                let here = present(d);
                Blob {
                    status: if here { Status::Ready } else { Status::Pending },
                    generation: 0,
                    ingest: None,
                    written: 0,
                    unpack: Told::Nothing,
                    // A blob already there is not unpacked now; it is only
                    // told done with the rest.
                    told: if here {
                        Told::Extracting
                    } else {
                        Told::Nothing
                    },
                }
            })
            .collect();
        let mut queue: Vec<usize> = (0..descs.len())
            .filter(|&b| blobs[b].status == Status::Pending)
            .collect();
        queue.sort_by_key(|&b| std::cmp::Reverse(descs[b].size));
        Arrivals {
            descs,
            state: Mutex::new(State {
                blobs,
                queue: queue.into(),
                failed: None,
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
        self.lock().queue.len()
    }

    /// For a download worker: the next blob to fetch; `None` when there
    /// is none or the pull failed.
    pub(crate) fn next(&self) -> Option<(usize, &'a Descriptor)> {
        if self.cancel.load(Ordering::SeqCst) {
            return None;
        }
        let mut st = self.lock();
        let b = st.queue.pop_front()?;
        st.blobs[b].status = Status::Downloading;
        Some((b, self.descs[b]))
    }

    /// The tap a worker downloading blob `b` reports through; the first
    /// ingest is offered to `early` to unpack as it arrives.
    pub(crate) fn tap<'s, 't>(
        &'s self,
        b: usize,
        early: &'t EarlyUnpack<'s>,
    ) -> BlobTap<'t, 's, 'a> {
        BlobTap {
            arrivals: self,
            b,
            early,
        }
    }

    /// Records how the download of blob `b` ended. The first failure is
    /// kept and stops every download.
    pub(crate) fn arrived(&self, b: usize, r: Result<Info>) {
        let mut st = self.lock();
        match r {
            Ok(info) => {
                let blob = &mut st.blobs[b];
                blob.status = Status::Ready;
                blob.written = info.size;
                let upto = blob.unpack;
                drop(st);
                self.tell(b, upto);
            }
            Err(e) => {
                // Once cancelled, a download fails because of that: the
                // failure that cancelled is the one to tell.
                if !self.cancel.swap(true, Ordering::SeqCst) {
                    st.failed.get_or_insert(e);
                }
                drop(st);
            }
        }
        self.changed.notify_all();
    }

    /// Whether a download failed.
    pub(crate) fn failed(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// The first download failure, taken.
    pub(crate) fn take_failure(&self) -> Option<RegistryError> {
        self.lock().failed.take()
    }

    /// The store staged blob `digest`.
    pub(crate) fn staged(&self, digest: &Digest) {
        if let Some(b) = self.descs.iter().position(|d| d.digest == *digest) {
            self.unpacked_to(b, Told::Done);
        }
    }

    /// Every download is done and the image is being recorded: what was
    /// not unpacked as it arrived is unpacked now.
    pub(crate) fn registering(&self) {
        for b in 0..self.descs.len() {
            self.unpacked_to(b, Told::Extracting);
        }
    }

    /// The image is recorded: every layer is unpacked, now or by an
    /// earlier image.
    pub(crate) fn finish(&self) {
        for b in 0..self.descs.len() {
            self.unpacked_to(b, Told::Done);
        }
    }

    /// Blob `b`'s unpack got to `to`: told now if its download is done,
    /// else once it is.
    fn unpacked_to(&self, b: usize, to: Told) {
        let mut st = self.lock();
        let blob = &mut st.blobs[b];
        blob.unpack = blob.unpack.max(to);
        let ready = blob.status == Status::Ready;
        drop(st);
        if ready {
            self.tell(b, to);
        }
    }

    /// Tells blob `b`'s bar every step up to `upto` it has not heard.
    fn tell(&self, b: usize, upto: Told) {
        let mut st = self.lock();
        let from = st.blobs[b].told;
        if upto <= from {
            return;
        }
        st.blobs[b].told = upto;
        drop(st);
        let layer = self.descs[b].digest.clone();
        if from < Told::Extracting {
            (self.progress)(Event::Extracting {
                layer: layer.clone(),
            });
        }
        if upto == Told::Done {
            (self.progress)(Event::Done { layer });
        }
    }

    /// The error a follower of blob `b` sees when the pull failed; the
    /// pull itself reports the download's own error.
    fn stopped(&self, st: &State, b: usize) -> Option<io::Error> {
        let gone = st.blobs[b].status != Status::Ready && self.cancel.load(Ordering::SeqCst);
        // Not `Interrupted`: readers take that as "try again".
        gone.then(|| io::Error::other(format!("layer {} was not downloaded", self.descs[b].digest)))
    }
}

pub(crate) struct BlobTap<'t, 's, 'a> {
    arrivals: &'s Arrivals<'a>,
    b: usize,
    early: &'t EarlyUnpack<'s>,
}

impl Tap for BlobTap<'_, '_, '_> {
    fn ingest(&self, reader: Option<File>) {
        let a = self.arrivals;
        let mut st = a.lock();
        let blob = &mut st.blobs[self.b];
        blob.generation += 1;
        blob.ingest = reader;
        blob.written = 0;
        let first = blob.generation == 1;
        drop(st);
        a.changed.notify_all();
        if first {
            let desc = a.descs[self.b];
            self.early.offer(
                &desc.digest,
                desc.size,
                Box::new(Follower {
                    arrivals: a,
                    b: self.b,
                    generation: 0,
                    file: None,
                    pos: 0,
                }),
            );
        }
    }

    fn wrote(&self, size: u64) {
        self.arrivals.lock().blobs[self.b].written = size;
        self.arrivals.changed.notify_all();
    }
}

/// Reads a blob while it downloads: the ingest file up to what has been
/// written, waiting for more, to the end once the blob is committed. Its
/// bytes are the committed blob's, since the file is the blob: a download
/// that starts over in a new file (a server that ignored `Range`) fails
/// it once it has read from the old one.
struct Follower<'s, 'a> {
    arrivals: &'s Arrivals<'a>,
    b: usize,
    generation: u32,
    file: Option<File>,
    /// Read position in `file`.
    pos: u64,
}

impl Read for Follower<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let a = self.arrivals;
        if self.file.is_none() && self.pos == 0 {
            a.unpacked_to(self.b, Told::Extracting);
        }
        let avail = {
            let mut st = a.lock();
            loop {
                if let Some(e) = a.stopped(&st, self.b) {
                    return Err(e);
                }
                let blob = &mut st.blobs[self.b];
                if blob.generation != self.generation {
                    if self.pos > 0 {
                        return Err(io::Error::other(format!(
                            "layer {}: the download started over",
                            a.descs[self.b].digest
                        )));
                    }
                    self.generation = blob.generation;
                    self.file = blob.ingest.take();
                    if self.file.is_none() {
                        return Err(io::Error::other(format!(
                            "layer {}: the download cannot be read as it arrives",
                            a.descs[self.b].digest
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
        self.pos += n as u64;
        Ok(n)
    }
}
