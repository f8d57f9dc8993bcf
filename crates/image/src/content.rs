//! The content store: blobs (manifests, configs, compressed layers) kept by
//! their sha256 digest under `<root>/content/blobs/sha256/<hex>`.
//!
//! The one promise it makes: a blob is visible under a digest only if its
//! bytes hash to that digest. Writers stream into `<root>/content/ingest/`,
//! hashing as they go; commit fsyncs, verifies and renames. A crash leaves
//! at most a stray file in `ingest/`, never a wrong blob.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Digester};
use crate::fsutil::{fsync_dir, sweep_dead, unique_name};
use crate::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("blob content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0}: only sha256 digests are stored")]
    Unsupported(Digest),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl ContentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContentError::NotFound(_) => ErrorKind::NotFound,
            ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } => {
                ErrorKind::InvalidArgument
            }
            ContentError::Unsupported(_) => ErrorKind::InvalidArgument,
            ContentError::Io { source, .. } => ErrorKind::of_io(source),
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
    let context = context.into();
    move |source| ContentError::Io { context, source }
}

pub type Result<T> = std::result::Result<T, ContentError>;

/// What the store knows about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub digest: Digest,
    pub size: u64,
}

/// A committed blob opened for reading; seekable so archives and
/// registries can serve ranges.
pub trait BlobReader: Read + Seek + Send {}
impl<T: Read + Seek + Send> BlobReader for T {}

/// Reading side: what a puller, an unpacker or an exporter needs.
pub trait Provider {
    /// Opens a committed blob.
    fn reader(&self, digest: &Digest) -> Result<Box<dyn BlobReader>>;
    /// The blob's size, or `NotFound`.
    fn info(&self, digest: &Digest) -> Result<Info>;
    fn exists(&self, digest: &Digest) -> Result<bool> {
        match self.info(digest) {
            Ok(_) => Ok(true),
            Err(ContentError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Writing side. An ingest is a [`ContentWriter`]: write bytes, then
/// [`ContentWriter::commit`] them under the digest you expect. Dropping a
/// writer without committing throws the bytes away.
pub trait Ingester {
    fn writer(&self) -> Result<Box<dyn ContentWriter>>;
}

/// An ingest in progress. It hashes while bytes stream in, so commit costs
/// an fsync and a rename, not a second read.
pub trait ContentWriter: Write + Send {
    /// Digest and size of what was written so far.
    fn status(&self) -> Info;
    /// Makes the bytes visible as a blob. With `expected`, a mismatch is an
    /// error and nothing becomes visible; without, the computed digest is
    /// used. Committing bytes that are already stored succeeds.
    fn commit(
        self: Box<Self>,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Info>;
    /// The bytes written so far, opened for reading from the start, for
    /// work that may begin before the commit (and is thrown away if the
    /// commit fails).
    fn reopen(&self) -> Result<File>;
}

/// Housekeeping: what garbage collection and `system df` need.
pub trait Manager {
    fn delete(&self, digest: &Digest) -> Result<()>;
    fn list(&self) -> Result<Vec<Info>>;
}

/// The whole store: every part above.
pub trait ContentStore: Provider + Ingester + Manager + Send + Sync {}
impl<T: Provider + Ingester + Manager + Send + Sync> ContentStore for T {}

/// Writes `bytes` as one blob, verifying `expected` if given.
pub fn write_blob(store: &dyn Ingester, bytes: &[u8], expected: Option<&Digest>) -> Result<Info> {
    let mut w = store.writer()?;
    w.write_all(bytes).map_err(io_err("writing blob"))?;
    w.commit(expected, Some(bytes.len() as u64))
}

/// Reads a whole (small) blob: a manifest, an index, a config.
pub fn read_blob(store: &dyn Provider, digest: &Digest) -> Result<Vec<u8>> {
    let mut r = store.reader(digest)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(io_err(format!("reading blob {digest}")))?;
    Ok(out)
}

/// The content store on a local filesystem.
#[derive(Debug, Clone)]
pub struct FsContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl FsContentStore {
    /// Opens (creating if needed) the store under `<root>/content`.
    pub fn open(root: &Path) -> Result<FsContentStore> {
        let blobs = root.join("content/blobs/sha256");
        let ingest = root.join("content/ingest");
        for d in [&blobs, &ingest] {
            fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        // Ingests of writers killed mid-write: never visible, only disk.
        sweep_dead(&ingest, INGEST_PREFIX);
        Ok(FsContentStore { blobs, ingest })
    }

    /// A scratch file beside the ingests (same filesystem, swept the same
    /// way after a crash), deleted when the guard drops: for data that is
    /// staged but never becomes a blob, like a layer being recompressed.
    pub fn temp_file(&self) -> Result<TempFile> {
        let path = self.ingest.join(unique_name(INGEST_PREFIX));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        Ok(TempFile { file, path })
    }

    /// Where a blob lives (or would live).
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        if digest.algorithm() != "sha256" {
            return Err(ContentError::Unsupported(digest.clone()));
        }
        Ok(self.blobs.join(digest.hex()))
    }
}

impl Provider for FsContentStore {
    fn reader(&self, digest: &Digest) -> Result<Box<dyn BlobReader>> {
        let path = self.blob_path(digest)?;
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()))
            }
            Err(e) => Err(io_err(format!("opening blob {digest}"))(e)),
        }
    }

    fn info(&self, digest: &Digest) -> Result<Info> {
        match fs::metadata(self.blob_path(digest)?) {
            Ok(m) => Ok(Info {
                digest: digest.clone(),
                size: m.len(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()))
            }
            Err(e) => Err(io_err(format!("stat blob {digest}"))(e)),
        }
    }
}

const INGEST_PREFIX: &str = "ingest-";

/// A scratch file removed on drop; see [`FsContentStore::temp_file`].
pub struct TempFile {
    pub file: File,
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Ingester for FsContentStore {
    fn writer(&self) -> Result<Box<dyn ContentWriter>> {
        let path = self.ingest.join(unique_name(INGEST_PREFIX));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        Ok(Box::new(FsWriter {
            file: Some(file),
            path,
            digester: Digester::new(),
            blobs: self.blobs.clone(),
        }))
    }
}

impl Manager for FsContentStore {
    fn delete(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.blob_path(digest)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()))
            }
            Err(e) => Err(io_err(format!("deleting blob {digest}"))(e)),
        }
    }

    fn list(&self) -> Result<Vec<Info>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(io_err("listing blobs"))? {
            let entry = entry.map_err(io_err("listing blobs"))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
            else {
                continue;
            };
            let size = entry
                .metadata()
                .map_err(io_err(format!("stat blob {digest}")))?
                .len();
            out.push(Info { digest, size });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}

struct FsWriter {
    file: Option<File>,
    path: PathBuf,
    digester: Digester,
    blobs: PathBuf,
}

impl Write for FsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("ingest already committed"))?;
        let n = f.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ContentWriter for FsWriter {
    fn reopen(&self) -> Result<File> {
        File::open(&self.path).map_err(io_err("reopening ingest"))
    }

    fn status(&self) -> Info {
        Info {
            digest: self.digester.digest(),
            size: self.digester.size(),
        }
    }

    fn commit(
        mut self: Box<Self>,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Info> {
        let actual = self.digester.digest();
        let size = self.digester.size();
        if let Some(want) = expected {
            if *want != actual {
                return Err(ContentError::DigestMismatch {
                    expected: want.clone(),
                    actual,
                });
            }
        }
        if let Some(want) = expected_size {
            if want != size {
                return Err(ContentError::SizeMismatch {
                    digest: actual,
                    expected: want,
                    actual: size,
                });
            }
        }
        let file = self.file.take().expect("writer used after commit");
        // Data and size: the rest of the inode (times) need not survive.
        file.sync_data().map_err(io_err("syncing ingest"))?;
        drop(file);
        let target = self.blobs.join(actual.hex());
        // Blobs are immutable: read-only makes an accidental write fail
        // loudly instead of silently breaking the digest.
        let mut perms = fs::metadata(&self.path)
            .map_err(io_err("stat ingest"))?
            .permissions();
        perms.set_readonly(true);
        fs::set_permissions(&self.path, perms).map_err(io_err("chmod ingest"))?;
        fs::rename(&self.path, &target).map_err(io_err(format!("committing blob {actual}")))?;
        fsync_dir(&self.blobs).map_err(io_err("syncing blob directory"))?;
        Ok(Info {
            digest: actual,
            size,
        })
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // Either committed (renamed away) or abandoned: nothing must stay.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, FsContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = FsContentStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn ingest_is_empty(dir: &Path) -> bool {
        fs::read_dir(dir.join("content/ingest"))
            .unwrap()
            .next()
            .is_none()
    }

    #[test]
    fn write_read_info_list_delete() {
        let (dir, s) = store();
        let data = b"{\"schemaVersion\":2}";
        let d = Digest::of(data);
        let info = write_blob(&s, data, Some(&d)).unwrap();
        assert_eq!(
            info,
            Info {
                digest: d.clone(),
                size: data.len() as u64
            }
        );
        assert!(dir
            .path()
            .join("content/blobs/sha256")
            .join(d.hex())
            .is_file());
        assert_eq!(read_blob(&s, &d).unwrap(), data);
        assert_eq!(s.info(&d).unwrap().size, data.len() as u64);
        assert!(s.exists(&d).unwrap());
        assert_eq!(s.list().unwrap(), vec![info]);
        s.delete(&d).unwrap();
        assert!(!s.exists(&d).unwrap());
        assert_eq!(s.delete(&d).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(s.reader(&d).err().unwrap().kind(), ErrorKind::NotFound);
        assert!(ingest_is_empty(dir.path()));
    }

    #[test]
    fn mismatched_bytes_are_never_visible() {
        let (dir, s) = store();
        let claimed = Digest::of(b"what the manifest said");
        let e = write_blob(&s, b"what the registry sent", Some(&claimed)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(claimed.as_str()), "{msg}");
        assert!(
            msg.contains(Digest::of(b"what the registry sent").as_str()),
            "{msg}"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(!s.exists(&claimed).unwrap());
        assert!(s.list().unwrap().is_empty());
        assert!(
            ingest_is_empty(dir.path()),
            "the failed ingest was cleaned up"
        );
    }

    #[test]
    fn size_mismatch_is_refused() {
        let (_dir, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"abc").unwrap();
        let e = w.commit(None, Some(4)).unwrap_err();
        assert!(
            matches!(
                e,
                ContentError::SizeMismatch {
                    expected: 4,
                    actual: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn streamed_writes_hash_as_they_go_and_abandoned_ingests_vanish() {
        let (dir, s) = store();
        let mut w = s.writer().unwrap();
        for chunk in [&b"a"[..], b"bc", b""] {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(
            w.status(),
            Info {
                digest: Digest::of(b"abc"),
                size: 3
            }
        );
        drop(w);
        assert!(ingest_is_empty(dir.path()));
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn committing_existing_content_is_idempotent_and_blobs_are_read_only() {
        let (_dir, s) = store();
        let a = write_blob(&s, b"same", None).unwrap();
        let b = write_blob(&s, b"same", None).unwrap();
        assert_eq!(a, b);
        let path = s.blob_path(&a.digest).unwrap();
        assert!(fs::metadata(path).unwrap().permissions().readonly());
    }

    #[test]
    fn only_sha256_is_stored() {
        let (_dir, s) = store();
        let d = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap();
        assert!(matches!(s.info(&d), Err(ContentError::Unsupported(_))));
    }
}
