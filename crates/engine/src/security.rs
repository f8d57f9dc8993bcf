//! Capabilities, seccomp profiles and devices: docker's rules for
//! `--cap-add/--cap-drop`, `--privileged`, `--security-opt seccomp=FILE`
//! and `--device`, as pure functions where they can be.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::spec::DEFAULT_CAPS;

/// Every capability, in the kernel's order (CAP_CHOWN is 0); the host's
/// `cap_last_cap` cuts the list on older kernels. The runtime's table is
/// the one source.
pub const ALL_CAPS: &[&str] = berth_runtime::CAP_NAMES;

/// `NET_ADMIN`, `cap_net_admin` and `CAP_NET_ADMIN` are one capability;
/// `ALL` stays `ALL`. Unknown names are refused, naming the flag.
pub fn normalize_cap(flag: &str, c: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid value {c:?} for {flag}: unknown capability"
        )))
    }
}

/// The capabilities of bounding set `mask` (bit N is capability N).
pub fn caps_of_mask(mask: u64) -> Vec<String> {
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// What "all capabilities" is on this host: our own bounding set. Under a
/// host (or an outer container) that withholds some, asking for more
/// would only make the container's start fail.
pub fn host_caps() -> Vec<String> {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    caps_of_mask(mask)
}

/// moby's `TweakCapabilities`: `--cap-add ALL` is everything but the
/// drops, `--cap-drop ALL` keeps only the adds, otherwise the base set
/// minus the drops plus the adds. `privileged` starts from everything.
pub fn capabilities(
    add: &[String],
    drop: &[String],
    privileged: bool,
    all: &[String],
) -> Vec<String> {
    let has = |l: &[String], c: &str| l.iter().any(|x| x == c);
    let base: Vec<String> = if privileged {
        all.to_vec()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    let mut caps: Vec<String> = if has(add, "ALL") {
        all.iter().filter(|c| !has(drop, c)).cloned().collect()
    } else if has(drop, "ALL") {
        add.to_vec()
    } else {
        base.into_iter()
            .filter(|c| !has(drop, c))
            .chain(add.iter().cloned())
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| all.contains(c) && seen.insert(c.clone()));
    caps
}

/// A docker seccomp profile (moby's `default.json` format) as an OCI
/// `linux.seccomp`: `archMap` becomes the architecture list and entries
/// are kept by their `includes`/`excludes` of capabilities and arches.
/// An OCI-shaped profile passes through the same way.
pub fn seccomp_from_profile(profile: &str, caps: &[String]) -> Result<Value> {
    let bad = |why: String| Error::InvalidArgument(format!("seccomp profile: {why}"));
    let p: Value = serde_json::from_str(profile).map_err(|e| bad(e.to_string()))?;
    let default = p["defaultAction"]
        .as_str()
        .ok_or_else(|| bad("defaultAction is missing".into()))?;
    let arch = host_seccomp_arch();
    let mut arches: Vec<Value> = Vec::new();
    if let Some(map) = p["archMap"].as_array() {
        for m in map {
            if m["architecture"].as_str() == Some(arch) {
                arches.push(m["architecture"].clone());
                if let Some(sub) = m["subArchitectures"].as_array() {
                    arches.extend(sub.iter().cloned());
                }
            }
        }
    } else if let Some(a) = p["architectures"].as_array() {
        arches = a.clone();
    }
    let go_arch = if arch == "SCMP_ARCH_X86_64" {
        "amd64"
    } else {
        "arm64"
    };
    let mut syscalls = Vec::new();
    for s in p["syscalls"].as_array().into_iter().flatten() {
        let list = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(normalize_profile_cap))
                .collect()
        };
        let inc_caps = list(&s["includes"]["caps"]);
        let inc_arch = list(&s["includes"]["arches"]);
        let exc_caps = list(&s["excludes"]["caps"]);
        let exc_arch = list(&s["excludes"]["arches"]);
        let arch_ok = |l: &[String]| l.iter().any(|a| a.eq_ignore_ascii_case(go_arch));
        let keep = inc_caps.iter().all(|c| caps.contains(c))
            && (inc_arch.is_empty() || arch_ok(&inc_arch))
            && !exc_caps.iter().any(|c| caps.contains(c))
            && !arch_ok(&exc_arch);
        if !keep {
            continue;
        }
        let mut names: Vec<Value> = s["names"].as_array().cloned().unwrap_or_default();
        if let Some(n) = s["name"].as_str() {
            names.push(json!(n));
        }
        let mut rule = json!({"names": names, "action": s["action"]});
        for k in ["args", "errnoRet"] {
            if !s[k].is_null() {
                rule[k] = s[k].clone();
            }
        }
        syscalls.push(rule);
    }
    let mut out = json!({"defaultAction": default, "architectures": arches, "syscalls": syscalls});
    for k in ["defaultErrnoRet", "flags", "listenerPath"] {
        if !p[k].is_null() {
            out[k] = p[k].clone();
        }
    }
    // Refuse what the runtime could not compile now, at create time.
    let spec: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_value(out.clone()).map_err(|e| bad(e.to_string()))?;
    berth_runtime::seccomp::compile(&spec).map_err(|e| bad(e.to_string()))?;
    Ok(out)
}

fn normalize_profile_cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") || !up.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn host_seccomp_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "SCMP_ARCH_AARCH64"
    } else {
        "SCMP_ARCH_X86_64"
    }
}

/// A device node on the host, as the spec's `linux.devices` entry needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub path: String,
    /// `c` or `b`.
    pub typ: char,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Stats `host` (following symlinks, as docker does) for `--device`.
pub fn stat_device(host: &str, in_container: &str) -> Result<HostDevice> {
    use rustix::fs::FileType;
    let st = rustix::fs::stat(host).map_err(|e| {
        Error::InvalidArgument(format!(
            "invalid value {host:?} for --device: {}",
            std::io::Error::from(e)
        ))
    })?;
    let typ = match FileType::from_raw_mode(st.st_mode) {
        FileType::CharacterDevice => 'c',
        FileType::BlockDevice => 'b',
        _ => {
            return Err(Error::InvalidArgument(format!(
                "invalid value {host:?} for --device: not a device node"
            )))
        }
    };
    Ok(HostDevice {
        path: in_container.to_string(),
        typ,
        major: rustix::fs::major(st.st_rdev),
        minor: rustix::fs::minor(st.st_rdev),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

/// Every device node under the host's /dev, for `--privileged` (moby's
/// `HostDevices`: pseudo-terminal, shm and mqueue trees are the
/// container's own).
pub fn host_devices() -> Vec<HostDevice> {
    let mut out = Vec::new();
    walk_dev(Path::new("/dev"), &mut out);
    out
}

fn walk_dev(dir: &Path, out: &mut Vec<HostDevice>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let skip = ["pts", "shm", "mqueue", "fd", ".lxc", ".udev", "hugepages"];
            if !skip.iter().any(|s| e.file_name() == *s) {
                walk_dev(&p, out);
            }
        } else if !ft.is_symlink() {
            let s = p.to_string_lossy();
            if s == "/dev/console" || s == "/dev/ptmx" {
                continue;
            }
            if let Ok(d) = stat_device(&s, &s) {
                out.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn caps_follow_moby() {
        let all = caps_of_mask(u64::MAX);
        let d = capabilities(&[], &[], false, &all);
        assert_eq!(d.len(), 14);
        let c = capabilities(&s(&["CAP_NET_ADMIN"]), &s(&["CAP_CHOWN"]), false, &all);
        assert!(c.contains(&"CAP_NET_ADMIN".into()) && !c.contains(&"CAP_CHOWN".into()));
        assert_eq!(c.len(), 14);
        let c = capabilities(&s(&["CAP_KILL"]), &s(&["ALL"]), false, &all);
        assert_eq!(c, ["CAP_KILL"]);
        let c = capabilities(&s(&["ALL"]), &s(&["CAP_SYS_ADMIN"]), false, &all);
        assert_eq!(c.len(), 40);
        assert_eq!(capabilities(&[], &[], true, &all).len(), 41);
        // A host without CAP_SYS_RESOURCE (24) gives 40 to --privileged.
        let fewer = caps_of_mask(!(1 << 24));
        let c = capabilities(&[], &[], true, &fewer);
        assert!(c.len() == 40 && !c.contains(&"CAP_SYS_RESOURCE".to_string()));
        assert_eq!(
            normalize_cap("--cap-add", "net_admin").unwrap(),
            "CAP_NET_ADMIN"
        );
        assert!(normalize_cap("--cap-add", "CAP_BOGUS")
            .unwrap_err()
            .to_string()
            .contains("--cap-add"));
    }

    #[test]
    fn docker_profiles_convert() {
        let p = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]},
                       {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":[]}],
            "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                        {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                        {"names":["chmod"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"excludes":{"caps":["CAP_FOWNER"]}}]}"#;
        let v = seccomp_from_profile(p, &s(&["CAP_FOWNER"])).unwrap();
        assert_eq!(v["syscalls"].as_array().unwrap().len(), 1);
        assert_eq!(v["defaultErrnoRet"], 1);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                v["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
            );
        }
        let v = seccomp_from_profile(p, &s(&["CAP_SYS_ADMIN"])).unwrap();
        assert_eq!(v["syscalls"].as_array().unwrap().len(), 3);
        assert!(seccomp_from_profile("{}", &[]).is_err());
        assert!(seccomp_from_profile("not json", &[]).is_err());
    }

    #[test]
    fn devices_are_stat_ed() {
        let d = stat_device("/dev/null", "/dev/mynull").unwrap();
        assert_eq!((d.typ, d.major, d.minor), ('c', 1, 3));
        assert!(stat_device("/etc/hostname", "/dev/x").is_err());
        assert!(stat_device("/nonexistent", "/dev/x").is_err());
    }
}
