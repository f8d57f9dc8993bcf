//! The rest of a container's life: restart, pause and unpause, top, stats,
//! rename, update, prune, and the monitor's restart policy decisions.

use std::time::Duration;

use rusqlite::params;
use serde_json::json;

use crate::container::Engine;
use crate::db::{Container, State};
use crate::error::{Error, Result};
use crate::restart::{self, RestartPolicy};

/// One reading of a container's cgroup, in docker's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// CPU time used, nanoseconds, since the container started.
    pub cpu_ns: u64,
    /// Memory in use without the page cache, as docker shows it.
    pub mem_usage: u64,
    /// The memory limit, or the host's memory without one.
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

/// `update`: what changes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    /// -1 lifts the quota.
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart: Option<RestartPolicy>,
}

impl Update {
    fn memory(&self) -> bool {
        self.memory.is_some() || self.memory_swap.is_some() || self.memory_reservation.is_some()
    }

    fn cpu(&self) -> bool {
        self.nano_cpus.is_some()
            || self.cpu_shares.is_some()
            || self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpuset_cpus.is_some()
    }

    /// Whether it changes anything at all.
    pub fn is_empty(&self) -> bool {
        !self.memory() && !self.cpu() && self.pids_limit.is_none() && self.restart.is_none()
    }
}

impl Engine {
    fn running(&self, key: &str, op: &'static str) -> Result<Container> {
        let c = self.find(key)?;
        if c.state != State::Running {
            return Err(Error::WrongState {
                id: c.id,
                state: c.state.to_string(),
                op,
            });
        }
        Ok(c)
    }

    /// `restart`: stop (if running, with `signal` if given), then start again.
    pub fn restart(
        &self,
        key: &str,
        timeout: Option<Duration>,
        signal: Option<&str>,
    ) -> Result<Container> {
        let c = self.stop(key, timeout, signal)?;
        self.start(&c.id, None)?;
        Ok(c)
    }

    /// `pause`: freezes every process of the container (cgroup freezer).
    pub fn pause(&self, key: &str) -> Result<Container> {
        let c = self.running(key, "pause (it is not running)")?;
        if self.is_paused(&c.id) {
            return Err(Error::WrongState {
                id: c.id,
                state: "paused".into(),
                op: "pause (it is already paused)",
            });
        }
        self.runtime().pause(&c.id)?;
        crate::events::container(&self.db()?, &c, "pause", &[]);
        Ok(c)
    }

    pub fn unpause(&self, key: &str) -> Result<Container> {
        let c = self.running(key, "unpause (it is not running)")?;
        if !self.is_paused(&c.id) {
            return Err(Error::WrongState {
                id: c.id,
                state: "running".into(),
                op: "unpause (it is not paused)",
            });
        }
        self.runtime().resume(&c.id)?;
        crate::events::container(&self.db()?, &c, "unpause", &[]);
        Ok(c)
    }

    /// Paused is the freezer's state, not the row's: the runtime knows it.
    pub fn is_paused(&self, id: &str) -> bool {
        matches!(self.runtime().status(id), Ok(berth_runtime::Status::Paused))
    }

    /// What `inspect` learns beyond the row: the freezer's state and the
    /// restart count.
    pub(crate) fn inspect_lifecycle(&self, c: &Container, v: &mut serde_json::Value) {
        if c.state == State::Running && self.is_paused(&c.id) {
            v["State"]["Paused"] = json!(true);
            v["State"]["Status"] = json!("paused");
        }
        v["RestartCount"] = json!(self.restart_count(&c.id));
    }

    /// RestartCount, for `inspect`.
    pub fn restart_count(&self, id: &str) -> i64 {
        self.db()
            .and_then(|db| restart::get(&db, id))
            .map_or(0, |r| r.count)
    }

    /// `top`: the host's `ps` with `ps_args` (default `-ef`), limited to
    /// the container's processes. Returns the header and the rows.
    pub fn top(&self, key: &str, ps_args: &[String]) -> Result<(String, Vec<String>)> {
        let c = self.running(key, "top (it is not running)")?;
        Ok(self.runtime().ps(&c.id, ps_args)?)
    }

    /// One cgroup reading for `stats`.
    pub fn sample(&self, key: &str) -> Result<(Container, Sample)> {
        let c = self.running(key, "stats (it is not running)")?;
        let st = self.runtime().stats(&c.id)?;
        let cache = st
            .memory
            .raw
            .get("inactive_file")
            .or_else(|| st.memory.raw.get("total_inactive_file"))
            .copied()
            .unwrap_or(0);
        let limit = match st.memory.usage.limit {
            0 | u64::MAX => host_memory(),
            l => l.min(host_memory().max(1)),
        };
        let (mut r, mut w) = (0, 0);
        for e in &st.blkio.io_service_bytes_recursive {
            match e.op.to_ascii_lowercase().as_str() {
                "read" => r += e.value,
                "write" => w += e.value,
                _ => {}
            }
        }
        let (rx, tx) = net_io(c.pid);
        Ok((
            c,
            Sample {
                cpu_ns: st.cpu.usage.total,
                mem_usage: st.memory.usage.usage.saturating_sub(cache),
                mem_limit: limit,
                net_rx: rx,
                net_tx: tx,
                blk_read: r,
                blk_write: w,
                pids: st.pids.current,
            },
        ))
    }

    /// `rename`.
    pub fn rename(&self, key: &str, new: &str) -> Result<Container> {
        let c = self.find(key)?;
        let new = crate::names::validate(new)?;
        let db = self.db()?;
        match db.conn().execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![c.id, new],
        ) {
            Ok(_) => {
                let mut renamed = c.clone();
                renamed.name = new;
                crate::events::container(
                    &db,
                    &renamed,
                    "rename",
                    &[("oldName", format!("/{}", c.name))],
                );
                Ok(c)
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::NameInUse(new))
            }
            Err(e) => Err(db.err()(e)),
        }
    }

    /// `update`: new limits, live on a running container and kept for
    /// its next starts; a new restart policy applies at the next exit.
    pub fn update(&self, key: &str, u: &Update) -> Result<Container> {
        let mut c = self.find(key)?;
        let h = &mut c.config.host_config;
        if let Some(m) = u.memory {
            // As docker: a swap limit set before stays, so it must not
            // fall below the new memory limit unless changed with it.
            if u.memory_swap.is_none() && h.memory_swap > 0 && h.memory_swap < m {
                return Err(Error::InvalidArgument(
                    "Memory limit should be smaller than already set memoryswap limit, \
                     update the memoryswap at the same time"
                        .into(),
                ));
            }
            h.memory = m;
        }
        if let Some(s) = u.memory_swap {
            h.memory_swap = s;
        }
        if let Some(r) = u.memory_reservation {
            h.memory_reservation = r;
        }
        if let Some(n) = u.nano_cpus {
            h.nano_cpus = n;
        }
        if let Some(n) = u.cpu_shares {
            h.cpu_shares = n;
        }
        if let Some(n) = u.cpu_period {
            h.cpu_period = n;
        }
        if let Some(n) = u.cpu_quota {
            h.cpu_quota = n;
        }
        if let Some(cpus) = &u.cpuset_cpus {
            h.cpuset_cpus = cpus.clone();
        }
        if let Some(p) = u.pids_limit {
            h.pids_limit = Some(p);
        }
        if let Some(r) = &u.restart {
            if !r.is_none() && c.config.auto_remove {
                return Err(Error::InvalidArgument(
                    "conflicting options: a restart policy and --rm".into(),
                ));
            }
            h.restart_policy = r.clone();
        }
        crate::hostconfig::validate(h)?;
        if c.state == State::Running && (u.memory() || u.cpu() || u.pids_limit.is_some()) {
            self.runtime().update(&c.id, &resources(u, h)?)?;
        }
        let json =
            serde_json::to_string(&c.config).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let db = self.db()?;
        db.conn()
            .execute(
                "UPDATE containers SET config = ?2 WHERE id = ?1",
                params![c.id, json],
            )
            .map_err(db.err())?;
        Ok(c)
    }

    /// `container prune`: removes every stopped container `filters`
    /// select; their ids, and the bytes their writable layers held.
    pub fn prune(&self, filters: &crate::filters::PruneFilters) -> Result<(Vec<String>, u64)> {
        let mut gone = Vec::new();
        let mut bytes = 0;
        let store = self.store()?;
        for c in self.list()? {
            let chosen = filters.matches(
                |k| c.config.labels.get(k).map(String::as_str),
                Some(c.created),
            );
            if chosen && matches!(c.state, State::Exited | State::Created) {
                let size = crate::image_ops::container_size(&store, &c.id);
                match self.remove(&c.id, false, false) {
                    Ok(_) => {
                        gone.push(c.id);
                        bytes += size;
                    }
                    // Started or removed by someone else meanwhile.
                    Err(e)
                        if matches!(
                            e.kind(),
                            crate::ErrorKind::Conflict | crate::ErrorKind::NotFound
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((gone, bytes))
    }

    /// The monitor, after an exit: whether the policy restarts `id`.
    pub fn should_restart(&self, id: &str, code: i32) -> bool {
        let Ok(db) = self.db() else { return false };
        let Ok(c) = db.find(id) else { return false };
        if c.state != State::Exited {
            return false;
        }
        let r = restart::get(&db, id).unwrap_or_default();
        c.config
            .host_config
            .restart_policy
            .should_restart(code, r.count, r.stopped_by_user)
    }

    /// Whether `stop` was asked since the last start by the user.
    pub fn stopped_by_user(&self, id: &str) -> bool {
        self.db()
            .and_then(|db| restart::get(&db, id))
            .is_ok_and(|r| r.stopped_by_user)
    }

    /// The monitor, before a restart: counts it and prepares the bundle.
    /// `Ok(None)` when the container was stopped or removed meanwhile.
    pub fn prepare_restart(&self, id: &str) -> Result<Option<Container>> {
        let db = self.db()?;
        let c = match db.find(id) {
            Ok(c) if c.state == State::Exited => c,
            Ok(_) | Err(Error::NoSuchContainer(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if restart::get(&db, id)?.stopped_by_user {
            return Ok(None);
        }
        restart::count_one(&db, id)?;
        self.prepare(&c, None)?;
        Ok(Some(c))
    }
}

/// The runtime's resources for an update: docker's 100 ms CPU period.
/// The resources `u` changes, as they now are in `h`.
fn resources(u: &Update, h: &crate::HostConfig) -> Result<oci_spec::runtime::LinuxResources> {
    let mut v = json!({});
    if u.memory() {
        v["memory"] = crate::hostspec::memory_resources(h).into();
    }
    if u.cpu() {
        v["cpu"] = crate::hostspec::cpu_resources(h).into();
    }
    if let Some(p) = u.pids_limit {
        v["pids"] = json!({"limit": if p <= 0 { -1 } else { p }});
    }
    serde_json::from_value(v).map_err(|e| Error::InvalidArgument(format!("update: {e}")))
}

/// The rows of `ps` output whose PID column is one of `pids`.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

/// Bytes received and sent on the container's interfaces but loopback,
/// from its network namespace's /proc/net/dev.
fn net_io(pid: i32) -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    parse_net_dev(&s)
}

fn parse_net_dev(s: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for l in s.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_skips_loopback() {
        let s = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 2000 3 0 0 0 0 0 0 500 2 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(s), (2000, 500));
    }

    #[test]
    fn update_resources_use_dockers_period() {
        let h = crate::HostConfig {
            nano_cpus: 500_000_000,
            memory: 64 << 20,
            ..Default::default()
        };
        let u = Update {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(20),
            ..Default::default()
        };
        let r = resources(&u, &h).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["cpu"]["quota"], 50_000);
        assert_eq!(v["memory"]["limit"], 64 << 20);
        assert_eq!(v["memory"]["swap"], 128 << 20, "docker's default swap");
        assert_eq!(v["pids"]["limit"], 20);
        // Only what changes is applied: shares alone leave memory be.
        let u = Update {
            cpu_shares: Some(512),
            ..Default::default()
        };
        let h = crate::HostConfig {
            cpu_shares: 512,
            ..h
        };
        let v = serde_json::to_value(resources(&u, &h).unwrap()).unwrap();
        assert_eq!(v["cpu"]["shares"], 512);
        assert!(v.get("memory").is_none_or(|m| m.is_null()), "{v}");
        assert!(!u.is_empty() && Update::default().is_empty());
    }
}
