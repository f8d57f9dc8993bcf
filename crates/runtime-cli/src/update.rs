//! `update`: limits from a resources JSON file or from runc's flags.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// A LinuxResources JSON file; `-` reads stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub memory_reservation: Option<String>,
    #[arg(long)]
    pub memory_swap: Option<String>,
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

/// Bytes with docker's units: 512, 64k, 10m, 1g (binary multiples); -1 is
/// unlimited.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}: negative");
    }
    Ok((n * mult as f64) as i64)
}

impl UpdateArgs {
    pub fn resources(&self) -> Result<LinuxResources> {
        if let Some(path) = &self.resources {
            let bytes = if path.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
            };
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: invalid resources JSON", path.display()));
        }
        let mut r = LinuxResources::default();
        if self.memory.is_some() || self.memory_reservation.is_some() || self.memory_swap.is_some()
        {
            let mut m = LinuxMemory::default();
            m.set_limit(self.memory.as_deref().map(parse_bytes).transpose()?);
            m.set_reservation(
                self.memory_reservation
                    .as_deref()
                    .map(parse_bytes)
                    .transpose()?,
            );
            m.set_swap(self.memory_swap.as_deref().map(parse_bytes).transpose()?);
            r.set_memory(Some(m));
        }
        if self.cpu_shares.is_some()
            || self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
        {
            let mut c = LinuxCpu::default();
            c.set_shares(self.cpu_shares);
            c.set_period(self.cpu_period);
            c.set_quota(self.cpu_quota);
            c.set_cpus(self.cpuset_cpus.clone());
            c.set_mems(self.cpuset_mems.clone());
            r.set_cpu(Some(c));
        }
        if let Some(p) = self.pids_limit {
            let mut pl = LinuxPids::default();
            pl.set_limit(p);
            r.set_pids(Some(pl));
        }
        if let Some(w) = self.blkio_weight {
            let mut b = LinuxBlockIo::default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        if r == LinuxResources::default() {
            bail!("update needs --resources FILE or at least one limit flag");
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes("10M").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("ten").is_err());
    }
}
