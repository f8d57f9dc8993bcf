//! cgroup v1: one directory per hierarchy, one file per knob. The
//! semantics follow runc's libcontainer (memsw as memory+swap, write order
//! that the kernel accepts when limits go both up and down).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxRdma,
};

use super::files::{self, append, read_opt, write};
use super::{backoff, devices, Error, Hierarchy};

/// Makes every missing directory from the mount down to `h.dir`. In the
/// cpuset hierarchy a new cgroup starts with empty cpus and mems, and no
/// task can join it until they are set: copy them down from the parent.
pub(super) fn create(h: &Hierarchy) -> Result<(), Error> {
    let cpuset = h.controllers.iter().any(|c| c == "cpuset");
    let rel = h.dir.strip_prefix(&h.mount).unwrap_or(Path::new(""));
    let mut cur = h.mount.clone();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(Error::Create { path: cur, source }),
        }
        if cpuset {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                copy_if_empty(&parent, &cur, file)?;
            }
        }
    }
    Ok(())
}

fn copy_if_empty(parent: &Path, dir: &Path, file: &str) -> Result<(), Error> {
    let Some(current) = read_opt(dir, file)? else {
        return Ok(());
    };
    if !current.trim().is_empty() {
        return Ok(());
    }
    let from_parent = files::read(parent, file)?;
    if from_parent.trim().is_empty() {
        return Ok(());
    }
    write(dir, file, from_parent.trim())
}

/// OCI limits are bytes, with -1 as unlimited; v1 takes -1 as is.
fn check_bytes(what: &str, v: i64) -> Result<String, Error> {
    if v < -1 {
        return Err(Error::invalid(what, format!("{v} is negative")));
    }
    Ok(v.to_string())
}

pub(super) fn memory(d: &Path, m: &LinuxMemory) -> Result<(), Error> {
    const LIMIT: &str = "memory.limit_in_bytes";
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
    let limit = m.limit();
    let mut swap = m.swap();
    // Unlimited memory with swap left out means unlimited swap too, so a
    // previous memsw limit does not keep capping the container.
    if limit == Some(-1) && swap.is_none() && d.join(MEMSW).exists() {
        swap = Some(-1);
    }
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s > 0 && s < l {
            return Err(Error::invalid(
                "memory.swap",
                format!("{s} is below the memory limit {l} (it counts memory plus swap)"),
            ));
        }
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let (l, s) = (
                check_bytes("memory.limit", l)?,
                check_bytes("memory.swap", s)?,
            );
            // The kernel requires limit <= memsw at every step: raising
            // goes memsw first, lowering goes limit first.
            let current = files::read_u64(d, LIMIT)?;
            let raising = s == "-1" || s.parse::<u64>().is_ok_and(|s| current < s);
            if raising {
                write(d, MEMSW, &s)?;
                write(d, LIMIT, &l)?;
            } else {
                write(d, LIMIT, &l)?;
                write(d, MEMSW, &s)?;
            }
        }
        (Some(l), None) => write(d, LIMIT, &check_bytes("memory.limit", l)?)?,
        (None, Some(s)) => write(d, MEMSW, &check_bytes("memory.swap", s)?)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation() {
        write(
            d,
            "memory.soft_limit_in_bytes",
            &check_bytes("memory.reservation", r)?,
        )?;
    }
    for (value, file) in [
        (m.kernel(), "memory.kmem.limit_in_bytes"),
        (m.kernel_tcp(), "memory.kmem.tcp.limit_in_bytes"),
    ] {
        let Some(v) = value else { continue };
        if !d.join(file).exists() {
            // Newer kernels dropped kernel memory limits; runc ignores them.
            tracing::warn!(
                file,
                "kernel memory limits are not supported by this kernel; ignored"
            );
            continue;
        }
        write(d, file, &check_bytes(file, v)?)?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::invalid(
                "memory.swappiness",
                format!("{s} is above 100"),
            ));
        }
        write(d, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(d, "memory.oom_control", "1")?;
    }
    Ok(())
}

pub(super) fn cpu(d: &Path, cpu: &LinuxCpu) -> Result<(), Error> {
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        write(d, "cpu.shares", &shares.to_string())?;
        // The kernel clamps cpu.shares to [2, 262144] silently.
        let got = files::read_u64(d, "cpu.shares")?;
        if got != shares {
            return Err(Error::invalid(
                "cpu.shares",
                format!("{shares} is out of range (the kernel set {got})"),
            ));
        }
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    let mut period_pending = None;
    if let Some(p) = cpu.period().filter(|p| *p != 0) {
        if let Err(e) = write(d, "cpu.cfs_period_us", &p.to_string()) {
            // A shorter period can exceed the parent's quota until the new
            // quota is in: retry after it.
            match (&e, quota) {
                (Error::Write { source, .. }, Some(_))
                    if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                {
                    period_pending = Some(p)
                }
                _ => return Err(e),
            }
        }
    }
    if let Some(q) = quota {
        write(d, "cpu.cfs_quota_us", &q.max(-1).to_string())?;
        if let Some(p) = period_pending {
            write(d, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(b) = cpu.burst() {
        write(d, "cpu.cfs_burst_us", &b.to_string())?;
    }
    // The period first: the runtime must fit in it.
    if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
        write(d, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = cpu.realtime_runtime().filter(|r| *r != 0) {
        write(d, "cpu.rt_runtime_us", &r.to_string())?;
    }
    if let Some(i) = cpu.idle() {
        write(d, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// `pids.max`, the same file on v1 and v2; 0 or -1 is no limit.
pub(super) fn pids(d: &Path, limit: i64) -> Result<(), Error> {
    let value = if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    };
    write(d, "pids.max", &value)
}

pub(super) fn blkio_is_set(b: &LinuxBlockIo) -> bool {
    let some = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || some(b.throttle_read_bps_device())
        || some(b.throttle_write_bps_device())
        || some(b.throttle_read_iops_device())
        || some(b.throttle_write_iops_device())
}

pub(super) fn blkio(d: &Path, b: &LinuxBlockIo) -> Result<(), Error> {
    // Kernels with BFQ but without CFQ only have the bfq files.
    let (weight_file, weight_device_file) =
        if d.join("blkio.weight").exists() || !d.join("blkio.bfq.weight").exists() {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write(d, weight_file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write(d, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            append(
                d,
                weight_device_file,
                &format!("{}:{} {w}", wd.major(), wd.minor()),
            )?;
        }
        if let Some(w) = wd.leaf_weight() {
            append(
                d,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", wd.major(), wd.minor()),
            )?;
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (devices, file) in throttles {
        for t in devices.iter().flatten() {
            // A rate of 0 removes the device's limit.
            append(
                d,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// A hugepage size as the kernel names its files ("2MB", "1GB", "64KB").
pub(super) fn page_size(l: &LinuxHugepageLimit) -> Result<&str, Error> {
    let s = l.page_size().as_str();
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB")
    {
        return Err(Error::invalid(
            "hugepage size",
            format!("{s:?} (expected like 2MB or 1GB)"),
        ));
    }
    Ok(s)
}

pub(super) fn hugetlb(d: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), Error> {
    for l in limits {
        let size = page_size(l)?;
        let value = check_bytes("hugepage limit", l.limit())?;
        write(d, &format!("hugetlb.{size}.limit_in_bytes"), &value)?;
        // Reservations are what the OCI limit means when the kernel has them.
        let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
        if d.join(&rsvd).exists() {
            write(d, &rsvd, &value)?;
        }
    }
    Ok(())
}

/// Replaces the device rules: deny everything, then each rule in order.
pub(super) fn devices(d: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), Error> {
    let rules = devices::normalize(rules)?;
    write(d, "devices.deny", "a")?;
    for r in &rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        append(d, file, &r.v1_string())?;
    }
    Ok(())
}

/// net_cls and net_prio exist only on v1; `dir` finds a controller.
pub(super) fn network<'a>(
    net: &LinuxNetwork,
    dir: impl Fn(&str) -> Result<&'a Path, Error>,
) -> Result<(), Error> {
    if let Some(id) = net.class_id() {
        write(dir("net_cls")?, "net_cls.classid", &id.to_string())?;
    }
    for p in net.priorities().iter().flatten() {
        if p.name().is_empty() || p.name().contains(char::is_whitespace) {
            return Err(Error::invalid(
                "network priority",
                format!("interface name {:?}", p.name()),
            ));
        }
        append(
            dir("net_prio")?,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

/// `rdma.max`, the same file on v1 and v2.
pub(super) fn rdma(d: &Path, limits: &HashMap<String, LinuxRdma>) -> Result<(), Error> {
    let mut devs: Vec<_> = limits.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devs {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(Error::invalid("rdma device", format!("{dev:?}")));
        }
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line.len() > dev.len() {
            append(d, "rdma.max", &line)?;
        }
    }
    Ok(())
}

/// Writes FROZEN until the state reads FROZEN. Tasks that are forking or
/// in uninterruptible sleep keep a cgroup FREEZING for a while; writing
/// again retries them. Gives up (and thaws) after about two seconds.
pub(super) fn freeze(d: &Path) -> Result<(), Error> {
    let start = Instant::now();
    let limit = Duration::from_secs(2);
    let mut attempt = 0;
    loop {
        write(d, "freezer.state", "FROZEN")?;
        let state = files::read(d, "freezer.state")?;
        match state.trim() {
            "FROZEN" => return Ok(()),
            "FREEZING" | "THAWED" => {}
            other => {
                return Err(Error::Parse {
                    path: d.join("freezer.state"),
                    content: other.to_string(),
                })
            }
        }
        if start.elapsed() > limit {
            // Half frozen is the worst state to leave a container in.
            let timeout = Error::Timeout {
                path: d.join("freezer.state"),
                state: "frozen",
                waited: start.elapsed(),
            };
            return Err(match write(d, "freezer.state", "THAWED") {
                Ok(()) => timeout,
                Err(e) => Error::Multiple(vec![timeout, e]),
            });
        }
        backoff(attempt);
        attempt += 1;
    }
}
