//! The native snapshotter: every snapshot is a full copy of its parent, for
//! filesystems where overlay is not available (overlay on overlay, some
//! network filesystems). Slow and large, but it works everywhere.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags, CWD};

use super::meta::{Meta, Row};
use super::{io_err, Detached, Info, Kind, Mount, Result, SnapshotError, Snapshotter};

pub struct NativeSnapshotter {
    meta: Meta,
}

impl NativeSnapshotter {
    pub fn open(root: &Path) -> Result<NativeSnapshotter> {
        let meta = Meta::open(root)?;
        meta.sweep();
        Ok(NativeSnapshotter { meta })
    }

    fn fs_dir(&self, id: i64) -> PathBuf {
        self.meta.dir(id).join("fs")
    }

    fn mounts_of(&self, row: &Row) -> Result<Vec<Mount>> {
        if row.kind == Kind::Committed {
            return Err(SnapshotError::InvalidArgument {
                key: row.key.clone(),
                reason: "a committed snapshot has no mounts; prepare or view on top of it".into(),
            });
        }
        let ro = row.kind == Kind::View;
        Ok(vec![Mount {
            kind: "bind".into(),
            source: self.fs_dir(row.id),
            target: None,
            options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()],
        }])
    }

    fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<Vec<Mount>> {
        let row = self.meta.create(key, parent, kind, |dir, parent| {
            let fs_dir = dir.join("fs");
            fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
            match parent {
                Some(p) => copy_tree(&self.fs_dir(p.id), &fs_dir).map_err(io_err(format!(
                    "copying snapshot {:?} into {}",
                    p.key,
                    fs_dir.display()
                ))),
                None => fs::create_dir(&fs_dir)
                    .map_err(io_err(format!("creating {}", fs_dir.display()))),
            }
        })?;
        self.mounts_of(&row)
    }
}

impl Snapshotter for NativeSnapshotter {
    fn name(&self) -> &'static str {
        "native"
    }

    fn stat(&self, key: &str) -> Result<Info> {
        let row = self.meta.get(key)?;
        Ok(Info {
            dir: self.fs_dir(row.id),
            ..self.meta.info(&row)
        })
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.mounts_of(&self.meta.get(key)?)
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::Active)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::View)
    }

    fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.meta.commit(name, key).map(|_| ())
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.meta.remove(key)
    }

    fn remove_detached(&self, key: &str) -> Result<Detached> {
        self.meta.detach(key)
    }

    fn list(&self) -> Result<Vec<Info>> {
        Ok(self
            .meta
            .list()?
            .iter()
            .map(|r| Info {
                dir: self.fs_dir(r.id),
                ..self.meta.info(r)
            })
            .collect())
    }
}

/// Copies a tree keeping everything a layer can carry: ownership, modes,
/// times, xattrs, hardlinks, symlinks, devices and fifos. Both trees are
/// the snapshotter's own, so plain paths are safe here.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let mut links = HashMap::new();
    copy_entry(src, dst, &mut links)
}

fn copy_entry(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    let md = fs::symlink_metadata(src)?;
    let ft = md.file_type();
    if !ft.is_dir() && md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            return fs::hard_link(first, dst);
        }
        links.insert((md.dev(), md.ino()), dst.to_path_buf());
    }
    if ft.is_dir() {
        fs::create_dir(dst)?;
        let mut names: Vec<_> = fs::read_dir(src)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for n in names {
            copy_entry(&src.join(&n), &dst.join(&n), links)?;
        }
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        // std::io::copy uses copy_file_range, so reflinking filesystems
        // share extents instead of duplicating them.
        let mut from = fs::File::open(src)?;
        let mut to = fs::File::create_new(dst)?;
        io::copy(&mut from, &mut to)?;
    } else {
        let file_type = rustix::fs::FileType::from_raw_mode(md.mode());
        rustix::fs::mknodat(
            CWD,
            dst,
            file_type,
            Mode::from_raw_mode(md.mode() & 0o7777),
            md.rdev() as _,
        )?;
    }
    copy_metadata(src, dst, &md)
}

fn copy_metadata(src: &Path, dst: &Path, md: &fs::Metadata) -> io::Result<()> {
    let ft = md.file_type();
    if rustix::process::geteuid().is_root() {
        rustix::fs::chownat(
            CWD,
            dst,
            Some(Uid::from_raw(md.uid())),
            Some(Gid::from_raw(md.gid())),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if !ft.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        copy_xattrs(src, dst)?;
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let size = match rustix::fs::llistxattr_query(src) {
        Ok(0) | Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Ok(n) => n,
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; size];
    let n = rustix::fs::llistxattr(src, &mut names[..])?;
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let len = rustix::fs::lgetxattr_query(src, name)?;
        let mut value = vec![0u8; len];
        let got = rustix::fs::lgetxattr(src, name, &mut value[..])?;
        match rustix::fs::lsetxattr(dst, name, &value[..got], XattrFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOTSUP) | Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
