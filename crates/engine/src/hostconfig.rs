//! The resource and security options of a container (docker's
//! `HostConfig`), kept in its row so every start builds the same spec, and
//! the parsers of their flag values. A bad value fails here, naming the
//! flag, before anything is created.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `-m`: bytes, 0 for no limit.
    pub memory: i64,
    /// `--memory-swap`: memory plus swap in bytes; -1 unlimited, 0 unset.
    pub memory_swap: i64,
    pub memory_reservation: i64,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    /// `--cpu-period`: the CFS period in microseconds; 0 for the kernel's.
    pub cpu_period: i64,
    /// `--cpu-quota`: the CFS quota in microseconds a period; 0 for none.
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    /// `--cpuset-mems`: the memory nodes the container may use.
    pub cpuset_mems: String,
    /// `--device-cgroup-rule`: `TYPE MAJOR:MINOR ACCESS` rules the devices
    /// cgroup allows besides the standard devices.
    pub device_cgroup_rules: Vec<String>,
    /// `--annotation`: annotations of the container's OCI spec.
    pub annotations: BTreeMap<String, String>,
    /// `--memory-swappiness` (0-100); `None` (docker's -1) for the kernel's.
    pub memory_swappiness: Option<i64>,
    /// `--device-read-bps`: bytes a second read from a block device.
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    /// `--device-write-bps`: bytes a second written to a block device.
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    /// `--device-read-iops`: reads a second from a block device.
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    /// `--device-write-iops`: writes a second to a block device.
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    /// `--pids-limit`: `None` unset, -1 unlimited.
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--security-opt` as given, for `inspect`.
    pub security_opt: Vec<String>,
    /// The seccomp profile: `None` docker's default, `Some("unconfined")`,
    /// or the JSON of a profile file read at create time (as docker does).
    pub seccomp: Option<String>,
    pub no_new_privileges: bool,
    pub readonly_rootfs: bool,
    /// `--shm-size` in bytes; 0 means docker's 64 MiB.
    pub shm_size: i64,
    pub sysctls: BTreeMap<String, String>,
    pub devices: Vec<DeviceMapping>,
    pub oom_kill_disable: bool,
    pub oom_score_adj: i32,
    pub group_add: Vec<String>,
    /// `--tmpfs`: destination to mount options.
    pub tmpfs: BTreeMap<String, String>,
    pub init: bool,
    /// `-v`, `--mount`, the image's VOLUMEs and `--volumes-from`, resolved
    /// at create (anonymous volumes named).
    pub mounts: Vec<MountSpec>,
    /// `--restart`, applied by the monitor.
    pub restart_policy: crate::restart::RestartPolicy,
    /// `--pid`: "" (its own), "host" or "container:<id>".
    pub pid_mode: String,
    /// `--ipc`: "private", "shareable", "none", "host" or
    /// "container:<id>"; "" (rows from before the flag) is private.
    pub ipc_mode: String,
    /// `--uts`: "" (its own) or "host".
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// `--userns`: "" or "host" (none of its own), or "auto[:size=N]".
    pub userns_mode: String,
    /// `--cgroupns`: "private" or "host", resolved at create; "" (rows
    /// from before the flag) is private.
    pub cgroupns_mode: String,
    /// `--userns auto`: the host ids the container's own map to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_map: Option<crate::userns::IdMap>,
}

/// One `--device-cgroup-rule`, docker's `TYPE MAJOR:MINOR ACCESS` (`a`,
/// `b` or `c`; a number or `*`; some of `rwm`): type, major and minor
/// (`None` for any), access.
pub fn parse_device_cgroup_rule(s: &str) -> Result<(char, Option<i64>, Option<i64>, String)> {
    let flag = "--device-cgroup-rule";
    let want = "expected TYPE MAJOR:MINOR ACCESS, e.g. 'c 1:3 rwm' or 'b *:* r'";
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [kind, numbers, access] = parts.as_slice() else {
        return Err(bad(flag, s, want));
    };
    let kind = match *kind {
        "a" | "b" | "c" => kind.chars().next().unwrap_or('a'),
        _ => return Err(bad(flag, s, want)),
    };
    let number = |n: &str| -> Result<Option<i64>> {
        match n {
            "*" => Ok(None),
            n => n
                .parse::<u32>()
                .map(|n| Some(n as i64))
                .map_err(|_| bad(flag, s, want)),
        }
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(|| bad(flag, s, want))?;
    let ok_access =
        !access.is_empty() && access.len() <= 3 && access.chars().all(|c| "rwm".contains(c));
    if !ok_access {
        return Err(bad(flag, s, want));
    }
    Ok((kind, number(major)?, number(minor)?, access.to_string()))
}

/// `--annotation KEY=VALUE`.
pub fn parse_annotation(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(bad("--annotation", s, "expected KEY=VALUE")),
    }
}

/// A rate on one block device (docker's `ThrottleDevice`), its path
/// resolved to the device's numbers at each start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// `--device-read-bps` and `--device-write-bps` (`bytes` true: a size
/// such as 1mb) or the iops flags (a count): `PATH:RATE`, PATH under
/// /dev as docker wants it.
pub fn parse_throttle(flag: &str, s: &str, bytes: bool) -> Result<ThrottleDevice> {
    let want = if bytes {
        "expected DEVICE:RATE, a rate such as 1mb"
    } else {
        "expected DEVICE:COUNT, the operations a second"
    };
    let (path, rate) = s.rsplit_once(':').ok_or_else(|| bad(flag, s, want))?;
    if !path.starts_with("/dev/") {
        return Err(bad(flag, s, "the device must be a path under /dev"));
    }
    let rate = if bytes {
        u64::try_from(parse_bytes(flag, rate)?).map_err(|_| bad(flag, s, want))?
    } else {
        rate.parse::<u64>().map_err(|_| bad(flag, s, want))?
    };
    Ok(ThrottleDevice {
        path: path.to_string(),
        rate,
    })
}

/// The throttled devices of `h`, each list with the flag it came from.
pub fn throttles(h: &HostConfig) -> [(&'static str, &[ThrottleDevice]); 4] {
    [
        ("--device-read-bps", &h.blkio_device_read_bps),
        ("--device-write-bps", &h.blkio_device_write_bps),
        ("--device-read-iops", &h.blkio_device_read_iops),
        ("--device-write-iops", &h.blkio_device_write_iops),
    ]
}

/// The major and minor numbers of block device `path`, for `flag`'s
/// rate: what the kernel's throttle files take.
pub fn block_device(flag: &str, path: &str) -> Result<(u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path)
        .map_err(|e| Error::InvalidArgument(format!("{flag} {path}: {e}")))?;
    if !m.file_type().is_block_device() {
        return Err(Error::InvalidArgument(format!(
            "{flag} {path}: not a block device"
        )));
    }
    let dev = m.rdev();
    Ok((rustix::fs::major(dev) as u64, rustix::fs::minor(dev) as u64))
}

/// One mount of a container, docker's `Mounts` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The host path (bind) or the volume's name; empty for an anonymous
    /// volume until create names it.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// Bind propagation (`rprivate` by default).
    pub propagation: String,
    /// tmpfs mount options, or `nocopy` for a volume.
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

fn bad(flag: &str, value: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("invalid value {value:?} for {flag}: {why}"))
}

/// docker's `RAMInBytes`: a number with an optional binary unit
/// (`b`, `k`, `m`, `g`, `t`, `p`, optionally followed by `b`).
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let n: f64 = num
        .parse()
        .map_err(|_| bad(flag, s, "expected a size such as 512m or 1g"))?;
    let unit = unit
        .strip_suffix('b')
        .filter(|u| !u.is_empty())
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(bad(flag, s, "unknown unit (use b, k, m, g, t or p)")),
    };
    let v = n * mult;
    if !v.is_finite() || v >= i64::MAX as f64 {
        return Err(bad(flag, s, "too large"));
    }
    Ok(v as i64)
}

/// `--memory-swap`: -1 means unlimited swap.
pub fn parse_swap(s: &str) -> Result<i64> {
    if s.trim() == "-1" {
        Ok(-1)
    } else {
        parse_bytes("--memory-swap", s)
    }
}

/// `--cpus 1.5`: billionths of a CPU.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| bad("--cpus", s, "expected a number such as 1.5"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(bad("--cpus", s, "must be above 0"));
    }
    Ok((v * 1e9).round() as i64)
}

/// A list of CPUs such as `0-2,4`: the CPUs it names.
pub fn parse_cpuset(flag: &str, s: &str) -> Result<Vec<u32>> {
    let err = || bad(flag, s, "expected CPU numbers and ranges such as 0-2,4");
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.parse().map_err(|_| err())?;
        let b: u32 = b.parse().map_err(|_| err())?;
        if a > b || b > 8191 {
            return Err(err());
        }
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

/// The rlimits `--ulimit` may set (the `RLIMIT_` names, lowercase).
pub const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit name=soft[:hard]`; -1 is unlimited.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let (name, v) = s
        .split_once('=')
        .ok_or_else(|| bad("--ulimit", s, "expected name=soft[:hard]"))?;
    if !ULIMITS.contains(&name) {
        return Err(bad(
            "--ulimit",
            s,
            &format!("unknown limit {name:?} (one of {})", ULIMITS.join(", ")),
        ));
    }
    let num = |x: &str| -> Result<u64> {
        match x {
            "-1" | "unlimited" => Ok(u64::MAX),
            _ => x
                .parse()
                .map_err(|_| bad("--ulimit", s, "limits are numbers or -1")),
        }
    };
    let (soft, hard) = match v.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(v)?, num(v)?),
    };
    if soft > hard {
        return Err(bad(
            "--ulimit",
            s,
            &format!("the soft limit {soft} is above the hard limit {hard}"),
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--device HOST[:CONTAINER[:PERMS]]`; PERMS is some of `rwm`.
pub fn parse_device(s: &str) -> Result<DeviceMapping> {
    let parts: Vec<&str> = s.split(':').collect();
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(bad("--device", s, "expected HOST[:CONTAINER[:PERMS]]")),
    };
    if !is_perms(perms) {
        return Err(bad("--device", s, "permissions are some of r, w and m"));
    }
    // The runtime makes device nodes only in the container's /dev.
    if !ctr.starts_with("/dev/") {
        return Err(bad("--device", s, "the container path must be under /dev"));
    }
    for p in [host, ctr] {
        if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(bad(
                "--device",
                s,
                "device paths are absolute and without ..",
            ));
        }
    }
    Ok(DeviceMapping {
        path_on_host: host.into(),
        path_in_container: ctr.into(),
        cgroup_permissions: perms.into(),
    })
}

/// Checks a destination inside the container: absolute, no `..`.
pub fn check_container_path(flag: &str, p: &str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(bad(flag, p, "the path must be absolute"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(bad(flag, p, "the path must not contain .."));
    }
    if p == "/" {
        return Err(bad(flag, p, "cannot mount over /"));
    }
    Ok(())
}

/// The mount options a tmpfs accepts.
const TMPFS_OPTS: [&str; 20] = [
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "rw",
    "ro",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "strictatime",
    "relatime",
];

/// `--tmpfs PATH[:opts]`: the destination and its mount options.
pub fn parse_tmpfs(s: &str) -> Result<(String, String)> {
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    check_container_path("--tmpfs", path)?;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let key = o.split_once('=').map_or(o, |(k, _)| k);
        if !TMPFS_OPTS.contains(&key) {
            return Err(bad("--tmpfs", s, &format!("unknown tmpfs option {key:?}")));
        }
        if key == "size" {
            parse_bytes("--tmpfs size", &o[5..])?;
        }
    }
    Ok((path.to_string(), opts.to_string()))
}

/// `--sysctl k=v`: only the namespaced sysctls a container may set
/// (docker's and runc's rule); `net.*` needs the container's own network.
pub fn parse_sysctl(s: &str, host_network: bool) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| bad("--sysctl", s, "expected name=value"))?;
    let namespaced = matches!(
        k,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || k.starts_with("fs.mqueue.")
        || (k.starts_with("net.") && !host_network);
    if !namespaced {
        return Err(bad(
            "--sysctl",
            s,
            "not a namespaced sysctl the container may set",
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `-l k=v` and the lines of `--label-file`.
pub fn parse_label(s: &str) -> Result<(String, String)> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        return Err(bad("--label", s, "the key is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--oom-score-adj`: -1000 to 1000.
pub fn parse_oom_score_adj(s: &str) -> Result<i32> {
    match s.trim().parse::<i32>() {
        Ok(v) if (-1000..=1000).contains(&v) => Ok(v),
        _ => Err(bad(
            "--oom-score-adj",
            s,
            "must be a number from -1000 to 1000",
        )),
    }
}

/// What `--security-opt` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=unconfined`.
    SeccompUnconfined,
    /// `seccomp=FILE`: the file's path.
    SeccompFile(String),
    NoNewPrivileges(bool),
}

pub fn parse_security_opt(s: &str) -> Result<SecurityOpt> {
    let (k, v) = s
        .split_once(['=', ':'])
        .map_or((s, None), |(k, v)| (k, Some(v)));
    match (k, v) {
        ("seccomp", Some("unconfined")) => Ok(SecurityOpt::SeccompUnconfined),
        ("seccomp", Some(f)) if !f.is_empty() => Ok(SecurityOpt::SeccompFile(f.to_string())),
        ("no-new-privileges", None | Some("true")) => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", Some("false")) => Ok(SecurityOpt::NoNewPrivileges(false)),
        ("apparmor" | "label" | "systempaths" | "mask" | "unmask" | "proc-opts", _) => {
            Err(Error::NotSupported {
                flag: format!("--security-opt {k}"),
            })
        }
        _ => Err(bad(
            "--security-opt",
            s,
            "expected seccomp=FILE|unconfined or no-new-privileges[=true|false]",
        )),
    }
}

/// docker's rules between the flags, checked once all are parsed.
pub fn validate(h: &HostConfig) -> Result<()> {
    let inv = |m: &str| Err(Error::InvalidArgument(m.to_string()));
    if h.memory != 0 && h.memory < 6 << 20 {
        return inv("invalid value for --memory: the minimum memory limit allowed is 6MB");
    }
    if h.memory_swap != 0 && h.memory == 0 {
        return inv("--memory-swap needs --memory: set the memory limit too");
    }
    if h.memory_swap > 0 && h.memory_swap < h.memory {
        return inv(
            "invalid value for --memory-swap: it must be at least --memory (memory plus swap)",
        );
    }
    if h.memory_reservation < 0 || (h.memory > 0 && h.memory_reservation > h.memory) {
        return inv("invalid value for --memory-reservation: it must be below --memory");
    }
    if h.cpu_shares < 0 {
        return inv("invalid value for --cpu-shares: it must be positive");
    }
    // docker's words and limits (the kernel's: 1 ms to 1 s).
    if h.cpu_period != 0 && !(1000..=1_000_000).contains(&h.cpu_period) {
        return inv("invalid value for --cpu-period: CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)");
    }
    if h.cpu_quota > 0 && h.cpu_quota < 1000 {
        return inv(
            "invalid value for --cpu-quota: CPU cfs quota can not be less than 1ms (i.e. 1000)",
        );
    }
    if h.nano_cpus > 0 && h.cpu_period > 0 {
        return inv("conflicting options: --cpus and --cpu-period cannot both be set");
    }
    if h.nano_cpus > 0 && h.cpu_quota > 0 {
        return inv("conflicting options: --cpus and --cpu-quota cannot both be set");
    }
    if h.memory_swappiness.is_some_and(|n| !(0..=100).contains(&n)) {
        return inv("invalid value for --memory-swappiness: it must be between 0 and 100 (or -1, the kernel's)");
    }
    if h.shm_size < 0 {
        return inv("invalid value for --shm-size: it must be positive");
    }
    Ok(())
}

/// What the host allows, for the checks a flag value needs the host for.
#[derive(Debug, Clone)]
pub struct HostLimits {
    pub ncpus: usize,
    /// The CPUs the engine's cgroup may use.
    pub cpuset: Vec<u32>,
    /// The memory nodes it may use.
    pub mems: Vec<u32>,
    /// The hard limit of each `--ulimit` name, `u64::MAX` for unlimited.
    pub hard: BTreeMap<String, u64>,
}

impl HostLimits {
    pub fn probe() -> HostLimits {
        let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpuset = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.effective_cpus")
            .or_else(|_| std::fs::read_to_string("/sys/devices/system/cpu/online"))
            .ok()
            .and_then(|s| parse_cpuset("cpuset", s.trim()).ok())
            .unwrap_or_else(|| (0..ncpus as u32).collect());
        let mems = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.effective_mems")
            .or_else(|_| std::fs::read_to_string("/sys/devices/system/node/online"))
            .ok()
            .and_then(|s| parse_cpuset("mems", s.trim()).ok())
            .unwrap_or_else(|| vec![0]);
        let hard = ULIMITS
            .iter()
            .filter_map(|n| {
                let r = rlimit_resource(n)?;
                let max = rustix::process::getrlimit(r).maximum.unwrap_or(u64::MAX);
                Some((n.to_string(), max))
            })
            .collect();
        HostLimits {
            ncpus,
            cpuset,
            mems,
            hard,
        }
    }
}

fn rlimit_resource(name: &str) -> Option<rustix::process::Resource> {
    use rustix::process::Resource as R;
    Some(match name {
        "as" => R::As,
        "core" => R::Core,
        "cpu" => R::Cpu,
        "data" => R::Data,
        "fsize" => R::Fsize,
        "locks" => R::Locks,
        "memlock" => R::Memlock,
        "msgqueue" => R::Msgqueue,
        "nice" => R::Nice,
        "nofile" => R::Nofile,
        "nproc" => R::Nproc,
        "rss" => R::Rss,
        "rtprio" => R::Rtprio,
        "rttime" => R::Rttime,
        "sigpending" => R::Sigpending,
        "stack" => R::Stack,
        _ => return None,
    })
}

/// Checks the values that depend on the host: CPUs that exist, ulimits
/// under the host's hard limits (the container could not raise them).
pub fn check_host(h: &HostConfig, host: &HostLimits) -> Result<()> {
    if h.nano_cpus > host.ncpus as i64 * 1_000_000_000 {
        return Err(Error::InvalidArgument(format!(
            "invalid value for --cpus: the range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available",
            host.ncpus, host.ncpus
        )));
    }
    for (flag, list) in throttles(h) {
        for t in list {
            block_device(flag, &t.path)?;
        }
    }
    if !h.cpuset_cpus.is_empty() {
        let want = parse_cpuset("--cpuset-cpus", &h.cpuset_cpus)?;
        if let Some(c) = want.iter().find(|c| !host.cpuset.contains(c)) {
            return Err(Error::InvalidArgument(format!(
                "invalid value {:?} for --cpuset-cpus: CPU {c} is not available",
                h.cpuset_cpus
            )));
        }
    }
    if !h.cpuset_mems.is_empty() {
        let want = parse_cpuset("--cpuset-mems", &h.cpuset_mems)?;
        if let Some(m) = want.iter().find(|m| !host.mems.contains(m)) {
            return Err(Error::InvalidArgument(format!(
                "invalid value {:?} for --cpuset-mems: memory node {m} is not available",
                h.cpuset_mems
            )));
        }
    }
    for r in &h.device_cgroup_rules {
        parse_device_cgroup_rule(r)?;
    }
    for u in &h.ulimits {
        let max = host.hard.get(&u.name).copied().unwrap_or(u64::MAX);
        if u.hard > max {
            return Err(Error::InvalidArgument(format!(
                "invalid value for --ulimit {}: the hard limit {} is above the host's hard limit {max}",
                u.name,
                if u.hard == u64::MAX { "unlimited".to_string() } else { u.hard.to_string() }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_dockers() {
        for (s, v) in [
            ("512", 512),
            ("1k", 1024),
            ("1KB", 1024),
            ("64m", 64 << 20),
            ("1.5g", 3 << 29),
            ("2b", 2),
        ] {
            assert_eq!(parse_bytes("-m", s).unwrap(), v, "{s}");
        }
        for s in ["", "m", "12x", "1.2.3m", "-5m"] {
            let e = parse_bytes("--memory", s).unwrap_err().to_string();
            assert!(e.contains("--memory"), "{s}: {e}");
        }
        assert_eq!(parse_swap("-1").unwrap(), -1);
    }

    #[test]
    fn cpus_and_cpusets() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("0.01").unwrap(), 10_000_000);
        assert!(parse_cpus("0").is_err() && parse_cpus("x").is_err());
        assert_eq!(
            parse_cpuset("--cpuset-cpus", "0-2,4").unwrap(),
            [0, 1, 2, 4]
        );
        for s in ["", "a", "2-1", "1,", "0-"] {
            assert!(parse_cpuset("--cpuset-cpus", s).is_err(), "{s}");
        }
    }

    #[test]
    fn ulimits() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        assert_eq!(parse_ulimit("core=-1").unwrap().hard, u64::MAX);
        for s in ["nofile", "bogus=1", "nofile=2:1", "nofile=a"] {
            assert!(
                parse_ulimit(s)
                    .unwrap_err()
                    .to_string()
                    .contains("--ulimit"),
                "{s}"
            );
        }
    }

    #[test]
    fn devices() {
        let d = parse_device("/dev/null").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/null", "rwm")
        );
        let d = parse_device("/dev/null:/dev/x:r").unwrap();
        assert_eq!(
            (d.path_in_container, d.cgroup_permissions),
            ("/dev/x".into(), "r".into())
        );
        assert_eq!(
            parse_device("/dev/null:rw").unwrap().cgroup_permissions,
            "rw"
        );
        for s in ["null", "/dev/null:/x:rwz", "/dev/../etc:/x", "/a:/b:r:x"] {
            assert!(parse_device(s).is_err(), "{s}");
        }
    }

    #[test]
    fn tmpfs_sysctl_labels_security() {
        assert_eq!(
            parse_tmpfs("/run:size=1m,mode=1777").unwrap(),
            ("/run".into(), "size=1m,mode=1777".into())
        );
        assert!(parse_tmpfs("run").is_err());
        assert!(parse_tmpfs("/a/../b").is_err());
        assert!(parse_tmpfs("/x:bogus").is_err());
        assert!(parse_sysctl("net.ipv4.ip_forward=1", false).is_ok());
        assert!(parse_sysctl("net.ipv4.ip_forward=1", true).is_err());
        assert!(parse_sysctl("kernel.shmmax=1", false).is_ok());
        assert!(parse_sysctl("vm.swappiness=1", false).is_err());
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_oom_score_adj("1001").is_err());
        assert_eq!(
            parse_security_opt("seccomp=unconfined").unwrap(),
            SecurityOpt::SeccompUnconfined
        );
        assert_eq!(
            parse_security_opt("no-new-privileges").unwrap(),
            SecurityOpt::NoNewPrivileges(true)
        );
        assert!(parse_security_opt("apparmor=x").is_err());
        assert!(parse_security_opt("bogus").is_err());
    }

    #[test]
    fn rules_between_flags_and_the_host() {
        let h = HostConfig {
            memory: 1 << 20,
            ..Default::default()
        };
        assert!(validate(&h).unwrap_err().to_string().contains("6MB"));
        let h = HostConfig {
            memory_swap: 1 << 30,
            ..Default::default()
        };
        assert!(validate(&h).is_err());
        let host = HostLimits {
            ncpus: 2,
            cpuset: vec![0, 1],
            mems: vec![0],
            hard: [("nofile".to_string(), 20000)].into(),
        };
        let h = HostConfig {
            nano_cpus: 3_000_000_000,
            ..Default::default()
        };
        assert!(check_host(&h, &host)
            .unwrap_err()
            .to_string()
            .contains("--cpus"));
        let h = HostConfig {
            cpuset_cpus: "1-2".into(),
            ..Default::default()
        };
        assert!(check_host(&h, &host)
            .unwrap_err()
            .to_string()
            .contains("CPU 2"));
        let h = HostConfig {
            ulimits: vec![parse_ulimit("nofile=100:30000").unwrap()],
            ..Default::default()
        };
        let e = check_host(&h, &host).unwrap_err().to_string();
        assert!(e.contains("--ulimit nofile") && e.contains("20000"), "{e}");
    }
}
