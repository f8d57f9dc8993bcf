//! Who the process runs as: rlimits, groups, uid and gid, the five
//! capability sets, no_new_privs and umask, in the order the kernel needs.

use oci_spec::runtime::{Capability, LinuxCapabilities, PosixRlimit, PosixRlimitType, Process};
use rustix::process::{Resource, Rlimit};
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::error::{errno, Error, Result};

/// Capability names in kernel order (capability.h); the index is the number.
pub const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub fn cap_number(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    CAP_NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

fn cap_name(c: &Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A set of capabilities as a bit mask, from config names.
pub fn mask<'a>(caps: impl IntoIterator<Item = &'a Capability>, last_cap: u32) -> Result<u64> {
    let mut m = 0u64;
    for c in caps {
        let name = cap_name(c);
        let n = cap_number(&name)
            .ok_or_else(|| Error::InvalidConfig(format!("unknown capability {name}")))?;
        // A capability this kernel does not know cannot be granted; runc
        // skips it the same way.
        if n <= last_cap {
            m |= 1 << n;
        }
    }
    Ok(m)
}

pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The five sets as masks.
#[derive(Debug, Default, Clone, Copy)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

pub fn masks(caps: Option<&LinuxCapabilities>, last: u32) -> Result<CapMasks> {
    let Some(c) = caps else {
        return Ok(CapMasks::default());
    };
    Ok(CapMasks {
        bounding: c
            .bounding()
            .as_ref()
            .map(|s| mask(s, last))
            .transpose()?
            .unwrap_or(0),
        effective: c
            .effective()
            .as_ref()
            .map(|s| mask(s, last))
            .transpose()?
            .unwrap_or(0),
        permitted: c
            .permitted()
            .as_ref()
            .map(|s| mask(s, last))
            .transpose()?
            .unwrap_or(0),
        inheritable: c
            .inheritable()
            .as_ref()
            .map(|s| mask(s, last))
            .transpose()?
            .unwrap_or(0),
        ambient: c
            .ambient()
            .as_ref()
            .map(|s| mask(s, last))
            .transpose()?
            .unwrap_or(0),
    })
}

fn resource(t: PosixRlimitType) -> Result<Resource> {
    Ok(match t {
        PosixRlimitType::RlimitCpu => Resource::Cpu,
        PosixRlimitType::RlimitFsize => Resource::Fsize,
        PosixRlimitType::RlimitData => Resource::Data,
        PosixRlimitType::RlimitStack => Resource::Stack,
        PosixRlimitType::RlimitCore => Resource::Core,
        PosixRlimitType::RlimitRss => Resource::Rss,
        PosixRlimitType::RlimitNproc => Resource::Nproc,
        PosixRlimitType::RlimitNofile => Resource::Nofile,
        PosixRlimitType::RlimitMemlock => Resource::Memlock,
        PosixRlimitType::RlimitAs => Resource::As,
        PosixRlimitType::RlimitLocks => Resource::Locks,
        PosixRlimitType::RlimitSigpending => Resource::Sigpending,
        PosixRlimitType::RlimitMsgqueue => Resource::Msgqueue,
        PosixRlimitType::RlimitNice => Resource::Nice,
        PosixRlimitType::RlimitRtprio => Resource::Rtprio,
        PosixRlimitType::RlimitRttime => Resource::Rttime,
        #[allow(unreachable_patterns)]
        other => return Err(Error::Unsupported(format!("rlimit {other:?}"))),
    })
}

fn limit(v: u64) -> Option<u64> {
    if v == u64::MAX {
        None
    } else {
        Some(v)
    }
}

/// Sets each rlimit; a limit above the host's hard limit (which only
/// CAP_SYS_RESOURCE may raise) fails with an error naming the limit.
pub fn rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let name = l.typ().to_string();
        if l.soft() > l.hard() {
            return Err(Error::InvalidConfig(format!(
                "{name}: soft limit {} is above the hard limit {}",
                l.soft(),
                l.hard()
            )));
        }
        let res = resource(l.typ())?;
        let cur = rustix::process::getrlimit(res);
        if let Err(e) = rustix::process::setrlimit(
            res,
            Rlimit {
                current: limit(l.soft()),
                maximum: limit(l.hard()),
            },
        ) {
            let host = cur
                .maximum
                .map(|m| m.to_string())
                .unwrap_or_else(|| "unlimited".into());
            return Err(Error::InvalidConfig(format!(
                "{name}: cannot set {}:{} ({e}); the hard limit here is {host} and raising it needs CAP_SYS_RESOURCE",
                l.soft(),
                l.hard()
            )));
        }
    }
    Ok(())
}

/// Drops the bounding set, switches to the process's user, then sets the
/// remaining capability sets. Must run while still root with all caps.
pub fn switch_user(p: &Process, caps: &CapMasks, last: u32) -> Result<()> {
    for n in 0..=last {
        if caps.bounding & (1 << n) == 0 {
            match rustix::thread::remove_capability_from_bounding_set(cap_from(n)) {
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => {
                    return Err(errno(format!(
                        "dropping {} from the bounding set",
                        CAP_NAMES[n as usize]
                    ))(e))
                }
            }
        }
    }
    let u = p.user();
    rustix::thread::set_keep_capabilities(true).map_err(errno("keeping capabilities"))?;
    let groups: Vec<rustix::process::Gid> = u
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    match rustix::thread::set_thread_groups(&groups) {
        Ok(()) => {}
        // setgroups is denied in a user namespace that a rootless parent
        // made; only an empty list is then possible and already in place.
        Err(rustix::io::Errno::PERM) if groups.is_empty() => {}
        Err(e) => return Err(errno("setting additional groups")(e)),
    }
    let gid = rustix::process::Gid::from_raw(u.gid());
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(errno(format!("setting gid {}", u.gid())))?;
    let uid = rustix::process::Uid::from_raw(u.uid());
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(errno(format!("setting uid {}", u.uid())))?;
    rustix::thread::set_keep_capabilities(false).map_err(errno("clearing keep-capabilities"))?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::from_bits_retain(caps.effective),
            permitted: CapabilitySet::from_bits_retain(caps.permitted),
            inheritable: CapabilitySet::from_bits_retain(caps.inheritable),
        },
    )
    .map_err(errno("setting capabilities"))?;
    rustix::thread::clear_ambient_capability_set()
        .map_err(errno("clearing ambient capabilities"))?;
    for n in 0..=last {
        if caps.ambient & (1 << n) != 0 {
            // An ambient capability needs to be permitted and inheritable;
            // configs (runc's own `spec`) often list it without the latter.
            // runc skips those with a warning, and so do we.
            if let Err(e) = rustix::thread::configure_capability_in_ambient_set(cap_from(n), true) {
                tracing::debug!(cap = CAP_NAMES[n as usize], error = %e, "ambient capability not raised");
            }
        }
    }
    if let Some(mask) = u.umask() {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }
    Ok(())
}

fn cap_from(n: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1u64 << n)
}

/// HOME from the container's /etc/passwd for `uid`, as runc sets it when
/// the config does not.
pub fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel() {
        assert_eq!(cap_number("CAP_CHOWN"), Some(0));
        assert_eq!(cap_number("net_raw"), Some(13));
        assert_eq!(cap_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(cap_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_number("CAP_NOPE"), None);
        assert_eq!(CAP_NAMES.len(), 41);
    }

    #[test]
    fn masks_from_config() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_KILL","CAP_NET_RAW"],"effective":["CAP_KILL"]}"#,
        )
        .unwrap();
        let m = masks(Some(&c), 40).unwrap();
        assert_eq!(m.bounding, (1 << 5) | (1 << 13));
        assert_eq!(m.effective, 1 << 5);
        assert_eq!(m.permitted, 0);
    }

    #[test]
    fn soft_above_hard_is_refused() {
        let l: PosixRlimit =
            serde_json::from_str(r#"{"type":"RLIMIT_NOFILE","soft":10,"hard":5}"#).unwrap();
        assert!(rlimits(&[l])
            .unwrap_err()
            .to_string()
            .contains("RLIMIT_NOFILE"));
    }
}
