//! Applying a layer tar onto a directory.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::resolve::{clean, join, ResolveError, Root};
use super::{
    decompress, Applied, ApplyOptions, LayerError, Ownership, Result, Whiteouts, OPAQUE_WHITEOUT,
    OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX,
};
use crate::digest::HashingReader;
use crate::snapshot::Mount;

const COPY_BUF: usize = 256 * 1024;
const HOLE_BLOCK: usize = 4096;

/// Applies the layer in `input` (tar, tar+gzip or tar+zstd, told apart by
/// magic bytes) onto the directory `root`, and returns its diff id.
///
/// Entries that would leave `root` — `..` climbing above it, a path
/// through a symlink, a hardlink to a target outside — fail the whole apply
/// with an error naming the entry; entries applied before it stay, so apply
/// into a fresh snapshot and remove it on error.
pub fn apply<R: Read>(input: R, root: &Path, opts: &ApplyOptions) -> Result<Applied> {
    apply_seen(input, root, opts).map(|(applied, _)| applied)
}

/// [`apply`], also telling what it met.
pub(crate) fn apply_seen<R: Read>(
    input: R,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<(Applied, Seen)> {
    let mut hashing = HashingReader::new(decompress(input).map_err(LayerError::Read)?);
    let seen = apply_tar(&mut hashing, root, opts)?;
    // The digest covers the whole stream, including the end-of-archive
    // blocks and padding the tar reader stops short of.
    io::copy(&mut hashing, &mut io::sink()).map_err(LayerError::Read)?;
    let d = hashing.digester();
    let applied = Applied {
        diff_id: d.digest(),
        size: d.size(),
    };
    Ok((applied, seen))
}

/// What applying a tar met that the caller may need to know.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    /// Whiteouts (plain or opaque): in [`Whiteouts::Overlay`] form they
    /// are files of the result, where in [`Whiteouts::Apply`] they are not.
    pub whiteouts: bool,
}

/// Applies the uncompressed tar `input` onto `root`, reading it up to its
/// end-of-archive marker: [`apply`] without the diff id, for a caller that
/// already knows it (an uncompressed blob is its own diff id).
pub(crate) fn apply_tar<R: Read>(input: R, root: &Path, opts: &ApplyOptions) -> Result<Seen> {
    let _span = tracing::debug_span!("apply_layer", root = %root.display()).entered();
    let root = Root::open(root).map_err(|source| LayerError::Io {
        context: format!("opening {}", root.display()),
        source,
    })?;
    let mut archive = tar::Archive::new(input);
    let mut applier = Applier::new(&root, opts);
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        applier.entry(&mut entry)?;
    }
    applier.finish()?;
    Ok(applier.seen)
}

/// Applies a layer onto a snapshot given by its mounts, without mounting:
/// a bind mount is a plain directory (whiteouts delete), an overlay mount's
/// upperdir receives the layer with whiteouts in overlay form.
pub fn apply_to_mounts<R: Read>(
    mounts: &[Mount],
    input: R,
    opts: &ApplyOptions,
) -> Result<Applied> {
    match mounts {
        [m] if m.kind == "bind" => apply(
            input,
            &m.source,
            &ApplyOptions {
                whiteouts: Whiteouts::Apply,
                ..opts.clone()
            },
        ),
        [m] if m.kind == "overlay" => {
            let upper = m.option_value("upperdir").ok_or_else(|| {
                LayerError::Mounts("overlay without upperdir (a read-only view)".into())
            })?;
            apply(
                input,
                Path::new(upper),
                &ApplyOptions {
                    whiteouts: Whiteouts::Overlay,
                    ..opts.clone()
                },
            )
        }
        other => Err(LayerError::Mounts(format!("{other:?}"))),
    }
}

/// Metadata of one entry, with PAX records taking precedence over the
/// header fields they extend.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timespec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
        let h = e.header();
        let mut m = Meta {
            mode: h.mode()? & 0o7777,
            uid: h.uid()?,
            gid: h.gid()?,
            mtime: Timespec {
                tv_sec: h.mtime()? as i64,
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        if let Some(exts) = e.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                };
                match key {
                    "uid" => m.uid = num().unwrap_or(m.uid),
                    "gid" => m.gid = num().unwrap_or(m.gid),
                    "mtime" => m.mtime = parse_pax_time(value).unwrap_or(m.mtime),
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            m.xattrs.push((OsString::from(name), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

/// PAX times are decimal seconds with an optional fraction.
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(Timespec { tv_sec, tv_nsec })
}

struct Applier<'a> {
    root: &'a Root,
    opts: &'a ApplyOptions,
    // Layers list entries directory by directory, so the last parent is
    // nearly always the next one: one openat2 per directory, not per file.
    cache: Option<(Vec<OsString>, OwnedFd)>,
    // Paths this layer wrote: an opaque whiteout hides what is below, not
    // what the same layer put there (the spec allows either order).
    unpacked: HashSet<PathBuf>,
    // Directory times are set last: writing children would change them.
    dir_times: Vec<(Vec<OsString>, Timestamps)>,
    buf: Vec<u8>,
    seen: Seen,
}

impl<'a> Applier<'a> {
    fn new(root: &'a Root, opts: &'a ApplyOptions) -> Self {
        Applier {
            root,
            opts,
            cache: None,
            unpacked: HashSet::new(),
            dir_times: Vec::new(),
            buf: vec![0; COPY_BUF],
            seen: Seen::default(),
        }
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps = clean(&raw).map_err(|u| unsafe_entry(&shown, u))?;
        let Some((name, parent)) = comps.split_last() else {
            // The root itself (`./`): its mode is the packer's temporary
            // directory's, not the image's, so docker skips it.
            return Ok(());
        };
        let kind = e.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            return Ok(());
        }
        if let Some(target) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(parent, OsStr::from_bytes(target), &shown);
        }
        let meta = Meta::read(e).map_err(|source| LayerError::Entry {
            entry: shown.clone(),
            source,
        })?;
        self.ensure_parent(parent, true, &shown)?;
        let dir = cached(&self.cache);
        let at = |source: io::Error| LayerError::Entry {
            entry: shown.clone(),
            source,
        };
        let atx = |e: Errno| at(e.into());

        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                // The one case that merges: a directory over a directory.
                if !(is_dir && kind.is_dir()) {
                    remove_all_at(dir, name).map_err(atx)?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(atx(e)),
        }

        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = rfs::openat(dir, name, flags, Mode::from_raw_mode(0o600)).map_err(atx)?;
                let mut file = File::from(fd);
                copy_sparse(e, &mut file, &mut self.buf).map_err(at)?;
                self.finish_fd(file.as_fd(), &meta, &shown)?;
            }
            T::Directory => {
                match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(atx(e)),
                }
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rfs::openat(dir, name, flags, Mode::empty()).map_err(atx)?;
                self.finish_fd(fd.as_fd(), &meta, &shown)?;
                self.dir_times.push((comps.clone(), meta.times()));
            }
            T::Symlink => {
                let target = e.link_name_bytes().ok_or_else(|| LayerError::Invalid {
                    entry: shown.clone(),
                    reason: "symlink without a target".into(),
                })?;
                // The target is stored as given: it is only ever read by
                // the container, and nothing here follows it.
                rfs::symlinkat(OsStr::from_bytes(&target), dir, name).map_err(atx)?;
                self.chown_at(dir, name, &meta).map_err(atx)?;
                rfs::utimensat(dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW).map_err(atx)?;
            }
            T::Link => {
                let target = e.link_name_bytes().ok_or_else(|| LayerError::Invalid {
                    entry: shown.clone(),
                    reason: "hardlink without a target".into(),
                })?;
                self.hardlink(dir, name, &target, &shown)?;
            }
            T::Char | T::Block | T::Fifo => {
                let (ft, dev) = match kind {
                    T::Fifo => (FileType::Fifo, 0),
                    t => {
                        let major = e.header().device_major().map_err(at)?.unwrap_or(0);
                        let minor = e.header().device_minor().map_err(at)?.unwrap_or(0);
                        let ft = if t == T::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rfs::makedev(major, minor))
                    }
                };
                rfs::mknodat(dir, name, ft, Mode::from_raw_mode(meta.mode), dev).map_err(atx)?;
                self.chown_at(dir, name, &meta).map_err(atx)?;
                // mknod honours the umask; the layer's mode must win. The
                // name is a node we just made, so following is harmless.
                rfs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                    .map_err(atx)?;
                if !meta.xattrs.is_empty() {
                    // Opening a device or fifo for real could block or poke
                    // a driver; an O_PATH fd reached through /proc cannot.
                    let fd = rfs::openat(
                        dir,
                        name,
                        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(atx)?;
                    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    self.set_xattrs(&meta, &shown, |k, v| {
                        rfs::setxattr(&proc, k, v, XattrFlags::empty())
                    })?;
                }
                rfs::utimensat(dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW).map_err(atx)?;
            }
            other => {
                return Err(LayerError::Invalid {
                    entry: shown,
                    reason: format!("unsupported tar entry type {other:?}"),
                });
            }
        }
        self.unpacked.insert(join(&comps));
        Ok(())
    }

    /// The directory an entry goes into, from the cache when it is the
    /// same as the last one.
    fn ensure_parent(&mut self, comps: &[OsString], create: bool, shown: &str) -> Result<()> {
        let hit = matches!(&self.cache, Some((c, _)) if c.as_slice() == comps);
        if !hit {
            self.cache = None;
            let fd = self
                .root
                .open_dir(comps, create)
                .map_err(|e| resolve_err(shown, e))?;
            self.cache = Some((comps.to_vec(), fd));
        }
        Ok(())
    }

    fn hardlink(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        target: &[u8],
        shown: &str,
    ) -> Result<()> {
        let bad = |reason: String| LayerError::Unsafe {
            entry: shown.to_string(),
            reason,
        };
        // Link targets name a path in the layer's root; an absolute one is
        // relative to it, as in docker.
        let tcomps = clean(target).map_err(|u| {
            bad(format!(
                "hardlink target {:?}: {u}",
                String::from_utf8_lossy(target)
            ))
        })?;
        let Some((tname, tparent)) = tcomps.split_last() else {
            return Err(bad("hardlink to the root directory".into()));
        };
        let tdir = self.root.open_dir(tparent, false).map_err(|e| match e {
            ResolveError::Unsafe(u) => bad(format!(
                "hardlink target {:?}: {u}",
                String::from_utf8_lossy(target)
            )),
            ResolveError::Io(source) => LayerError::Entry {
                entry: shown.to_string(),
                source: io::Error::new(
                    source.kind(),
                    format!(
                        "hardlink target {:?}: {source}",
                        String::from_utf8_lossy(target)
                    ),
                ),
            },
        })?;
        // No AT_SYMLINK_FOLLOW: linking to a symlink links the symlink
        // itself, never what it points at.
        rfs::linkat(&tdir, tname, dir, name, AtFlags::empty()).map_err(|e| LayerError::Entry {
            entry: shown.to_string(),
            source: io::Error::new(
                e.kind(),
                format!("hardlink to {:?}: {e}", String::from_utf8_lossy(target)),
            ),
        })
    }

    fn whiteout(&mut self, parent: &[OsString], target: &OsStr, shown: &str) -> Result<()> {
        self.seen.whiteouts = true;
        let opaque = Path::new(shown)
            .file_name()
            .is_some_and(|n| n == OPAQUE_WHITEOUT);
        let at = |e: Errno| LayerError::Entry {
            entry: shown.to_string(),
            source: e.into(),
        };
        if !opaque && target.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // aufs' own metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            return Ok(());
        }
        if !opaque && (target.is_empty() || target == "." || target == "..") {
            return Err(LayerError::Invalid {
                entry: shown.to_string(),
                reason: "whiteout names no file".into(),
            });
        }
        match self.opts.whiteouts {
            Whiteouts::Apply => {
                match self.ensure_parent(parent, false, shown) {
                    Ok(()) => {}
                    // Nothing below to hide.
                    Err(LayerError::Entry { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(e),
                }
                let dir = cached(&self.cache);
                if opaque {
                    let hidden: Vec<OsString> = list_dir(dir)
                        .map_err(at)?
                        .into_iter()
                        .filter(|child| {
                            // Kept if this layer wrote it or anything under
                            // it (parents it created implicitly).
                            let p = join(parent).join(child);
                            !self.unpacked.contains(&p)
                                && !self.unpacked.iter().any(|u| u.starts_with(&p))
                        })
                        .collect();
                    for child in hidden {
                        remove_all_at(dir, &child).map_err(at)?;
                    }
                } else {
                    match remove_all_at(dir, target) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(at(e)),
                    }
                }
            }
            Whiteouts::Overlay => {
                self.ensure_parent(parent, true, shown)?;
                let dir = cached(&self.cache);
                if opaque {
                    let fd = rfs::openat(
                        dir,
                        ".",
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(at)?;
                    rfs::fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                        .map_err(at)?;
                } else {
                    match remove_all_at(dir, target) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(at(e)),
                    }
                    rfs::mknodat(
                        dir,
                        target,
                        FileType::CharacterDevice,
                        Mode::empty(),
                        rfs::makedev(0, 0),
                    )
                    .map_err(at)?;
                }
            }
        }
        Ok(())
    }

    fn finish_fd(&self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<()> {
        let at = |e: Errno| LayerError::Entry {
            entry: shown.to_string(),
            source: e.into(),
        };
        if self.opts.ownership == Ownership::Preserve {
            rfs::fchown(fd, Some(uid(meta.uid, shown)?), Some(gid(meta.gid, shown)?))
                .map_err(at)?;
        }
        // After chown, which clears setuid and setgid.
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(at)?;
        self.set_xattrs(meta, shown, |k, v| {
            rfs::fsetxattr(fd, k, v, XattrFlags::empty())
        })?;
        rfs::futimens(fd, &meta.times()).map_err(at)
    }

    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
    ) -> std::result::Result<(), Errno> {
        if self.opts.ownership == Ownership::Ignore {
            return Ok(());
        }
        let (Ok(u), Ok(g)) = (u32::try_from(meta.uid), u32::try_from(meta.gid)) else {
            return Err(Errno::INVAL);
        };
        rfs::chownat(
            dir,
            name,
            Some(Uid::from_raw(u)),
            Some(Gid::from_raw(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
    }

    fn set_xattrs(
        &self,
        meta: &Meta,
        shown: &str,
        mut set: impl FnMut(&OsStr, &[u8]) -> std::result::Result<(), Errno>,
    ) -> Result<()> {
        for (k, v) in &meta.xattrs {
            if k.as_bytes().starts_with(b"trusted.overlay.") {
                // Would let a layer forge whiteouts or redirects inside an
                // overlay mount; only our own conversion writes these.
                tracing::warn!(entry = shown, xattr = ?k, "ignoring overlay xattr in layer");
                continue;
            }
            match set(k, v) {
                Ok(()) => {}
                // Not every filesystem or user can hold every namespace;
                // docker skips these too rather than fail the pull.
                Err(Errno::NOTSUP) | Err(Errno::PERM) => {
                    tracing::warn!(entry = shown, xattr = ?k, "xattr not supported here, skipped");
                }
                Err(e) => {
                    return Err(LayerError::Entry {
                        entry: shown.to_string(),
                        source: e.into(),
                    })
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        for (comps, times) in std::mem::take(&mut self.dir_times) {
            let Some((name, parent)) = comps.split_last() else {
                continue;
            };
            // A later entry may have replaced or removed the directory.
            let Ok(dir) = self.root.open_dir(parent, false) else {
                continue;
            };
            let shown = join(&comps).to_string_lossy().into_owned();
            match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                _ => continue,
            }
            rfs::utimensat(&dir, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
                LayerError::Entry {
                    entry: shown,
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }
}

fn cached(cache: &Option<(Vec<OsString>, OwnedFd)>) -> BorrowedFd<'_> {
    cache
        .as_ref()
        .map(|(_, fd)| fd.as_fd())
        .expect("ensure_parent filled the cache")
}

fn uid(v: u64, shown: &str) -> Result<Uid> {
    u32::try_from(v)
        .map(Uid::from_raw)
        .map_err(|_| LayerError::Invalid {
            entry: shown.to_string(),
            reason: format!("uid {v} out of range"),
        })
}

fn gid(v: u64, shown: &str) -> Result<Gid> {
    u32::try_from(v)
        .map(Gid::from_raw)
        .map_err(|_| LayerError::Invalid {
            entry: shown.to_string(),
            reason: format!("gid {v} out of range"),
        })
}

fn unsafe_entry(shown: &str, u: impl std::fmt::Display) -> LayerError {
    LayerError::Unsafe {
        entry: shown.to_string(),
        reason: u.to_string(),
    }
}

fn resolve_err(shown: &str, e: ResolveError) -> LayerError {
    match e {
        ResolveError::Unsafe(u) => unsafe_entry(shown, u),
        ResolveError::Io(source) => LayerError::Entry {
            entry: shown.to_string(),
            source,
        },
    }
}

/// Copies file data, leaving all-zero blocks as holes: sparse files stay
/// sparse (the tar reader expands GNU sparse entries into zeros) and zero
/// runs in ordinary files cost no disk.
fn copy_sparse(src: &mut impl Read, file: &mut File, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    let mut ends_in_hole = false;
    loop {
        let n = read_full(src, buf)?;
        if n == 0 {
            break;
        }
        let mut run_start: Option<usize> = None;
        for (i, block) in buf[..n].chunks(HOLE_BLOCK).enumerate() {
            let off = i * HOLE_BLOCK;
            if block.iter().all(|b| *b == 0) {
                if let Some(s) = run_start.take() {
                    file.write_all(&buf[s..off])?;
                }
                file.seek(SeekFrom::Current(block.len() as i64))?;
                ends_in_hole = true;
            } else {
                run_start.get_or_insert(off);
                ends_in_hole = false;
            }
        }
        if let Some(s) = run_start {
            file.write_all(&buf[s..n])?;
        }
        total += n as u64;
    }
    if ends_in_hole {
        // A trailing hole is only a seek; the length must be set.
        file.set_len(total)?;
    }
    Ok(total)
}

/// Fills `buf` unless the input ends: hole detection sees blocks at
/// block-aligned file offsets, magic bytes are whole even from a pipe.
pub(crate) fn read_full(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn list_dir(dir: BorrowedFd<'_>) -> std::result::Result<Vec<OsString>, Errno> {
    let mut out = Vec::new();
    // Dir::read_from wants a readable fd; ours may be O_PATH.
    let fd = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = rfs::Dir::new(fd)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(out)
}

/// Removes `name` in `dir` and, for a directory, everything under it,
/// without following a symlink anywhere.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> std::result::Result<(), Errno> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rfs::unlinkat(dir, name, AtFlags::empty());
    }
    let sub = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list_dir(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}
