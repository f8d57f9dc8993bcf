//! Usage counters, serialised as runc's `events --stats` data (the field
//! names and `omitempty` choices of runc's types/events.go), so tools that
//! read runc's output read ours.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::{self, read_opt, read_u64_opt};
use super::Error;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// Bytes; `u64::MAX` as the limit means none.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// Memory plus swap, as v1's memsw (cgroup2 values are added up).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as the kernel wrote it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "ioQueueRecursive")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn u64_or_zero(d: &Path, file: &str) -> Result<u64, Error> {
    Ok(read_u64_opt(d, file)?.unwrap_or(0))
}

fn list(d: &Path, file: &str) -> Result<Vec<u64>, Error> {
    let text = read_opt(d, file)?.unwrap_or_default();
    text.split_whitespace()
        .map(|w| files::parse_u64(&d.join(file), w))
        .collect()
}

pub(super) fn v1_cpuacct(d: &Path, cpu: &mut Cpu) -> Result<(), Error> {
    cpu.usage.total = u64_or_zero(d, "cpuacct.usage")?;
    cpu.usage.percpu = list(d, "cpuacct.usage_percpu")?;
    // cpuacct.stat counts clock ticks.
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let stat = files::flat_keyed(d, "cpuacct.stat")?;
    let ns = |k: &str| {
        stat.get(k)
            .map_or(0, |t| t.saturating_mul(1_000_000_000) / ticks)
    };
    cpu.usage.user = ns("user");
    cpu.usage.kernel = ns("system");
    // "cpu user system" then one row per cpu, in nanoseconds.
    if let Some(all) = read_opt(d, "cpuacct.usage_all")? {
        for row in all.lines().skip(1) {
            let f: Vec<u64> = row
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            if let [_, user, system] = f[..] {
                cpu.usage.percpu_user.push(user);
                cpu.usage.percpu_kernel.push(system);
            }
        }
    }
    Ok(())
}

pub(super) fn v1_throttling(d: &Path, t: &mut Throttling) -> Result<(), Error> {
    let stat = files::flat_keyed(d, "cpu.stat")?;
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    t.periods = get("nr_periods");
    t.throttled_periods = get("nr_throttled");
    t.throttled_time = get("throttled_time");
    Ok(())
}

pub(super) fn v2_cpu(d: &Path, cpu: &mut Cpu) -> Result<(), Error> {
    let stat = files::flat_keyed(d, "cpu.stat")?;
    let ns = |k: &str| stat.get(k).copied().unwrap_or(0).saturating_mul(1000);
    cpu.usage.total = ns("usage_usec");
    cpu.usage.user = ns("user_usec");
    cpu.usage.kernel = ns("system_usec");
    cpu.throttling.periods = stat.get("nr_periods").copied().unwrap_or(0);
    cpu.throttling.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
    cpu.throttling.throttled_time = ns("throttled_usec");
    Ok(())
}

fn v1_memory_entry(d: &Path, prefix: &str) -> Result<MemoryEntry, Error> {
    Ok(MemoryEntry {
        limit: u64_or_zero(d, &format!("{prefix}.limit_in_bytes"))?,
        usage: u64_or_zero(d, &format!("{prefix}.usage_in_bytes"))?,
        max: u64_or_zero(d, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: u64_or_zero(d, &format!("{prefix}.failcnt"))?,
    })
}

pub(super) fn v1_memory(d: &Path, m: &mut Memory) -> Result<(), Error> {
    m.usage = v1_memory_entry(d, "memory")?;
    m.swap = v1_memory_entry(d, "memory.memsw")?;
    m.kernel = v1_memory_entry(d, "memory.kmem")?;
    m.kernel_tcp = v1_memory_entry(d, "memory.kmem.tcp")?;
    m.raw = files::flat_keyed(d, "memory.stat")?;
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    Ok(())
}

pub(super) fn v2_memory(d: &Path, m: &mut Memory) -> Result<(), Error> {
    let events = files::flat_keyed(d, "memory.events")?;
    m.usage = MemoryEntry {
        limit: read_u64_opt(d, "memory.max")?.unwrap_or(u64::MAX),
        usage: u64_or_zero(d, "memory.current")?,
        max: u64_or_zero(d, "memory.peak")?,
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    if let Some(swap_limit) = read_u64_opt(d, "memory.swap.max")? {
        let swap_events = files::flat_keyed(d, "memory.swap.events")?;
        // v1 counted memory plus swap; runc reports v2 the same way.
        m.swap = MemoryEntry {
            limit: if swap_limit == u64::MAX {
                u64::MAX
            } else {
                swap_limit.saturating_add(m.usage.limit)
            },
            usage: u64_or_zero(d, "memory.swap.current")?.saturating_add(m.usage.usage),
            max: u64_or_zero(d, "memory.swap.peak")?,
            failcnt: swap_events.get("fail").copied().unwrap_or(0),
        };
    }
    m.raw = files::flat_keyed(d, "memory.stat")?;
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    Ok(())
}

pub(super) fn pids(d: &Path, p: &mut Pids) -> Result<(), Error> {
    p.current = u64_or_zero(d, "pids.current")?;
    p.limit = match read_u64_opt(d, "pids.max")? {
        Some(u64::MAX) | None => 0,
        Some(n) => n,
    };
    Ok(())
}

/// "MAJ:MIN Op value" lines; the "Total" line is skipped.
fn blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

pub(super) fn v1_blkio(d: &Path, b: &mut Blkio) -> Result<(), Error> {
    // Which files count depends on the I/O scheduler; take the first kind
    // that has data: BFQ, CFQ, then the throttle counters (always there).
    for prefix in ["blkio.bfq.", "blkio.", "blkio.throttle."] {
        let bytes = blkio_entries(
            &read_opt(d, &format!("{prefix}io_service_bytes_recursive"))?.unwrap_or_default(),
        );
        let ios = blkio_entries(
            &read_opt(d, &format!("{prefix}io_serviced_recursive"))?.unwrap_or_default(),
        );
        if !bytes.is_empty() || !ios.is_empty() {
            b.io_service_bytes_recursive = bytes;
            b.io_serviced_recursive = ios;
            return Ok(());
        }
    }
    Ok(())
}

pub(super) fn v2_io(d: &Path, b: &mut Blkio) -> Result<(), Error> {
    let text = read_opt(d, "io.stat")?.unwrap_or_default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(())
}

/// Page sizes with a `hugetlb.<size>.<suffix>` file in `d`.
fn page_sizes(d: &Path, suffix: &str) -> Result<Vec<String>, Error> {
    let rerr = |source| Error::Read {
        path: d.to_path_buf(),
        source,
    };
    let mut sizes = Vec::new();
    for e in std::fs::read_dir(d).map_err(rerr)? {
        let name = e.map_err(rerr)?.file_name().to_string_lossy().into_owned();
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(suffix))
        {
            if !size.contains('.') {
                sizes.push(size.to_string());
            }
        }
    }
    Ok(sizes)
}

pub(super) fn v1_hugetlb(d: &Path, h: &mut BTreeMap<String, Hugetlb>) -> Result<(), Error> {
    for size in page_sizes(d, ".limit_in_bytes")? {
        let entry = Hugetlb {
            usage: u64_or_zero(d, &format!("hugetlb.{size}.usage_in_bytes"))?,
            max: u64_or_zero(d, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
            failcnt: u64_or_zero(d, &format!("hugetlb.{size}.failcnt"))?,
        };
        h.insert(size, entry);
    }
    Ok(())
}

pub(super) fn v2_hugetlb(d: &Path, h: &mut BTreeMap<String, Hugetlb>) -> Result<(), Error> {
    for size in page_sizes(d, ".max")? {
        let events = files::flat_keyed(d, &format!("hugetlb.{size}.events"))?;
        let entry = Hugetlb {
            usage: u64_or_zero(d, &format!("hugetlb.{size}.current"))?,
            max: 0,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        h.insert(size, entry);
    }
    Ok(())
}
