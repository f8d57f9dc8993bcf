//! cgroup2: one tree; a controller works in a cgroup only once every
//! ancestor lists it in `cgroup.subtree_control`. OCI values are converted
//! as runc does (cpu shares to weight, memory+swap to swap alone, blkio
//! weight to io weight).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_sys::bpf;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory,
};

use super::files::{self, append, read_opt, write};
use super::{backoff, devices, v1, Error, Hierarchy};

/// Makes the directories down to `h.dir`, enabling in each ancestor every
/// controller it has. A controller the kernel will not enable (a process
/// sits in that ancestor, a threaded subtree) is skipped here: a limit
/// that needs it fails later, naming it.
pub(super) fn create(h: &Hierarchy) -> Result<(), Error> {
    let rel = h.dir.strip_prefix(&h.mount).unwrap_or(Path::new(""));
    let mut cur = h.mount.clone();
    for comp in rel.components() {
        enable_controllers(&cur)?;
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(Error::Create { path: cur, source }),
        }
    }
    Ok(())
}

fn words(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn enable_controllers(dir: &Path) -> Result<(), Error> {
    let available = words(read_opt(dir, "cgroup.controllers")?);
    let enabled = words(read_opt(dir, "cgroup.subtree_control")?);
    let missing: Vec<&String> = available.iter().filter(|c| !enabled.contains(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all = missing
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    if write(dir, "cgroup.subtree_control", &all).is_ok() {
        return Ok(());
    }
    // One refusal fails the whole write: enable what can be, one by one.
    for c in missing {
        if let Err(e) = write(dir, "cgroup.subtree_control", &format!("+{c}")) {
            tracing::debug!(error = %e, "controller {c} not enabled");
        }
    }
    Ok(())
}

/// True when `controller` is enabled for the cgroup at `dir`.
pub(super) fn has_controller(dir: &Path, controller: &str) -> Result<bool, Error> {
    Ok(files::read(dir, "cgroup.controllers")?
        .split_whitespace()
        .any(|c| c == controller))
}

/// -1 is "max"; other negative values are errors.
fn limit(what: &str, v: i64) -> Result<String, Error> {
    match v {
        -1 => Ok("max".into()),
        v if v < 0 => Err(Error::invalid(what, format!("{v} is negative"))),
        v => Ok(v.to_string()),
    }
}

/// OCI swap is memory+swap (v1's memsw); cgroup2 limits swap alone.
/// Arguments and result use 0 for unset and -1 for unlimited.
pub(super) fn swap_v2(swap: i64, memory: i64) -> Result<i64, Error> {
    // Unlimited memory with swap left out: unlimited swap too, as v1 does.
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(Error::invalid(
            "memory.swap",
            "a swap limit needs a memory limit",
        ));
    }
    if swap < memory {
        return Err(Error::invalid(
            "memory.swap",
            format!("{swap} is below the memory limit {memory} (it counts memory plus swap)"),
        ));
    }
    Ok(swap - memory)
}

pub(super) fn memory(d: &Path, m: &LinuxMemory) -> Result<(), Error> {
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        tracing::warn!("kernel memory limits do not exist on cgroup v2; ignored");
    }
    if m.swappiness().is_some() {
        tracing::warn!("memory swappiness does not exist on cgroup v2; ignored");
    }
    if m.disable_oom_killer() == Some(true) {
        tracing::warn!("disabling the oom killer is not possible on cgroup v2; ignored");
    }
    let mem = m.limit().unwrap_or(0);
    let oci_swap = m.swap().unwrap_or(0);
    let swap = swap_v2(oci_swap, mem)?;
    // 0 after conversion is "unset", unless swap equals memory: no swap.
    if swap != 0 || oci_swap > 0 {
        let value = limit("memory.swap", swap)?;
        match write(d, "memory.swap.max", &value) {
            Ok(()) => {}
            // No swap accounting: "no swap" and "any swap" are both true.
            Err(e) if e.is_not_found() && (value == "max" || value == "0") => {}
            Err(e) => return Err(e),
        }
    }
    if mem != 0 {
        write(d, "memory.max", &limit("memory.limit", mem)?)?;
    }
    if let Some(r) = m.reservation() {
        write(d, "memory.low", &limit("memory.reservation", r)?)?;
    }
    Ok(())
}

/// runc's map of cpu.shares [2, 262144] onto cpu.weight [1, 10000].
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

pub(super) fn cpu(d: &Path, cpu: &LinuxCpu) -> Result<(), Error> {
    if cpu.realtime_runtime().is_some_and(|r| r != 0)
        || cpu.realtime_period().is_some_and(|p| p != 0)
    {
        return Err(Error::Unsupported(
            "realtime cpu limits on cgroup v2".into(),
        ));
    }
    if let Some(s) = cpu.shares().filter(|s| *s != 0) {
        write(d, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    let period = cpu.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let quota = match quota {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            // Only the period changes: keep the quota (cpu.max takes both).
            None => read_opt(d, "cpu.max")?
                .and_then(|s| s.split_whitespace().next().map(str::to_string))
                .unwrap_or_else(|| "max".to_string()),
        };
        let value = match period {
            Some(p) => format!("{quota} {p}"),
            None => quota,
        };
        write(d, "cpu.max", &value)?;
    }
    if let Some(b) = cpu.burst() {
        write(d, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = cpu.idle() {
        write(d, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// runc's map of blkio weight [10, 1000] onto io.weight [1, 10000].
pub(super) fn blkio_to_io_weight(w: u16) -> Result<u64, Error> {
    if !(10..=1000).contains(&w) {
        return Err(Error::invalid(
            "blkio weight",
            format!("{w} is outside 10..1000"),
        ));
    }
    Ok(1 + (u64::from(w) - 10) * 9999 / 990)
}

pub(super) fn io(d: &Path, b: &LinuxBlockIo) -> Result<(), Error> {
    // BFQ takes blkio weights as they are; io.weight needs converting.
    let bfq = d.join("io.bfq.weight").exists();
    let weight = |w: u16| -> Result<(&'static str, String), Error> {
        if bfq {
            Ok(("io.bfq.weight", w.to_string()))
        } else {
            Ok(("io.weight", blkio_to_io_weight(w)?.to_string()))
        }
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let (file, value) = weight(w)?;
        write(d, file, &value)?;
    }
    if b.leaf_weight().is_some() {
        tracing::warn!("blkio leaf weight does not exist on cgroup v2; ignored");
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            let (file, value) = weight(w)?;
            append(d, file, &format!("{}:{} {value}", wd.major(), wd.minor()))?;
        }
        if wd.leaf_weight().is_some() {
            tracing::warn!("blkio leaf weight does not exist on cgroup v2; ignored");
        }
    }
    // One io.max line per device with all its limits.
    let mut max: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    let throttles = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    for (devices, key) in throttles {
        for t in devices.iter().flatten() {
            // 0 removes a limit on v1; cgroup2 says "max" for that.
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            max.entry((t.major(), t.minor()))
                .or_default()
                .push(format!("{key}={rate}"));
        }
    }
    for ((major, minor), limits) in max {
        append(
            d,
            "io.max",
            &format!("{major}:{minor} {}", limits.join(" ")),
        )?;
    }
    Ok(())
}

pub(super) fn hugetlb(d: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), Error> {
    for l in limits {
        let size = v1::page_size(l)?;
        let value = limit("hugepage limit", l.limit())?;
        write(d, &format!("hugetlb.{size}.max"), &value)?;
        let rsvd = format!("hugetlb.{size}.rsvd.max");
        if d.join(&rsvd).exists() {
            write(d, &rsvd, &value)?;
        }
    }
    Ok(())
}

/// Replaces the cgroup's device program: the new one is attached before
/// the old ones go, so the container is never without a filter.
pub(super) fn devices(d: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), Error> {
    let rules = devices::normalize(rules)?;
    let insns = devices::program(&rules);
    let berr = |source: io::Error| Error::Bpf {
        path: d.to_path_buf(),
        source,
    };
    let cgroup = std::fs::File::open(d).map_err(|source| Error::Read {
        path: d.to_path_buf(),
        source,
    })?;
    let old = bpf::prog_query(cgroup.as_fd(), bpf::BPF_CGROUP_DEVICE).map_err(berr)?;
    let prog = bpf::load_cgroup_device_prog(&insns, c"Apache-2.0").map_err(berr)?;
    bpf::prog_attach(
        cgroup.as_fd(),
        prog.as_fd(),
        bpf::BPF_CGROUP_DEVICE,
        bpf::BPF_F_ALLOW_MULTI,
    )
    .map_err(berr)?;
    for id in old {
        let old_prog = match bpf::prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            // Detached by someone else meanwhile.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => continue,
            Err(e) => return Err(berr(e)),
        };
        bpf::prog_detach(cgroup.as_fd(), old_prog.as_fd(), bpf::BPF_CGROUP_DEVICE).map_err(berr)?;
    }
    Ok(())
}

/// Files the unified map must not touch: membership and the tree's shape
/// belong to the runtime.
const RESERVED: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.subtree_control",
    "cgroup.kill",
    "cgroup.freeze",
];

/// Writes `linux.resources.unified` as is, key = file name.
pub(super) fn unified(d: &Path, map: &HashMap<String, String>) -> Result<(), Error> {
    let mut keys: Vec<_> = map.iter().collect();
    keys.sort();
    for (key, value) in keys {
        if key.is_empty()
            || key.contains('/')
            || key.starts_with('.')
            || RESERVED.contains(&key.as_str())
        {
            return Err(Error::invalid("unified key", format!("{key:?}")));
        }
        if let Err(e) = write(d, key, value) {
            // Name the controller when that is what is missing.
            let controller = key.split('.').next().unwrap_or_default();
            if e.is_not_found()
                && controller != "cgroup"
                && !has_controller(d, controller).unwrap_or(true)
            {
                return Err(Error::ControllerMissing(controller.to_string()));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Freezes through `cgroup.freeze` and waits for `cgroup.events` to say
/// `frozen 1`; thaws again and fails after about two seconds.
pub(super) fn freeze(d: &Path) -> Result<(), Error> {
    write(d, "cgroup.freeze", "1")?;
    let start = Instant::now();
    let limit = Duration::from_secs(2);
    let mut attempt = 0;
    loop {
        if files::flat_keyed(d, "cgroup.events")?.get("frozen") == Some(&1) {
            return Ok(());
        }
        if start.elapsed() > limit {
            let timeout = Error::Timeout {
                path: d.join("cgroup.events"),
                state: "frozen",
                waited: start.elapsed(),
            };
            return Err(match write(d, "cgroup.freeze", "0") {
                Ok(()) => timeout,
                Err(e) => Error::Multiple(vec![timeout, e]),
            });
        }
        backoff(attempt);
        attempt += 1;
    }
}
