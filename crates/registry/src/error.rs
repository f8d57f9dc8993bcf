//! The registry crate's one error type. Every variant names what was at
//! fault (registry host, reference or blob) so the CLI can print it as is.

use std::io;

use berth_image::content::ContentError;
use berth_image::digest::Digest;
use berth_image::layer::LayerError;
use berth_image::snapshot::SnapshotError;
use berth_image::store::StoreError;

/// The image crate's kinds plus `Unauthorized`, which only a registry
/// produces (the CLI exits differently for a login problem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    Conflict,
    Unauthorized,
    Unavailable,
    Internal,
}

impl From<berth_image::ErrorKind> for ErrorKind {
    fn from(k: berth_image::ErrorKind) -> Self {
        use berth_image::ErrorKind as K;
        match k {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::InvalidArgument => ErrorKind::InvalidArgument,
            K::Conflict => ErrorKind::Conflict,
            K::Unavailable => ErrorKind::Unavailable,
            K::Internal => ErrorKind::Internal,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: unauthorized: {reason}")]
    Unauthorized { registry: String, reason: String },
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown { reference: String },
    #[error("{registry}: repository {repository} not found")]
    RepositoryNotFound {
        registry: String,
        repository: String,
    },
    #[error("{registry}: blob {digest} not found in {repository}")]
    BlobUnknown {
        registry: String,
        repository: String,
        digest: Digest,
    },
    #[error("{reference}: no manifest for platform {wanted} (available: {})", available.join(", "))]
    UnsupportedPlatform {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("{reference}: schema 1 manifests are not supported; push the image again with a current client")]
    Schema1 { reference: String },
    #[error("{reference}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("{reference}: invalid manifest: {reason}")]
    InvalidManifest { reference: String, reason: String },
    #[error("{registry}: blob {expected} is corrupt: its content hashes to {actual}")]
    DigestMismatch {
        registry: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{registry}: blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        registry: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{registry}: layer {digest} unpacks to diff id {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        registry: String,
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("{registry}: {reason}")]
    Unavailable { registry: String, reason: String },
    /// The local store ran out of space; `reason` is the failure as it
    /// happened (which blob or layer entry).
    #[error("disk full: {reason}")]
    DiskFull { reason: String },
    #[error("{registry}: {method} {url}: HTTP {status}: {message}")]
    Http {
        registry: String,
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{registry}: TLS configuration: {reason}")]
    Tls { registry: String, reason: String },
    #[error("credentials for {registry}: {reason}")]
    Credentials { registry: String, reason: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("registry configuration {path}: {reason}")]
    Config { path: String, reason: String },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl RegistryError {
    pub fn kind(&self) -> ErrorKind {
        use RegistryError as E;
        match self {
            E::Unauthorized { .. } => ErrorKind::Unauthorized,
            E::ManifestUnknown { .. } | E::RepositoryNotFound { .. } | E::BlobUnknown { .. } => {
                ErrorKind::NotFound
            }
            E::UnsupportedPlatform { .. } => ErrorKind::NotFound,
            E::Schema1 { .. }
            | E::UnsupportedMediaType { .. }
            | E::InvalidManifest { .. }
            | E::DigestMismatch { .. }
            | E::SizeMismatch { .. }
            | E::DiffIdMismatch { .. }
            | E::InvalidArgument(_)
            | E::Config { .. }
            | E::Tls { .. } => ErrorKind::InvalidArgument,
            E::Unavailable { .. } | E::DiskFull { .. } => ErrorKind::Unavailable,
            E::Http { status, .. } => match status {
                404 => ErrorKind::NotFound,
                401 | 403 => ErrorKind::Unauthorized,
                400..=499 => ErrorKind::InvalidArgument,
                _ => ErrorKind::Unavailable,
            },
            E::Credentials { .. } => ErrorKind::Unauthorized,
            E::Content(e) => e.kind().into(),
            E::Store(e) => e.kind().into(),
            E::Snapshot(e) => e.kind().into(),
            E::Layer(e) => e.kind().into(),
            E::Io { source, .. } => berth_image::ErrorKind::of_io(source).into(),
        }
    }

    /// Worth another attempt: the network or the server had a bad moment.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unavailable { .. } => true,
            RegistryError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

impl RegistryError {
    /// This error, or [`RegistryError::DiskFull`] when somewhere down its
    /// chain the store's disk ran out of space: that is the cause to name,
    /// whichever write hit it.
    pub(crate) fn or_disk_full(self) -> RegistryError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if io.kind() == io::ErrorKind::StorageFull
                    || io.kind() == io::ErrorKind::QuotaExceeded
                {
                    return RegistryError::DiskFull {
                        reason: self.to_string(),
                    };
                }
            }
            cause = e.source();
        }
        self
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RegistryError {
    let context = context.into();
    move |source| RegistryError::Io { context, source }
}
