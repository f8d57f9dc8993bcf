//! Image archives: `docker save` / `docker load` and OCI image layouts.
//!
//! Two formats are written. [`ArchiveFormat::Docker`] is what docker 25
//! and later write: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) plus docker's `manifest.json` and `repositories`,
//! so docker (any version), podman and skopeo all read it. `Oci` is the
//! bare layout (`oci-archive:`). Loading reads both, the legacy
//! docker-archive (`<id>/layer.tar`, `<id>.json`) as older docker and
//! podman write it, and any of them gzip- or zstd-compressed.
//!
//! Both directions stream: a layer passes through once and is never held
//! in memory; only the small JSON files are.

mod load;
mod save;

#[cfg(test)]
pub(crate) mod tests;

use std::io;

pub use load::load;
pub use save::{save, ArchiveFormat, SaveOptions};

use crate::content::ContentError;
use crate::store::StoreError;
use crate::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An entry or reference that would leave the archive.
    #[error("archive entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: String },
    /// A blob whose bytes do not match the digest it is stored under.
    #[error("archive entry {entry:?}: {source}")]
    Corrupt { entry: String, source: ContentError },
    #[error("invalid archive: {0}")]
    Invalid(String),
    /// Reading the stream failed: truncated, not a tar, bad compression.
    #[error("reading archive: {0}")]
    Read(io::Error),
    #[error("writing archive: {0}")]
    Write(io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ArchiveError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Unsafe { .. }
            | ArchiveError::Corrupt { .. }
            | ArchiveError::Invalid(_)
            | ArchiveError::Read(_) => ErrorKind::InvalidArgument,
            ArchiveError::Write(e) => ErrorKind::of_io(e),
            ArchiveError::Store(e) => e.kind(),
        }
    }
}

impl From<ContentError> for ArchiveError {
    fn from(e: ContentError) -> Self {
        ArchiveError::Store(e.into())
    }
}

pub type Result<T> = std::result::Result<T, ArchiveError>;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Annotation naming the whole reference (containerd, docker, podman).
pub(crate) const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation: a tag, or (podman, skopeo) a whole reference.
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
