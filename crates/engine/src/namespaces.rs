//! The namespaces a container has of its own or shares: docker's `--pid`,
//! `--ipc`, `--uts`, `--cgroupns` and `--userns` (whose ids are in
//! [`crate::userns`]). The flag parsers, docker's rules between them,
//! another container's namespaces found at create and at start, and their
//! part of the spec.
//!
//! `--ipc shareable` is docker's: the container's /dev/shm is a tmpfs the
//! engine mounts on the host (`<root>/containers/<id>/shm`), so a container
//! joining its IPC namespace gets the same POSIX shared memory as well as
//! the same SysV objects.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::container::Engine;
use crate::db::{Container, State};
use crate::error::{io_err, Error, Result};
use crate::hostconfig::HostConfig;
use crate::options::{Network, RunOptions};

/// docker's /dev/shm size.
const SHM_DEFAULT: i64 = 64 << 20;

fn bad(flag: &str, value: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("invalid value {value:?} for {flag}: {why}"))
}

/// The container a `container:NAME` mode names.
pub fn target(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:")
}

fn parse_container(flag: &str, s: &str) -> Result<()> {
    match target(s) {
        Some("") => Err(bad(flag, s, "container: needs a container's name or id")),
        _ => Ok(()),
    }
}

/// `--pid host|container:NAME`.
pub fn parse_pid(s: &str) -> Result<String> {
    match s {
        "" | "host" => Ok(s.into()),
        _ if target(s).is_some() => parse_container("--pid", s).map(|_| s.into()),
        _ => Err(bad("--pid", s, "expected host or container:NAME")),
    }
}

/// `--ipc none|private|shareable|host|container:NAME`.
pub fn parse_ipc(s: &str) -> Result<String> {
    match s {
        "" | "none" | "private" | "shareable" | "host" => Ok(s.into()),
        _ if target(s).is_some() => parse_container("--ipc", s).map(|_| s.into()),
        _ => Err(bad(
            "--ipc",
            s,
            "expected none, private, shareable, host or container:NAME",
        )),
    }
}

/// `--uts host`.
pub fn parse_uts(s: &str) -> Result<String> {
    match s {
        "" | "host" => Ok(s.into()),
        _ => Err(bad("--uts", s, "expected host")),
    }
}

/// `--cgroupns host|private`.
pub fn parse_cgroupns(s: &str) -> Result<String> {
    match s {
        "host" | "private" => Ok(s.into()),
        _ => Err(bad("--cgroupns", s, "expected host or private")),
    }
}

/// docker's default `--cgroupns`: private where the host has one cgroup2
/// hierarchy, host on v1 and hybrid hosts.
pub fn default_cgroupns() -> &'static str {
    const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
    match rustix::fs::statfs("/sys/fs/cgroup") {
        // f_type's type differs between architectures.
        Ok(s) if s.f_type as u64 == CGROUP2_SUPER_MAGIC => "private",
        _ => "host",
    }
}

/// docker's rules between the modes and the other options, for what
/// needs no other container.
pub fn check(opts: &RunOptions) -> Result<()> {
    let h = &opts.host;
    let conflict = |m: &str| Err(Error::InvalidArgument(m.to_string()));
    if h.uts_mode == "host" {
        if opts.hostname.is_some() {
            return conflict("conflicting options: hostname and the UTS mode (--uts host)");
        }
        if opts.domainname.as_deref().is_some_and(|d| !d.is_empty()) {
            return conflict("conflicting options: domainname and the UTS mode (--uts host)");
        }
    }
    if crate::userns::size_of_mode(&h.userns_mode)?.is_some() {
        if h.privileged {
            return conflict(
                "privileged mode is incompatible with user namespaces: run it with --userns host",
            );
        }
        if opts.network == Network::Host {
            return conflict(
                "cannot share the host's network namespace when user namespaces are enabled",
            );
        }
        if h.pid_mode == "host" {
            return conflict(
                "cannot share the host PID namespace when user namespaces are enabled",
            );
        }
        // Another container's namespaces belong to another user namespace
        // (or to the host's), which a container's root may not enter.
        for (flag, mode) in [
            ("--pid", h.pid_mode.clone()),
            ("--ipc", h.ipc_mode.clone()),
            ("--network", opts.network.mode()),
        ] {
            if target(&mode).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "{flag} container: cannot be used with --userns auto"
                )));
            }
        }
    }
    Ok(())
}

impl Engine {
    /// At create: docker's defaults filled in, and `container:NAME`
    /// modes pointed at that container's id (it must exist; for `--ipc`
    /// it must share its IPC).
    pub(crate) fn resolve_namespaces(&self, id: &str, h: &mut HostConfig) -> Result<()> {
        if h.ipc_mode.is_empty() {
            h.ipc_mode = "private".into();
        }
        if h.cgroupns_mode.is_empty() {
            h.cgroupns_mode = default_cgroupns().into();
        }
        if let Some(t) = target(&h.pid_mode) {
            let t = self.find(t)?;
            h.pid_mode = format!("container:{}", t.id);
        }
        if let Some(t) = target(&h.ipc_mode) {
            let t = self.find(t)?;
            donor_shares_ipc(&t)?;
            h.ipc_mode = format!("container:{}", t.id);
        }
        if target(&h.pid_mode) == Some(id) || target(&h.ipc_mode) == Some(id) {
            return Err(Error::InvalidArgument(
                "a container cannot share its own namespaces".into(),
            ));
        }
        Ok(())
    }

    /// At start: the other containers' namespaces (they must run) and the
    /// host directory for /dev/shm, mounting the container's own if it is
    /// shareable.
    pub(crate) fn shared_namespaces(&self, c: &Container) -> Result<Shared> {
        let h = &c.config.host_config;
        let mut s = Shared::default();
        if let Some(t) = target(&h.pid_mode) {
            let t = self.running_donor(t, "share its PID namespace (--pid container:)")?;
            s.pid = Some(ns_path(t.pid, "pid"));
        }
        match h.ipc_mode.as_str() {
            "shareable" => s.shm = Some(self.mount_shm(&c.id, h.shm_size)?),
            "host" => s.shm = Some(PathBuf::from("/dev/shm")),
            mode => {
                if let Some(t) = target(mode) {
                    let t = self.running_donor(t, "share its IPC (--ipc container:)")?;
                    donor_shares_ipc(&t)?;
                    s.ipc = Some(ns_path(t.pid, "ipc"));
                    s.shm = Some(match t.config.host_config.ipc_mode.as_str() {
                        "host" => PathBuf::from("/dev/shm"),
                        _ => self.mount_shm(&t.id, t.config.host_config.shm_size)?,
                    });
                }
            }
        }
        Ok(s)
    }

    fn running_donor(&self, key: &str, op: &'static str) -> Result<Container> {
        let t = self.find(key)?;
        if t.state != State::Running
            || t.pid <= 0
            || !Path::new(&format!("/proc/{}", t.pid)).exists()
        {
            return Err(Error::WrongState {
                id: t.id,
                state: t.state.to_string(),
                op,
            });
        }
        Ok(t)
    }

    fn shm_dir(&self, id: &str) -> PathBuf {
        self.paths.container_dir(id).join("shm")
    }

    /// The tmpfs of a shareable /dev/shm, mounted once per run.
    fn mount_shm(&self, id: &str, size: i64) -> Result<PathBuf> {
        use rustix::mount::{mount, MountFlags};
        let dir = self.shm_dir(id);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        if is_mount_point(&dir) {
            return Ok(dir);
        }
        let size = if size > 0 { size } else { SHM_DEFAULT };
        let data = std::ffi::CString::new(format!("mode=1777,size={size}"))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        mount(
            "shm",
            &dir,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            Some(data.as_c_str()),
        )
        .map_err(|e| io_err(format!("mounting the shm of {id}"))(e.into()))?;
        Ok(dir)
    }

    /// Unmounts a shareable /dev/shm (when the container stops).
    pub(crate) fn unmount_shm(&self, id: &str) -> Result<()> {
        let dir = self.shm_dir(id);
        if dir.exists() {
            crate::container::unmount(&dir)?;
        }
        Ok(())
    }
}

/// docker's rule: only a shareable (or host) IPC may be joined.
fn donor_shares_ipc(t: &Container) -> Result<()> {
    match t.config.host_config.ipc_mode.as_str() {
        "shareable" | "host" => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "container {}: non-shareable IPC (hint: use --ipc shareable for the donor container)",
            t.name
        ))),
    }
}

fn ns_path(pid: i32, ns: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{ns}"))
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(parent) = rustix::fs::stat(dir.join("..")) else {
        return false;
    };
    rustix::fs::stat(dir).is_ok_and(|s| s.st_dev != parent.st_dev)
}

/// What the modes join, found at start.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// `--pid container:`: that container's pid namespace.
    pub pid: Option<PathBuf>,
    /// `--ipc container:`: that container's IPC namespace.
    pub ipc: Option<PathBuf>,
    /// The host directory bound on /dev/shm (`--ipc shareable|host|container:`).
    pub shm: Option<PathBuf>,
    /// `--userns auto`: volume names to their idmapped views, bound in
    /// place of their data directories.
    pub volumes: std::collections::BTreeMap<String, PathBuf>,
}

/// The spec's namespaces but the network's (see `spec::build`).
pub(crate) fn spec_namespaces(h: &HostConfig, shared: &Shared) -> Vec<Value> {
    let mut ns = Vec::new();
    let mut add = |typ: &str, path: Option<&PathBuf>| {
        ns.push(match path {
            Some(p) => json!({"type": typ, "path": p}),
            None => json!({"type": typ}),
        });
    };
    if h.id_map.is_some() {
        add("user", None);
    }
    if h.pid_mode != "host" {
        add("pid", shared.pid.as_ref());
    }
    if h.ipc_mode != "host" {
        add("ipc", shared.ipc.as_ref());
    }
    if h.uts_mode != "host" {
        add("uts", None);
    }
    add("mount", None);
    if h.cgroupns_mode != "host" {
        add("cgroup", None);
    }
    ns
}

/// The modes' changes to the rest of the spec: no hostname without a UTS
/// namespace (the runtime would set the host's), /dev/shm, the user
/// namespace's mappings.
pub(crate) fn apply(v: &mut Value, h: &HostConfig, shared: &Shared) {
    if h.uts_mode == "host" {
        if let Some(o) = v.as_object_mut() {
            o.remove("hostname");
            o.remove("domainname");
        }
    }
    if let Some(mounts) = v["mounts"].as_array_mut() {
        if h.ipc_mode == "none" {
            mounts.retain(|m| m["destination"] != "/dev/shm");
        } else if let Some(shm) = &shared.shm {
            for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
                *m = json!({"destination": "/dev/shm", "type": "bind", "source": shm,
                            "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]});
            }
        }
    }
    if let Some(m) = &h.id_map {
        v["linux"]["uidMappings"] = m.mappings(false);
        v["linux"]["gidMappings"] = m.mappings(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_name_themselves() {
        assert_eq!(parse_pid("host").unwrap(), "host");
        assert_eq!(parse_pid("container:web").unwrap(), "container:web");
        assert!(parse_pid("container:")
            .unwrap_err()
            .to_string()
            .contains("--pid"));
        assert!(parse_pid("private")
            .unwrap_err()
            .to_string()
            .contains("--pid"));
        for ok in ["none", "private", "shareable", "host", "container:x"] {
            assert_eq!(parse_ipc(ok).unwrap(), ok);
        }
        assert!(parse_ipc("shared")
            .unwrap_err()
            .to_string()
            .contains("--ipc"));
        assert_eq!(parse_uts("host").unwrap(), "host");
        assert!(parse_uts("private").is_err());
        assert_eq!(parse_cgroupns("private").unwrap(), "private");
        assert!(parse_cgroupns("")
            .unwrap_err()
            .to_string()
            .contains("--cgroupns"));
    }

    fn opts(h: HostConfig) -> RunOptions {
        RunOptions {
            image: "bb".into(),
            host: h,
            ..Default::default()
        }
    }

    #[test]
    fn dockers_conflicts() {
        let uts = HostConfig {
            uts_mode: "host".into(),
            ..Default::default()
        };
        let mut o = opts(uts.clone());
        check(&o).unwrap();
        o.hostname = Some("x".into());
        assert!(check(&o)
            .unwrap_err()
            .to_string()
            .contains("hostname and the UTS mode"));
        let auto = HostConfig {
            userns_mode: "auto".into(),
            ..Default::default()
        };
        check(&opts(auto.clone())).unwrap();
        let e = |h: HostConfig, net: Network| {
            let mut o = opts(h);
            o.network = net;
            check(&o).unwrap_err().to_string()
        };
        assert!(e(
            HostConfig {
                privileged: true,
                ..auto.clone()
            },
            Network::None
        )
        .contains("privileged"));
        assert!(e(auto.clone(), Network::Host).contains("network namespace"));
        assert!(e(
            HostConfig {
                pid_mode: "host".into(),
                ..auto.clone()
            },
            Network::None
        )
        .contains("PID namespace"));
        assert!(e(
            HostConfig {
                ipc_mode: "container:x".into(),
                ..auto.clone()
            },
            Network::None
        )
        .contains("--ipc container:"));
        assert!(e(auto, Network::Container("x".into())).contains("--network container:"));
    }

    #[test]
    fn modes_shape_the_namespaces() {
        let types = |h: &HostConfig, s: &Shared| -> Vec<String> {
            spec_namespaces(h, s)
                .iter()
                .map(|n| match n["path"].as_str() {
                    Some(p) => format!("{}={p}", n["type"].as_str().unwrap()),
                    None => n["type"].as_str().unwrap().to_string(),
                })
                .collect()
        };
        assert_eq!(
            types(&HostConfig::default(), &Shared::default()),
            ["pid", "ipc", "uts", "mount", "cgroup"]
        );
        let h = HostConfig {
            pid_mode: "host".into(),
            ipc_mode: "host".into(),
            uts_mode: "host".into(),
            cgroupns_mode: "host".into(),
            ..Default::default()
        };
        assert_eq!(types(&h, &Shared::default()), ["mount"]);
        let shared = Shared {
            pid: Some("/proc/7/ns/pid".into()),
            ipc: Some("/proc/7/ns/ipc".into()),
            ..Default::default()
        };
        let h = HostConfig {
            pid_mode: "container:a".into(),
            ipc_mode: "container:a".into(),
            id_map: Some(crate::userns::IdMap {
                uid: 1000,
                gid: 2000,
                size: 10,
            }),
            ..Default::default()
        };
        assert_eq!(
            types(&h, &shared),
            [
                "user",
                "pid=/proc/7/ns/pid",
                "ipc=/proc/7/ns/ipc",
                "uts",
                "mount",
                "cgroup"
            ]
        );
    }

    #[test]
    fn uts_host_drops_the_hostname_and_ipc_modes_the_shm() {
        let base = json!({"hostname": "h", "domainname": "d", "linux": {},
            "mounts": [{"destination": "/dev/shm", "type": "tmpfs"}, {"destination": "/proc"}]});
        let mut v = base.clone();
        apply(
            &mut v,
            &HostConfig {
                uts_mode: "host".into(),
                ipc_mode: "none".into(),
                ..Default::default()
            },
            &Shared::default(),
        );
        assert!(v.get("hostname").is_none() && v.get("domainname").is_none());
        assert_eq!(v["mounts"], json!([{"destination": "/proc"}]));
        let mut v = base;
        apply(
            &mut v,
            &HostConfig {
                id_map: Some(crate::userns::IdMap {
                    uid: 1000,
                    gid: 2000,
                    size: 10,
                }),
                ..Default::default()
            },
            &Shared {
                shm: Some("/var/lib/berth/containers/x/shm".into()),
                ..Default::default()
            },
        );
        assert_eq!(v["hostname"], "h");
        assert_eq!(v["mounts"][0]["type"], "bind");
        assert_eq!(v["mounts"][0]["source"], "/var/lib/berth/containers/x/shm");
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 2000);
    }
}
