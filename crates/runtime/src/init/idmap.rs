//! Idmapped bind mounts (the `idmap` and `ridmap` options): the source tree
//! is cloned with open_tree, shown through the id mappings of a user
//! namespace made for it, and moved onto the target.

use std::os::fd::{AsFd, OwnedFd};

use oci_spec::runtime::LinuxIdMapping;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

use crate::error::{errno, io_err, Error, Result};
use crate::namespaces::CLONE_NEWUSER;

/// A user namespace holding the mappings: a child parks in a new user
/// namespace while we write its maps and open it, then leaves.
pub fn userns_with(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (r, w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(errno("pipe"))?;
    match berth_sys::process::fork_with_flags(CLONE_NEWUSER, true, None)
        .map_err(io_err("cloning a user namespace for an idmapped mount"))?
    {
        berth_sys::process::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            let _ = rustix::io::read(&r, &mut b);
            berth_sys::process::exit_now(0)
        }
        berth_sys::process::Forked::Parent { pid, pidfd } => {
            drop(r);
            let result = (|| {
                // We may sit in the container's pid namespace while /proc is
                // still the host's: name the child by its host pid, which
                // the pidfd's fdinfo gives in this procfs's terms.
                let host_pid = match &pidfd {
                    Some(fd) => host_pid_of(fd)?,
                    None => pid,
                };
                let map = |v: &[LinuxIdMapping]| -> String {
                    v.iter()
                        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                        .collect()
                };
                std::fs::write(format!("/proc/{host_pid}/uid_map"), map(uids))
                    .map_err(io_err("writing an idmap's uid_map"))?;
                std::fs::write(format!("/proc/{host_pid}/gid_map"), map(gids))
                    .map_err(io_err("writing an idmap's gid_map"))?;
                rustix::fs::open(
                    format!("/proc/{host_pid}/ns/user").as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno("opening an idmap's user namespace"))
            })();
            drop(w);
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
            result
        }
    }
}

fn host_pid_of(pidfd: &OwnedFd) -> Result<i32> {
    let info = std::fs::read_to_string(format!(
        "/proc/self/fdinfo/{}",
        std::os::fd::AsRawFd::as_raw_fd(pidfd)
    ))
    .map_err(io_err("reading a pidfd's fdinfo"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Init("pidfd fdinfo has no Pid line".into()))
}

/// Clones the tree at `source`, idmaps it, and moves it onto the resolved
/// target open at `target`.
pub fn mount_idmapped(
    source: &str,
    target: &OwnedFd,
    userns: &OwnedFd,
    recursive: bool,
) -> Result<()> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = open_tree(rustix::fs::CWD, source, flags)
        .map_err(errno(format!("cloning the mount tree of {source}")))?;
    berth_sys::mount::setattr(
        tree.as_fd(),
        berth_sys::mount::MOUNT_ATTR_IDMAP,
        0,
        Some(userns.as_fd()),
        recursive,
    )
    .map_err(io_err(format!("idmapping {source}")))?;
    move_mount(
        tree.as_fd(),
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(errno(format!("moving the idmapped {source} into place")))
}
