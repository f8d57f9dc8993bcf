//! Mounts as data, and performing them.
//!
//! Overlay mounts go through the new mount API (fsopen/fsconfig): each
//! lower directory is passed on its own with `lowerdir+` (Linux 6.8), so an
//! image with hundreds of layers mounts even though mount(2)'s option
//! string is limited to one page. Older kernels get mount(2) with the
//! joined string, which is enough for images of ordinary depth.

use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, mount, mount_bind,
    mount_bind_recursive, mount_remount, move_mount, unmount as sys_unmount, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
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
    for (i, m) in mounts.iter().enumerate() {
        let at = match &m.target {
            Some(t) => target.join(t),
            None => target.to_path_buf(),
        };
        let done = match m.kind.as_str() {
            "bind" => mount_bind_one(m, &at),
            "overlay" => mount_overlay(m, &at),
            other => Err(SnapshotError::InvalidArgument {
                key: at.display().to_string(),
                reason: format!("unsupported mount type {other:?}"),
            }),
        };
        if let Err(e) = done {
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
