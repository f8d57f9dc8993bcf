//! /dev: the spec's default devices and the config's devices, created as
//! nodes (or, in a user namespace where mknod is refused, bound from the
//! host), plus the standard symlinks.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use rustix::fs::{makedev, mknodat, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::paths::{ensure_target, fd_path, mkdir_all, open_in_root};
use crate::error::{errno, Error, Result};

/// The devices every container has (OCI runtime spec, "Default Devices").
pub fn defaults() -> Vec<LinuxDevice> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, maj, min)| {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from(p));
        d.set_typ(LinuxDeviceType::C);
        d.set_major(maj);
        d.set_minor(min);
        d.set_file_mode(Some(0o666));
        d.set_uid(Some(0));
        d.set_gid(Some(0));
        d
    })
    .collect()
}

pub fn create(root: &impl std::os::fd::AsFd, dev: &LinuxDevice, bind: bool) -> Result<()> {
    let path = dev.path();
    if !path.starts_with("/dev") {
        return Err(Error::InvalidConfig(format!(
            "device {} is not under /dev",
            path.display()
        )));
    }
    let kind = match dev.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
        LinuxDeviceType::B => FileType::BlockDevice,
        LinuxDeviceType::P => FileType::Fifo,
        LinuxDeviceType::A => {
            return Err(Error::InvalidConfig(format!(
                "device {}: type \"a\" is only for cgroup rules",
                path.display()
            )))
        }
    };
    let what = |e: Errno| Error::Io {
        what: format!("creating device {}", path.display()),
        source: e.into(),
    };
    if bind {
        // mknod is not allowed in a user namespace: bind the host's node.
        let target = ensure_target(root, path, false)?;
        return rustix::mount::mount_bind(path.as_path(), fd_path(&target).as_str()).map_err(what);
    }
    let parent = path.parent().unwrap_or(Path::new("/dev"));
    let name = path.file_name().ok_or_else(|| {
        Error::InvalidConfig(format!("device path {} has no name", path.display()))
    })?;
    let pfd = mkdir_all(root, parent, 0o755)?;
    let pdir =
        open_in_root(&pfd, Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY).map_err(what)?;
    let mode = Mode::from_raw_mode(dev.file_mode().unwrap_or(0o666) & 0o7777);
    let rdev = makedev(dev.major() as u32, dev.minor() as u32);
    match rustix::fs::unlinkat(&pdir, name, rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(what(e)),
    }
    mknodat(&pdir, name, kind, mode, rdev).map_err(what)?;
    // mknod honours the umask; the config's mode is what must stand.
    rustix::fs::chmodat(&pdir, name, mode, rustix::fs::AtFlags::empty()).map_err(what)?;
    let uid = dev.uid().map(rustix::fs::Uid::from_raw);
    let gid = dev.gid().map(rustix::fs::Gid::from_raw);
    if uid.is_some() || gid.is_some() {
        rustix::fs::chownat(&pdir, name, uid, gid, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(what)?;
    }
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, and /dev/ptmx pointing at the private
/// devpts instance's ptmx.
pub fn symlinks(root: &impl std::os::fd::AsFd, has_devpts: bool) -> Result<()> {
    let dev = open_in_root(root, Path::new("/dev"), OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(errno("opening /dev"))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if has_devpts {
        let _ = rustix::fs::unlinkat(&dev, "ptmx", rustix::fs::AtFlags::empty());
        links.push(("pts/ptmx", "ptmx"));
    }
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match rustix::fs::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(errno(format!("creating /dev/{name}"))(e)),
        }
    }
    Ok(())
}
