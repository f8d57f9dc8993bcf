//! Persistent state: network definitions and IP leases, in SQLite tables
//! prefixed `net_` (the engine may point this at its own berth.db).
//!
//! Concurrency: every process or thread opens its own [`Store`]; each
//! allocation is one `BEGIN IMMEDIATE` transaction, so SQLite's write lock
//! serialises allocators across threads and processes alike, and the
//! busy timeout makes them queue rather than fail. A lease is a row, so a
//! crash can leave a lease but never a half-made one; `prune` returns
//! leases of containers that no longer exist.
//!
//! A lease also carries what the network's DNS server answers with: the
//! names the container has on that network and its own upstream servers
//! (`--dns`). Records so follow connect, disconnect and removal with no
//! second bookkeeping to keep in step.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::subnet::{Ipv4Net, Ipv6Net};

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
    /// IPv6 (`--ipv6`): containers get an address here as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
}

/// docker's predefined networks besides the default bridge, each with its
/// driver: a container on `host` shares the host's stack, one on `none`
/// has only loopback. They have no kernel state of their own; what is kept
/// is an id, made once, so `ls`, inspect and events name them alike.
pub const PREDEFINED: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// One of [`PREDEFINED`] with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predefined {
    pub name: String,
    /// 64 hex digits, like every network's.
    pub id: String,
    /// docker's driver name: `host` or `null`.
    pub driver: &'static str,
}

/// The predefined network `name`, its id made on first use. Over any
/// connection to the store's database, so the engine can ask over the
/// one it holds (in the commit of a container's start).
pub fn predefined(conn: &Connection, name: &str) -> Result<Predefined> {
    let driver = PREDEFINED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .ok_or_else(|| Error::NotFound(format!("predefined network {name}")))?;
    let get = |conn: &Connection| {
        conn.query_row(
            "SELECT id FROM net_predefined WHERE name = ?1",
            [name],
            |r| r.get::<_, String>(0),
        )
        .optional()
    };
    let id = match get(conn) {
        Ok(Some(id)) => id,
        // The table is made here, not with the schema: databases made
        // before these networks pass Store::open's readiness check.
        Ok(None) => insert_predefined(conn, name, get)?,
        Err(e) if e.to_string().contains("no such table") => insert_predefined(conn, name, get)?,
        Err(e) => return Err(e.into()),
    };
    Ok(Predefined {
        name: name.to_string(),
        id,
        driver,
    })
}

fn insert_predefined(
    conn: &Connection,
    name: &str,
    get: impl Fn(&Connection) -> rusqlite::Result<Option<String>>,
) -> Result<String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS net_predefined (name TEXT PRIMARY KEY, id TEXT NOT NULL)",
    )?;
    // Two first users race: the first id stays and both read it back.
    conn.execute(
        "INSERT OR IGNORE INTO net_predefined (name, id) VALUES (?1, ?2)",
        params![name, crate::network::random_id()?],
    )?;
    get(conn)?.ok_or_else(|| Error::NotFound(format!("predefined network {name}")))
}

/// One address (two on a dual-stack network) held by one container on
/// one network, and the names it answers to there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub network: String,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub container: String,
    /// DNS names on this network: name, short id, hostname, aliases.
    pub names: Vec<String>,
    /// The container's own upstream resolvers (`--dns`); empty: the host's.
    pub upstream: Vec<IpAddr>,
}

/// What a container asks for when it joins a network.
#[derive(Debug, Clone, Default)]
pub struct LeaseRequest {
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub names: Vec<String>,
    pub upstream: Vec<IpAddr>,
}

const LEASE_COLUMNS: &str = "network, ip, ip6, container, names, upstream";

fn lease_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    let ip6: Option<String> = r.get(2)?;
    let names: String = r.get(4)?;
    let upstream: String = r.get(5)?;
    Ok(Lease {
        network: r.get(0)?,
        ip: Ipv4Addr::from(r.get::<_, u32>(1)?),
        ip6: ip6.and_then(|s| s.parse().ok()),
        container: r.get(3)?,
        names: names.split_whitespace().map(str::to_string).collect(),
        upstream: upstream
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect(),
    })
}

fn join_words<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
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
        // Checkpoints at 64 pages: a new process reads the whole WAL.
        // (berth_image::sqlite::open_shared sets the same for the other
        // stores, and says why; this crate does not depend on that one.)
        conn.pragma_update(None, "wal_autocheckpoint", 64)?;
        // Every attach opens the store: one lookup instead of the nine
        // statements of create_schema once the schema is there (its last
        // index is made last, so its presence means all of it is).
        let ready: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = 'net_leases_container'",
            [],
            |r| r.get(0),
        )?;
        if !ready {
            create_schema(&conn)?;
        }
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
            if let (Some(a), Some(b)) = (cfg.subnet6, other.subnet6) {
                if a.overlaps(&b) {
                    return Err(Error::Conflict(format!(
                        "subnet {a} overlaps network {} ({b})",
                        other.name
                    )));
                }
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

    /// docker's `host` and `none` ([`PREDEFINED`]), in that order.
    pub fn predefined(&self) -> Result<Vec<Predefined>> {
        PREDEFINED
            .iter()
            .map(|(name, _)| predefined(&self.conn, name))
            .collect()
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

    /// Leases an IPv4 address on `net` to `container` (see [`Store::lease`]).
    pub fn allocate(
        &mut self,
        net: &NetworkConfig,
        container: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let req = LeaseRequest {
            ip: requested,
            ..Default::default()
        };
        self.lease(net, container, &req).map(|l| l.ip)
    }

    /// Leases addresses on `net` to `container`: `req.ip` if given
    /// (Conflict if another container holds it, Invalid if outside the
    /// subnet or reserved), else the lowest free one in the ip-range (or
    /// subnet), never the network, gateway or broadcast address; the same
    /// for IPv6 on a dual-stack network. A container that already holds a
    /// lease here gets it back, so a retried attach is harmless.
    pub fn lease(
        &mut self,
        net: &NetworkConfig,
        container: &str,
        req: &LeaseRequest,
    ) -> Result<Lease> {
        if let Some(ip) = req.ip {
            check_static(net, ip)?;
        }
        if let Some(ip6) = req.ip6 {
            check_static6(net, ip6)?;
        }
        if let Some(bad) = req
            .names
            .iter()
            .find(|n| n.is_empty() || n.contains(char::is_whitespace))
        {
            return Err(Error::Invalid(format!("invalid DNS name {bad:?}")));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held = tx
            .query_row(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM net_leases WHERE network = ?1 AND container = ?2"
                ),
                params![net.name, container],
                lease_row,
            )
            .optional()?;
        if let Some(held) = held {
            return match (req.ip, req.ip6) {
                (Some(ip), _) if ip != held.ip => Err(Error::Conflict(format!(
                    "container {container} already has {} on network {}",
                    held.ip, net.name
                ))),
                (_, Some(ip6)) if Some(ip6) != held.ip6 => Err(Error::Conflict(format!(
                    "container {container} already has another IPv6 address on network {}",
                    net.name
                ))),
                _ => Ok(held),
            };
        }
        let ip = match req.ip {
            Some(ip) => {
                let taken: bool = tx.query_row(
                    "SELECT count(*) > 0 FROM net_leases WHERE network = ?1 AND ip = ?2",
                    params![net.name, u32::from(ip)],
                    |r| r.get(0),
                )?;
                if taken {
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
        let ip6 = match (net.subnet6, req.ip6) {
            (None, _) => None,
            (Some(_), Some(ip6)) => {
                let taken: bool = tx.query_row(
                    "SELECT count(*) > 0 FROM net_leases WHERE network = ?1 AND ip6 = ?2",
                    params![net.name, ip6.to_string()],
                    |r| r.get(0),
                )?;
                if taken {
                    return Err(Error::Conflict(format!(
                        "address {ip6} is already in use on network {}",
                        net.name
                    )));
                }
                Some(ip6)
            }
            (Some(subnet6), None) => {
                let used = used6_in(&tx, &net.name)?;
                Some(
                    first_free6(net, subnet6, &used)
                        .ok_or_else(|| Error::Exhausted(subnet6.to_string()))?,
                )
            }
        };
        tx.execute(
            "INSERT INTO net_leases (network, ip, container, ip6, names, upstream)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                net.name,
                u32::from(ip),
                container,
                ip6.map(|a| a.to_string()),
                join_words(&req.names),
                join_words(&req.upstream)
            ],
        )?;
        tx.commit()?;
        Ok(Lease {
            network: net.name.clone(),
            ip,
            ip6,
            container: container.to_string(),
            names: req.names.clone(),
            upstream: req.upstream.clone(),
        })
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
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {LEASE_COLUMNS} FROM net_leases
             WHERE ?1 IS NULL OR network = ?1 ORDER BY network, ip"
        ))?;
        let rows = stmt.query_map([network], lease_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every lease of one container (one per network it is on).
    pub fn leases_of(&self, container: &str) -> Result<Vec<Lease>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {LEASE_COLUMNS} FROM net_leases WHERE container = ?1 ORDER BY network"
        ))?;
        let rows = stmt.query_map([container], lease_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The lease holding address `ip`, on whichever network (subnets
    /// never overlap within one store).
    pub fn lease_by_addr(&self, ip: IpAddr) -> Result<Option<Lease>> {
        let (sql, key): (String, rusqlite::types::Value) = match ip {
            IpAddr::V4(a) => (
                format!("SELECT {LEASE_COLUMNS} FROM net_leases WHERE ip = ?1"),
                i64::from(u32::from(a)).into(),
            ),
            IpAddr::V6(a) => (
                format!("SELECT {LEASE_COLUMNS} FROM net_leases WHERE ip6 = ?1"),
                a.to_string().into(),
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query_map([key], lease_row)?;
        Ok(rows.next().transpose()?)
    }

    /// A number that changes whenever another connection commits, so a
    /// reader can keep a cache and drop it only when needed.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

fn create_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS net_networks (
                 name TEXT PRIMARY KEY,
                 config TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS net_leases (
                 network TEXT NOT NULL,
                 ip INTEGER NOT NULL,
                 container TEXT NOT NULL,
                 ip6 TEXT,
                 names TEXT NOT NULL DEFAULT '',
                 upstream TEXT NOT NULL DEFAULT '',
                 PRIMARY KEY (network, ip),
                 UNIQUE (network, container)
             );",
    )?;
    // Databases made before IPv6 and DNS lack three columns. Two
    // openers may race here: the loser's duplicate column is harmless.
    for (col, ty) in [
        ("ip6", "TEXT"),
        ("names", "TEXT NOT NULL DEFAULT ''"),
        ("upstream", "TEXT NOT NULL DEFAULT ''"),
    ] {
        if conn
            .prepare(&format!("SELECT {col} FROM net_leases LIMIT 0"))
            .is_err()
        {
            match conn.execute_batch(&format!("ALTER TABLE net_leases ADD COLUMN {col} {ty}")) {
                Err(e) if !e.to_string().contains("duplicate column") => return Err(e.into()),
                _ => {}
            }
        }
    }
    // NULLs are distinct in a UNIQUE index: v4-only leases never clash.
    conn.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS net_leases_ip6 ON net_leases (network, ip6);
             CREATE INDEX IF NOT EXISTS net_leases_ip ON net_leases (ip);
             CREATE INDEX IF NOT EXISTS net_leases_container ON net_leases (container);",
    )?;
    Ok(())
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

fn used6_in(conn: &Connection, network: &str) -> Result<HashSet<u128>> {
    let mut stmt =
        conn.prepare("SELECT ip6 FROM net_leases WHERE network = ?1 AND ip6 IS NOT NULL")?;
    let rows = stmt.query_map([network], |r| r.get::<_, String>(0))?;
    let mut out = HashSet::new();
    for s in rows {
        if let Ok(a) = s?.parse::<Ipv6Addr>() {
            out.insert(u128::from(a));
        }
    }
    Ok(out)
}

fn check_static6(net: &NetworkConfig, ip: Ipv6Addr) -> Result<()> {
    let Some(subnet6) = net.subnet6 else {
        return Err(Error::Invalid(format!(
            "network {} has no IPv6 subnet for address {ip}",
            net.name
        )));
    };
    if !subnet6.contains(ip) {
        return Err(Error::Invalid(format!(
            "address {ip} is not in subnet {subnet6} of network {}",
            net.name
        )));
    }
    if ip == subnet6.network() || Some(ip) == net.gateway6 {
        return Err(Error::Invalid(format!(
            "address {ip} is reserved on network {} (network or gateway)",
            net.name
        )));
    }
    Ok(())
}

/// The lowest free IPv6 address: the subnet is huge, so this walks only
/// past the addresses in use (and the two reserved ones).
fn first_free6(net: &NetworkConfig, subnet6: Ipv6Net, used: &HashSet<u128>) -> Option<Ipv6Addr> {
    let gw = net.gateway6.map(u128::from);
    let lo = u128::from(subnet6.network()) + 1;
    let hi = u128::from(subnet6.last());
    (lo..=hi)
        .find(|a| Some(*a) != gw && !used.contains(a))
        .map(Ipv6Addr::from)
}

fn first_free(net: &NetworkConfig, used: &HashSet<u32>) -> Option<Ipv4Addr> {
    let range = net.ip_range.unwrap_or(net.subnet);
    let lo = u32::from(range.network());
    let hi = u32::from(range.broadcast());
    (lo..=hi).map(Ipv4Addr::from).find(|ip| {
        net.subnet.contains(*ip) && !reserved(net, *ip) && !used.contains(&u32::from(*ip))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_networks_keep_the_ids_they_are_first_given() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let first = Store::open(&db).unwrap().predefined().unwrap();
        let names: Vec<(&str, &str)> = first.iter().map(|p| (&*p.name, p.driver)).collect();
        assert_eq!(names, [("host", "host"), ("none", "null")]);
        assert!(first.iter().all(|p| p.id.len() == 64));
        assert_ne!(first[0].id, first[1].id);
        // Another connection, as the engine's own, reads the same ids.
        let conn = Connection::open(&db).unwrap();
        assert_eq!(predefined(&conn, "none").unwrap(), first[1]);
        assert_eq!(Store::open(&db).unwrap().predefined().unwrap(), first);
        assert_eq!(
            predefined(&conn, "bridge").unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
        // A database that never had the table gets it from a plain connection.
        let fresh = Connection::open(dir.path().join("other")).unwrap();
        assert_eq!(predefined(&fresh, "host").unwrap().id.len(), 64);
    }
}
