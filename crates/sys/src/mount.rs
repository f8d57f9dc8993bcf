//! mount_setattr(2), which rustix lacks: mount attributes applied to a
//! whole mount tree at once (the recursive `rro`, `rnosuid`... options).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
/// The atime bits form one field: clear it to set RELATIME (0).
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
/// Shows the mount's files through the id mappings of a user namespace.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

const AT_EMPTY_PATH: u32 = 0x1000;
const AT_RECURSIVE: u32 = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets and clears mount attributes on the mount at `fd` and every mount
/// below it.
pub fn setattr_recursive(fd: BorrowedFd<'_>, set: u64, clear: u64) -> io::Result<()> {
    setattr(fd, set, clear, None, true)
}

/// mount_setattr on the mount (tree, with `recursive`) at `fd`; `userns`
/// goes with MOUNT_ATTR_IDMAP.
pub fn setattr(
    fd: BorrowedFd<'_>,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd<'_>>,
    recursive: bool,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map(|u| u.as_raw_fd() as u64).unwrap_or(0),
    };
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the path is a valid empty C string, `attr` lives across the
    // call and its size is passed; the kernel only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
