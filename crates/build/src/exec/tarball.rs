//! The layer of a COPY or ADD, written straight from the selected files
//! (no container): where each source lands under docker's destination
//! rules, the parent directories it needs (existing ones keep their
//! metadata, since a layer's directory hides the one below it), and the
//! tar itself, with `--chown`, `--chmod` and SOURCE_DATE_EPOCH applied.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::error::{io_err, BuildError, Result};
use super::resolve::{resolve, slash, Escape};
use super::source::{Entry, Item, Kind};

/// `--chmod`: octal bits, or symbolic clauses (`u+x,go-w`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chmod {
    Octal(u32),
    Symbolic(Vec<(u32, char, u32, bool)>),
}

impl Chmod {
    pub fn parse(text: &str) -> Result<Chmod> {
        let bad = || BuildError::Invalid(format!("invalid --chmod value {text:?}"));
        if !crate::dockerfile::valid_chmod(text) {
            return Err(bad());
        }
        if let Ok(bits) = u32::from_str_radix(text, 8) {
            return Ok(Chmod::Octal(bits & 0o7777));
        }
        let mut clauses = Vec::new();
        for clause in text.split(',') {
            let who_end = clause.find(['+', '-', '=']).ok_or_else(bad)?;
            let mut who = 0;
            for c in clause[..who_end].chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    _ => 0o7777,
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut op = '+';
            let mut perms = 0;
            let mut big_x = false;
            for c in clause[who_end..].chars() {
                match c {
                    '+' | '-' | '=' => {
                        if perms != 0 || big_x {
                            clauses.push((who, op, perms, big_x));
                            perms = 0;
                            big_x = false;
                        }
                        op = c;
                    }
                    'r' => perms |= 0o444,
                    'w' => perms |= 0o222,
                    'x' => perms |= 0o111,
                    'X' => big_x = true,
                    's' => perms |= 0o6000,
                    't' => perms |= 0o1000,
                    _ => return Err(bad()),
                }
            }
            clauses.push((who, op, perms, big_x));
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode `mode` becomes; `X` sets execute on directories and on
    /// files someone may already execute.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(bits) => *bits,
            Chmod::Symbolic(clauses) => {
                let mut m = mode & 0o7777;
                for &(who, op, perms, big_x) in clauses {
                    let mut p = perms;
                    if big_x && (is_dir || m & 0o111 != 0) {
                        p |= 0o111;
                    }
                    let p = p & who;
                    match op {
                        '+' => m |= p,
                        '-' => m &= !p,
                        _ => m = (m & !who) | p,
                    }
                }
                m
            }
        }
    }
}

/// How entries are written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<Chmod>,
    /// SOURCE_DATE_EPOCH: no mtime is later.
    pub epoch: Option<i64>,
    /// The mtime of directories this layer creates.
    pub now: i64,
}

impl Options {
    fn mtime(&self, t: i64) -> i64 {
        self.epoch.map_or(t, |e| t.min(e))
    }
}

/// Where each item goes: `dest` as docker reads it (relative to `workdir`;
/// a directory if it ends in `/`, if there are several sources, or if it
/// is one in the image), resolved through the image's own links.
pub(crate) fn place<'a>(
    items: &'a [Item],
    dest: &str,
    workdir: &str,
    view: &Path,
    keyword: &str,
) -> Result<Vec<(PathBuf, &'a Item)>> {
    let abs = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", workdir.trim_end_matches('/'))
    };
    let dir_syntax = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    if items.len() > 1 && !dir_syntax {
        return Err(BuildError::Invalid(format!(
            "When using {keyword} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    let in_view = |p: &[u8]| {
        resolve(view, p, Escape::Clamp).map_err(|_| {
            BuildError::Invalid(format!(
                "{dest}: too many levels of symbolic links in the image"
            ))
        })
    };
    let target = in_view(abs.as_bytes())?;
    let is_dir = fs::symlink_metadata(view.join(&target)).is_ok_and(|m| m.is_dir());
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let t = if item.is_dir || item.archive.is_some() {
            target.clone()
        } else if dir_syntax || is_dir {
            let mut p = slash(&target).into_bytes();
            p.push(b'/');
            p.extend_from_slice(item.name.as_bytes());
            in_view(&p)?
        } else {
            target.clone()
        };
        out.push((t, item));
    }
    Ok(out)
}

/// Writes the layer tar of `placed` to `out`; `view` is the image the
/// layer goes on (read for the metadata of existing parents).
pub(crate) fn write<W: Write>(
    out: W,
    view: &Path,
    placed: &[(PathBuf, &Item)],
    o: &Options,
) -> Result<W> {
    let mut w = Writer {
        tar: tar::Builder::new(out),
        view,
        o,
        made: BTreeSet::new(),
    };
    for (target, item) in placed {
        if item.is_dir || item.archive.is_some() {
            w.parents(target, true)?;
        } else {
            w.parents(target, false)?;
        }
        if let Some(archive) = &item.archive {
            w.unpack(target, archive)?;
            continue;
        }
        for e in &item.entries {
            if item.is_dir && e.rel.is_empty() {
                continue;
            }
            let path = if e.rel.is_empty() {
                target.clone()
            } else {
                target.join(&e.rel)
            };
            w.entry(&path, e)?;
        }
    }
    w.tar.into_inner().map_err(io_err("finishing the layer"))
}

struct Writer<'a, W: Write> {
    tar: tar::Builder<W>,
    view: &'a Path,
    o: &'a Options,
    /// Directories already in the tar.
    made: BTreeSet<PathBuf>,
}

impl<W: Write> Writer<'_, W> {
    /// The directories above `path` (and `path` itself with `inclusive`).
    fn parents(&mut self, path: &Path, inclusive: bool) -> Result<()> {
        let mut dirs: Vec<PathBuf> = path.ancestors().skip(1).map(Path::to_path_buf).collect();
        dirs.reverse();
        if inclusive {
            dirs.push(path.to_path_buf());
        }
        for d in dirs {
            if d.as_os_str().is_empty() || self.made.contains(&d) {
                continue;
            }
            let (mode, uid, gid, mtime) = match fs::symlink_metadata(self.view.join(&d)) {
                Ok(md) if md.is_dir() => (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
                Ok(_) => {
                    return Err(BuildError::Invalid(format!(
                        "cannot copy into /{}: it is not a directory in the image",
                        slash(&d)
                    )))
                }
                Err(_) => {
                    let (uid, gid) = self.o.chown.unwrap_or((0, 0));
                    (0o755, uid, gid, self.o.now)
                }
            };
            let mut h = header(
                tar::EntryType::Directory,
                mode,
                uid,
                gid,
                self.o.mtime(mtime),
            );
            self.append(&mut h, &d, io::empty())?;
            self.made.insert(d);
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, e: &Entry) -> Result<()> {
        let (uid, gid) = self.o.chown.unwrap_or((e.uid, e.gid));
        let is_dir = e.kind == Kind::Dir;
        let mode = match (&self.o.chmod, &e.kind) {
            (_, Kind::Symlink { .. }) | (None, _) => e.mode,
            (Some(c), _) => c.apply(e.mode, is_dir),
        };
        let mtime = self.o.mtime(e.mtime);
        let ty = match &e.kind {
            Kind::Dir => tar::EntryType::Directory,
            Kind::File { .. } => tar::EntryType::Regular,
            Kind::Symlink { .. } => tar::EntryType::Symlink,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Char { .. } => tar::EntryType::Char,
            Kind::Block { .. } => tar::EntryType::Block,
        };
        let mut h = header(ty, mode, uid, gid, mtime);
        match &e.kind {
            Kind::Dir => {
                self.append(&mut h, path, io::empty())?;
                self.made.insert(path.to_path_buf());
            }
            Kind::File { size } => match (&e.data, &e.src) {
                (Some(bytes), _) => {
                    h.set_size(bytes.len() as u64);
                    self.append(&mut h, path, &bytes[..])?;
                }
                (None, Some(src)) => {
                    let f = fs::File::open(src)
                        .map_err(io_err(format!("reading {}", src.display())))?;
                    // The size walked is the size written: a file that
                    // changes under us fails the build, not the tar.
                    h.set_size(*size);
                    self.append(&mut h, path, io::BufReader::new(f).take(*size))?;
                }
                (None, None) => unreachable!("a file entry has bytes or a source"),
            },
            Kind::Symlink { target } => {
                check_name(path)?;
                self.tar
                    .append_link(&mut h, path, target)
                    .map_err(io_err(format!("writing /{}", slash(path))))?;
            }
            Kind::Char { major, minor } | Kind::Block { major, minor } => {
                h.set_device_major(*major)
                    .map_err(io_err("device number"))?;
                h.set_device_minor(*minor)
                    .map_err(io_err("device number"))?;
                self.append(&mut h, path, io::empty())?;
            }
            Kind::Fifo => self.append(&mut h, path, io::empty())?,
        }
        Ok(())
    }

    fn append(&mut self, h: &mut tar::Header, path: &Path, data: impl Read) -> Result<()> {
        check_name(path)?;
        self.tar
            .append_data(h, path, data)
            .map_err(io_err(format!("writing /{}", slash(path))))
    }

    /// ADD of a local archive: its entries under `target`, each path
    /// cleaned and kept inside it.
    fn unpack(&mut self, target: &Path, archive: &Path) -> Result<()> {
        let f =
            fs::File::open(archive).map_err(io_err(format!("reading {}", archive.display())))?;
        let input = berth_image::layer::decompress(io::BufReader::new(f))
            .map_err(io_err(format!("reading {}", archive.display())))?;
        let mut ar = tar::Archive::new(input);
        let bad = |what: String| BuildError::Invalid(format!("{}: {what}", archive.display()));
        let entries = ar.entries().map_err(|e| bad(e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let raw = entry.path_bytes().into_owned();
            let Some(rel) = inside(&raw) else {
                return Err(bad(format!(
                    "entry {:?} leads out of the destination",
                    String::from_utf8_lossy(&raw)
                )));
            };
            if rel.as_os_str().is_empty() {
                continue;
            }
            let path = target.join(&rel);
            let ty = entry.header().entry_type();
            self.parents(&path, false)?;
            let mut h = entry.header().clone();
            if let Some((uid, gid)) = self.o.chown {
                h.set_uid(uid.into());
                h.set_gid(gid.into());
            }
            h.set_mtime(self.o.mtime(h.mtime().unwrap_or(0) as i64).max(0) as u64);
            match ty {
                tar::EntryType::Link => {
                    let link = entry
                        .link_name_bytes()
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    let Some(to) = inside(&link) else {
                        return Err(bad(format!(
                            "hard link {:?} leads out of the destination",
                            String::from_utf8_lossy(&link)
                        )));
                    };
                    check_name(&path)?;
                    self.tar
                        .append_link(&mut h, &path, target.join(to))
                        .map_err(io_err(format!("writing /{}", slash(&path))))?;
                }
                tar::EntryType::Symlink => {
                    let link = entry
                        .link_name()
                        .map_err(|e| bad(e.to_string()))?
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    check_name(&path)?;
                    self.tar
                        .append_link(&mut h, &path, link)
                        .map_err(io_err(format!("writing /{}", slash(&path))))?;
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Directory
                | tar::EntryType::Fifo
                | tar::EntryType::Char
                | tar::EntryType::Block => {
                    if ty == tar::EntryType::Continuous {
                        h.set_entry_type(tar::EntryType::Regular);
                    }
                    self.append(&mut h, &path, &mut entry)?;
                    if ty == tar::EntryType::Directory {
                        self.made.insert(path);
                    }
                }
                // pax/GNU extension headers are read by the tar crate
                // itself; anything else has no place in a filesystem.
                _ => {}
            }
        }
        Ok(())
    }
}

fn header(ty: tar::EntryType, mode: u32, uid: u32, gid: u32, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mtime(mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// An archive path made relative and clean, or `None` if `..` climbs
/// above its top.
fn inside(raw: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Names starting `.wh.` mean deletions in a layer: a file so named would
/// delete what its name says in the image instead of being copied.
fn check_name(path: &Path) -> Result<()> {
    let bad = path.components().any(|c| {
        matches!(c, Component::Normal(n) if n.to_string_lossy().starts_with(berth_image::layer::WHITEOUT_PREFIX))
    });
    if bad {
        return Err(BuildError::Invalid(format!(
            "cannot copy /{}: names starting with {} are reserved for layer whiteouts",
            slash(path),
            berth_image::layer::WHITEOUT_PREFIX
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::source::inline;

    #[test]
    fn chmod_octal_and_symbolic() {
        assert_eq!(Chmod::parse("755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("u+x,go-w").unwrap().apply(0o666, false), 0o744);
        assert_eq!(Chmod::parse("a=r").unwrap().apply(0o777, false), 0o444);
        assert_eq!(Chmod::parse("+X").unwrap().apply(0o644, true), 0o755);
        assert_eq!(Chmod::parse("+X").unwrap().apply(0o644, false), 0o644);
        assert!(Chmod::parse("u+q").is_err());
    }

    #[test]
    fn destinations_follow_dockers_rules() {
        let view = tempfile::tempdir().unwrap();
        fs::create_dir_all(view.path().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", view.path().join("bin")).unwrap();
        let one = [inline("a.sh", b"x".to_vec(), 0o644, 0)];
        let p = |items: &[Item], dest: &str, wd: &str| {
            place(items, dest, wd, view.path(), "COPY")
                .map(|v| v.into_iter().map(|(t, _)| slash(&t)).collect::<Vec<_>>())
        };
        assert_eq!(p(&one, "/opt/run.sh", "/").unwrap(), ["opt/run.sh"]);
        assert_eq!(p(&one, "/opt/", "/").unwrap(), ["opt/a.sh"]);
        // An existing directory, through the image's own link.
        assert_eq!(p(&one, "/bin", "/").unwrap(), ["usr/bin/a.sh"]);
        assert_eq!(p(&one, "rel/", "/app").unwrap(), ["app/rel/a.sh"]);
        assert_eq!(p(&one, ".", "/app").unwrap(), ["app/a.sh"]);
        let two = [one[0].clone(), inline("b.sh", b"y".to_vec(), 0o644, 0)];
        assert!(p(&two, "/opt", "/").is_err());
        assert_eq!(p(&two, "/opt/", "/").unwrap(), ["opt/a.sh", "opt/b.sh"]);
    }

    #[test]
    fn layer_has_parents_with_their_metadata_and_applies_chown() {
        let view = tempfile::tempdir().unwrap();
        fs::create_dir_all(view.path().join("usr")).unwrap();
        fs::set_permissions(
            view.path().join("usr"),
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
        let items = [inline("f", b"hello".to_vec(), 0o600, 5)];
        let placed = place(&items, "/usr/new/", "/", view.path(), "COPY").unwrap();
        let o = Options {
            chown: Some((7, 8)),
            now: 100,
            ..Default::default()
        };
        let bytes = write(Vec::new(), view.path(), &placed, &o).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let got: Vec<(String, u32, u64, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let own = fs::metadata(view.path().join("usr")).unwrap();
        assert_eq!(
            got,
            [
                (
                    "usr".to_string(),
                    0o750,
                    own.uid() as u64,
                    own.mtime() as u64
                ),
                ("usr/new".to_string(), 0o755, 7, 100),
                ("usr/new/f".to_string(), 0o600, 7, 5),
            ]
        );
        let wh = [inline(".wh.etc", b"".to_vec(), 0o644, 0)];
        let placed = place(&wh, "/", "/", view.path(), "COPY").unwrap();
        assert!(write(Vec::new(), view.path(), &placed, &o).is_err());
    }

    #[test]
    fn archive_paths_stay_inside() {
        assert_eq!(inside(b"/a/../b/./c").unwrap(), Path::new("b/c"));
        assert_eq!(inside(b"../x"), None);
    }
}
