//! Producing a layer from an overlay upper directory: the upper directory
//! already is the change set, so the cost is the size of the change, not
//! of the image. Overlay's whiteouts become OCI ones on the way out.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

use super::{Applied, LayerError, Result, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::digest::HashingWriter;

#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Clamp every mtime to at most this (SOURCE_DATE_EPOCH), so the same
    /// change gives the same diff id whenever it is built.
    pub source_date_epoch: Option<i64>,
}

/// Writes the uncompressed layer tar of `upper` to `out`, entries in
/// byte-wise name order, and returns its diff id and size.
pub fn diff<W: Write>(upper: &Path, out: W, opts: &DiffOptions) -> Result<Applied> {
    let _span = tracing::debug_span!("diff_layer", upper = %upper.display()).entered();
    let mut builder = tar::Builder::new(HashingWriter::new(out));
    let mut walker = Walker {
        builder: &mut builder,
        opts,
        links: HashMap::new(),
    };
    walker.dir(upper, "")?;
    let hashing = builder.into_inner().map_err(|source| LayerError::Io {
        context: "finishing layer tar".into(),
        source,
    })?;
    let (mut out, d) = hashing.into_inner();
    out.flush().map_err(|source| LayerError::Io {
        context: "flushing layer tar".into(),
        source,
    })?;
    Ok(Applied {
        diff_id: d.digest(),
        size: d.size(),
    })
}

struct Walker<'a, W: Write> {
    builder: &'a mut tar::Builder<HashingWriter<W>>,
    opts: &'a DiffOptions,
    // (dev, ino) of multiply-linked files already written: the rest of
    // their names become hardlink entries.
    links: HashMap<(u64, u64), String>,
}

impl<W: Write> Walker<'_, W> {
    fn dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let io_at = |p: &Path| {
            let p = p.display().to_string();
            move |source| LayerError::Io { context: p, source }
        };
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_at(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(io_at(dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let md = fs::symlink_metadata(&path).map_err(io_at(&path))?;
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                // overlay's whiteout: the file was deleted.
                let parent = rel
                    .rsplit_once('/')
                    .map_or(String::new(), |(p, _)| format!("{p}/"));
                self.empty_file(
                    &format!("{parent}{WHITEOUT_PREFIX}{}", name.to_string_lossy()),
                    &md,
                )?;
                continue;
            }
            if ft.is_socket() {
                // Sockets are not content; docker leaves them out too.
                continue;
            }
            let xattrs = read_xattrs(&path).map_err(io_at(&path))?;
            let mut header = self.header(&md);
            if ft.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                self.pax(&xattrs)?;
                self.append(&mut header, &format!("{rel}/"), io::empty())?;
                let opaque = xattrs
                    .iter()
                    .any(|(k, v)| k == OVERLAY_OPAQUE_XATTR && v == b"y");
                if opaque {
                    self.empty_file(&format!("{rel}/{OPAQUE_WHITEOUT}"), &md)?;
                }
                self.dir(&path, &format!("{rel}/"))?;
            } else if ft.is_symlink() {
                header.set_entry_type(tar::EntryType::Symlink);
                let target = fs::read_link(&path).map_err(io_at(&path))?;
                self.pax(&xattrs)?;
                self.builder
                    .append_link(&mut header, &rel, target)
                    .map_err(io_at(&path))?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                        header.set_entry_type(tar::EntryType::Link);
                        header.set_size(0);
                        let first = first.clone();
                        self.builder
                            .append_link(&mut header, &rel, first)
                            .map_err(io_at(&path))?;
                        continue;
                    }
                    self.links.insert((md.dev(), md.ino()), rel.clone());
                }
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(md.len());
                // O_NOFOLLOW: a container could swap the file for a symlink
                // between the stat and the open.
                let f = File::options()
                    .read(true)
                    .custom_flags(OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .map_err(io_at(&path))?;
                self.pax(&xattrs)?;
                self.append(&mut header, &rel, f)?;
            } else {
                let (t, dev) = if ft.is_fifo() {
                    (tar::EntryType::Fifo, 0)
                } else if ft.is_char_device() {
                    (tar::EntryType::Char, md.rdev())
                } else {
                    (tar::EntryType::Block, md.rdev())
                };
                header.set_entry_type(t);
                let dev = dev as rustix::fs::Dev;
                header
                    .set_device_major(rustix::fs::major(dev))
                    .map_err(io_at(&path))?;
                header
                    .set_device_minor(rustix::fs::minor(dev))
                    .map_err(io_at(&path))?;
                self.pax(&xattrs)?;
                self.append(&mut header, &rel, io::empty())?;
            }
        }
        Ok(())
    }

    fn header(&self, md: &fs::Metadata) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid().into());
        h.set_gid(md.gid().into());
        let mut mtime = md.mtime();
        if let Some(epoch) = self.opts.source_date_epoch {
            mtime = mtime.min(epoch);
        }
        h.set_mtime(mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    fn empty_file(&mut self, rel: &str, md: &fs::Metadata) -> Result<()> {
        let mut h = self.header(md);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        self.append(&mut h, rel, io::empty())
    }

    fn pax(&mut self, xattrs: &[(String, Vec<u8>)]) -> Result<()> {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay."))
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(|source| LayerError::Io {
                context: "writing xattrs".into(),
                source,
            })
    }

    fn append(&mut self, header: &mut tar::Header, rel: &str, data: impl io::Read) -> Result<()> {
        self.builder
            .append_data(header, rel, data)
            .map_err(|source| LayerError::Io {
                context: format!("adding {rel} to layer"),
                source,
            })
    }
}

/// Xattrs of `path` itself (not a symlink's target), sorted by name for a
/// deterministic tar.
fn read_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    use rustix::io::Errno;
    let names = match sized(
        |buf| rustix::fs::llistxattr(path, buf),
        || rustix::fs::llistxattr_query(path),
    ) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let value = match sized(
            |buf| rustix::fs::lgetxattr(path, name, buf),
            || rustix::fs::lgetxattr_query(path, name),
        ) {
            Ok(v) => v,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        out.push((name.to_string_lossy().into_owned(), value));
    }
    out.sort();
    Ok(out)
}

/// The size-then-read dance of the xattr calls, retried when the value
/// grows in between (ERANGE).
fn sized(
    mut read: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
    query: impl Fn() -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    for _ in 0..8 {
        let mut buf = vec![0u8; query()?];
        if buf.is_empty() {
            return Ok(buf);
        }
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(rustix::io::Errno::RANGE)
}
