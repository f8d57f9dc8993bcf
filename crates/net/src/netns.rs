//! Named network namespaces: a namespace is kept alive by a bind mount of
//! its `/proc/thread-self/ns/net` on a file under the caller's runroot
//! (`<runroot>/netns/<id>`), the way `ip netns` does it under /run/netns.
//!
//! Namespace switches happen in short-lived helper threads: unshare and
//! setns of a network namespace affect only the calling thread, so the
//! caller's threads never change namespace.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::error::{Error, Result};

/// The path of the namespace of `id` under `runroot`.
pub fn path(runroot: &Path, id: &str) -> PathBuf {
    runroot.join("netns").join(id)
}

/// Creates the network namespace `<runroot>/netns/<id>` with its loopback
/// up, and returns its path. Fails with AlreadyExists if one is mounted
/// there already.
pub fn create(runroot: &Path, id: &str) -> Result<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(Error::Invalid(format!("invalid namespace name {id:?}")));
    }
    let dir = runroot.join("netns");
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let target = dir.join(id);
    // create_new: an existing file may already carry a mounted namespace.
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists(format!("network namespace {id}")))
        }
        Err(e) => return Err(Error::io(format!("create {}", target.display()), e)),
    }
    let t = target.clone();
    let made = std::thread::spawn(move || -> Result<()> {
        unshare_net().map_err(|e| Error::io("unshare(CLONE_NEWNET)", e))?;
        // thread-self, not self: /proc/self names the thread-group leader,
        // which is still in the caller's namespace.
        mount_bind("/proc/thread-self/ns/net", &t)
            .map_err(|e| Error::io(format!("bind mount netns on {}", t.display()), e.into()))?;
        crate::rtnl::Rtnl::open()?.set_up("lo")
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Invalid("netns helper thread panicked".into())));
    if let Err(e) = made {
        let _ = remove(&target);
        return Err(e);
    }
    Ok(target)
}

/// Unmounts and deletes a namespace made by [`create`]. A missing path is
/// not an error, so teardown can be repeated.
pub fn remove(path: &Path) -> Result<()> {
    match unmount(path, UnmountFlags::DETACH) {
        Ok(()) => {}
        // EINVAL: not a mount point (half-made); ENOENT: already gone.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => {}
        Err(e) => return Err(Error::io(format!("unmount {}", path.display()), e.into())),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// Runs `f` in a helper thread that has joined the namespace at `path`,
/// and returns its result. Sockets opened inside stay bound to that
/// namespace after the thread ends, which is how netlink sockets for a
/// container are made.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    let file =
        fs::File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(|e| Error::io(format!("setns {}", path.display()), e.into()))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Invalid("netns helper thread panicked".into())))
    })
}

/// unshare(CLONE_NEWNET) for the calling (helper) thread.
///
/// rustix 1.1 deprecated its safe `unshare` because CLONE_FILES can break
/// fd ownership across threads; CLONE_NEWNET alone has no such hazard, so
/// the deprecated safe entry point is sound here and keeps this crate free
/// of `unsafe`. When berth-sys grows a safe `unshare_net`, use that.
#[allow(deprecated)]
fn unshare_net() -> std::io::Result<()> {
    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET).map_err(Into::into)
}
