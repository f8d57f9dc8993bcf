//! Path resolution inside a root that never leaves it and never follows a
//! symlink: a layer may plant `etc -> /` and then write `etc/passwd`, and
//! string-joining paths is how runtimes have shipped escapes before.
//!
//! Paths are cleaned lexically first (absolute made relative, `..` that
//! climbs above the root refused), so what is left has only normal
//! components. Those are walked with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` in one call, or, where openat2 is missing or
//! filtered, one `O_NOFOLLOW` component at a time from a held fd. Either
//! way a symlink in the path is an error, not a redirection.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fd::OwnedFd;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a path cannot be used inside the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    #[error("path climbs out of the root with '..'")]
    Escapes,
    #[error("path component {0:?} is a symlink; refusing to write through it")]
    Symlink(String),
    #[error("path component {0:?} is not a directory")]
    NotDir(String),
}

/// Resolution failed: either the path is unsafe or the system said no.
#[derive(Debug)]
pub enum ResolveError {
    Unsafe(Unsafe),
    Io(std::io::Error),
}

impl From<Errno> for ResolveError {
    fn from(e: Errno) -> Self {
        ResolveError::Io(e.into())
    }
}

/// Cleans a tar-style path into normal components, as Go's `filepath.Clean`
/// followed by docker's join with the root: a leading `/` is dropped (a
/// rooted `..` stays at the root), a relative `..` above the start is an
/// escape. The root itself cleans to no components.
pub fn clean(raw: &[u8]) -> Result<Vec<OsString>, Unsafe> {
    let rooted = raw.first() == Some(&b'/');
    let mut out: Vec<OsString> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() && !rooted {
                    return Err(Unsafe::Escapes);
                }
            }
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

pub fn join(components: &[OsString]) -> PathBuf {
    components.iter().collect()
}

/// A directory opened as a root for resolution.
pub struct Root {
    fd: OwnedFd,
    // Cleared the first time openat2 is unavailable so the fallback is not
    // re-probed for every entry of a large layer.
    openat2: AtomicBool,
}

impl Root {
    pub fn open(path: &Path) -> std::io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            openat2: AtomicBool::new(true),
        })
    }

    /// Test hook: force the component-by-component fallback.
    #[cfg(test)]
    pub fn disable_openat2(&self) {
        self.openat2.store(false, Ordering::Relaxed);
    }

    /// Opens the directory at `components` (an `O_PATH` fd usable as the
    /// dirfd of `*at` calls). With `create`, missing directories are made
    /// with mode 0755, as docker does for parents a layer does not list.
    pub fn open_dir(&self, components: &[OsString], create: bool) -> Result<OwnedFd, ResolveError> {
        if components.is_empty() {
            return Ok(rfs::openat(&self.fd, ".", dir_flags(), Mode::empty())?);
        }
        if self.openat2.load(Ordering::Relaxed) {
            let flags =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rfs::openat2(
                &self.fd,
                join(components),
                dir_flags(),
                Mode::empty(),
                flags,
            ) {
                Ok(fd) => return Ok(fd),
                // Not available here (old kernel, seccomp): walk instead.
                Err(Errno::NOSYS) | Err(Errno::PERM) => {
                    self.openat2.store(false, Ordering::Relaxed)
                }
                // A symlink, a non-directory or a missing part: the walk
                // creates what is missing and names what is wrong.
                Err(Errno::LOOP) | Err(Errno::NOTDIR) | Err(Errno::NOENT) | Err(Errno::XDEV) => {}
                // EAGAIN: a concurrent rename raced the lookup; the walk is
                // immune to that.
                Err(Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.walk(components, create)
    }

    fn walk(&self, components: &[OsString], create: bool) -> Result<OwnedFd, ResolveError> {
        let mut fd = rfs::openat(&self.fd, ".", dir_flags(), Mode::empty())?;
        for (i, c) in components.iter().enumerate() {
            let shown = || join(&components[..=i]).to_string_lossy().into_owned();
            let next = match rfs::openat(&fd, c, dir_flags(), Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(&fd, c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    rfs::openat(&fd, c, dir_flags(), Mode::empty())
                        .map_err(|e| classify(&fd, c, e, shown()))?
                }
                Err(e) => return Err(classify(&fd, c, e, shown())),
            };
            fd = next;
        }
        Ok(fd)
    }
}

fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Turns ENOTDIR/ELOOP on a component into the reason a user can act on.
fn classify(dir: &OwnedFd, name: &OsStr, e: Errno, shown: String) -> ResolveError {
    if e != Errno::NOTDIR && e != Errno::LOOP {
        return e.into();
    }
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            ResolveError::Unsafe(Unsafe::Symlink(shown))
        }
        Ok(_) => ResolveError::Unsafe(Unsafe::NotDir(shown)),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn clean_matches_docker() {
        assert_eq!(clean(b"a/b/c").unwrap(), s(&["a", "b", "c"]));
        assert_eq!(clean(b"./a//b/").unwrap(), s(&["a", "b"]));
        assert_eq!(clean(b"/etc/passwd").unwrap(), s(&["etc", "passwd"]));
        assert_eq!(clean(b"a/../b").unwrap(), s(&["b"]));
        assert_eq!(
            clean(b"/../x").unwrap(),
            s(&["x"]),
            "rooted .. stays at the root"
        );
        assert_eq!(clean(b"./").unwrap(), s(&[]));
        assert_eq!(clean(b"../x"), Err(Unsafe::Escapes));
        assert_eq!(clean(b"a/../../x"), Err(Unsafe::Escapes));
        assert_eq!(clean(b"../../etc/passwd"), Err(Unsafe::Escapes));
    }

    #[test]
    fn open_dir_refuses_symlinks_with_and_without_openat2() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", t.path().join("evil")).unwrap();
        std::os::unix::fs::symlink("a", t.path().join("inner")).unwrap();
        std::fs::write(t.path().join("file"), "").unwrap();
        for fallback in [false, true] {
            let root = Root::open(t.path()).unwrap();
            if fallback {
                root.disable_openat2();
            }
            assert!(root.open_dir(&s(&["a", "b"]), false).is_ok());
            for (path, want) in [
                (s(&["evil", "etc"]), Unsafe::Symlink("evil".into())),
                (s(&["inner", "b"]), Unsafe::Symlink("inner".into())),
                (s(&["file", "x"]), Unsafe::NotDir("file".into())),
            ] {
                match root.open_dir(&path, true) {
                    Err(ResolveError::Unsafe(u)) => assert_eq!(u, want, "fallback={fallback}"),
                    other => panic!("{path:?} fallback={fallback}: {:?}", other.map(|_| ())),
                }
            }
            assert!(matches!(
                root.open_dir(&s(&["new", "dir"]), false),
                Err(ResolveError::Io(_))
            ));
            root.open_dir(&s(&["new", "dir"]), true).unwrap();
            assert!(t.path().join("new/dir").is_dir());
            std::fs::remove_dir_all(t.path().join("new")).unwrap();
        }
    }
}
