//! Images: references, digests, the content store, layer apply and diff,
//! snapshots and the image records. It turns bytes from a registry or an
//! archive into read-only layers shared by every image and container, and a
//! container's changes back into a layer.
//!
//! It must not know about container processes, networks or the engine's
//! records: a container is only ever a snapshot key here.
#![forbid(unsafe_code)]

pub mod archive;
pub mod content;
pub mod digest;
pub mod healthcheck;
pub mod layer;
pub mod reference;
pub mod snapshot;
pub mod sqlite;
pub mod store;

mod fsutil;

pub use digest::Digest;
pub use reference::Reference;

/// The small set of error kinds every module's error maps to. Only the
/// edges (`api`, `cli`) turn kinds into HTTP statuses or exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    Conflict,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// Classifies an I/O error the way callers care about: a missing file is
    /// "not found", a full disk "unavailable", everything else internal.
    pub fn of_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::InvalidInput | K::InvalidData => ErrorKind::InvalidArgument,
            K::StorageFull | K::QuotaExceeded | K::ResourceBusy => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}
