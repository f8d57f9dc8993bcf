//! The tar streams of `cp` (and of the API's archive endpoints): a path
//! inside a container root archived under its base name, and an archive
//! unpacked into a directory, every lookup confined to the root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` and every file made
//! with an `*at` call on its parent so found.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};
use rustix::io::Errno;

use crate::db::Container;
use crate::userns::IdMap;

/// What a copy fails on: the archive or the paths asked for (invalid), or
/// the filesystem.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    At { what: String, source: io::Error },
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Errno> for CopyError {
    fn from(e: Errno) -> CopyError {
        CopyError::Io(e.into())
    }
}

impl From<CopyError> for crate::Error {
    fn from(e: CopyError) -> crate::Error {
        match e {
            CopyError::Invalid(m) => crate::Error::InvalidArgument(m),
            CopyError::At { what, source } => crate::Error::Io { what, source },
            CopyError::Io(source) => crate::Error::Io {
                what: "copying".into(),
                source,
            },
        }
    }
}

type R<T> = std::result::Result<T, CopyError>;

fn invalid(m: &str) -> CopyError {
    CopyError::Invalid(m.to_string())
}

macro_rules! bail_invalid {
    ($($t:tt)*) => { return Err(CopyError::Invalid(format!($($t)*))) };
}

/// An I/O failure with what was being done.
trait At<T> {
    fn at(self, what: impl FnOnce() -> String) -> R<T>;
}

impl<T, E: Into<io::Error>> At<T> for std::result::Result<T, E> {
    fn at(self, what: impl FnOnce() -> String) -> R<T> {
        self.map_err(|e| CopyError::At {
            what: what(),
            source: e.into(),
        })
    }
}

/// A path as given, with what its spelling says: a trailing `/.` asks for
/// the contents, a trailing `/` for a directory.
pub struct InPath {
    /// What to open: relative to the root inside a container.
    pub path: PathBuf,
    /// The top entry's name in the archive.
    pub base: String,
    pub contents: bool,
    pub must_be_dir: bool,
    pub display: String,
}

impl InPath {
    /// Cleaned lexically as docker does: `..` never climbs above `/`.
    pub fn container(p: &str) -> InPath {
        let display = if p.is_empty() {
            "/".to_string()
        } else {
            p.to_string()
        };
        let contents = p == "." || p.ends_with("/.");
        let must_be_dir = p.ends_with('/');
        let mut parts: Vec<&OsStr> = Vec::new();
        for c in Path::new(p).components() {
            match c {
                Component::Normal(n) => parts.push(n),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        let path: PathBuf = parts.iter().collect();
        let base = parts
            .last()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".to_string());
        InPath {
            path: if path.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                path
            },
            contents: contents || base == ".",
            base,
            must_be_dir,
            display,
        }
    }

    /// A host path is used as it is: its `..` and symlinks are the user's.
    pub fn host(p: &str) -> InPath {
        let contents = p == "." || p.ends_with("/.");
        let base = Path::new(p)
            .components()
            .rev()
            .find_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .filter(|_| !p.ends_with(".."))
            .unwrap_or_else(|| ".".to_string());
        InPath {
            path: PathBuf::from(p),
            contents: contents || base == ".",
            base,
            must_be_dir: p.ends_with('/'),
            display: p.to_string(),
        }
    }
}

/// An O_PATH handle on a directory used as the root of lookups.
pub fn open_root(dir: &Path) -> R<OwnedFd> {
    rfs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at(|| format!("opening {}", dir.display()))
}

pub fn lookup(
    root: BorrowedFd,
    path: &Path,
    flags: OFlags,
    resolve: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    loop {
        match rfs::openat2(root, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN | Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// The source, found: an O_PATH handle on it and its kind.
pub struct SrcInfo {
    pub fd: OwnedFd,
    pub kind: FileType,
}

pub fn stat_src(
    root: BorrowedFd,
    p: &InPath,
    resolve: ResolveFlags,
    follow: bool,
) -> rustix::io::Result<SrcInfo> {
    let mut flags = OFlags::PATH;
    if !follow && !p.must_be_dir && !p.contents {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = lookup(root, &p.path, flags, resolve)?;
    let kind = FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode);
    if (p.must_be_dir || p.contents) && kind != FileType::Directory {
        return Err(Errno::NOTDIR);
    }
    Ok(SrcInfo { fd, kind })
}

#[derive(Clone, Copy)]
pub enum Owner {
    Keep,
    Fixed(u32, u32),
    /// The archive's ids, as the host sees them in a container with its
    /// own user namespace (`--userns auto`), or back from there.
    Shift(IdMap),
    Unshift(IdMap),
}

impl Owner {
    /// How files written into container `c` are owned.
    pub fn into(c: &Container, archive: bool) -> Owner {
        match (c.config.host_config.id_map, archive) {
            (None, true) => Owner::Keep,
            (None, false) => Owner::Fixed(0, 0),
            (Some(m), true) => Owner::Shift(m),
            (Some(m), false) => Owner::Fixed(m.uid, m.gid),
        }
    }

    fn ids(self, uid: u32, gid: u32) -> (u32, u32) {
        match self {
            Owner::Keep => (uid, gid),
            Owner::Fixed(u, g) => (u, g),
            Owner::Shift(m) => (m.shift_uid(uid), m.shift_gid(gid)),
            Owner::Unshift(m) => (m.unshift_uid(uid), m.unshift_gid(gid)),
        }
    }
}

fn mtime(st: &rfs::Stat) -> u64 {
    st.st_mtime.max(0) as u64
}

fn header_for(st: &rfs::Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(mtime(st));
    h.set_size(0);
    h
}

/// Archives the source under its base name (or, for `/.`, the same: the
/// unpacking side drops it).
pub fn archive<W: Write>(
    root: BorrowedFd,
    p: &InPath,
    info: &SrcInfo,
    resolve: ResolveFlags,
    top: &str,
    w: W,
) -> R<W> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let top = PathBuf::from(top);
    match info.kind {
        FileType::Directory => {
            let dir = rfs::openat(
                &info.fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            add_dir(&mut b, dir, &top)?;
        }
        FileType::RegularFile => {
            // Reopened for reading the same confined way; checked to be the
            // file first found.
            let st0 = rfs::fstat(&info.fd)?;
            let f = lookup(root, &p.path, OFlags::RDONLY | OFlags::NONBLOCK, resolve)?;
            let st = rfs::fstat(&f)?;
            if (st.st_dev, st.st_ino) != (st0.st_dev, st0.st_ino) {
                bail_invalid!("{} changed while being copied", p.display);
            }
            add_file(&mut b, File::from(f), &st, &top)?;
        }
        _ => {
            let st = rfs::fstat(&info.fd)?;
            add_special(&mut b, info.fd.as_fd(), "", &st, &top)?;
        }
    }
    Ok(b.into_inner()?)
}

fn add_file<W: Write>(b: &mut tar::Builder<W>, f: File, st: &rfs::Stat, name: &Path) -> R<()> {
    let mut h = header_for(st, tar::EntryType::Regular);
    h.set_size(st.st_size as u64);
    // Exactly the size stated, even if the file changes meanwhile.
    let r = f
        .take(st.st_size as u64)
        .chain(io::repeat(0))
        .take(st.st_size as u64);
    append_named(b, &mut h, name, None, r)?;
    Ok(())
}

/// Appends an entry named exactly `path`: the tar crate's own path
/// setter drops a leading `./`, which docker's clients need on the
/// entries of a `DIR/.` copy to rebase them. Names and link targets
/// longer than a header holds go first as GNU long-name entries.
fn append_named<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    path: &Path,
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    let name = path.as_os_str().as_bytes();
    let old = h.as_old_mut();
    if name.len() > old.name.len() {
        long_name(b, tar::EntryType::GNULongName, name)?;
    }
    let n = name.len().min(old.name.len());
    old.name = [0; 100];
    old.name[..n].copy_from_slice(&name[..n]);
    if let Some(l) = link {
        if l.len() > old.linkname.len() {
            long_name(b, tar::EntryType::GNULongLink, l)?;
        }
        let n = l.len().min(old.linkname.len());
        old.linkname = [0; 100];
        old.linkname[..n].copy_from_slice(&l[..n]);
    }
    h.set_cksum();
    b.append(h, data)
}

fn long_name<W: Write>(
    b: &mut tar::Builder<W>,
    kind: tar::EntryType,
    bytes: &[u8],
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(bytes.len() as u64 + 1);
    h.set_cksum();
    b.append(&h, bytes.chain(&[0u8][..]))
}

/// A symlink, device or fifo named `name` in `dir` (`""`: `dir` itself).
fn add_special<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd,
    name: &str,
    st: &rfs::Stat,
    path: &Path,
) -> R<()> {
    let kind = FileType::from_raw_mode(st.st_mode);
    let et = match kind {
        FileType::Symlink => {
            let target = rfs::readlinkat(dir, name, Vec::new())?;
            let mut h = header_for(st, tar::EntryType::Symlink);
            append_named(b, &mut h, path, Some(target.as_bytes()), io::empty())?;
            return Ok(());
        }
        FileType::CharacterDevice => tar::EntryType::Char,
        FileType::BlockDevice => tar::EntryType::Block,
        FileType::Fifo => tar::EntryType::Fifo,
        // Sockets and the like are not archived (docker skips them too).
        _ => return Ok(()),
    };
    let mut h = header_for(st, et);
    h.set_device_major(rfs::major(st.st_rdev))?;
    h.set_device_minor(rfs::minor(st.st_rdev))?;
    append_named(b, &mut h, path, None, io::empty())?;
    Ok(())
}

/// A directory and all below it, each child opened from its parent's
/// handle without following symlinks.
fn add_dir<W: Write>(b: &mut tar::Builder<W>, dir: OwnedFd, path: &Path) -> R<()> {
    let st = rfs::fstat(&dir)?;
    let mut h = header_for(&st, tar::EntryType::Directory);
    append_named(b, &mut h, path, None, io::empty())?;
    let mut names = Vec::new();
    for e in rfs::Dir::read_from(&dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    for n in names {
        let child = path.join(&n);
        let st = match rfs::statat(&dir, &n, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e).at(|| child.display().to_string()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let d = rfs::openat(
                    &dir,
                    &n,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                add_dir(b, d, &child)?;
            }
            FileType::RegularFile => {
                let f = rfs::openat(
                    &dir,
                    &n,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let st = rfs::fstat(&f)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    continue;
                }
                add_file(b, File::from(f), &st, &child)?;
            }
            _ => add_special(b, dir.as_fd(), &n.to_string_lossy(), &st, &child)?,
        }
    }
    Ok(())
}

/// An archive member's path, relative and without `..`, its top
/// component renamed as planned. `None`: nothing to make (the top of a
/// `/.` copy).
fn member_path(raw: &Path, rename: Option<&String>) -> R<Option<PathBuf>> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => bail_invalid!("invalid path in archive: {}", raw.display()),
        }
    }
    if let Some(new) = rename {
        if parts.is_empty() {
            return Ok(None);
        }
        parts.remove(0);
        let mut p = PathBuf::from(new);
        p.extend(parts);
        return Ok(if p.as_os_str().is_empty() {
            None
        } else {
            Some(p)
        });
    }
    Ok(if parts.is_empty() {
        None
    } else {
        Some(parts.iter().collect())
    })
}

/// The directory `rel`'s parent resolves to inside `root`, and `rel`'s
/// last component.
fn parent_of(root: BorrowedFd, base: &Path, rel: &Path) -> R<(OwnedFd, PathBuf)> {
    let full = base.join(rel);
    let name = full
        .file_name()
        .map(PathBuf::from)
        .ok_or_else(|| invalid("empty path in archive"))?;
    let parent = full.parent().unwrap_or(Path::new("."));
    let fd = lookup(
        root,
        parent,
        OFlags::PATH | OFlags::DIRECTORY,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .at(|| format!("resolving {}", parent.display()))?;
    Ok((fd, name))
}

/// Makes the directories above `rel` an archive did not list (docker's
/// untar does too), each with `mkdirat` on its resolved parent.
fn ensure_parents(root: BorrowedFd, base: &Path, rel: &Path) -> R<()> {
    let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    if lookup(
        root,
        &base.join(parent),
        OFlags::PATH | OFlags::DIRECTORY,
        resolve,
    )
    .is_ok()
    {
        return Ok(());
    }
    let mut sofar = PathBuf::new();
    for c in parent.components() {
        sofar.push(c);
        let (pfd, name) = parent_of(root, base, &sofar)?;
        match rfs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e).at(|| sofar.display().to_string()),
        }
    }
    Ok(())
}

fn ts(secs: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn is_dir(dir: BorrowedFd, name: &Path) -> R<bool> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// Removes what is at `name` unless it is a directory; true if a
/// directory is there.
fn clear(dir: BorrowedFd, name: &Path) -> R<bool> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(true),
        Ok(_) => {
            rfs::unlinkat(dir, name, AtFlags::empty())?;
            Ok(false)
        }
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Unpacks a tar into `base` under `root`: every member's parent is
/// resolved in the root, every member made with an `*at` call there. A
/// directory never gives way to a file; with `keep_non_dirs` (docker's
/// `noOverwriteDirNonDir`) a file never gives way to a directory either.
/// A numeric header field as docker (Go's archive/tar) reads it: one left
/// unset, all NULs or spaces, is 0. Tar writers that only set a size and
/// mode (testcontainers' copy_to, tokio-tar's `Header::new_gnu`) send
/// those.
fn unset_is_zero(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        r => r,
    }
}

pub fn unpack(
    r: impl Read,
    root: BorrowedFd,
    base: &Path,
    rename: Option<&String>,
    owner: Owner,
    keep_non_dirs: bool,
) -> R<()> {
    let mut ar = tar::Archive::new(r);
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    for e in ar.entries()? {
        let mut e = e?;
        let raw = e.path()?.into_owned();
        let Some(rel) = member_path(&raw, rename)? else {
            continue;
        };
        let h = e.header();
        let old = h.as_old();
        let mode =
            Mode::from_raw_mode(unset_is_zero(h.mode().map(u64::from), &old.mode)? as u32 & 0o7777);
        let (uid, gid) = owner.ids(
            unset_is_zero(h.uid(), &old.uid)? as u32,
            unset_is_zero(h.gid(), &old.gid)? as u32,
        );
        let uid = Some(rustix::fs::Uid::from_raw(uid));
        let gid = Some(rustix::fs::Gid::from_raw(gid));
        let mt = unset_is_zero(h.mtime(), &old.mtime)?;
        let kind = h.entry_type();
        ensure_parents(root, base, &rel)?;
        let (pfd, name) = parent_of(root, base, &rel)?;
        let what = || rel.display().to_string();
        match kind {
            tar::EntryType::Directory => {
                match rfs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) if keep_non_dirs && !is_dir(pfd.as_fd(), &name)? => {
                        bail_invalid!(
                            "cannot overwrite non-directory {} with directory",
                            rel.display()
                        );
                    }
                    Err(Errno::EXIST) => {
                        if !clear(pfd.as_fd(), &name)? {
                            rfs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o700))?;
                        }
                    }
                    Err(e) => return Err(e).at(what),
                }
                let d = rfs::openat(
                    &pfd,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                rfs::fchown(&d, uid, gid)?;
                rfs::fchmod(&d, mode)?;
                dirs.push((rel.clone(), mt));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if clear(pfd.as_fd(), &name)? {
                    bail_invalid!(
                        "cannot overwrite directory {} with non-directory",
                        rel.display()
                    );
                }
                let fd = rfs::openat(
                    &pfd,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .at(what)?;
                let mut f = File::from(fd);
                io::copy(&mut e, &mut f).at(what)?;
                rfs::fchown(&f, uid, gid)?;
                rfs::fchmod(&f, mode)?;
                rfs::futimens(&f, &ts(mt))?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name()?
                    .ok_or_else(|| invalid("symlink without a target"))?
                    .into_owned();
                if clear(pfd.as_fd(), &name)? {
                    bail_invalid!(
                        "cannot overwrite directory {} with non-directory",
                        rel.display()
                    );
                }
                rfs::symlinkat(&target, &pfd, &name).at(what)?;
                rfs::chownat(&pfd, &name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                let _ = rfs::utimensat(&pfd, &name, &ts(mt), AtFlags::SYMLINK_NOFOLLOW);
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name()?
                    .ok_or_else(|| invalid("hard link without a target"))?
                    .into_owned();
                let Some(trel) = member_path(&target, rename)? else {
                    bail_invalid!("invalid hard link {}", rel.display());
                };
                let trel = links.get(&trel).cloned().unwrap_or(trel);
                let (tfd, tname) = parent_of(root, base, &trel)?;
                if clear(pfd.as_fd(), &name)? {
                    bail_invalid!(
                        "cannot overwrite directory {} with non-directory",
                        rel.display()
                    );
                }
                rfs::linkat(&tfd, &tname, &pfd, &name, AtFlags::empty()).at(what)?;
                links.insert(rel.clone(), trel);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if clear(pfd.as_fd(), &name)? {
                    bail_invalid!(
                        "cannot overwrite directory {} with non-directory",
                        rel.display()
                    );
                }
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rfs::makedev(
                    h.device_major()?.unwrap_or(0),
                    h.device_minor()?.unwrap_or(0),
                );
                rfs::mknodat(&pfd, &name, ft, mode, dev).at(what)?;
                rfs::chownat(&pfd, &name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                let _ = rfs::utimensat(&pfd, &name, &ts(mt), AtFlags::SYMLINK_NOFOLLOW);
            }
            // Metadata members (pax, GNU long names) are read by the tar
            // crate itself; anything else has nothing to make.
            _ => {}
        }
    }
    // Directories' times last: making their children changed them.
    for (rel, mt) in dirs.iter().rev() {
        let (pfd, name) = parent_of(root, base, rel)?;
        let _ = rfs::utimensat(&pfd, &name, &ts(*mt), AtFlags::SYMLINK_NOFOLLOW);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_numeric_field_reads_as_zero_and_a_bad_one_fails() {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        let old = h.as_old();
        assert!(h.uid().is_err(), "tar reads an unset uid as an error");
        assert_eq!(unset_is_zero(h.uid(), &old.uid).unwrap(), 0);
        assert_eq!(unset_is_zero(h.mtime(), &old.mtime).unwrap(), 0);
        assert_eq!(
            unset_is_zero(h.mode().map(u64::from), &old.mode).unwrap(),
            0o644
        );
        let bad = *b"12x4567\0";
        let err = io::Error::other("not a number");
        assert!(unset_is_zero(Err(err), &bad).is_err());
    }
}
