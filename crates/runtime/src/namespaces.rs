//! Namespaces: which to create with clone, which to join by path, and the
//! order the kernel needs (user first, pid and time through the parent).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxNamespaceType};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::error::{errno, io_err, Error, Result};

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;
pub const CLONE_NEWTIME: u64 = 0x0000_0080;

/// The namespace plan of a config.
#[derive(Debug, Default)]
pub struct Plan {
    /// Flags for clone: the namespaces created with the child.
    pub clone_flags: u64,
    /// A new cgroup namespace is made by the init itself once it sits in its
    /// cgroup, so that the namespace's root is the container's cgroup.
    pub new_cgroup: bool,
    pub new_time: bool,
    /// Namespaces to join by path, in the order the child must join them.
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// pid and time namespaces are joined by the parent: they apply to children.
    pub parent_join: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// Namespaces the parent enters for the clone only (see [`plan`]).
    pub parent_enter: Vec<(LinuxNamespaceType, OwnedFd)>,
}

impl Plan {
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.clone_flags & flag(t) != 0
            || (t == LinuxNamespaceType::Cgroup && self.new_cgroup)
            || (t == LinuxNamespaceType::Time && self.new_time)
            || self
                .join
                .iter()
                .chain(self.parent_join.iter())
                .chain(self.parent_enter.iter())
                .any(|(k, _)| *k == t)
    }
}

pub fn flag(t: LinuxNamespaceType) -> u64 {
    match t {
        LinuxNamespaceType::Mount => CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CLONE_NEWIPC,
        LinuxNamespaceType::User => CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CLONE_NEWPID,
        LinuxNamespaceType::Network => CLONE_NEWNET,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    }
}

fn link_type(t: LinuxNamespaceType) -> LinkNameSpaceType {
    match t {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::User => LinkNameSpaceType::User,
        LinuxNamespaceType::Pid => LinkNameSpaceType::ProcessID,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
    }
}

/// The order of joining: user first (it grants the rights for the rest),
/// mount last (after it, host paths are gone).
fn rank(t: LinuxNamespaceType) -> u8 {
    match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Ipc => 1,
        LinuxNamespaceType::Uts => 2,
        LinuxNamespaceType::Network => 3,
        LinuxNamespaceType::Pid => 4,
        LinuxNamespaceType::Time => 5,
        LinuxNamespaceType::Cgroup => 6,
        LinuxNamespaceType::Mount => 7,
    }
}

fn time_ns_available() -> bool {
    Path::new("/proc/self/ns/time").exists()
}

pub fn plan(linux: &Linux) -> Result<Plan> {
    let mut p = Plan::default();
    let mut joins = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let t = ns.typ();
        if t == LinuxNamespaceType::Time && !time_ns_available() {
            return Err(Error::Unsupported(
                "the time namespace (this kernel has none)".into(),
            ));
        }
        match ns.path() {
            Some(path) if !path.as_os_str().is_empty() => {
                let f = File::open(path)
                    .map_err(io_err(format!("opening {t} namespace {}", path.display())))?;
                joins.push((t, OwnedFd::from(f)));
            }
            _ => match t {
                LinuxNamespaceType::Cgroup => p.new_cgroup = true,
                LinuxNamespaceType::Time => p.new_time = true,
                _ => p.clone_flags |= flag(t),
            },
        }
    }
    joins.sort_by_key(|(t, _)| rank(*t));
    let new_user = p.clone_flags & CLONE_NEWUSER != 0;
    for (t, fd) in joins {
        match t {
            LinuxNamespaceType::Pid | LinuxNamespaceType::Time => p.parent_join.push((t, fd)),
            // The init is born in its new user namespace, where it holds
            // no capability over namespaces owned outside it (a network
            // namespace made beforehand is the host's): it inherits these
            // from the parent, which enters them around the clone.
            LinuxNamespaceType::Network | LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts
                if new_user =>
            {
                p.parent_enter.push((t, fd))
            }
            _ => p.join.push((t, fd)),
        }
    }
    Ok(p)
}

/// The parent's own namespaces, to go back to after [`enter`].
pub struct Entered(Vec<(LinuxNamespaceType, OwnedFd)>);

/// Enters `list`, remembering the namespaces left.
pub fn enter(list: &[(LinuxNamespaceType, OwnedFd)]) -> Result<Entered> {
    let mut saved = Entered(Vec::new());
    for (t, fd) in list {
        let own = format!("/proc/thread-self/ns/{}", proc_name(*t));
        let f = File::open(&own).map_err(io_err(format!("opening {own}")))?;
        join(*t, fd)?;
        saved.0.push((*t, OwnedFd::from(f)));
    }
    Ok(saved)
}

impl Entered {
    /// Goes back to the namespaces left.
    pub fn leave(mut self) -> Result<()> {
        let saved = std::mem::take(&mut self.0);
        for (t, fd) in saved.iter().rev() {
            join(*t, fd)?;
        }
        Ok(())
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        for (t, fd) in self.0.iter().rev() {
            if let Err(e) = join(*t, fd) {
                tracing::error!(error = %e, "going back to our own {t} namespace");
            }
        }
    }
}

/// The namespace's name under /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Joins `list` in its order, except that with a user namespace among
/// them every other is tried first: one owned outside that user namespace
/// (the host's network namespace of a container with its own users) can
/// only be entered while we still hold our capabilities, and one owned
/// inside it that refuses us (we are not privileged outside) is joined
/// again once we are its root.
pub fn join_all(list: &[(LinuxNamespaceType, OwnedFd)]) -> Result<()> {
    let Some((_, user)) = list.iter().find(|(t, _)| *t == LinuxNamespaceType::User) else {
        for (t, fd) in list {
            join(*t, fd)?;
        }
        return Ok(());
    };
    let mut later = Vec::new();
    for (t, fd) in list.iter().filter(|(t, _)| *t != LinuxNamespaceType::User) {
        match move_into_link_name_space(fd.as_fd(), Some(link_type(*t))) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) => later.push((*t, fd)),
            Err(e) => return Err(errno(format!("joining the {t} namespace"))(e)),
        }
    }
    join(LinuxNamespaceType::User, user)?;
    for (t, fd) in later {
        join(t, fd)?;
    }
    Ok(())
}

pub fn join(t: LinuxNamespaceType, fd: &OwnedFd) -> Result<()> {
    move_into_link_name_space(fd.as_fd(), Some(link_type(t)))
        .map_err(errno(format!("joining the {t} namespace")))
}

/// Unshares the time namespace for the children of the caller and writes
/// the configured offsets before any process enters it.
pub fn unshare_time(linux: &Linux) -> Result<()> {
    unshare_ns(rustix::thread::UnshareFlags::from_bits_retain(
        CLONE_NEWTIME as u32,
    ))
    .map_err(errno("creating the time namespace"))?;
    let mut lines = String::new();
    for (clock, off) in linux.time_offsets().iter().flatten() {
        let id = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(Error::InvalidConfig(format!(
                    "timeOffsets: unknown clock {other:?}"
                )))
            }
        };
        lines.push_str(&format!(
            "{id} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !lines.is_empty() {
        std::fs::write("/proc/self/timens_offsets", lines)
            .map_err(io_err("writing timens_offsets"))?;
    }
    Ok(())
}

/// unshare(2) for namespace flags. rustix deprecates its safe `unshare`
/// because CLONE_FILES/CLONE_FS could break assumptions of other threads;
/// we pass only namespace flags, from a single-threaded process.
#[allow(deprecated)]
pub fn unshare_ns(flags: rustix::thread::UnshareFlags) -> rustix::io::Result<()> {
    rustix::thread::unshare(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_creates_and_orders() {
        let linux: Linux = serde_json::from_str(
            r#"{"namespaces":[{"type":"mount"},{"type":"pid"},{"type":"cgroup"},{"type":"network","path":"/proc/self/ns/net"},{"type":"user","path":"/proc/self/ns/user"}]}"#,
        )
        .unwrap();
        let p = plan(&linux).unwrap();
        assert_eq!(p.clone_flags, CLONE_NEWNS | CLONE_NEWPID);
        assert!(p.new_cgroup);
        let order: Vec<_> = p.join.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            order,
            vec![LinuxNamespaceType::User, LinuxNamespaceType::Network]
        );
        assert!(p.has(LinuxNamespaceType::Network));
        assert!(!p.has(LinuxNamespaceType::Uts));
    }

    #[test]
    fn a_new_user_namespace_inherits_the_joined_network_from_the_parent() {
        let linux: Linux = serde_json::from_str(
            r#"{"namespaces":[{"type":"user"},{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"},{"type":"ipc","path":"/proc/self/ns/ipc"},{"type":"cgroup","path":"/proc/self/ns/cgroup"}]}"#,
        )
        .unwrap();
        let p = plan(&linux).unwrap();
        assert_eq!(p.clone_flags, CLONE_NEWUSER | CLONE_NEWNS);
        let entered: Vec<_> = p.parent_enter.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            entered,
            vec![LinuxNamespaceType::Ipc, LinuxNamespaceType::Network]
        );
        let joined: Vec<_> = p.join.iter().map(|(t, _)| *t).collect();
        assert_eq!(joined, vec![LinuxNamespaceType::Cgroup]);
        assert!(p.has(LinuxNamespaceType::Network));
    }

    #[test]
    fn missing_namespace_path_names_it() {
        let linux: Linux =
            serde_json::from_str(r#"{"namespaces":[{"type":"network","path":"/nonexistent/ns"}]}"#)
                .unwrap();
        let e = plan(&linux).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ns"), "{e}");
    }
}
