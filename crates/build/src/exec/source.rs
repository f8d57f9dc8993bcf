//! What a COPY or ADD reads: the files a source pattern selects in a tree
//! (the build context, or an image's root mounted read-only), walked once
//! into a list of entries, and the digest of that list that the step's
//! cache key is made of.
//!
//! The digest covers each entry's relative name, type, permission bits,
//! size, content and link target (and owner, for images), not its mtime:
//! as with docker's tarsum, touching a file without changing it keeps the
//! cache. Each file's content is hashed at most once per build.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_image::digest::{Digest, Digester};

use super::error::{io_err, BuildError, Result};
use super::resolve::{resolve, slash, Escape, Unresolved};
use crate::dockerignore::{is_glob, DockerIgnore, Glob};

/// What kind of file an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File { size: u64 },
    Symlink { target: PathBuf },
    Fifo,
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
}

/// One file to copy.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Relative to its item (`""` for the item itself), `/`-separated.
    pub rel: String,
    pub kind: Kind,
    /// Where its bytes are on the host (files), if anywhere.
    pub src: Option<PathBuf>,
    /// Bytes given inline (a heredoc, a download).
    pub data: Option<Vec<u8>>,
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
}

/// One source of a COPY: a file (one entry) or a directory whose contents
/// are copied (its entries, the first being the directory itself).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The name a file takes in a destination directory.
    pub name: String,
    pub is_dir: bool,
    pub entries: Vec<Entry>,
    /// ADD: a local archive to unpack rather than copy (its host path).
    pub archive: Option<PathBuf>,
}

/// Content digests of files, computed once per build.
#[derive(Debug, Default)]
pub(crate) struct HashCache(Mutex<HashMap<PathBuf, Digest>>);

impl HashCache {
    fn file(&self, path: &Path) -> Result<Digest> {
        if let Some(d) = self.lock().get(path) {
            return Ok(d.clone());
        }
        let f = fs::File::open(path).map_err(io_err(format!("reading {}", path.display())))?;
        let mut h =
            berth_image::digest::HashingReader::new(io::BufReader::with_capacity(1 << 16, f));
        io::copy(&mut h, &mut io::sink()).map_err(io_err(format!("reading {}", path.display())))?;
        let d = h.digester().digest();
        self.lock().insert(path.to_path_buf(), d.clone());
        Ok(d)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Digest>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A tree COPY reads from.
pub(crate) struct Tree<'a> {
    pub root: &'a Path,
    /// The context's `.dockerignore`; images have none.
    pub ignore: Option<&'a DockerIgnore>,
    pub escape: Escape,
    /// Image files keep their owner; context files become root's, as in
    /// docker.
    pub keep_owner: bool,
    /// For messages: `build context`, or the image's name.
    pub name: &'a str,
}

impl Tree<'_> {
    /// The items `pattern` selects: one path, or every match of a glob.
    pub fn select(&self, pattern: &str) -> Result<Vec<Item>> {
        if is_glob(pattern) {
            return self.glob(pattern);
        }
        let rel = self.resolve(pattern)?;
        if self.ignored(&rel) {
            return Err(self.missing(pattern));
        }
        let name = Path::new(pattern)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(vec![self.item(&rel, name, pattern)?])
    }

    fn resolve(&self, pattern: &str) -> Result<PathBuf> {
        resolve(self.root, pattern.as_bytes(), self.escape).map_err(|e| match e {
            Unresolved::Outside => BuildError::OutsideContext(pattern.to_string()),
            Unresolved::TooManyLinks => {
                BuildError::Invalid(format!("{pattern}: too many levels of symbolic links"))
            }
        })
    }

    fn missing(&self, pattern: &str) -> BuildError {
        if self.ignore.is_some() {
            BuildError::NotInContext(pattern.to_string())
        } else {
            BuildError::NotInImage(pattern.to_string(), self.name.to_string())
        }
    }

    fn ignored(&self, rel: &Path) -> bool {
        let s = slash(rel);
        !s.is_empty() && self.ignore.is_some_and(|i| i.matches(&s))
    }

    /// Every path matching `pattern`, walked without following links; a
    /// matched directory is copied whole, not searched further.
    fn glob(&self, pattern: &str) -> Result<Vec<Item>> {
        let glob = Glob::new(pattern)
            .ok_or_else(|| BuildError::Invalid(format!("bad source pattern {pattern:?}")))?;
        let clean = pattern.trim_start_matches('/');
        // Walk from the literal directory before the first metacharacter.
        let meta = clean.find(['*', '?', '[']).unwrap_or(clean.len());
        let start = clean[..meta].rfind('/').map_or("", |i| &clean[..i]);
        let start = self.resolve(start)?;
        let depth = if clean.contains("**") {
            usize::MAX
        } else {
            clean.split('/').filter(|s| !s.is_empty()).count()
        };
        let mut found = Vec::new();
        let mut todo = vec![(start, 0usize)];
        while let Some((dir, d)) = todo.pop() {
            let Ok(md) = fs::symlink_metadata(self.root.join(&dir)) else {
                continue;
            };
            if !md.is_dir() || d >= depth {
                continue;
            }
            for name in sorted_names(&self.root.join(&dir))? {
                let rel = dir.join(&name);
                let s = slash(&rel);
                if glob.matches(&s) {
                    if !self.ignored(&rel) {
                        found.push(rel);
                    }
                } else {
                    todo.push((rel, d + 1));
                }
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(BuildError::NoSources);
        }
        found
            .into_iter()
            .map(|rel| {
                let s = slash(&rel);
                // A matched link is followed like a named source.
                let target = self.resolve(&s)?;
                let name = rel
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.item(&target, name, &s)
            })
            .collect()
    }

    fn item(&self, rel: &Path, name: String, pattern: &str) -> Result<Item> {
        let abs = self.root.join(rel);
        let md = fs::symlink_metadata(&abs).map_err(|_| self.missing(pattern))?;
        let top = self.entry(String::new(), &abs, &md)?;
        if !md.is_dir() {
            return Ok(Item {
                name,
                is_dir: false,
                entries: vec![top],
                archive: None,
            });
        }
        let mut entries = vec![top];
        self.walk(rel, "", &mut entries)?;
        Ok(Item {
            name,
            is_dir: true,
            entries,
            archive: None,
        })
    }

    /// The descendants of `dir` (relative to the root), `prefix` being
    /// their names relative to the item. Links are entries, not followed.
    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<Entry>) -> Result<()> {
        let exceptions = self.ignore.is_some_and(DockerIgnore::has_exceptions);
        for name in sorted_names(&self.root.join(dir))? {
            let rel = dir.join(&name);
            let abs = self.root.join(&rel);
            let md =
                fs::symlink_metadata(&abs).map_err(io_err(format!("reading {}", abs.display())))?;
            let item_rel = format!("{prefix}{}", name.to_string_lossy());
            let ignored = self.ignored(&rel);
            if ignored && !(md.is_dir() && exceptions) {
                continue;
            }
            let at = out.len();
            if !ignored {
                out.push(self.entry(item_rel.clone(), &abs, &md)?);
            }
            if md.is_dir() {
                self.walk(&rel, &format!("{item_rel}/"), out)?;
                // An excluded directory holding re-included files is
                // still needed to hold them.
                if ignored && out.len() > at {
                    out.insert(at, self.entry(item_rel, &abs, &md)?);
                }
            }
        }
        Ok(())
    }

    fn entry(&self, rel: String, abs: &Path, md: &fs::Metadata) -> Result<Entry> {
        let ft = md.file_type();
        let dev = || (major(md.rdev()), minor(md.rdev()));
        let (kind, src) = if ft.is_dir() {
            (Kind::Dir, None)
        } else if ft.is_file() {
            (Kind::File { size: md.len() }, Some(abs.to_path_buf()))
        } else if ft.is_symlink() {
            let target =
                fs::read_link(abs).map_err(io_err(format!("reading link {}", abs.display())))?;
            (Kind::Symlink { target }, None)
        } else if ft.is_fifo() {
            (Kind::Fifo, None)
        } else if ft.is_char_device() {
            let (major, minor) = dev();
            (Kind::Char { major, minor }, None)
        } else if ft.is_block_device() {
            let (major, minor) = dev();
            (Kind::Block { major, minor }, None)
        } else {
            return Err(BuildError::Invalid(format!(
                "{}: cannot copy a socket",
                abs.display()
            )));
        };
        let (uid, gid) = if self.keep_owner {
            (md.uid(), md.gid())
        } else {
            (0, 0)
        };
        Ok(Entry {
            rel,
            kind,
            src,
            data: None,
            mode: md.mode() & 0o7777,
            uid,
            gid,
            mtime: md.mtime(),
        })
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err(format!("reading {}", dir.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(io_err(format!("reading {}", dir.display())))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// The digest of what `items` would copy; see the module docs.
pub(crate) fn digest(items: &[Item], hashes: &HashCache) -> Result<Digest> {
    let mut d = Digester::new();
    let mut field = |b: &[u8]| {
        d.update(&(b.len() as u64).to_le_bytes());
        d.update(b);
    };
    for item in items {
        field(item.name.as_bytes());
        field(if item.is_dir { b"dir" } else { b"file" });
        field(if item.archive.is_some() {
            b"unpack"
        } else {
            b""
        });
        for e in &item.entries {
            field(e.rel.as_bytes());
            let kind = match &e.kind {
                Kind::Dir => "d".to_string(),
                Kind::File { size } => format!("f{size}"),
                Kind::Symlink { target } => format!("l{}", target.display()),
                Kind::Fifo => "p".to_string(),
                Kind::Char { major, minor } => format!("c{major},{minor}"),
                Kind::Block { major, minor } => format!("b{major},{minor}"),
            };
            field(kind.as_bytes());
            field(format!("{:o} {} {}", e.mode, e.uid, e.gid).as_bytes());
            let content = match (&e.data, &e.src, &e.kind) {
                (Some(bytes), _, _) => Some(Digest::of(bytes)),
                (None, Some(src), Kind::File { .. }) => Some(hashes.file(src)?),
                _ => None,
            };
            field(content.as_ref().map_or("", |c| c.as_str()).as_bytes());
        }
    }
    Ok(d.digest())
}

/// An item made of bytes: a heredoc, a downloaded file.
pub(crate) fn inline(name: &str, data: Vec<u8>, mode: u32, mtime: i64) -> Item {
    Item {
        name: name.to_string(),
        is_dir: false,
        entries: vec![Entry {
            rel: String::new(),
            kind: Kind::File {
                size: data.len() as u64,
            },
            src: None,
            data: Some(data),
            mode,
            uid: 0,
            gid: 0,
            mtime,
        }],
        archive: None,
    }
}

/// The last component of a `/`-separated path, for naming.
pub(crate) fn base_name(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    OsStr::new(t)
        .to_str()
        .and_then(|s| s.rsplit('/').next())
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn context() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("src/sub")).unwrap();
        fs::create_dir_all(r.join("build")).unwrap();
        fs::write(r.join("a.txt"), "a").unwrap();
        fs::write(r.join("b.txt"), "b").unwrap();
        fs::write(r.join("src/main.c"), "int main;").unwrap();
        fs::write(r.join("src/sub/x.h"), "x").unwrap();
        fs::write(r.join("build/out.o"), "o").unwrap();
        fs::write(r.join("build/keep.o"), "k").unwrap();
        symlink("/etc/passwd", r.join("passwd")).unwrap();
        symlink("src", r.join("code")).unwrap();
        t
    }

    fn tree<'a>(root: &'a Path, ignore: &'a DockerIgnore) -> Tree<'a> {
        Tree {
            root,
            ignore: Some(ignore),
            escape: Escape::Refuse,
            keep_owner: false,
            name: "build context",
        }
    }

    fn names(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .flat_map(|i| {
                i.entries
                    .iter()
                    .map(move |e| format!("{}:{}", i.name, e.rel))
            })
            .collect()
    }

    #[test]
    fn selects_files_directories_globs_and_honours_dockerignore() {
        let t = context();
        let ig = DockerIgnore::parse("build\n!build/keep.o\n*.txt\n!b.txt\n").unwrap();
        let tr = tree(t.path(), &ig);
        assert_eq!(
            names(&tr.select("src").unwrap()),
            ["src:", "src:main.c", "src:sub", "src:sub/x.h"]
        );
        assert_eq!(names(&tr.select("*.txt").unwrap()), ["b.txt:"]);
        assert!(matches!(
            tr.select("a.txt"),
            Err(BuildError::NotInContext(_))
        ));
        // An excluded directory with an exception inside: only the exception.
        assert_eq!(
            names(&tr.select(".").unwrap())
                .into_iter()
                .filter(|n| n.contains("build"))
                .collect::<Vec<_>>(),
            [":build", ":build/keep.o"]
        );
        // A link inside the context is followed, under its own name.
        assert_eq!(names(&tr.select("code").unwrap())[0], "code:");
        assert!(tr.select("code").unwrap()[0].is_dir);
        assert!(matches!(
            tr.select("passwd"),
            Err(BuildError::OutsideContext(_))
        ));
        assert!(matches!(
            tr.select("../x"),
            Err(BuildError::OutsideContext(_))
        ));
        assert!(matches!(tr.select("nope*"), Err(BuildError::NoSources)));
    }

    #[test]
    fn digest_follows_content_not_mtime() {
        let t = context();
        let ig = DockerIgnore::default();
        let d = |h: &HashCache| {
            let tr = tree(t.path(), &ig);
            digest(&tr.select("src").unwrap(), h).unwrap()
        };
        let first = d(&HashCache::default());
        let f = t.path().join("src/main.c");
        let old = fs::metadata(&f).unwrap().modified().unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old - std::time::Duration::from_secs(100))
            .unwrap();
        assert_eq!(
            d(&HashCache::default()),
            first,
            "mtime alone changes nothing"
        );
        fs::write(&f, "int main(void);").unwrap();
        assert_ne!(d(&HashCache::default()), first);
    }
}
