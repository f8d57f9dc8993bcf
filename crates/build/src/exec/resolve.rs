//! Resolving a path inside a root the way the root itself sees it:
//! symlinks followed as links of that root, never of the host.
//!
//! Two roots, two rules. An image's root (a COPY --from source, a COPY
//! destination) is a whole filesystem: an absolute link or a `..` above
//! its top stays at its top, as the kernel's `RESOLVE_IN_ROOT` does. The
//! build context is a directory of the user's: a path or link that leads
//! out of it is refused, as docker refuses `COPY ../x`, because what lies
//! outside is the host's and must never reach an image.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Symlinks followed in one resolution before it is called a loop (Linux's
/// own limit).
const MAX_LINKS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// Out of the root is an error (the build context).
    Refuse,
    /// Out of the root is the root (an image).
    Clamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// The path or a link on it leads out of the root.
    Outside,
    TooManyLinks,
}

/// Resolves `path` (`/`-separated, relative to `root` whether or not it
/// starts with `/`) to a clean relative path with no symlink on it.
/// Components that do not exist are kept as written, so a destination
/// still to be created resolves too.
pub(crate) fn resolve(root: &Path, path: &[u8], escape: Escape) -> Result<PathBuf, Unresolved> {
    let mut todo: VecDeque<OsString> = split(path).collect();
    let mut out: Vec<OsString> = Vec::new();
    let mut links = 0;
    // Once a component is missing nothing below it exists: no more lstat.
    let mut missing = false;
    while let Some(c) = todo.pop_front() {
        match c.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                if out.pop().is_none() && escape == Escape::Refuse {
                    return Err(Unresolved::Outside);
                }
                missing = false;
                continue;
            }
            _ => {}
        }
        out.push(c);
        if missing {
            continue;
        }
        let here: PathBuf = out.iter().collect();
        let md = match std::fs::symlink_metadata(root.join(&here)) {
            Ok(md) => md,
            Err(_) => {
                missing = true;
                continue;
            }
        };
        if !md.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(Unresolved::TooManyLinks);
        }
        let target = std::fs::read_link(root.join(&here)).map_err(|_| Unresolved::Outside)?;
        out.pop();
        let target = target.as_os_str().as_bytes();
        if target.first() == Some(&b'/') {
            if escape == Escape::Refuse {
                return Err(Unresolved::Outside);
            }
            out.clear();
        }
        for (i, t) in split(target).enumerate() {
            todo.insert(i, t);
        }
    }
    Ok(out.iter().collect())
}

fn split(path: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsStr::from_bytes(c).to_os_string())
}

/// A path relative to a root, as tar wants it: `/`-separated, no leading
/// `/`, `""` for the root itself.
pub(crate) fn slash(p: &Path) -> String {
    p.to_string_lossy().trim_start_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::write(r.join("usr/bin/tool"), "x").unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("/usr/bin/tool", r.join("abs")).unwrap();
        symlink("../../..", r.join("usr/up")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        t
    }

    #[test]
    fn clamp_follows_links_as_the_image_sees_them() {
        let t = tree();
        let r = |p: &str| resolve(t.path(), p.as_bytes(), Escape::Clamp);
        assert_eq!(r("/bin/tool").unwrap(), Path::new("usr/bin/tool"));
        assert_eq!(r("abs").unwrap(), Path::new("usr/bin/tool"));
        assert_eq!(r("usr/up/etc").unwrap(), Path::new("etc"));
        assert_eq!(r("../../x").unwrap(), Path::new("x"));
        assert_eq!(r("bin/new/file").unwrap(), Path::new("usr/bin/new/file"));
        assert_eq!(r("/").unwrap(), Path::new(""));
        assert_eq!(r("loop"), Err(Unresolved::TooManyLinks));
    }

    #[test]
    fn refuse_keeps_the_context_closed() {
        let t = tree();
        let r = |p: &str| resolve(t.path(), p.as_bytes(), Escape::Refuse);
        assert_eq!(r("bin/tool").unwrap(), Path::new("usr/bin/tool"));
        assert_eq!(r("usr/../bin").unwrap(), Path::new("usr/bin"));
        assert_eq!(r("../outside"), Err(Unresolved::Outside));
        assert_eq!(r("abs"), Err(Unresolved::Outside));
        assert_eq!(r("usr/up"), Err(Unresolved::Outside));
        // A leading slash means the context's top, as docker reads it.
        assert_eq!(r("/usr/bin").unwrap(), Path::new("usr/bin"));
    }
}
