//! The container's root: the rootfs bound onto itself, every mount of the
//! config placed at a target resolved inside it, then pivot_root, masked
//! and read-only paths, and a read-only root when asked.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    mount, mount_bind, mount_bind_recursive, mount_change, mount_move, mount_remount, unmount,
    MountFlags, MountPropagationFlags, UnmountFlags,
};

use super::paths::{ensure_target, fd_path, mkdir_all, open_in_root};
use crate::error::{errno, Error, Result};

/// A config mount's options, split the way the mount syscalls want them.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MountFlags,
    /// Flags an option such as `rw` or `suid` asked to clear.
    pub clear: MountFlags,
    pub bind: bool,
    pub recursive: bool,
    pub propagation: Vec<MountPropagationFlags>,
    pub data: Vec<String>,
    pub remount: bool,
    /// Attributes for the whole mount tree (the `r`-prefixed options),
    /// applied with mount_setattr after the mount.
    pub rec_set: u64,
    pub rec_clear: u64,
    /// `idmap` (Some(false)) or `ridmap` (Some(true)).
    pub idmap: Option<bool>,
}

pub fn parse_options(opts: &[String]) -> Result<Options> {
    let mut o = Options {
        flags: MountFlags::empty(),
        clear: MountFlags::empty(),
        bind: false,
        recursive: false,
        propagation: Vec::new(),
        data: Vec::new(),
        remount: false,
        rec_set: 0,
        rec_clear: 0,
        idmap: None,
    };
    for opt in opts {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MountFlags::empty(), MountFlags::empty()),
            "ro" => (MountFlags::RDONLY, MountFlags::empty()),
            "rw" => (MountFlags::empty(), MountFlags::RDONLY),
            "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
            "suid" => (MountFlags::empty(), MountFlags::NOSUID),
            "nodev" => (MountFlags::NODEV, MountFlags::empty()),
            "dev" => (MountFlags::empty(), MountFlags::NODEV),
            "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
            "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
            "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
            "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
            "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
            "mand" => (
                MountFlags::PERMIT_MANDATORY_FILE_LOCKING,
                MountFlags::empty(),
            ),
            "nomand" => (
                MountFlags::empty(),
                MountFlags::PERMIT_MANDATORY_FILE_LOCKING,
            ),
            "atime" => (MountFlags::empty(), MountFlags::NOATIME),
            "noatime" => (MountFlags::NOATIME, MountFlags::empty()),
            "diratime" => (MountFlags::empty(), MountFlags::NODIRATIME),
            "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty()),
            "relatime" => (MountFlags::RELATIME, MountFlags::empty()),
            "norelatime" => (MountFlags::empty(), MountFlags::RELATIME),
            "strictatime" => (MountFlags::STRICTATIME, MountFlags::empty()),
            "nostrictatime" => (MountFlags::empty(), MountFlags::STRICTATIME),
            "lazytime" => (MountFlags::LAZYTIME, MountFlags::empty()),
            "nolazytime" => (MountFlags::empty(), MountFlags::LAZYTIME),
            "silent" => (MountFlags::SILENT, MountFlags::empty()),
            "loud" => (MountFlags::empty(), MountFlags::SILENT),
            "nosymfollow" => (MountFlags::NOSYMFOLLOW, MountFlags::empty()),
            "symfollow" => (MountFlags::empty(), MountFlags::NOSYMFOLLOW),
            "iversion" => (MountFlags::from_bits_retain(1 << 23), MountFlags::empty()),
            "noiversion" => (MountFlags::empty(), MountFlags::from_bits_retain(1 << 23)),
            "remount" => {
                o.remount = true;
                continue;
            }
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                let base = match p.trim_start_matches('r') {
                    "private" => MountPropagationFlags::PRIVATE,
                    "shared" => MountPropagationFlags::SHARED,
                    "slave" => MountPropagationFlags::DOWNSTREAM,
                    _ => MountPropagationFlags::UNBINDABLE,
                };
                let rec = p.starts_with('r');
                o.propagation.push(if rec {
                    base | MountPropagationFlags::REC
                } else {
                    base
                });
                continue;
            }
            r @ ("rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev" | "rdev" | "rnoexec" | "rexec"
            | "rnoatime" | "ratime" | "rrelatime" | "rnorelatime" | "rstrictatime"
            | "rnostrictatime" | "rnosymfollow" | "rsymfollow" | "rnodiratime"
            | "rdiratime") => {
                use berth_sys::mount::*;
                let (set, clear) = match r {
                    "rro" => (MOUNT_ATTR_RDONLY, 0),
                    "rrw" => (0, MOUNT_ATTR_RDONLY),
                    "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
                    "rsuid" => (0, MOUNT_ATTR_NOSUID),
                    "rnodev" => (MOUNT_ATTR_NODEV, 0),
                    "rdev" => (0, MOUNT_ATTR_NODEV),
                    "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
                    "rexec" => (0, MOUNT_ATTR_NOEXEC),
                    "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
                    "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
                    "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
                    "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
                    "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
                    "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
                    // relatime is the atime field's zero value.
                    "rrelatime" => (0, MOUNT_ATTR__ATIME),
                    // "ratime", "rnorelatime", "rnostrictatime": back to the
                    // default, which is relatime.
                    _ => (0, MOUNT_ATTR__ATIME),
                };
                o.rec_set = (o.rec_set & !clear) | set;
                o.rec_clear = (o.rec_clear & !set) | clear;
                continue;
            }
            "idmap" => {
                o.idmap = Some(false);
                continue;
            }
            "ridmap" => {
                o.idmap = Some(true);
                continue;
            }
            "tmpcopyup" => return Err(Error::Unsupported("the mount option \"tmpcopyup\"".into())),
            data => {
                o.data.push(data.to_string());
                continue;
            }
        };
        o.flags |= set;
        o.flags -= clear;
        o.clear |= clear;
    }
    Ok(o)
}

/// Step one, before any mount: nothing we mount may propagate to the host.
pub fn prepare_root(spec: &Spec, rootfs: &Path) -> Result<()> {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    let flag = match prop.as_deref() {
        None | Some("") | Some("rslave") | Some("slave") => {
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC
        }
        Some("rprivate") | Some("private") => {
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC
        }
        // Shared roots are made shared again after the pivot; the host's
        // tree is still kept apart from our setup mounts.
        Some("rshared") | Some("shared") => {
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC
        }
        Some("runbindable") | Some("unbindable") => {
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC
        }
        Some(other) => {
            return Err(Error::InvalidConfig(format!(
                "rootfsPropagation {other:?} is not a propagation mode"
            )))
        }
    };
    mount_change("/", flag).map_err(errno("making / a slave mount"))?;
    mount_bind_recursive(rootfs, rootfs)
        .map_err(errno(format!("binding the rootfs {}", rootfs.display())))?;
    Ok(())
}

/// Information about the host's cgroup layout for "cgroup" mounts.
#[derive(Debug, Clone, Default)]
pub struct CgroupMountInfo {
    /// (mount point name under /sys/fs/cgroup, super options) of v1 hierarchies.
    pub v1: Vec<(String, String)>,
    pub unified: bool,
}

/// The host's cgroups for the container's "cgroup" mount, as the runtime
/// found them before the clone: the init does not read the mount table
/// again on its way to exec.
#[derive(Debug, Clone, Default)]
pub struct HostCgroups {
    pub info: CgroupMountInfo,
    /// The container's own directories, by mount name under
    /// /sys/fs/cgroup ("" for the cgroup2 hierarchy).
    pub paths: Vec<(String, PathBuf)>,
}

/// [`CgroupMountInfo`] from the host's cgroup mounts.
pub(crate) fn host_cgroups(mounts: &[crate::cgroups::HostMount]) -> CgroupMountInfo {
    let mut v1 = Vec::new();
    let mut unified = false;
    for m in mounts {
        if m.v2 && m.point == Path::new("/sys/fs/cgroup") {
            unified = true;
        }
        if m.v2 {
            continue;
        }
        let name = m
            .point
            .strip_prefix("/sys/fs/cgroup")
            .unwrap_or(Path::new(""));
        if !name.as_os_str().is_empty() {
            let opts: Vec<&str> = m
                .controllers
                .iter()
                .chain(&m.options)
                .map(String::as_str)
                .filter(|o| !o.starts_with("release_agent"))
                .collect();
            v1.push((name.to_string_lossy().into_owned(), opts.join(",")));
        }
    }
    CgroupMountInfo { v1, unified }
}

/// Where a relative bind source lives: the bundle.
fn source_path(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    m.source().as_ref().map(|s| {
        if s.is_absolute() {
            s.clone()
        } else {
            bundle.join(s)
        }
    })
}

pub struct MountCtx<'a> {
    pub root: &'a OwnedFd,
    pub bundle: &'a Path,
    pub cgroupns: bool,
    pub cgroups: &'a HostCgroups,
}

/// Mounts one config entry under the root.
pub fn mount_one(ctx: &MountCtx<'_>, m: &Mount) -> Result<()> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::InvalidConfig(format!(
            "mount destination {} is not absolute",
            dest.display()
        )));
    }
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let typ = m.typ().clone().unwrap_or_default();
    let what = |e: Errno| Error::Io {
        what: format!(
            "mounting {} on {}",
            if typ.is_empty() { "bind" } else { &typ },
            dest.display()
        ),
        source: e.into(),
    };
    if opts.bind || typ == "bind" {
        let src = source_path(m, ctx.bundle).ok_or_else(|| {
            Error::InvalidConfig(format!("bind mount {} has no source", dest.display()))
        })?;
        let srcfd =
            rustix::fs::open(&src, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
                Error::Io {
                    what: format!("bind mount source {}", src.display()),
                    source: e.into(),
                }
            })?;
        let is_dir = rustix::fs::fstat(&srcfd)
            .map(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_dir())
            .unwrap_or(false);
        let target = ensure_target(ctx.root, dest, is_dir)?;
        let tp = fd_path(&target);
        let mapped = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        if opts.idmap.is_some() || mapped {
            let uids = m.uid_mappings().clone().unwrap_or_default();
            let gids = m.gid_mappings().clone().unwrap_or_default();
            if uids.is_empty() || gids.is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "idmapped mount {} needs uidMappings and gidMappings",
                    dest.display()
                )));
            }
            let userns = super::idmap::userns_with(&uids, &gids)?;
            let recursive = opts.idmap.unwrap_or(opts.recursive);
            super::idmap::mount_idmapped(&fd_path(&srcfd), &target, &userns, recursive)?;
        } else if opts.recursive {
            mount_bind_recursive(fd_path(&srcfd).as_str(), tp.as_str()).map_err(what)?;
        } else {
            mount_bind(fd_path(&srcfd).as_str(), tp.as_str()).map_err(what)?;
        }
        // The bind landed on top of the target: reopen to reach the new mount.
        let target = open_in_root(ctx.root, dest, OFlags::PATH).map_err(what)?;
        let tp = fd_path(&target);
        if !opts.flags.is_empty() {
            remount_bind(&tp, opts.flags, &opts.data).map_err(what)?;
        }
        for p in &opts.propagation {
            mount_change(tp.as_str(), *p).map_err(what)?;
        }
        apply_recursive(&target, &opts).map_err(what)?;
        return Ok(());
    }
    if opts.idmap.is_some() {
        return Err(Error::Unsupported(format!(
            "idmap on a {typ} mount ({}): only bind mounts can be idmapped",
            dest.display()
        )));
    }
    let target = mkdir_all(ctx.root, dest, 0o755)?;
    let tp = fd_path(&target);
    let data = opts.data.join(",");
    let src = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.clone());
    match typ.as_str() {
        "cgroup" => mount_cgroup_v1(ctx, dest, &tp, &opts).map_err(what)?,
        "cgroup2" => {
            if let Err(e) = mount(
                src.as_str(),
                tp.as_str(),
                "cgroup2",
                opts.flags,
                cstr(&data).as_deref(),
            ) {
                if ctx.cgroupns {
                    return Err(what(e));
                }
                // Without its own cgroup namespace a container sees its
                // cgroup through a bind of that directory.
                let host = ctx
                    .cgroups
                    .paths
                    .iter()
                    .find(|(k, _)| k.is_empty())
                    .map(|(_, p)| p.clone());
                let Some(host) = host else {
                    return Err(what(e));
                };
                mount_bind(host.as_path(), tp.as_str()).map_err(what)?;
                remount_bind(
                    &fd_path(&open_in_root(ctx.root, dest, OFlags::PATH).map_err(what)?),
                    opts.flags,
                    &[],
                )
                .map_err(what)?;
            }
        }
        "sysfs" => {
            if let Err(e) = mount(
                src.as_str(),
                tp.as_str(),
                "sysfs",
                opts.flags,
                cstr(&data).as_deref(),
            ) {
                if e != Errno::PERM {
                    return Err(what(e));
                }
                // sysfs cannot be mounted without a network namespace of our
                // own: show the host's, read-only.
                mount_bind_recursive("/sys", tp.as_str()).map_err(what)?;
                let t2 = open_in_root(ctx.root, dest, OFlags::PATH).map_err(what)?;
                remount_bind(&fd_path(&t2), opts.flags | MountFlags::RDONLY, &[]).map_err(what)?;
            }
        }
        "mqueue" => {
            if let Err(e) = mount(
                src.as_str(),
                tp.as_str(),
                "mqueue",
                opts.flags,
                cstr(&data).as_deref(),
            ) {
                if e != Errno::PERM {
                    return Err(what(e));
                }
                mount_bind("/dev/mqueue", tp.as_str()).map_err(what)?;
            }
        }
        "" | "none" if m.source().is_none() => {
            return Err(Error::InvalidConfig(format!(
                "mount {} has no type",
                dest.display()
            )))
        }
        _ => {
            let fstype = if typ.is_empty() { "none" } else { typ.as_str() };
            mount(
                src.as_str(),
                tp.as_str(),
                fstype,
                opts.flags,
                cstr(&data).as_deref(),
            )
            .map_err(what)?;
        }
    }
    if !opts.propagation.is_empty() || opts.rec_set != 0 || opts.rec_clear != 0 {
        let t2 = open_in_root(ctx.root, dest, OFlags::PATH).map_err(what)?;
        for p in &opts.propagation {
            mount_change(fd_path(&t2).as_str(), *p).map_err(what)?;
        }
        apply_recursive(&t2, &opts).map_err(what)?;
    }
    Ok(())
}

/// The `r`-prefixed options: one mount_setattr over the whole tree.
fn apply_recursive(target: &OwnedFd, opts: &Options) -> std::result::Result<(), Errno> {
    if opts.rec_set == 0 && opts.rec_clear == 0 {
        return Ok(());
    }
    berth_sys::mount::setattr_recursive(target.as_fd(), opts.rec_set, opts.rec_clear)
        .map_err(|e| Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc_eio())))
}

fn libc_eio() -> i32 {
    5
}

fn cstr(s: &str) -> Option<std::ffi::CString> {
    if s.is_empty() {
        None
    } else {
        std::ffi::CString::new(s).ok()
    }
}

/// A bind mount takes its flags only on a remount. In a user namespace the
/// flags the host locked (nodev, nosuid, noexec) must be kept, or the kernel
/// refuses: retry with them.
fn remount_bind(
    target: &str,
    flags: MountFlags,
    data: &[String],
) -> std::result::Result<(), Errno> {
    let data = data.join(",");
    match mount_remount(target, flags | MountFlags::BIND, data.as_str()) {
        Err(Errno::PERM) => {
            let st = rustix::fs::statvfs(target)?;
            let mut keep = MountFlags::empty();
            let f = st.f_flag;
            if f.contains(rustix::fs::StatVfsMountFlags::NODEV) {
                keep |= MountFlags::NODEV;
            }
            if f.contains(rustix::fs::StatVfsMountFlags::NOSUID) {
                keep |= MountFlags::NOSUID;
            }
            if f.contains(rustix::fs::StatVfsMountFlags::NOEXEC) {
                keep |= MountFlags::NOEXEC;
            }
            if f.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
                keep |= MountFlags::RDONLY;
            }
            mount_remount(target, flags | keep | MountFlags::BIND, data.as_str())
        }
        r => r,
    }
}

/// cgroup v1: a tmpfs with one directory per hierarchy. With a cgroup
/// namespace each hierarchy is mounted (the namespace shows only the
/// container's subtree); without one, the container's own directory of each
/// hierarchy is bound there. On a pure v2 host a "cgroup" mount is cgroup2.
fn mount_cgroup_v1(
    ctx: &MountCtx<'_>,
    dest: &Path,
    tp: &str,
    opts: &Options,
) -> std::result::Result<(), Errno> {
    let info = &ctx.cgroups.info;
    if info.unified {
        if mount("cgroup2", tp, "cgroup2", opts.flags, None).is_ok() {
            return Ok(());
        }
        let host = ctx
            .cgroups
            .paths
            .iter()
            .find(|(k, _)| k.is_empty())
            .map(|(_, p)| p.clone())
            .ok_or(Errno::NOENT)?;
        mount_bind(host.as_path(), tp)?;
        return Ok(());
    }
    mount(
        "tmpfs",
        tp,
        "tmpfs",
        (opts.flags - MountFlags::RDONLY)
            | MountFlags::NOSUID
            | MountFlags::NODEV
            | MountFlags::NOEXEC,
        cstr("mode=755").as_deref(),
    )?;
    // The hierarchies bound from the host, to make read-only with the rest.
    let mut bound = Vec::new();
    for (name, sopts) in &info.v1 {
        let sub = dest.join(name);
        let fd = mkdir_all(ctx.root, &sub, 0o755).map_err(|_| Errno::NOENT)?;
        let p = fd_path(&fd);
        let mounted = ctx.cgroupns
            && mount(
                "cgroup",
                p.as_str(),
                "cgroup",
                opts.flags,
                cstr(sopts).as_deref(),
            )
            .is_ok();
        if !mounted {
            let host = ctx
                .cgroups
                .paths
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, p)| p.clone());
            if let Some(host) = host {
                if host.exists() {
                    mount_bind(host.as_path(), p.as_str())?;
                    bound.push(sub);
                }
            }
        }
    }
    // The unified mount of a hybrid host, when present.
    if Path::new("/sys/fs/cgroup/unified").exists() {
        let sub = dest.join("unified");
        if let Ok(fd) = mkdir_all(ctx.root, &sub, 0o755) {
            let p = fd_path(&fd);
            if !(ctx.cgroupns && mount("cgroup2", p.as_str(), "cgroup2", opts.flags, None).is_ok())
            {
                if let Some((_, host)) = ctx.cgroups.paths.iter().find(|(k, _)| k.is_empty()) {
                    if host.exists() && mount_bind(host.as_path(), p.as_str()).is_ok() {
                        bound.push(sub);
                    }
                }
            }
        }
    }
    if opts.flags.contains(MountFlags::RDONLY) {
        let fd = open_in_root(ctx.root, dest, OFlags::PATH)?;
        // The tmpfs and every mount on it in one call, where a remount
        // each cost a dozen calls on a v1 host; kernels before 5.12 have
        // no mount_setattr and get the remounts.
        use berth_sys::mount::*;
        let mut set = MOUNT_ATTR_RDONLY;
        for (f, a) in [
            (MountFlags::NOSUID, MOUNT_ATTR_NOSUID),
            (MountFlags::NODEV, MOUNT_ATTR_NODEV),
            (MountFlags::NOEXEC, MOUNT_ATTR_NOEXEC),
        ] {
            if opts.flags.contains(f) {
                set |= a;
            }
        }
        if setattr_recursive(fd.as_fd(), set, 0).is_err() {
            for sub in &bound {
                let fd2 = open_in_root(ctx.root, sub, OFlags::PATH)?;
                remount_bind(&fd_path(&fd2), opts.flags, &[])?;
            }
            mount_remount(
                fd_path(&fd).as_str(),
                opts.flags | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                "mode=755",
            )?;
        }
    }
    Ok(())
}

/// Swaps the root: pivot_root when possible, else (`--no-pivot`) a move
/// and chroot, which leaves the old root reachable to CAP_SYS_ADMIN.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        rustix::process::chdir(rootfs).map_err(errno("entering the rootfs"))?;
        mount_move(".", "/").map_err(errno("moving the rootfs to /"))?;
        rustix::process::chroot(".").map_err(errno("chroot into the rootfs"))?;
        rustix::process::chdir("/").map_err(errno("chdir /"))?;
        return Ok(());
    }
    let old = rustix::fs::open(
        "/",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening /"))?;
    let new = rustix::fs::open(
        rootfs,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening the rootfs"))?;
    rustix::process::fchdir(&new).map_err(errno("entering the rootfs"))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; it is
    // then detached from where we stand, with no temporary directory.
    rustix::process::pivot_root(".", ".").map_err(errno("pivot_root"))?;
    rustix::process::fchdir(&old).map_err(errno("entering the old root"))?;
    mount_change(
        ".",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(errno("making the old root a slave"))?;
    unmount(".", UnmountFlags::DETACH).map_err(errno("detaching the old root"))?;
    rustix::process::chdir("/").map_err(errno("chdir /"))?;
    Ok(())
}

/// After the pivot: shared or unbindable root propagation, when asked.
pub fn finish_root_propagation(spec: &Spec) -> Result<()> {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    let flag = match prop.as_deref() {
        Some("shared") => MountPropagationFlags::SHARED,
        Some("rshared") => MountPropagationFlags::SHARED | MountPropagationFlags::REC,
        Some("unbindable") => MountPropagationFlags::UNBINDABLE,
        Some("runbindable") => MountPropagationFlags::UNBINDABLE | MountPropagationFlags::REC,
        Some("private") => MountPropagationFlags::PRIVATE,
        Some("rprivate") => MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        _ => return Ok(()),
    };
    mount_change("/", flag).map_err(errno("setting the root's propagation"))
}

/// maskedPaths: a directory gets an empty read-only tmpfs, anything else
/// /dev/null bound over it. Missing paths are fine.
pub fn mask_path(path: &str) -> Result<()> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening /"))?;
    let fd = match open_in_root(&root, Path::new(path), OFlags::PATH) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(errno(format!("masking {path}"))(e)),
    };
    let is_dir = rustix::fs::fstat(&fd)
        .map(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_dir())
        .unwrap_or(false);
    let tp = fd_path(&fd);
    if is_dir {
        mount("tmpfs", tp.as_str(), "tmpfs", MountFlags::RDONLY, None)
            .map_err(errno(format!("masking {path}")))
    } else {
        mount_bind("/dev/null", tp.as_str()).map_err(errno(format!("masking {path}")))
    }
}

/// readonlyPaths: bound onto themselves, then remounted read-only.
pub fn readonly_path(path: &str) -> Result<()> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening /"))?;
    let fd = match open_in_root(&root, Path::new(path), OFlags::PATH) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(errno(format!("making {path} read-only"))(e)),
    };
    let tp = fd_path(&fd);
    mount_bind_recursive(tp.as_str(), tp.as_str())
        .map_err(errno(format!("making {path} read-only")))?;
    let fd = open_in_root(&root, Path::new(path), OFlags::PATH)
        .map_err(errno(format!("making {path} read-only")))?;
    remount_bind(
        &fd_path(&fd),
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        &[],
    )
    .map_err(errno(format!("making {path} read-only")))
}

pub fn readonly_root() -> Result<()> {
    remount_bind("/", MountFlags::RDONLY, &[]).map_err(errno("remounting / read-only"))
}

/// Writes `linux.sysctl` through the container's /proc.
pub fn sysctls(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
        return Ok(());
    };
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening /"))?;
    for (k, v) in map {
        if k.contains("..") || k.contains('/') && k.contains('.') {
            return Err(Error::InvalidConfig(format!(
                "sysctl {k:?} is not a sysctl name"
            )));
        }
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        let fd = open_in_root(&root, &p, OFlags::WRONLY | OFlags::TRUNC)
            .map_err(errno(format!("sysctl {k}")))?;
        rustix::io::write(&fd, v.as_bytes()).map_err(errno(format!("sysctl {k}={v}")))?;
    }
    Ok(())
}

impl AsFd for MountCtx<'_> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.root.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Options {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_set_and_clear() {
        let o = p(&["nosuid", "noexec", "ro", "rw", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MountFlags::NOSUID | MountFlags::NOEXEC);
        assert!(o.clear.contains(MountFlags::RDONLY));
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
    }

    #[test]
    fn bind_and_propagation() {
        let o = p(&["rbind", "rprivate", "slave"]);
        assert!(o.bind && o.recursive);
        assert_eq!(
            o.propagation,
            vec![
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
                MountPropagationFlags::DOWNSTREAM
            ]
        );
        let o = p(&["bind", "shared"]);
        assert!(o.bind && !o.recursive);
        assert_eq!(o.propagation, vec![MountPropagationFlags::SHARED]);
    }

    #[test]
    fn recursive_options_become_mount_attributes() {
        use berth_sys::mount::*;
        let o = p(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.rec_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_clear, MOUNT_ATTR__ATIME);
        let o = p(&["rro", "rrw"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn idmap_options() {
        assert_eq!(p(&["bind", "idmap"]).idmap, Some(false));
        assert_eq!(p(&["rbind", "ridmap"]).idmap, Some(true));
        assert_eq!(p(&["bind"]).idmap, None);
    }

    #[test]
    fn unsupported_options_say_so() {
        let e = parse_options(&["tmpcopyup".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tmpcopyup") && e.contains("not supported"),
            "{e}"
        );
    }
}
