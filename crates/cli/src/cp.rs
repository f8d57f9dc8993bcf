//! `berth cp`: files between a container and the host, docker's way.
//!
//! Both directions go through a tar stream: the source is archived under
//! its base name, and the archive is unpacked into the destination after
//! docker's path rules chose the directory and the name of the top entry
//! (a file onto a directory goes inside it, `SRC/.` copies a directory's
//! contents, a missing destination takes the source's place). `-` is that
//! tar stream itself on stdin or stdout.
//!
//! Safety: a path inside the container is never joined onto the host path
//! of its root. The root is opened once, every lookup is an `openat2`
//! with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` from it, and every file
//! is made with an `*at` call on the parent so found; `..` and absolute
//! symlinks stop at the container's root. Unpacking onto the host is held
//! the same way inside the destination directory, since the archive came
//! from the container.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_engine::userns::IdMap;
use berth_engine::{images as store, Engine};
use clap::Args;
use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};
use rustix::io::Errno;

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode: keep uid and gid.
    #[arg(short, long)]
    archive: bool,
    /// Always follow a symbolic link in SRC_PATH.
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH or - (a tar on stdin).
    src: String,
    /// CONTAINER:DEST_PATH or DEST_PATH or - (a tar on stdout).
    dest: String,
}

/// `CONTAINER:PATH`, docker's way: a local path holding a colon must start
/// with `/` or `.`.
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
}

fn invalid(msg: impl Into<String>) -> anyhow::Error {
    berth_engine::Error::InvalidArgument(msg.into()).into()
}

pub fn cp(engine: &Engine, a: CpArgs) -> Result<u8> {
    match (split(&a.src), split(&a.dest)) {
        (Some(_), Some(_)) => bail!(invalid("copying between containers is not supported")),
        (None, None) => bail!(invalid("must specify at least one container source")),
        (Some((c, src)), None) => {
            let s = store::open(&engine.paths)?;
            let src = InPath::container(src);
            let owner = if a.archive {
                Owner::Keep
            } else {
                Owner::Fixed(
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw(),
                )
            };
            berth_engine::cp::with_rootfs(engine, &s, c, |ctr, dir| {
                let owner = match (owner, ctr.config.host_config.id_map) {
                    (Owner::Keep, Some(m)) => Owner::Unshift(m),
                    (o, _) => o,
                };
                let root = open_root(dir)?;
                let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
                let not_found = || {
                    format!(
                        "Could not find the file {} in container {}",
                        src.display,
                        ctr.name.trim_start_matches('/')
                    )
                };
                let info =
                    stat_src(root.as_fd(), &src, resolve, a.follow_link).map_err(|e| match e {
                        Errno::NOENT | Errno::NOTDIR if !src.must_be_dir => {
                            anyhow::anyhow!(not_found())
                        }
                        e => anyhow::Error::from(io::Error::from(e))
                            .context(format!("{} in container {}", src.display, ctr.name)),
                    })?;
                if a.dest == "-" {
                    if io::stdout().is_terminal() {
                        bail!("cowardly refusing to write a tar to a terminal");
                    }
                    let out = io::BufWriter::new(io::stdout().lock());
                    let top = if src.base == "." { "rootfs" } else { &src.base };
                    let mut out = archive(root.as_fd(), &src, &info, resolve, top, out)?;
                    out.flush()?;
                    return Ok(0);
                }
                let dest = PathBuf::from(&a.dest);
                let plan = plan_host(&dest, &a.dest, &src, &info)?;
                let target = open_root(&plan.dir)?;
                pipe_copy(
                    |w| archive(root.as_fd(), &src, &info, resolve, TOP, w).map(drop),
                    |r| {
                        unpack(
                            r,
                            target.as_fd(),
                            Path::new("."),
                            plan.rename.as_ref(),
                            owner,
                        )
                    },
                )?;
                Ok(0)
            })
        }
        (None, Some((c, dest))) => {
            let s = store::open(&engine.paths)?;
            let dest = InPath::container(dest);
            // The host side, checked before anything is mounted.
            let src = if a.src == "-" {
                None
            } else {
                let p = InPath::host(&a.src);
                let info = stat_src(rustix::fs::CWD, &p, ResolveFlags::empty(), a.follow_link)
                    .map_err(|e| anyhow::anyhow!("lstat {}: {}", a.src, io::Error::from(e)))?;
                Some((p, info))
            };
            if src.is_none() && io::stdin().is_terminal() {
                bail!("cowardly refusing to read a tar from a terminal");
            }
            berth_engine::cp::with_rootfs(engine, &s, c, |ctr, dir| {
                let owner = Owner::into(ctr, a.archive);
                let root = open_root(dir)?;
                let plan = plan_container(root.as_fd(), &dest, src.as_ref().map(|(p, i)| (p, i)))
                    .map_err(|e| match e.downcast::<Errno>() {
                    Ok(Errno::NOENT | Errno::NOTDIR) => anyhow::anyhow!(
                        "Could not find the file {} in container {}",
                        dest.display,
                        ctr.name.trim_start_matches('/')
                    ),
                    Ok(e) => anyhow::Error::from(io::Error::from(e)),
                    Err(e) => e,
                })?;
                match &src {
                    None => unpack(io::stdin().lock(), root.as_fd(), &plan.dir, None, owner),
                    Some((p, info)) => pipe_copy(
                        |w| {
                            archive(rustix::fs::CWD, p, info, ResolveFlags::empty(), TOP, w)
                                .map(drop)
                        },
                        |r| unpack(r, root.as_fd(), &plan.dir, plan.rename.as_ref(), owner),
                    ),
                }?;
                Ok(0)
            })
        }
    }
}

/// A path as given, with what its spelling says: a trailing `/.` asks for
/// the contents, a trailing `/` for a directory.
struct InPath {
    /// What to open: relative to the root inside a container.
    path: PathBuf,
    /// The top entry's name in the archive.
    base: String,
    contents: bool,
    must_be_dir: bool,
    display: String,
}

impl InPath {
    /// Cleaned lexically as docker does: `..` never climbs above `/`.
    fn container(p: &str) -> InPath {
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
    fn host(p: &str) -> InPath {
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
fn open_root(dir: &Path) -> Result<OwnedFd> {
    rfs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .with_context(|| format!("opening {}", dir.display()))
}

fn lookup(
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
struct SrcInfo {
    fd: OwnedFd,
    kind: FileType,
}

fn stat_src(
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

/// Where an archive is unpacked and what its top entry is renamed to
/// (`""`: dropped, its contents go straight into `dir`).
struct Plan {
    dir: PathBuf,
    rename: Option<String>,
}

/// The name every piped archive's top entry has: the plan renames it.
const TOP: &str = "top";

/// docker's rules against a host destination.
fn plan_host(dest: &Path, raw: &str, src: &InPath, info: &SrcInfo) -> Result<Plan> {
    plan(
        std::fs::metadata(dest).ok().map(|m| m.is_dir()),
        raw,
        (src, info),
        |p| {
            let parent = p
                .parent()
                .filter(|q| !q.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!("no such directory: {}", parent.display());
            }
            Ok(parent.to_path_buf())
        },
        dest,
    )
}

/// docker's rules against a container destination: `None` for a tar on
/// stdin, which must go into a directory.
fn plan_container(
    root: BorrowedFd,
    dest: &InPath,
    src: Option<(&InPath, &SrcInfo)>,
) -> Result<Plan> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let is_dir = match lookup(root, &dest.path, OFlags::PATH, resolve) {
        Ok(fd) => Some(FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) == FileType::Directory),
        Err(Errno::NOENT) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(src) = src else {
        return match is_dir {
            Some(true) => Ok(Plan {
                dir: dest.path.clone(),
                rename: None,
            }),
            Some(false) => bail!("destination \"{}\" must be a directory", dest.display),
            None => Err(Errno::NOENT.into()),
        };
    };
    let raw = dest.display.clone();
    plan(
        is_dir,
        &raw,
        src,
        |p| {
            let parent = p.parent().unwrap_or(Path::new("."));
            let fd = lookup(root, parent, OFlags::PATH | OFlags::DIRECTORY, resolve)?;
            drop(fd);
            Ok(parent.to_path_buf())
        },
        &dest.path,
    )
}

fn plan(
    is_dir: Option<bool>,
    raw: &str,
    (src, info): (&InPath, &SrcInfo),
    parent_of: impl FnOnce(&Path) -> Result<PathBuf>,
    dest: &Path,
) -> Result<Plan> {
    let src_dir = info.kind == FileType::Directory;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".to_string());
    match is_dir {
        // Into the directory: under the source's name, or only its
        // contents for `SRC/.`.
        Some(true) => Ok(Plan {
            dir: dest.to_path_buf(),
            rename: Some(if src.contents {
                String::new()
            } else {
                src.base.clone()
            }),
        }),
        Some(false) if src_dir => {
            bail!(invalid(format!("cannot copy a directory to a file: {raw}")))
        }
        Some(false) => Ok(Plan {
            dir: parent_of(dest)?,
            rename: Some(name.clone()),
        }),
        None if raw.ends_with('/') && !src_dir => {
            bail!("destination directory {raw} does not exist")
        }
        None => Ok(Plan {
            dir: parent_of(dest)?,
            rename: Some(name.clone()),
        }),
    }
}

#[derive(Clone, Copy)]
enum Owner {
    Keep,
    Fixed(u32, u32),
    /// The archive's ids, as the host sees them in a container with its
    /// own user namespace (`--userns auto`), or back from there.
    Shift(IdMap),
    Unshift(IdMap),
}

impl Owner {
    /// How files written into container `c` are owned.
    fn into(c: &berth_engine::Container, archive: bool) -> Owner {
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

/// Runs a producer writing a tar and a consumer reading it through a pipe.
fn pipe_copy(
    produce: impl FnOnce(&mut File) -> Result<()> + Send,
    consume: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut r = File::from(r);
    let mut w = File::from(w);
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let res = produce(&mut w);
            drop(w);
            res
        });
        let consumed = consume(&mut r);
        // Unblocks a producer still writing after a failed unpack.
        drop(r);
        let produced = h
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("archiving panicked")));
        consumed.and(produced)
    })
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
fn archive<W: Write>(
    root: BorrowedFd,
    p: &InPath,
    info: &SrcInfo,
    resolve: ResolveFlags,
    top: &str,
    w: W,
) -> Result<W> {
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
                bail!("{} changed while being copied", p.display);
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

fn add_file<W: Write>(b: &mut tar::Builder<W>, f: File, st: &rfs::Stat, name: &Path) -> Result<()> {
    let mut h = header_for(st, tar::EntryType::Regular);
    h.set_size(st.st_size as u64);
    // Exactly the size stated, even if the file changes meanwhile.
    let r = f
        .take(st.st_size as u64)
        .chain(io::repeat(0))
        .take(st.st_size as u64);
    b.append_data(&mut h, name, r)?;
    Ok(())
}

/// A symlink, device or fifo named `name` in `dir` (`""`: `dir` itself).
fn add_special<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd,
    name: &str,
    st: &rfs::Stat,
    path: &Path,
) -> Result<()> {
    let kind = FileType::from_raw_mode(st.st_mode);
    let et = match kind {
        FileType::Symlink => {
            let target = rfs::readlinkat(dir, name, Vec::new())?;
            let mut h = header_for(st, tar::EntryType::Symlink);
            b.append_link(&mut h, path, OsStr::from_bytes(target.as_bytes()))?;
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
    b.append_data(&mut h, path, io::empty())?;
    Ok(())
}

/// A directory and all below it, each child opened from its parent's
/// handle without following symlinks.
fn add_dir<W: Write>(b: &mut tar::Builder<W>, dir: OwnedFd, path: &Path) -> Result<()> {
    let st = rfs::fstat(&dir)?;
    let mut h = header_for(&st, tar::EntryType::Directory);
    b.append_data(&mut h, path, io::empty())?;
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
            Err(e) => return Err(io::Error::from(e)).with_context(|| child.display().to_string()),
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
fn member_path(raw: &Path, rename: Option<&String>) -> Result<Option<PathBuf>> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => bail!("invalid path in archive: {}", raw.display()),
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
fn parent_of(root: BorrowedFd, base: &Path, rel: &Path) -> Result<(OwnedFd, PathBuf)> {
    let full = base.join(rel);
    let name = full.file_name().map(PathBuf::from).context("empty path")?;
    let parent = full.parent().unwrap_or(Path::new("."));
    let fd = lookup(
        root,
        parent,
        OFlags::PATH | OFlags::DIRECTORY,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
    .with_context(|| format!("resolving {}", parent.display()))?;
    Ok((fd, name))
}

/// Makes the directories above `rel` an archive did not list (docker's
/// untar does too), each with `mkdirat` on its resolved parent.
fn ensure_parents(root: BorrowedFd, base: &Path, rel: &Path) -> Result<()> {
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
            Err(e) => return Err(io::Error::from(e)).with_context(|| sofar.display().to_string()),
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

/// Removes what is at `name` unless it is a directory; true if a
/// directory is there.
fn clear(dir: BorrowedFd, name: &Path) -> Result<bool> {
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
/// resolved in the root, every member made with an `*at` call there.
fn unpack(
    r: impl Read,
    root: BorrowedFd,
    base: &Path,
    rename: Option<&String>,
    owner: Owner,
) -> Result<()> {
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
        let mode = Mode::from_raw_mode(h.mode()? & 0o7777);
        let (uid, gid) = owner.ids(h.uid()? as u32, h.gid()? as u32);
        let uid = Some(rustix::fs::Uid::from_raw(uid));
        let gid = Some(rustix::fs::Gid::from_raw(gid));
        let mt = h.mtime()?;
        let kind = h.entry_type();
        ensure_parents(root, base, &rel)?;
        let (pfd, name) = parent_of(root, base, &rel)?;
        let what = || rel.display().to_string();
        match kind {
            tar::EntryType::Directory => {
                match rfs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        if !clear(pfd.as_fd(), &name)? {
                            rfs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o700))?;
                        }
                    }
                    Err(e) => return Err(io::Error::from(e)).with_context(what),
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
                    bail!(
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
                .map_err(io::Error::from)
                .with_context(what)?;
                let mut f = File::from(fd);
                io::copy(&mut e, &mut f).with_context(what)?;
                rfs::fchown(&f, uid, gid)?;
                rfs::fchmod(&f, mode)?;
                rfs::futimens(&f, &ts(mt))?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name()?
                    .context("symlink without a target")?
                    .into_owned();
                if clear(pfd.as_fd(), &name)? {
                    bail!(
                        "cannot overwrite directory {} with non-directory",
                        rel.display()
                    );
                }
                rfs::symlinkat(&target, &pfd, &name)
                    .map_err(io::Error::from)
                    .with_context(what)?;
                rfs::chownat(&pfd, &name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                let _ = rfs::utimensat(&pfd, &name, &ts(mt), AtFlags::SYMLINK_NOFOLLOW);
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name()?
                    .context("hard link without a target")?
                    .into_owned();
                let Some(trel) = member_path(&target, rename)? else {
                    bail!("invalid hard link {}", rel.display());
                };
                let trel = links.get(&trel).cloned().unwrap_or(trel);
                let (tfd, tname) = parent_of(root, base, &trel)?;
                if clear(pfd.as_fd(), &name)? {
                    bail!(
                        "cannot overwrite directory {} with non-directory",
                        rel.display()
                    );
                }
                rfs::linkat(&tfd, &tname, &pfd, &name, AtFlags::empty())
                    .map_err(io::Error::from)
                    .with_context(what)?;
                links.insert(rel.clone(), trel);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if clear(pfd.as_fd(), &name)? {
                    bail!(
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
                rfs::mknodat(&pfd, &name, ft, mode, dev)
                    .map_err(io::Error::from)
                    .with_context(what)?;
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
