//! Mounts as data, and performing them.
//!
//! Overlay mounts go through the new mount API (fsopen/fsconfig): each
//! lower directory is passed on its own with `lowerdir+` (Linux 6.8), so an
//! image with hundreds of layers mounts even though mount(2)'s option
//! string is limited to one page. Older kernels get mount(2) with the
//! joined string, which is enough for images of ordinary depth.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, mount, mount_bind,
    mount_bind_recursive, mount_remount, move_mount, open_tree, unmount as sys_unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags,
};

use super::{io_err, Result, SnapshotError};

/// One mount, as containerd and the OCI runtime spec describe it:
/// `kind` is the filesystem type (`overlay`, `bind`), `options` the
/// comma-separated options of mount(8), overlay's `lowerdir` joined by ':'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: String,
    pub source: PathBuf,
    /// Relative to the mount point given to [`mount_all`]; `None` is the
    /// mount point itself.
    pub target: Option<PathBuf>,
    pub options: Vec<String>,
}

impl Mount {
    /// The value of a `key=value` option.
    pub fn option_value(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
    }

    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Mounts `mounts` in order at `target`. Needs CAP_SYS_ADMIN.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    mount_each(mounts, target, |m, at| match m.kind.as_str() {
        "bind" => mount_bind_one(m, at),
        "overlay" => mount_overlay(m, at),
        other => Err(unsupported(at, other)),
    })
}

fn unsupported(at: &Path, kind: &str) -> SnapshotError {
    SnapshotError::InvalidArgument {
        key: at.display().to_string(),
        reason: format!("unsupported mount type {kind:?}"),
    }
}

/// Mounts each of `mounts` with `one`, at its place under `target`; on a
/// failure unmounts those done and returns it.
fn mount_each(
    mounts: &[Mount],
    target: &Path,
    one: impl Fn(&Mount, &Path) -> Result<()>,
) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        let at = match &m.target {
            Some(t) => target.join(t),
            None => target.to_path_buf(),
        };
        if let Err(e) = one(m, &at) {
            // Leave nothing half-mounted behind.
            for m in mounts[..i].iter().rev() {
                let _ = unmount(
                    &m.target
                        .as_ref()
                        .map_or_else(|| target.to_path_buf(), |t| target.join(t)),
                );
            }
            return Err(e);
        }
    }
    Ok(())
}

/// [`mount_all`], with the files shown through the id mappings of user
/// namespace `userns`: a file owned by N on disk shows as owned by the
/// host id the namespace maps N to, so the image's layers stay as they
/// are and are shared with every other container.
///
/// An overlay cannot be idmapped itself (overlayfs refuses it): each
/// lower directory is cloned as an idmapped mount under `scratch`, which
/// the overlay keeps once mounted, so they are unmounted again at once.
/// The upper directory is not idmapped (the overlay writes it with the
/// mounter's ids, which an idmapped upper cannot hold): what the
/// container writes there has host ids, and its root directory is given
/// to `root`, the container's root user on the host. A bind (the native
/// snapshotter) is idmapped whole.
pub fn mount_all_idmapped(
    mounts: &[Mount],
    target: &Path,
    userns: BorrowedFd<'_>,
    root: (u32, u32),
    scratch: &Path,
) -> Result<()> {
    mount_each(mounts, target, |m, at| match m.kind.as_str() {
        "bind" => mount_bind_idmapped(m, at, userns),
        "overlay" => mount_overlay_idmapped(m, at, userns, root, scratch),
        other => Err(unsupported(at, other)),
    })
}

/// A clone of the tree at `source` seen through `userns`, not yet attached.
fn idmapped_tree(source: &Path, userns: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd> {
    let err = |e: std::io::Error| io_err(format!("idmapping {}", source.display()))(e);
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = open_tree(CWD, source, flags).map_err(|e| err(e.into()))?;
    berth_sys::mount::setattr(
        tree.as_fd(),
        berth_sys::mount::MOUNT_ATTR_IDMAP,
        0,
        Some(userns),
        recursive,
    )
    .map_err(|e| {
        if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) {
            err(std::io::Error::new(
                e.kind(),
                format!(
                    "{e} (its filesystem cannot be idmapped, or the kernel is older than 5.12)"
                ),
            ))
        } else {
            err(e)
        }
    })?;
    Ok(tree)
}

fn attach(tree: &OwnedFd, at: &Path) -> Result<()> {
    move_mount(tree, "", CWD, at, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| io_err(format!("mounting on {}", at.display()))(e.into()))
}

/// Mounts the tree at `source` on `at` (with `recursive`, its submounts
/// too) seen through the id mappings of user namespace `userns`. A bind of
/// the result keeps them.
pub fn bind_idmapped(
    source: &Path,
    at: &Path,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<()> {
    attach(&idmapped_tree(source, userns, recursive)?, at)
}

fn mount_bind_idmapped(m: &Mount, at: &Path, userns: BorrowedFd<'_>) -> Result<()> {
    let tree = idmapped_tree(&m.source, userns, m.options.iter().any(|o| o == "rbind"))?;
    attach(&tree, at)?;
    if m.read_only() {
        if let Err(e) = mount_remount(at, MountFlags::BIND | MountFlags::RDONLY, "") {
            let _ = unmount(at);
            return Err(io_err(format!("remounting {} read-only", at.display()))(
                e.into(),
            ));
        }
    }
    Ok(())
}

fn mount_overlay_idmapped(
    m: &Mount,
    at: &Path,
    userns: BorrowedFd<'_>,
    root: (u32, u32),
    scratch: &Path,
) -> Result<()> {
    let lowers: Vec<&str> = m
        .option_value("lowerdir")
        .map(|l| l.split(':').collect())
        .unwrap_or_default();
    std::fs::create_dir_all(scratch).map_err(io_err(format!("creating {}", scratch.display())))?;
    let mut attached = Vec::new();
    let result = (|| {
        for (i, lower) in lowers.iter().enumerate() {
            let dir = scratch.join(i.to_string());
            std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
            let tree = idmapped_tree(Path::new(lower), userns, false)?;
            attach(&tree, &dir)?;
            attached.push(dir);
        }
        if let Some(upper) = m.option_value("upperdir") {
            std::os::unix::fs::lchown(upper, Some(root.0), Some(root.1))
                .map_err(io_err(format!("chown {upper}")))?;
        }
        let mut m = m.clone();
        let joined: Vec<String> = attached.iter().map(|d| d.display().to_string()).collect();
        for o in m.options.iter_mut() {
            if o.starts_with("lowerdir=") {
                *o = format!("lowerdir={}", joined.join(":"));
            }
        }
        mount_overlay(&m, at)
    })();
    // Never remove_dir_all: a clone left mounted would be the image's layer.
    for dir in attached.iter().rev() {
        let _ = sys_unmount(dir, UnmountFlags::DETACH);
    }
    for i in 0..lowers.len() {
        let _ = std::fs::remove_dir(scratch.join(i.to_string()));
    }
    let _ = std::fs::remove_dir(scratch);
    result
}

/// Unmounts `target`, lazily if it is busy.
pub fn unmount(target: &Path) -> Result<()> {
    match sys_unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::BUSY) => sys_unmount(target, UnmountFlags::DETACH),
        Err(e) => Err(e),
    }
    .map_err(|e| io_err(format!("unmounting {}", target.display()))(e.into()))
}

fn mount_bind_one(m: &Mount, at: &Path) -> Result<()> {
    let err = |e: Errno| {
        io_err(format!(
            "bind mounting {} on {}",
            m.source.display(),
            at.display()
        ))(e.into())
    };
    if m.options.iter().any(|o| o == "rbind") {
        mount_bind_recursive(&m.source, at).map_err(err)?;
    } else {
        mount_bind(&m.source, at).map_err(err)?;
    }
    if m.read_only() {
        // A bind mount ignores MS_RDONLY; it takes a remount to stick.
        mount_remount(at, MountFlags::BIND | MountFlags::RDONLY, "").map_err(err)?;
    }
    Ok(())
}

fn mount_overlay(m: &Mount, at: &Path) -> Result<()> {
    match mount_overlay_fsconfig(m, at) {
        Ok(()) => Ok(()),
        // No new mount API, or no `lowerdir+` (before 6.8).
        Err(Errno::NOSYS) | Err(Errno::INVAL) => {
            let data: Vec<&str> = m
                .options
                .iter()
                .map(String::as_str)
                .filter(|o| *o != "ro")
                .collect();
            let data = data.join(",");
            let what = || {
                format!(
                    "mounting overlay on {} ({} bytes of options)",
                    at.display(),
                    data.len()
                )
            };
            let c = std::ffi::CString::new(data.as_str()).map_err(|e| {
                io_err(what())(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            })?;
            let flags = if m.read_only() {
                MountFlags::RDONLY
            } else {
                MountFlags::empty()
            };
            mount(&m.source, at, "overlay", flags, Some(c.as_c_str()))
                .map_err(|e| io_err(what())(e.into()))
        }
        Err(e) => Err(io_err(format!("mounting overlay on {}", at.display()))(
            e.into(),
        )),
    }
}

fn mount_overlay_fsconfig(m: &Mount, at: &Path) -> rustix::io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", &m.source)?;
    let mut attrs = MountAttrFlags::empty();
    for o in &m.options {
        match o.split_once('=') {
            Some(("lowerdir", dirs)) => {
                for d in dirs.split(':') {
                    fsconfig_set_string(&fs, "lowerdir+", d)?;
                }
            }
            Some((k, v)) => fsconfig_set_string(&fs, k, v)?,
            None if o == "ro" => attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY,
            None => fsconfig_set_flag(&fs, o.as_str())?,
        }
    }
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(&mnt, "", CWD, at, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// A user namespace mapping 0..65536 to `base..`, held by a child.
    struct Userns {
        child: Child,
        fd: OwnedFd,
    }

    impl Userns {
        fn new(base: u32) -> Userns {
            let child = Command::new("unshare")
                .args(["--user", "sleep", "60"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            let pid = child.id();
            // Written once the child has made its namespace.
            let map = format!("0 {base} 65536\n");
            let mut written = false;
            for _ in 0..500 {
                let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
                let theirs = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
                if ours != theirs {
                    std::fs::write(format!("/proc/{pid}/uid_map"), &map).unwrap();
                    std::fs::write(format!("/proc/{pid}/gid_map"), &map).unwrap();
                    written = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(written, "unshare made no user namespace");
            let fd = rustix::fs::open(
                format!("/proc/{pid}/ns/user").as_str(),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            Userns { child, fd }
        }
    }

    impl Drop for Userns {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn owner(p: &Path) -> (u32, u32) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    }

    #[test]
    fn idmapped_overlay_and_bind_show_shifted_ids_and_keep_the_layers() {
        if !berth_testutil::require_root(
            "idmapped_overlay_and_bind_show_shifted_ids_and_keep_the_layers",
        ) {
            return;
        }
        let ns = Userns::new(300_000);
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s);
        for dir in ["lower/d", "upper", "work", "merged", "bound"] {
            std::fs::create_dir_all(p(dir)).unwrap();
        }
        std::fs::write(p("lower/f"), "x").unwrap();
        std::os::unix::fs::lchown(p("lower/d"), Some(5), Some(6)).unwrap();
        let overlay = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            target: None,
            options: vec![
                format!("lowerdir={}", p("lower").display()),
                format!("upperdir={}", p("upper").display()),
                format!("workdir={}", p("work").display()),
            ],
        };
        let scratch = p("scratch");
        mount_all_idmapped(
            &[overlay],
            &p("merged"),
            ns.fd.as_fd(),
            (300_000, 300_000),
            &scratch,
        )
        .unwrap();
        let checked = std::panic::catch_unwind(|| {
            assert_eq!(owner(&p("merged")), (300_000, 300_000));
            assert_eq!(owner(&p("merged/f")), (300_000, 300_000));
            assert_eq!(owner(&p("merged/d")), (300_005, 300_006));
            // Written through the overlay: host ids in the upper directory;
            // the layer itself is untouched.
            std::fs::write(p("merged/f"), "y").unwrap();
            assert_eq!(owner(&p("upper/f")), (300_000, 300_000));
            assert_eq!(owner(&p("lower/f")), (0, 0));
            assert_eq!(std::fs::read_to_string(p("lower/f")).unwrap(), "x");
            assert!(!scratch.exists(), "the layers' clones are gone");
        });
        unmount(&p("merged")).unwrap();
        checked.unwrap();

        let bind = Mount {
            kind: "bind".into(),
            source: p("lower"),
            target: None,
            options: vec!["rbind".into(), "ro".into()],
        };
        mount_all_idmapped(&[bind], &p("bound"), ns.fd.as_fd(), (0, 0), &scratch).unwrap();
        let checked = std::panic::catch_unwind(|| {
            assert_eq!(owner(&p("bound/d")), (300_005, 300_006));
            assert!(std::fs::write(p("bound/new"), "z").is_err(), "read-only");
        });
        unmount(&p("bound")).unwrap();
        checked.unwrap();
    }
}
