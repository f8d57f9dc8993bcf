//! Paths inside the container's root are resolved inside it, never by
//! joining strings: a symlink in the image can point anywhere, and the
//! kernel's RESOLVE_IN_ROOT keeps every step of the walk under the root
//! (runc CVE-2021-30465 came from doing this by hand).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use std::path::{Component, Path, PathBuf};

use rustix::fs::{mkdirat, openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (absolute or relative, taken as inside the root) under the
/// directory open at `root`.
pub fn open_in_root(
    root: impl AsFd,
    path: &Path,
    flags: OFlags,
) -> std::result::Result<OwnedFd, Errno> {
    let rel = relative(path);
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &rel
    };
    loop {
        match openat2(
            root.as_fd(),
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// `path` with its root and `.` parts removed; `..` kept (the kernel
/// clamps it at the root).
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

/// The `/proc/self/fd/N` name of an open descriptor, for syscalls that take
/// only paths (mount): the kernel follows it to the very file we resolved.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Creates every missing directory of `path` under `root`, each resolved
/// inside the root, and returns the last one opened as O_PATH.
pub fn mkdir_all(root: impl AsFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    // Most mount points exist: one resolution of the whole path, inside
    // the root as the walk's, instead of an open per component.
    match open_in_root(root.as_fd(), path, OFlags::PATH | OFlags::DIRECTORY) {
        Ok(fd) => Ok(fd),
        Err(_) => mkdir_all_depth(root.as_fd(), path, mode, 0),
    }
}

fn mkdir_all_depth(
    root: std::os::fd::BorrowedFd<'_>,
    path: &Path,
    mode: u32,
    depth: u32,
) -> Result<OwnedFd> {
    if depth > 40 {
        return Err(resolve_err(path, Errno::LOOP));
    }
    let mut cur = open_in_root(root, Path::new("/"), OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| resolve_err(path, e))?;
    // Where we are, as a path inside the root, for relative link targets.
    let mut sofar = PathBuf::from("/");
    for comp in relative(path).components() {
        let name: &OsStr = comp.as_os_str();
        if comp == Component::ParentDir {
            sofar.pop();
            cur = open_in_root(root, &sofar, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| resolve_err(path, e))?;
            continue;
        }
        match open_in_root(&cur, Path::new(name), OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => cur = fd,
            Err(Errno::NOENT) => {
                // The parent is an fd we resolved: mkdirat creates the entry in
                // that very directory, wherever its name once pointed.
                match mkdirat(&cur, name, Mode::from_raw_mode(mode)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        // A dangling symlink: create what it points to, read
                        // as a path inside the root.
                        let target = rustix::fs::readlinkat(&cur, name, Vec::new())
                            .map_err(|e| resolve_err(path, e))?;
                        let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                        let inside = if target.is_absolute() {
                            target
                        } else {
                            sofar.join(target)
                        };
                        cur = mkdir_all_depth(root, &inside, mode, depth + 1)?;
                        sofar.push(name);
                        continue;
                    }
                    Err(e) => return Err(resolve_err(path, e)),
                }
                cur = open_in_root(&cur, Path::new(name), OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(|e| resolve_err(path, e))?;
            }
            Err(e) => return Err(resolve_err(path, e)),
        }
        sofar.push(name);
    }
    Ok(cur)
}

/// Makes sure a mount target exists under `root`: a directory, or an empty
/// file when the source is not a directory. Returns it open as O_PATH.
pub fn ensure_target(root: impl AsFd, path: &Path, dir: bool) -> Result<OwnedFd> {
    let root = root.as_fd();
    if dir {
        return mkdir_all(root, path, 0o755);
    }
    if let Ok(fd) = open_in_root(root, path, OFlags::PATH) {
        return Ok(fd);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidConfig(format!("mount destination {path:?} has no name")))?;
    let pfd = mkdir_all(root, parent, 0o755)?;
    let pdir = open_in_root(&pfd, Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| resolve_err(path, e))?;
    match rustix::fs::openat(
        &pdir,
        name,
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(_) | Err(Errno::EXIST) | Err(Errno::LOOP) => {}
        Err(e) => return Err(resolve_err(path, e)),
    }
    open_in_root(&pfd, Path::new(name), OFlags::PATH).map_err(|e| resolve_err(path, e))
}

pub fn resolve_err(path: &Path, e: Errno) -> Error {
    Error::Io {
        what: format!("resolving {} in the container root", path.display()),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        symlink(&outside, root.join("evil")).unwrap();
        symlink("../../../..", root.join("up")).unwrap();
        let rfd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        mkdir_all(&rfd, Path::new("/evil/sub"), 0o755).unwrap();
        mkdir_all(&rfd, Path::new("up/x"), 0o755).unwrap();
        ensure_target(&rfd, Path::new("/up/file"), false).unwrap();
        assert!(
            !outside.join("sub").exists(),
            "mkdir escaped through an absolute symlink"
        );
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
        assert!(root.join("x").is_dir() && root.join("file").is_file());
        assert!(!t.path().join("x").exists());
    }

    #[test]
    fn magic_links_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let rfd =
            rustix::fs::open(t.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        std::fs::create_dir_all(t.path().join("proc/self")).unwrap();
        symlink("/proc/self/cwd", t.path().join("cwdlink")).unwrap();
        // Inside the root "/proc/self/cwd" is an ordinary missing path.
        assert!(open_in_root(&rfd, Path::new("/cwdlink"), OFlags::PATH).is_err());
    }
}
