//! The few per-interface and global sysctls networking needs, written
//! through /proc/sys (a file write, not a subprocess).

use std::fs;

use crate::error::{Error, Result};

fn set(path: &str, value: &str) -> Result<()> {
    // Read first: skipping a write that changes nothing keeps us from
    // needing a writable /proc/sys when the host is already configured.
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    fs::write(path, value).map_err(|e| Error::io(format!("write {path}"), e))
}

/// Lets packets with a 127.0.0.0/8 source leave on `iface`, so a port
/// published on 127.0.0.1 can be DNATed to a container (docker sets the
/// same on docker0).
pub fn route_localnet(iface: &str) -> Result<()> {
    set(
        &format!("/proc/sys/net/ipv4/conf/{iface}/route_localnet"),
        "1",
    )
}

/// Turns on IPv4 forwarding, which containers reaching anything beyond
/// their bridge need (docker and podman set it too).
pub fn ip_forward() -> Result<()> {
    set("/proc/sys/net/ipv4/ip_forward", "1")
}

/// IPv6 forwarding, for dual-stack networks. (On a host that configures
/// itself by router advertisements, forwarding turns them off unless
/// accept_ra is 2: docker has the same caveat.)
pub fn ip6_forward() -> Result<()> {
    set("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}

/// Turns IPv6 off on `iface` of the calling thread's namespace; nothing
/// to do on a kernel without IPv6.
pub fn disable_ipv6(iface: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6");
    match fs::write(&path, "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| Error::io(format!("write {path}"), e)),
    }
}
