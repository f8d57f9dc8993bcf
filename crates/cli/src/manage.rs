//! Container commands past start and stop: restart, pause, unpause, top,
//! stats, rename, update, container prune.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_engine::hostconfig as hc;
use berth_engine::restart::RestartPolicy;
use berth_engine::{Engine, State};
use clap::Args;

use crate::format;

/// [`crate::containers::each`], printing each argument that worked, as
/// docker's restart, pause, unpause and update do.
fn each(items: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<u8> {
    crate::containers::each(items, |i| {
        f(i)?;
        println!("{i}");
        Ok(())
    })
}

#[derive(Args)]
pub struct RestartArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn restart(engine: &Engine, a: RestartArgs) -> Result<u8> {
    // docker's CLI has no signal for restart (its API has, see berth serve).
    each(&a.containers, |c| {
        engine.restart(c, a.time.map(Duration::from_secs), None)?;
        Ok(())
    })
}

#[derive(Args)]
pub struct PauseArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn pause(engine: &Engine, a: PauseArgs) -> Result<u8> {
    each(&a.containers, |c| Ok(engine.pause(c).map(|_| ())?))
}

pub fn unpause(engine: &Engine, a: PauseArgs) -> Result<u8> {
    each(&a.containers, |c| Ok(engine.unpause(c).map(|_| ())?))
}

#[derive(Args)]
pub struct TopArgs {
    container: String,
    /// Options for ps (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_options: Vec<String>,
}

pub fn top(engine: &Engine, a: TopArgs) -> Result<u8> {
    let (header, rows) = engine.top(&a.container, &a.ps_options)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    for r in rows {
        writeln!(out, "{r}")?;
    }
    Ok(0)
}

#[derive(Args)]
pub struct StatsArgs {
    /// Print one table and exit.
    #[arg(long)]
    no_stream: bool,
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    all: bool,
    #[arg(long)]
    no_trunc: bool,
    /// A Go template over each container's figures (`table ...` for
    /// columns), or json.
    #[arg(long)]
    format: Option<String>,
    containers: Vec<String>,
}

/// docker's default `stats` table.
const STATS_TABLE: &str =
    "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// `stats`' columns by field, docker's names.
const STATS_HEADERS: [(&str, &str); 9] = [
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// docker's `units.BytesSize`: binary units, Go's `%.4g` ("1.5MiB").
pub(crate) fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    // Four significant digits, trailing zeros dropped, as %g does.
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let s = format!("{v:.*}", 4usize.saturating_sub(int_digits));
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[u])
}

/// One row of docker's fields per container from two readings `wall`
/// apart.
fn stats_rows(engine: &Engine, a: &StatsArgs, wall: Duration) -> Result<Vec<serde_json::Value>> {
    let keys: Vec<String> = if a.containers.is_empty() {
        engine
            .list()?
            .into_iter()
            .filter(|c| a.all || c.state == State::Running)
            .map(|c| c.id)
            .collect()
    } else {
        a.containers.clone()
    };
    let first: Vec<_> = keys.iter().map(|k| engine.sample(k).ok()).collect();
    let t0 = Instant::now();
    std::thread::sleep(wall);
    let mut rows = Vec::new();
    for (k, before) in keys.iter().zip(first) {
        let (c, s) = match engine.sample(k) {
            Ok(x) => x,
            // Not running: docker shows a row of zeros.
            Err(_) => {
                let c = engine.find(k)?;
                (c, Default::default())
            }
        };
        let elapsed = t0.elapsed().as_nanos().max(1) as f64;
        let cpu = before.map_or(0.0, |(_, b)| {
            s.cpu_ns.saturating_sub(b.cpu_ns) as f64 / elapsed * 100.0
        });
        let mem_pct = if s.mem_limit > 0 {
            s.mem_usage as f64 / s.mem_limit as f64 * 100.0
        } else {
            0.0
        };
        rows.push(serde_json::json!({
            "Container": k,
            "ID": if a.no_trunc { c.id.clone() } else { c.id[..12].to_string() },
            "Name": c.name,
            "CPUPerc": format!("{cpu:.2}%"),
            "MemUsage": format!("{} / {}", binary_size(s.mem_usage), binary_size(s.mem_limit)),
            "MemPerc": format!("{mem_pct:.2}%"),
            "NetIO": format!("{} / {}", format::human_size(s.net_rx), format::human_size(s.net_tx)),
            "BlockIO": format!(
                "{} / {}",
                format::human_size(s.blk_read),
                format::human_size(s.blk_write)
            ),
            "PIDs": s.pids.to_string(),
        }));
    }
    Ok(rows)
}

pub fn stats(engine: &Engine, a: StatsArgs) -> Result<u8> {
    let f = crate::template::Format::parse(a.format.as_deref(), STATS_TABLE)?;
    if a.no_stream {
        let rows = stats_rows(engine, &a, Duration::from_millis(500))?;
        print!("{}", f.render(&rows, &STATS_HEADERS)?);
        return Ok(0);
    }
    // Live: the figures redrawn every second until interrupted (ctrl-c
    // ends the process with the default SIGINT action).
    loop {
        let rows = stats_rows(engine, &a, Duration::from_secs(1))?;
        let mut out = std::io::stdout().lock();
        write!(out, "\x1b[2J\x1b[H{}", f.render(&rows, &STATS_HEADERS)?)?;
        out.flush()?;
    }
}

#[derive(Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub fn rename(engine: &Engine, a: RenameArgs) -> Result<u8> {
    engine.rename(&a.container, &a.new_name)?;
    Ok(0)
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 512m).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory plus swap limit (-1 for unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long)]
    cpu_shares: Option<i64>,
    /// The CPU CFS period, in microseconds.
    #[arg(long)]
    cpu_period: Option<i64>,
    /// The CPU CFS quota, in microseconds a period (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Process limit (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// no, on-failure[:N], always, unless-stopped.
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn update(engine: &Engine, a: UpdateArgs) -> Result<u8> {
    // docker: a zero or empty value leaves the setting as it is.
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        Ok(match v.as_deref() {
            None => None,
            Some("-1") if flag == "--memory-swap" => Some(-1),
            Some(v) => Some(hc::parse_bytes(flag, v)?).filter(|n| *n != 0),
        })
    };
    let u = berth_engine::lifecycle::Update {
        memory: bytes("--memory", &a.memory)?,
        memory_swap: bytes("--memory-swap", &a.memory_swap)?,
        memory_reservation: bytes("--memory-reservation", &a.memory_reservation)?,
        nano_cpus: a
            .cpus
            .as_deref()
            .map(hc::parse_cpus)
            .transpose()?
            .filter(|n| *n != 0),
        cpu_shares: a.cpu_shares.filter(|n| *n != 0),
        cpu_period: a.cpu_period.filter(|n| *n != 0),
        cpu_quota: a.cpu_quota.filter(|n| *n != 0),
        cpuset_cpus: a.cpuset_cpus.filter(|c| !c.is_empty()),
        pids_limit: a.pids_limit,
        restart: a.restart.as_deref().map(RestartPolicy::parse).transpose()?,
    };
    if u.is_empty() {
        bail!(berth_engine::Error::InvalidArgument(
            "update needs at least one of -m, --memory-swap, --memory-reservation, --cpus, \
             --cpu-shares, --cpu-period, --cpu-quota, --cpuset-cpus, --pids-limit, --restart"
                .into()
        ));
    }
    each(&a.containers, |c| Ok(engine.update(c, &u).map(|_| ())?))
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
    /// Only what these select: label=K[=V], label!=K[=V], until=TIME.
    #[arg(long)]
    filter: Vec<String>,
}

/// `container prune`.
pub fn container_prune(engine: &Engine, a: PruneArgs) -> Result<u8> {
    let filters = berth_engine::filters::PruneFilters::parse_flags(&a.filter, "container", true)?;
    if !a.force {
        print!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let (gone, bytes) = engine.prune(&filters)?;
    let mut out = std::io::stdout().lock();
    if !gone.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &gone {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        crate::format::human_size(bytes)
    )?;
    Ok(0)
}

/// `system boot`: starts what the restart policies say should run (after
/// a reboot, or a monitor that died), one line per container: its name,
/// or the error of its start. Exit 1 if any start failed.
pub fn boot(engine: &Engine) -> Result<u8> {
    let mut failed = false;
    for (c, started) in engine.boot()? {
        match started {
            Ok(()) => println!("{}", c.name),
            Err(e) => {
                failed = true;
                eprintln!("berth: starting {}: {e}", c.name);
            }
        }
    }
    Ok(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_in_binary_units() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(512 << 20), "512MiB");
        assert_eq!(binary_size(7_800_000_000), "7.264GiB");
        assert_eq!(binary_size(1000), "1000B");
    }
}
