//! Persistent state: network definitions and IP leases, in SQLite tables
//! prefixed `net_` (the engine may point this at its own berth.db).
//!
//! Concurrency: every process or thread opens its own [`Store`]; each
//! allocation is one `BEGIN IMMEDIATE` transaction, so SQLite's write lock
//! serialises allocators across threads and processes alike, and the
//! busy timeout makes them queue rather than fail. A lease is a row, so a
//! crash can leave a lease but never a half-made one; `prune` returns
//! leases of containers that no longer exist.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::subnet::Ipv4Net;

/// A network as stored: everything needed to recreate its kernel state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub name: String,
    /// 64 hex digits, like docker's network ids.
    pub id: String,
    /// The bridge interface (`berth0` for the default network).
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Containers get addresses only from here (docker's `--ip-range`).
    pub ip_range: Option<Ipv4Net>,
    /// No masquerade and no forwarding out of the bridge.
    pub internal: bool,
    /// Containers resolve each other by name (user networks).
    pub dns: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One address held by one container on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub network: String,
    pub ip: Ipv4Addr,
    pub container: String,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        // Set first: even switching to WAL takes a lock others may hold.
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // No checkpoint (two fsyncs) and WAL deletion at every close.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        // Checkpoints at 256 pages: a new process reads the whole WAL.
        conn.pragma_update(None, "wal_autocheckpoint", 256)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS net_networks (
                 name TEXT PRIMARY KEY,
                 config TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS net_leases (
                 network TEXT NOT NULL,
                 ip INTEGER NOT NULL,
                 container TEXT NOT NULL,
                 PRIMARY KEY (network, ip),
                 UNIQUE (network, container)
             );",
        )?;
        Ok(Store { conn })
    }

    /// Records a new network; AlreadyExists for a taken name, Conflict for
    /// a bridge name or overlapping subnet another network already uses.
    pub fn insert_network(&mut self, cfg: &NetworkConfig) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for other in list_in(&tx)? {
            if other.name == cfg.name {
                return Err(Error::AlreadyExists(format!("network {}", cfg.name)));
            }
            if other.bridge == cfg.bridge {
                return Err(Error::Conflict(format!(
                    "bridge {} is already used by network {}",
                    cfg.bridge, other.name
                )));
            }
            if other.subnet.overlaps(&cfg.subnet) {
                return Err(Error::Conflict(format!(
                    "subnet {} overlaps network {} ({})",
                    cfg.subnet, other.name, other.subnet
                )));
            }
        }
        let json = serde_json::to_string(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
        tx.execute(
            "INSERT INTO net_networks (name, config) VALUES (?1, ?2)",
            params![cfg.name, json],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn network(&self, name: &str) -> Result<NetworkConfig> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT config FROM net_networks WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        let json = json.ok_or_else(|| Error::NotFound(format!("network {name}")))?;
        parse_config(&json)
    }

    pub fn networks(&self) -> Result<Vec<NetworkConfig>> {
        list_in(&self.conn)
    }

    /// Deletes a network record; Conflict while it still has leases
    /// (docker: "network has active endpoints").
    pub fn delete_network(&mut self, name: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n: i64 = tx.query_row(
            "SELECT count(*) FROM net_leases WHERE network = ?1",
            [name],
            |r| r.get(0),
        )?;
        if n > 0 {
            return Err(Error::Conflict(format!(
                "network {name} has active endpoints"
            )));
        }
        if tx.execute("DELETE FROM net_networks WHERE name = ?1", [name])? == 0 {
            return Err(Error::NotFound(format!("network {name}")));
        }
        tx.commit()?;
        Ok(())
    }

    /// Leases an address on `net` to `container`: `requested` if given
    /// (Conflict if another container holds it, Invalid if outside the
    /// subnet or reserved), else the lowest free one in the ip-range (or
    /// subnet), never the network, gateway or broadcast address. A
    /// container that already holds a lease here gets it back, so a
    /// retried attach is harmless.
    pub fn allocate(
        &mut self,
        net: &NetworkConfig,
        container: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        if let Some(ip) = requested {
            check_static(net, ip)?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held: Option<u32> = tx
            .query_row(
                "SELECT ip FROM net_leases WHERE network = ?1 AND container = ?2",
                params![net.name, container],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(held) = held.map(Ipv4Addr::from) {
            return match requested {
                Some(ip) if ip != held => Err(Error::Conflict(format!(
                    "container {container} already has {held} on network {}",
                    net.name
                ))),
                _ => Ok(held),
            };
        }
        let ip = match requested {
            Some(ip) => {
                let owner: Option<String> = tx
                    .query_row(
                        "SELECT container FROM net_leases WHERE network = ?1 AND ip = ?2",
                        params![net.name, u32::from(ip)],
                        |r| r.get(0),
                    )
                    .optional()?;
                if owner.is_some() {
                    return Err(Error::Conflict(format!(
                        "address {ip} is already in use on network {}",
                        net.name
                    )));
                }
                ip
            }
            None => {
                let used = used_in(&tx, &net.name)?;
                first_free(net, &used).ok_or_else(|| {
                    Error::Exhausted(net.ip_range.unwrap_or(net.subnet).to_string())
                })?
            }
        };
        tx.execute(
            "INSERT INTO net_leases (network, ip, container) VALUES (?1, ?2, ?3)",
            params![net.name, u32::from(ip), container],
        )?;
        tx.commit()?;
        Ok(ip)
    }

    /// Returns `container`'s address on `network` to the pool; the address
    /// it held, if any.
    pub fn release(&mut self, network: &str, container: &str) -> Result<Option<Ipv4Addr>> {
        let ip: Option<u32> = self
            .conn
            .query_row(
                "DELETE FROM net_leases WHERE network = ?1 AND container = ?2 RETURNING ip",
                params![network, container],
                |r| r.get(0),
            )
            .optional()?;
        Ok(ip.map(Ipv4Addr::from))
    }

    /// Leases on one network, or on all networks when `network` is None.
    pub fn leases(&self, network: Option<&str>) -> Result<Vec<Lease>> {
        let mut stmt = self.conn.prepare(
            "SELECT network, ip, container FROM net_leases
             WHERE ?1 IS NULL OR network = ?1 ORDER BY network, ip",
        )?;
        let rows = stmt.query_map([network], |r| {
            Ok(Lease {
                network: r.get(0)?,
                ip: Ipv4Addr::from(r.get::<_, u32>(1)?),
                container: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn parse_config(json: &str) -> Result<NetworkConfig> {
    serde_json::from_str(json).map_err(|e| Error::Invalid(format!("stored network: {e}")))
}

fn list_in(conn: &Connection) -> Result<Vec<NetworkConfig>> {
    let mut stmt = conn.prepare("SELECT config FROM net_networks ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|j| parse_config(&j?)).collect()
}

fn used_in(conn: &Connection, network: &str) -> Result<HashSet<u32>> {
    let mut stmt = conn.prepare("SELECT ip FROM net_leases WHERE network = ?1")?;
    let rows = stmt.query_map([network], |r| r.get::<_, u32>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// True for addresses no container may have: network, broadcast, gateway.
fn reserved(net: &NetworkConfig, ip: Ipv4Addr) -> bool {
    let small = net.subnet.prefix() >= 31;
    ip == net.gateway || (!small && (ip == net.subnet.network() || ip == net.subnet.broadcast()))
}

fn check_static(net: &NetworkConfig, ip: Ipv4Addr) -> Result<()> {
    if !net.subnet.contains(ip) {
        return Err(Error::Invalid(format!(
            "address {ip} is not in subnet {} of network {}",
            net.subnet, net.name
        )));
    }
    if reserved(net, ip) {
        return Err(Error::Invalid(format!(
            "address {ip} is reserved on network {} (network, gateway or broadcast)",
            net.name
        )));
    }
    Ok(())
}

fn first_free(net: &NetworkConfig, used: &HashSet<u32>) -> Option<Ipv4Addr> {
    let range = net.ip_range.unwrap_or(net.subnet);
    let lo = u32::from(range.network());
    let hi = u32::from(range.broadcast());
    (lo..=hi).map(Ipv4Addr::from).find(|ip| {
        net.subnet.contains(*ip) && !reserved(net, *ip) && !used.contains(&u32::from(*ip))
    })
}
