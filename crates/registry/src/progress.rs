//! Progress of a pull or push as a stream of events. The crate draws no
//! UI: the CLI turns events into docker-like bars or plain lines, the API
//! into its JSON stream.

use berth_image::digest::Digest;

/// One step of a pull or push. Layers are named by their blob digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Looking up the reference (tag to manifest digest).
    Resolving { reference: String },
    /// The manifest was found: its digest and the layers to come.
    Resolved {
        digest: Digest,
        layers: Vec<(Digest, u64)>,
    },
    /// Queued behind other downloads or uploads.
    Waiting { layer: Digest },
    /// Bytes moved so far (`done` of `total`); sent as data flows.
    Downloading {
        layer: Digest,
        done: u64,
        total: u64,
    },
    Uploading {
        layer: Digest,
        done: u64,
        total: u64,
    },
    /// All bytes in; checking the digest.
    Verifying { layer: Digest },
    /// Unpacking into a snapshot.
    Extracting { layer: Digest },
    /// This layer is finished.
    Done { layer: Digest },
    /// Already there (in the local store, or in the registry on push, or
    /// mounted from another repository): nothing moved.
    Exists { layer: Digest },
    /// A connection broke; resuming from `offset`.
    Retrying { layer: Digest, offset: u64 },
}

/// Where events go. `&|e| tx.send(e).ok()` on a channel makes a stream;
/// [`ignore`] drops them.
pub type Progress<'a> = &'a (dyn Fn(Event) + Send + Sync);

/// A progress sink that drops every event.
pub fn ignore(_: Event) {}
