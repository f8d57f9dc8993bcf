//! The user's resource and security options applied to a spec under
//! construction (docker's default profile, already in it): seccomp,
//! limits, cgroup resources, devices, extra mounts, `--privileged`,
//! `--init`. Pure: what it needs from the host comes in [`HostInfo`].

use serde_json::{json, Value};

use crate::db::ContainerConfig;
use crate::error::{Error, Result};
use crate::hostconfig::HostConfig;
use crate::spec::HostInfo;

/// Where `--init` puts berth-init in the container.
pub const INIT_PATH: &str = "/sbin/berth-init";

pub fn apply(v: &mut Value, cfg: &ContainerConfig, caps: &[String], host: &HostInfo) -> Result<()> {
    let h = &cfg.host_config;
    let unconfined = h.privileged || h.seccomp.as_deref() == Some("unconfined");
    v["linux"]["seccomp"] = match &h.seccomp {
        _ if unconfined => Value::Null,
        Some(profile) => crate::security::seccomp_from_profile(profile, caps)?,
        None => serde_json::to_value(berth_runtime::seccomp::docker_default(caps))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?,
    };
    if v["linux"]["seccomp"].is_null() {
        v["linux"].as_object_mut().map(|l| l.remove("seccomp"));
    }
    let p = &mut v["process"];
    p["noNewPrivileges"] = json!(h.no_new_privileges);
    if h.oom_score_adj != 0 {
        p["oomScoreAdj"] = json!(h.oom_score_adj);
    }
    let rlimits = p["rlimits"].as_array_mut().expect("rlimits is a list");
    for u in &h.ulimits {
        let typ = format!("RLIMIT_{}", u.name.to_ascii_uppercase());
        rlimits.retain(|r| r["type"] != typ.as_str());
        rlimits.push(json!({"type": typ, "soft": u.soft, "hard": u.hard}));
    }
    if h.init {
        let init = host.init.as_ref().ok_or_else(|| {
            Error::InvalidArgument("--init: berth-init was not found next to berth".into())
        })?;
        let args = p["args"].as_array().cloned().unwrap_or_default();
        p["args"] = json!([INIT_PATH, "--"]
            .into_iter()
            .map(Value::from)
            .chain(args)
            .collect::<Vec<_>>());
        push_mount(
            v,
            json!({"destination": INIT_PATH, "type": "bind", "source": init,
                   "options": ["bind", "ro", "nosuid", "nodev"]}),
        );
    }
    if !cfg.domainname.is_empty() {
        v["domainname"] = json!(cfg.domainname);
    }
    v["root"]["readonly"] = json!(h.readonly_rootfs);
    mounts(v, cfg)?;
    for m in &h.mounts {
        let data = (m.kind == "volume").then(|| {
            host.shared
                .volumes
                .get(&m.source)
                .cloned()
                .unwrap_or_else(|| host.volumes.join(&m.source).join("_data"))
        });
        push_mount(v, crate::volumes::spec_mount(m, data.as_deref()));
    }
    resources(v, cfg, host);
    block_io(v, h)?;
    for (k, val) in &h.annotations {
        v["annotations"][k] = json!(val);
    }
    if !h.sysctls.is_empty() {
        v["linux"]["sysctl"] = json!(h.sysctls);
    }
    if h.privileged {
        // Docker's --privileged: no masked or read-only kernel paths, and
        // /sys and the cgroup tree writable.
        v["linux"]["maskedPaths"] = json!([]);
        v["linux"]["readonlyPaths"] = json!([]);
        for m in v["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| x != "ro");
                }
            }
        }
    }
    Ok(())
}

fn push_mount(v: &mut Value, m: Value) {
    if let Some(list) = v["mounts"].as_array_mut() {
        list.retain(|x| x["destination"] != m["destination"]);
        list.push(m);
    }
}

fn mounts(v: &mut Value, cfg: &ContainerConfig) -> Result<()> {
    let h = &cfg.host_config;
    if h.shm_size > 0 {
        for m in v["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/dev/shm" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| !x.as_str().is_some_and(|s| s.starts_with("size=")));
                    o.push(json!(format!("size={}", h.shm_size)));
                }
            }
        }
    }
    for (dest, opts) in &h.tmpfs {
        // docker's defaults for --tmpfs, which the user's options override.
        let mut o: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
        for x in opts.split(',').filter(|x| !x.is_empty()) {
            let x = match x.strip_prefix("size=") {
                Some(sz) => format!(
                    "size={}",
                    crate::hostconfig::parse_bytes("--tmpfs size", sz)?
                ),
                None => x.to_string(),
            };
            let opposite = |a: &str| match a {
                "exec" => Some("noexec"),
                "suid" => Some("nosuid"),
                "dev" => Some("nodev"),
                _ => None,
            };
            if let Some(no) = opposite(&x) {
                o.retain(|y| y != no);
            }
            o.push(x);
        }
        push_mount(
            v,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": o}),
        );
    }
    Ok(())
}

/// The spec's `linux.resources.memory` for `h`'s limit, swap,
/// reservation and OOM killer, as `create` and `update` set them.
pub(crate) fn memory_resources(h: &HostConfig) -> serde_json::Map<String, Value> {
    let mut mem = serde_json::Map::new();
    if h.memory > 0 {
        mem.insert("limit".into(), json!(h.memory));
        // Docker: without --memory-swap, as much swap as memory.
        let swap = match h.memory_swap {
            0 => h.memory * 2,
            s => s,
        };
        mem.insert("swap".into(), json!(swap));
    }
    if h.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(h.memory_reservation));
    }
    if h.oom_kill_disable {
        mem.insert("disableOOMKiller".into(), json!(true));
    }
    if let Some(n) = h.memory_swappiness {
        mem.insert("swappiness".into(), json!(n));
    }
    mem
}

/// The spec's `linux.resources.cpu` for `h`'s shares, quota and cpuset.
pub(crate) fn cpu_resources(h: &HostConfig) -> serde_json::Map<String, Value> {
    let mut cpu = serde_json::Map::new();
    if h.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(h.cpu_shares));
    }
    if h.nano_cpus > 0 {
        // Docker's period of 100ms and the matching quota.
        cpu.insert("period".into(), json!(100_000u64));
        cpu.insert("quota".into(), json!(h.nano_cpus / 10_000));
    }
    if h.cpu_period > 0 {
        cpu.insert("period".into(), json!(h.cpu_period));
    }
    if h.cpu_quota != 0 {
        cpu.insert("quota".into(), json!(h.cpu_quota));
    }
    if !h.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(h.cpuset_cpus));
    }
    if !h.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(h.cpuset_mems));
    }
    cpu
}

/// The spec's `linux.resources.blockIO` throttles: each device's path
/// resolved now, as dockerd does at each start (numbers can change
/// across a reboot).
fn block_io(v: &mut Value, h: &HostConfig) -> Result<()> {
    let keys = [
        "throttleReadBpsDevice",
        "throttleWriteBpsDevice",
        "throttleReadIOPSDevice",
        "throttleWriteIOPSDevice",
    ];
    let mut io = serde_json::Map::new();
    for ((flag, list), key) in crate::hostconfig::throttles(h).into_iter().zip(keys) {
        let mut rates = Vec::new();
        for t in list {
            let (major, minor) = crate::hostconfig::block_device(flag, &t.path)?;
            rates.push(json!({"major": major, "minor": minor, "rate": t.rate}));
        }
        if !rates.is_empty() {
            io.insert(key.into(), Value::Array(rates));
        }
    }
    if !io.is_empty() {
        v["linux"]["resources"]["blockIO"] = Value::Object(io);
    }
    Ok(())
}

fn resources(v: &mut Value, cfg: &ContainerConfig, host: &HostInfo) {
    let h = &cfg.host_config;
    let r = &mut v["linux"]["resources"];
    let mem = memory_resources(h);
    if !mem.is_empty() {
        r["memory"] = Value::Object(mem);
    }
    let cpu = cpu_resources(h);
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(l) = h.pids_limit {
        r["pids"] = json!({"limit": if l <= 0 { -1 } else { l }});
    }
    let mut devices = Vec::new();
    let mut rules = vec![json!({"allow": h.privileged, "access": "rwm"})];
    for d in &host.devices {
        let access = h
            .devices
            .iter()
            .find(|m| m.path_in_container == d.path)
            .map_or("rwm", |m| m.cgroup_permissions.as_str());
        devices.push(
            json!({"path": d.path, "type": d.typ.to_string(), "major": d.major,
            "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid}),
        );
        if !h.privileged {
            rules.push(
                json!({"allow": true, "type": d.typ.to_string(), "major": d.major,
                "minor": d.minor, "access": access}),
            );
        }
    }
    if !h.privileged {
        for rule in &h.device_cgroup_rules {
            // Checked at create; a row that no longer parses allows nothing.
            if let Ok((kind, major, minor, access)) =
                crate::hostconfig::parse_device_cgroup_rule(rule)
            {
                rules.push(
                    json!({"allow": true, "type": kind.to_string(), "major": major,
                    "minor": minor, "access": access}),
                );
            }
        }
    }
    r["devices"] = json!(rules);
    if !devices.is_empty() {
        v["linux"]["devices"] = json!(devices);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::hostconfig::parse_ulimit;
    use crate::spec::build;
    use crate::user::User;

    fn spec(h: HostConfig, host: &HostInfo) -> Value {
        let cfg = ContainerConfig {
            cmd: vec!["sh".into()],
            working_dir: "/".into(),
            hostname: "h".into(),
            network_mode: "none".into(),
            host_config: h,
            ..Default::default()
        };
        let s = build("x", &cfg, Path::new("/r"), &User::root(), host).unwrap();
        berth_runtime::config::validate(&s).unwrap();
        serde_json::to_value(&s).unwrap()
    }

    #[test]
    fn resources_land_in_the_spec() {
        let h = HostConfig {
            memory: 64 << 20,
            memory_reservation: 32 << 20,
            nano_cpus: 1_500_000_000,
            cpu_shares: 512,
            cpuset_cpus: "0".into(),
            pids_limit: Some(50),
            oom_kill_disable: true,
            oom_score_adj: 500,
            ulimits: vec![parse_ulimit("nofile=100:200").unwrap()],
            ..Default::default()
        };
        let v = spec(h, &HostInfo::with_nofile(20000));
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["memory"]["reservation"], 32 << 20);
        assert_eq!(r["memory"]["disableOOMKiller"], true);
        assert_eq!(
            (r["cpu"]["quota"].clone(), r["cpu"]["period"].clone()),
            (json!(150000), json!(100000))
        );
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["pids"]["limit"], 50);
        assert_eq!(v["process"]["oomScoreAdj"], 500);
        let rl = v["process"]["rlimits"].as_array().unwrap();
        assert_eq!(rl.len(), 1);
        assert_eq!(
            (rl[0]["soft"].clone(), rl[0]["hard"].clone()),
            (json!(100), json!(200))
        );
    }

    #[test]
    fn privileged_and_security_options() {
        let v = spec(
            HostConfig {
                privileged: true,
                ..Default::default()
            },
            &HostInfo::with_nofile(1024),
        );
        assert!(v["linux"]["seccomp"].is_null());
        assert_eq!(v["linux"]["maskedPaths"], json!([]));
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            41
        );
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
        let v = spec(
            HostConfig {
                seccomp: Some("unconfined".into()),
                no_new_privileges: true,
                readonly_rootfs: true,
                shm_size: 1 << 20,
                tmpfs: [("/run".to_string(), "size=1m,exec".to_string())].into(),
                ..Default::default()
            },
            &HostInfo::with_nofile(1024),
        );
        assert!(v["linux"]["seccomp"].is_null());
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["root"]["readonly"], true);
        let m = v["mounts"].as_array().unwrap();
        let shm = m.iter().find(|m| m["destination"] == "/dev/shm").unwrap();
        assert!(shm["options"]
            .as_array()
            .unwrap()
            .contains(&json!("size=1048576")));
        let run = m.iter().find(|m| m["destination"] == "/run").unwrap();
        assert_eq!(
            run["options"],
            json!(["nosuid", "nodev", "size=1048576", "exec"])
        );
    }

    #[test]
    fn init_wraps_the_command() {
        let h = HostConfig {
            init: true,
            ..Default::default()
        };
        let mut host = HostInfo::with_nofile(1024);
        let cfg = ContainerConfig {
            cmd: vec!["sh".into()],
            host_config: h,
            ..Default::default()
        };
        assert!(build("x", &cfg, Path::new("/r"), &User::root(), &host).is_err());
        host.init = Some("/usr/lib/berth/berth-init".into());
        let v = spec(cfg.host_config.clone(), &host);
        assert_eq!(v["process"]["args"], json!([INIT_PATH, "--", "sh"]));
    }
}
