//! `run`/`create` flags for resources, security and metadata, parsed into
//! the engine's [`HostConfig`] and labels. Values are checked by the
//! engine's parsers, whose errors name the flag.

use std::collections::BTreeMap;

use anyhow::Result;
use berth_engine::hostconfig::{self as hc, HostConfig};
use berth_engine::namespaces as ns;
use clap::Args;

#[derive(Args, Debug, Default)]
pub struct HostFlags {
    /// Memory limit (e.g. 512m, 1g).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap.
    #[arg(long)]
    memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Number of CPUs (e.g. 1.5).
    #[arg(long)]
    cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long)]
    cpu_shares: Option<i64>,
    /// The CPU CFS (Completely Fair Scheduler) period, in microseconds.
    #[arg(long)]
    cpu_period: Option<i64>,
    /// The CPU CFS quota, in microseconds a period (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes in which to allow execution (0-3, 0,1).
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Allow devices in the devices cgroup (TYPE MAJOR:MINOR ACCESS, e.g. 'c 1:3 rwm').
    #[arg(long)]
    device_cgroup_rule: Vec<String>,
    /// An annotation of the container's OCI spec (KEY=VALUE).
    #[arg(long)]
    annotation: Vec<String>,
    /// How readily the kernel swaps the container's memory (0 to 100; -1
    /// for the kernel's default).
    #[arg(long, allow_hyphen_values = true)]
    memory_swappiness: Option<i64>,
    /// Limit the read rate from a block device (DEVICE:RATE, e.g. /dev/sda:1mb).
    #[arg(long)]
    device_read_bps: Vec<String>,
    /// Limit the write rate to a block device (DEVICE:RATE).
    #[arg(long)]
    device_write_bps: Vec<String>,
    /// Limit the reads a second from a block device (DEVICE:COUNT).
    #[arg(long)]
    device_read_iops: Vec<String>,
    /// Limit the writes a second to a block device (DEVICE:COUNT).
    #[arg(long)]
    device_write_iops: Vec<String>,
    /// Process limit (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// name=soft[:hard], e.g. nofile=1024:2048.
    #[arg(long)]
    ulimit: Vec<String>,
    /// Add Linux capabilities (or ALL).
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities (or ALL).
    #[arg(long)]
    cap_drop: Vec<String>,
    /// All capabilities, all host devices, no seccomp, no masked paths.
    #[arg(long)]
    privileged: bool,
    /// seccomp=FILE|unconfined, no-new-privileges[=true|false].
    #[arg(long)]
    security_opt: Vec<String>,
    /// Mount the container's root read-only.
    #[arg(long)]
    read_only: bool,
    /// Size of /dev/shm.
    #[arg(long)]
    shm_size: Option<String>,
    /// Namespaced kernel parameters (name=value).
    #[arg(long)]
    sysctl: Vec<String>,
    /// HOST[:CONTAINER[:PERMS]]
    #[arg(long)]
    device: Vec<String>,
    /// Do not let the OOM killer kill the container.
    #[arg(long)]
    oom_kill_disable: bool,
    /// -1000 to 1000.
    #[arg(long, allow_hyphen_values = true)]
    oom_score_adj: Option<String>,
    /// Signal that `stop` sends.
    #[arg(long)]
    stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[arg(long, allow_hyphen_values = true)]
    stop_timeout: Option<i64>,
    /// Additional groups to join.
    #[arg(long)]
    group_add: Vec<String>,
    #[arg(long)]
    domainname: Option<String>,
    /// Set metadata (key=value).
    #[arg(short = 'l', long)]
    label: Vec<String>,
    /// Read labels from a file of key=value lines.
    #[arg(long)]
    label_file: Vec<String>,
    /// Read environment variables from a file of K=V lines.
    #[arg(long)]
    env_file: Vec<String>,
    /// PATH[:OPTIONS], a tmpfs mount.
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Run berth-init as PID 1: it forwards signals and reaps zombies.
    #[arg(long)]
    init: bool,
    /// [HOST-DIR|NAME:]CONTAINER-DIR[:ro|rw,PROPAGATION,nocopy]
    #[arg(short = 'v', long)]
    volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly]…
    #[arg(long)]
    mount: Vec<String>,
    /// Mount the volumes of another container (CONTAINER[:ro|rw]).
    #[arg(long)]
    volumes_from: Vec<String>,
    /// PID namespace: host, or container:NAME to share another's.
    #[arg(long)]
    pid: Option<String>,
    /// IPC namespace: private (default), shareable, none, host or
    /// container:NAME (a shareable one's).
    #[arg(long)]
    ipc: Option<String>,
    /// UTS namespace: host.
    #[arg(long)]
    uts: Option<String>,
    /// User namespace: host (none of its own), or auto[:size=N] for its
    /// own, its root an unprivileged range of host ids.
    #[arg(long)]
    userns: Option<String>,
    /// Cgroup namespace: private or host (default: private on cgroup v2
    /// hosts, host on v1).
    #[arg(long)]
    cgroupns: Option<String>,
}

/// What the flags set besides the host config.
pub struct Parsed {
    pub host: HostConfig,
    pub labels: BTreeMap<String, String>,
    /// `--env-file` entries, before `-e` (which overrides them).
    pub env: Vec<String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub domainname: Option<String>,
    pub volumes_from: Vec<String>,
}

impl HostFlags {
    pub fn parse(&self, host_network: bool) -> Result<Parsed> {
        let bytes = |flag: &str, v: &Option<String>| -> Result<i64> {
            Ok(v.as_deref()
                .map(|s| hc::parse_bytes(flag, s))
                .transpose()?
                .unwrap_or(0))
        };
        let mode = |v: &Option<String>, parse: fn(&str) -> berth_engine::Result<String>| {
            v.as_deref()
                .map(parse)
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let mut h = HostConfig {
            pid_mode: mode(&self.pid, ns::parse_pid)?,
            ipc_mode: mode(&self.ipc, ns::parse_ipc)?,
            uts_mode: mode(&self.uts, ns::parse_uts)?,
            userns_mode: mode(&self.userns, berth_engine::userns::parse_mode)?,
            cgroupns_mode: mode(&self.cgroupns, ns::parse_cgroupns)?,
            memory: bytes("--memory", &self.memory)?,
            memory_swap: self
                .memory_swap
                .as_deref()
                .map(hc::parse_swap)
                .transpose()?
                .unwrap_or(0),
            memory_reservation: bytes("--memory-reservation", &self.memory_reservation)?,
            nano_cpus: self
                .cpus
                .as_deref()
                .map(hc::parse_cpus)
                .transpose()?
                .unwrap_or(0),
            cpu_shares: self.cpu_shares.unwrap_or(0),
            cpu_period: self.cpu_period.unwrap_or(0),
            cpu_quota: self.cpu_quota.unwrap_or(0),
            cpuset_cpus: self.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: self.cpuset_mems.clone().unwrap_or_default(),
            device_cgroup_rules: self.device_cgroup_rule.clone(),
            // docker's -1: the kernel's own.
            memory_swappiness: self.memory_swappiness.filter(|n| *n != -1),
            pids_limit: self.pids_limit,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            security_opt: self.security_opt.clone(),
            readonly_rootfs: self.read_only,
            shm_size: bytes("--shm-size", &self.shm_size)?,
            oom_kill_disable: self.oom_kill_disable,
            oom_score_adj: self
                .oom_score_adj
                .as_deref()
                .map(hc::parse_oom_score_adj)
                .transpose()?
                .unwrap_or(0),
            group_add: self.group_add.clone(),
            init: self.init,
            ..Default::default()
        };
        if !h.cpuset_cpus.is_empty() {
            hc::parse_cpuset("--cpuset-cpus", &h.cpuset_cpus)?;
        }
        if !h.cpuset_mems.is_empty() {
            hc::parse_cpuset("--cpuset-mems", &h.cpuset_mems)?;
        }
        for r in &h.device_cgroup_rules {
            hc::parse_device_cgroup_rule(r)?;
        }
        for a in &self.annotation {
            let (k, v) = hc::parse_annotation(a)?;
            h.annotations.insert(k, v);
        }
        for u in &self.ulimit {
            let u = hc::parse_ulimit(u)?;
            h.ulimits.retain(|x| x.name != u.name);
            h.ulimits.push(u);
        }
        for s in &self.sysctl {
            let (k, v) = hc::parse_sysctl(s, host_network)?;
            h.sysctls.insert(k, v);
        }
        for d in &self.device {
            h.devices.push(hc::parse_device(d)?);
        }
        for (flag, given, bytes, list) in [
            (
                "--device-read-bps",
                &self.device_read_bps,
                true,
                &mut h.blkio_device_read_bps,
            ),
            (
                "--device-write-bps",
                &self.device_write_bps,
                true,
                &mut h.blkio_device_write_bps,
            ),
            (
                "--device-read-iops",
                &self.device_read_iops,
                false,
                &mut h.blkio_device_read_iops,
            ),
            (
                "--device-write-iops",
                &self.device_write_iops,
                false,
                &mut h.blkio_device_write_iops,
            ),
        ] {
            for t in given {
                list.push(hc::parse_throttle(flag, t, bytes)?);
            }
        }
        for t in &self.tmpfs {
            let (p, o) = hc::parse_tmpfs(t)?;
            h.tmpfs.insert(p, o);
        }
        for v in &self.volume {
            h.mounts.push(berth_engine::volumes::parse_volume_flag(v)?);
        }
        for m in &self.mount {
            h.mounts.push(berth_engine::volumes::parse_mount_flag(m)?);
        }
        let mut labels = BTreeMap::new();
        for f in &self.label_file {
            for line in read_lines(f, "--label-file")? {
                let (k, v) = hc::parse_label(&line)?;
                labels.insert(k, v);
            }
        }
        for l in &self.label {
            let (k, v) = hc::parse_label(l)?;
            labels.insert(k, v);
        }
        let env = env_files(&self.env_file)?;
        Ok(Parsed {
            host: h,
            labels,
            env,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            domainname: self.domainname.clone(),
            volumes_from: self.volumes_from.clone(),
        })
    }
}

/// `-e` and `--env-file` entries as the container gets them: `K=V` as
/// it is, a bare `K` with our value of it, or nothing (docker's way).
pub(crate) fn with_our_values<'a>(entries: impl Iterator<Item = &'a String>) -> Vec<String> {
    entries
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect()
}

/// The entries of `--env-file`s, in order.
pub(crate) fn env_files(paths: &[String]) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in paths {
        env.extend(read_lines(f, "--env-file")?);
    }
    Ok(env)
}

/// The non-empty, non-comment lines of a `--env-file`/`--label-file`.
fn read_lines(path: &str, flag: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| berth_engine::Error::InvalidArgument(format!("{flag} {path}: {e}")))?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect())
}
