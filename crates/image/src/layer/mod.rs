//! Layers: applying a layer tarball (plain, gzip or zstd) onto a directory,
//! and producing one from an overlay upper directory.
//!
//! Applying is streamed (a layer is never held in memory) and hostile
//! input is expected: every path is resolved inside the root without
//! following symlinks, and an entry that would leave it is refused with an
//! error naming the entry. The diff id (sha256 of the uncompressed tar) is
//! computed on the same pass.

mod apply;
mod diff;
pub(crate) mod resolve;

use std::io::{self, Read};

pub use apply::{apply, apply_to_mounts};
pub(crate) use apply::{apply_seen, apply_tar, read_full, Seen};
pub use diff::{diff, DiffOptions};

use crate::digest::Digest;
use crate::ErrorKind;

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry that would escape the root or write through a symlink.
    #[error("layer entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: String },
    /// An entry that is well-formed tar but not something we can apply.
    #[error("layer entry {entry:?}: {reason}")]
    Invalid { entry: String, reason: String },
    #[error("layer entry {entry:?}: {source}")]
    Entry { entry: String, source: io::Error },
    #[error("reading layer: {0}")]
    Read(io::Error),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("cannot apply a layer to mounts {0}")]
    Mounts(String),
}

impl LayerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LayerError::Unsafe { .. } | LayerError::Invalid { .. } | LayerError::Read(_) => {
                ErrorKind::InvalidArgument
            }
            LayerError::Entry { source, .. } | LayerError::Io { source, .. } => {
                ErrorKind::of_io(source)
            }
            LayerError::Mounts(_) => ErrorKind::InvalidArgument,
        }
    }
}

pub type Result<T> = std::result::Result<T, LayerError>;

/// How whiteouts in the tar are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// Delete what they name: for a plain directory that already holds
    /// the layers below (the native snapshotter, `export`).
    #[default]
    Apply,
    /// Turn them into overlayfs' own form (a 0/0 character device; the
    /// `trusted.overlay.opaque=y` xattr) in a fresh directory that will be
    /// one lowerdir of an overlay mount.
    Overlay,
}

/// Whether tar ownership is applied. Only root can give files away, so an
/// unprivileged unpack keeps its own uid instead of failing every chown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Preserve,
    Ignore,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub whiteouts: Whiteouts,
    pub ownership: Ownership,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ApplyOptions {
            whiteouts: Whiteouts::Apply,
            ownership: if root {
                Ownership::Preserve
            } else {
                Ownership::Ignore
            },
        }
    }
}

/// What applying a layer learned about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar: the layer's diff id.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Recognises a stream by its magic bytes.
    pub fn detect(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// The OCI media type suffix of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Wraps `input` in the decompressor its first bytes call for.
pub fn decompress<'a, R: Read + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 4];
    let n = read_full(&mut input, &mut head)?;
    let whole = io::Cursor::new(head[..n].to_vec()).chain(input);
    Ok(match Compression::detect(&head[..n]) {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
    })
}

#[cfg(test)]
mod tests;
