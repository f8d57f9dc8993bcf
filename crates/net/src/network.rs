//! The engine's entry point: [`Net`] creates and removes networks, attaches
//! containers to them, publishes ports, and prunes what a crash left.
//!
//! Hot path (`attach` + `publish`, per container): one SQLite transaction
//! for the lease, one rtnetlink request creating the veth pair with its
//! peer already inside the container's namespace, named, addressed by MAC
//! and up; then, in a helper thread inside the namespace, an address and a
//! default route (four requests: lookup, address, up, route; two more
//! on a dual-stack network); and one nftables batch per family for the
//! ports. No subprocess, no sleep, no polling.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, EEXIST};
use crate::nft::{self, Family, Firewall};
use crate::ports::PortMapping;
use crate::rtnl::Rtnl;
use crate::store::{Lease, LeaseRequest, NetworkConfig, Predefined, Store};
use crate::subnet::{Ipv4Net, Ipv6Net};
use crate::{dns, netns, sysctl};

/// Prefix of every host-side veth berth makes; prune deletes only these.
pub const VETH_PREFIX: &str = "bv";

/// Where berth keeps its state and which defaults it uses.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// SQLite database for networks and leases (may be the engine's own).
    pub db: PathBuf,
    /// Runtime directory; namespaces go to `<runroot>/netns/<id>`.
    pub runroot: PathBuf,
    /// nftables table (family ip) berth owns.
    pub table: String,
    /// The default network's name, bridge and subnet.
    pub default_name: String,
    pub default_bridge: String,
    pub default_subnet: Ipv4Net,
    /// User networks without `--subnet` get the first free /24 here.
    pub pool: Ipv4Net,
    /// `--ipv6` networks without an IPv6 `--subnet` get a /64 here.
    pub pool6: Ipv6Net,
    /// The host's resolv.conf: what containers on the default bridge get,
    /// and where the DNS servers of user networks forward to.
    pub resolv_conf: PathBuf,
    /// A command that starts a network's DNS server, detached, and
    /// returns once it answers; the network's name is appended
    /// (`berth-monitor --root R --runroot RR dns`). None: no servers are
    /// started (this crate's tests run their own).
    pub dns_launcher: Option<Vec<std::ffi::OsString>>,
}

impl NetConfig {
    /// Defaults for a root and runroot. 10.87.0.0/16 is chosen because no
    /// common neighbour uses it by default: docker takes 172.17.0.0/16 and
    /// pools in 172.18-31/16 and 192.168/16; podman 10.88.0.0/16 and user
    /// pools from 10.89.0.0 upwards; CRI-O's bridge 10.85.0.0/16;
    /// Kubernetes services 10.96.0.0/12 and flannel 10.244.0.0/16. The
    /// default bridge takes 10.87.0.0/24, user networks the /24s after it.
    /// Both are configurable (berth.toml) for hosts whose LAN uses them.
    pub fn new(db: impl Into<PathBuf>, runroot: impl Into<PathBuf>) -> NetConfig {
        NetConfig {
            db: db.into(),
            runroot: runroot.into(),
            table: "berth".into(),
            default_name: "bridge".into(),
            default_bridge: "berth0".into(),
            default_subnet: "10.87.0.0/24".parse().expect("valid"),
            pool: "10.87.0.0/16".parse().expect("valid"),
            // A unique local /48 (RFC 4193) with a fixed, arbitrary
            // global id, so it is the same on every start.
            pool6: "fdb7:e27a:5c00::/48".parse().expect("valid"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            dns_launcher: None,
        }
    }
}

/// The bridge of a user network created without
/// `com.docker.network.bridge.name`.
pub fn default_bridge_name(id: &str) -> String {
    format!("berth-{}", &id[..9.min(id.len())])
}

/// `network create`'s options (docker's flags).
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    pub name: String,
    /// `-o com.docker.network.bridge.name=`; default `berth-<id prefix>`.
    pub bridge: Option<String>,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// `--ipv6`: a dual-stack network.
    pub ipv6: bool,
    /// The IPv6 `--subnet` and `--gateway` (with `--ipv6`).
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
}

/// Per-attachment options (`--ip`, `--ip6`, `--mac-address`, and the
/// names the network's DNS answers with).
#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub mac: Option<[u8; 6]>,
    /// The interface name inside the container: eth0, eth1, ...
    pub iface: String,
    /// Add the default route through this network's gateway (only one
    /// of a container's networks should).
    pub default_route: bool,
    /// Name, short id, hostname, aliases: what the network's DNS server
    /// resolves to this container.
    pub names: Vec<String>,
    /// `--dns`: where the DNS server forwards this container's other
    /// questions (empty: the host's resolvers).
    pub upstream: Vec<IpAddr>,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            ip: None,
            ip6: None,
            mac: None,
            iface: "eth0".into(),
            default_route: true,
            names: Vec::new(),
            upstream: Vec::new(),
        }
    }
}

/// What a container got on a network; the engine stores it for inspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: [u8; 6],
    pub iface: String,
    pub host_veth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
}

/// Published ports of one container, as handed back by [`Net::publish`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortHandle {
    pub container: String,
    pub ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    pub ports: Vec<PortMapping>,
}

/// What [`Net::prune`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub leases: Vec<(String, Ipv4Addr, String)>,
    pub links: Vec<String>,
    pub rule_tags: Vec<String>,
    pub namespaces: Vec<PathBuf>,
    /// Networks whose orphaned DNS server was stopped.
    pub dns_servers: Vec<String>,
}

pub struct Net {
    cfg: NetConfig,
    /// Opened on first use and kept: an attach reads the network, leases
    /// and may repair the bridge, one connection for all of it.
    store: Mutex<Option<Store>>,
}

/// The open store, borrowed for one operation.
struct StoreRef<'a>(MutexGuard<'a, Option<Store>>);

impl std::ops::Deref for StoreRef<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.0.as_ref().expect("opened by Net::store")
    }
}

impl std::ops::DerefMut for StoreRef<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.0.as_mut().expect("opened by Net::store")
    }
}

impl Net {
    pub fn new(cfg: NetConfig) -> Net {
        Net {
            cfg,
            store: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The store, opened once per `Net`. Not re-entrant: a method holding
    /// it passes it down rather than asking again.
    fn store(&self) -> Result<StoreRef<'_>> {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.cfg.db.parent() {
                fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            }
            *guard = Some(Store::open(&self.cfg.db)?);
        }
        Ok(StoreRef(guard))
    }

    /// Every lease of `container` (one per network it is on).
    pub fn leases_of(&self, container: &str) -> Result<Vec<Lease>> {
        self.store()?.leases_of(container)
    }

    /// Leases on `network`, or on all networks.
    pub fn leases(&self, network: Option<&str>) -> Result<Vec<Lease>> {
        self.store()?.leases(network)
    }

    /// Returns `container`'s address on `network` to the pool, leaving
    /// its interface to die with its namespace.
    pub fn release_lease(&self, network: &str, container: &str) -> Result<()> {
        self.store()?.release(network, container).map(drop)
    }

    fn firewall(&self) -> Result<Firewall> {
        Firewall::open(&self.cfg.table)
    }

    fn firewall6(&self) -> Result<Firewall> {
        Firewall::open_family(&self.cfg.table, Family::V6)
    }

    /// Both tables, IPv4 first.
    fn firewalls(&self) -> Result<[Firewall; 2]> {
        Ok([self.firewall()?, self.firewall6()?])
    }

    /// Creates a network: its record, bridge, address and rules. The
    /// record goes first, so a failure after it leaves a network that
    /// [`Net::setup`] repairs and `remove` deletes.
    pub fn create_network(&self, opts: &NetworkOptions) -> Result<NetworkConfig> {
        validate_name(&opts.name)?;
        let mut store = self.store()?;
        // Name first: docker reports a taken name before anything else.
        if store.network(&opts.name).is_ok() {
            return Err(Error::AlreadyExists(format!("network {}", opts.name)));
        }
        let id = random_id()?;
        let bridge = opts
            .bridge
            .clone()
            .unwrap_or_else(|| default_bridge_name(&id));
        validate_ifname(&bridge)?;
        if !opts.ipv6 && (opts.subnet6.is_some() || opts.gateway6.is_some()) {
            return Err(Error::Invalid(
                "an IPv6 subnet or gateway needs --ipv6".into(),
            ));
        }
        if opts.gateway6.is_some() && opts.subnet6.is_none() {
            return Err(Error::Invalid(
                "an IPv6 --gateway needs an IPv6 --subnet".into(),
            ));
        }
        let cfg = match opts.subnet {
            Some(subnet) => {
                let mut cfg = self.config_for(opts, &id, &bridge, subnet)?;
                self.insert_with_free_subnet6(&mut store, &mut cfg, opts.ipv6)?;
                cfg
            }
            None => self.insert_with_free_subnet(&mut store, opts, &id, &bridge)?,
        };
        self.setup_with(&store, &cfg)?;
        Ok(cfg)
    }

    fn config_for(
        &self,
        opts: &NetworkOptions,
        id: &str,
        bridge: &str,
        subnet: Ipv4Net,
    ) -> Result<NetworkConfig> {
        if subnet.prefix() > 30 {
            return Err(Error::Invalid(format!("subnet {subnet} is too small")));
        }
        let gateway = opts.gateway.unwrap_or_else(|| subnet.first_host());
        if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast()
        {
            return Err(Error::Invalid(format!(
                "gateway {gateway} is not a host address of {subnet}"
            )));
        }
        if let Some(r) = opts.ip_range {
            if !subnet.contains_net(&r) {
                return Err(Error::Invalid(format!(
                    "ip-range {r} is not inside subnet {subnet}"
                )));
            }
        }
        let (subnet6, gateway6) = match opts.subnet6 {
            Some(s6) => {
                if s6.prefix() > 126 {
                    return Err(Error::Invalid(format!("subnet {s6} is too small")));
                }
                let gw6 = opts.gateway6.unwrap_or_else(|| s6.first_host());
                if !s6.contains(gw6) || gw6 == s6.network() {
                    return Err(Error::Invalid(format!(
                        "gateway {gw6} is not a host address of {s6}"
                    )));
                }
                (Some(s6), Some(gw6))
            }
            None => (None, None),
        };
        Ok(NetworkConfig {
            name: opts.name.clone(),
            id: id.to_string(),
            bridge: bridge.to_string(),
            subnet,
            gateway,
            ip_range: opts.ip_range,
            internal: opts.internal,
            dns: true,
            labels: opts.labels.clone(),
            subnet6,
            gateway6,
        })
    }

    /// Inserts `cfg`; an `--ipv6` network without an IPv6 subnet gets
    /// the pool's first free /64 first, retried like the IPv4 pool.
    fn insert_with_free_subnet6(
        &self,
        store: &mut Store,
        cfg: &mut NetworkConfig,
        ipv6: bool,
    ) -> Result<()> {
        if cfg.subnet6.is_some() || !ipv6 {
            return store.insert_network(cfg);
        }
        let pool = self.cfg.pool6;
        let base = u128::from(pool.network());
        let count = 1u128 << (64u8.saturating_sub(pool.prefix()).min(16));
        for i in 0..count {
            let s6 = Ipv6Net::new(Ipv6Addr::from(base + (i << 64)), 64)?;
            if store
                .networks()?
                .iter()
                .any(|n| n.subnet6.is_some_and(|o| o.overlaps(&s6)))
            {
                continue;
            }
            cfg.subnet6 = Some(s6);
            cfg.gateway6 = Some(s6.first_host());
            match store.insert_network(cfg) {
                Err(Error::Conflict(m)) if m.contains(&s6.to_string()) => continue,
                other => return other,
            }
        }
        Err(Error::Exhausted(format!("IPv6 subnet pool {pool}")))
    }

    /// Tries the pool's /24s in order; the overlap check is inside the
    /// store's write transaction, so concurrent creates never share one.
    fn insert_with_free_subnet(
        &self,
        store: &mut Store,
        opts: &NetworkOptions,
        id: &str,
        bridge: &str,
    ) -> Result<NetworkConfig> {
        let pool = self.cfg.pool;
        let base = u32::from(pool.network());
        let count = 1u32 << (24u8.saturating_sub(pool.prefix()));
        for i in 0..count {
            let subnet = Ipv4Net::new(Ipv4Addr::from(base + (i << 8)), 24)?;
            if subnet.overlaps(&self.cfg.default_subnet)
                || store.networks()?.iter().any(|n| n.subnet.overlaps(&subnet))
            {
                continue;
            }
            let mut cfg = self.config_for(opts, id, bridge, subnet)?;
            match self.insert_with_free_subnet6(store, &mut cfg, opts.ipv6) {
                // Another creator took this /24 between our look and insert.
                Err(Error::Conflict(m)) if m.starts_with(&format!("subnet {subnet} ")) => continue,
                other => return other.map(|_| cfg),
            }
        }
        Err(Error::Exhausted(format!("subnet pool {pool}")))
    }

    /// The default network (docker's `bridge`), made on first use.
    pub fn ensure_default(&self) -> Result<NetworkConfig> {
        let mut store = self.store()?;
        match store.network(&self.cfg.default_name) {
            Ok(cfg) => return Ok(cfg),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let opts = NetworkOptions {
            name: self.cfg.default_name.clone(),
            bridge: Some(self.cfg.default_bridge.clone()),
            subnet: Some(self.cfg.default_subnet),
            ..Default::default()
        };
        let mut cfg = self.config_for(
            &opts,
            &random_id()?,
            &self.cfg.default_bridge,
            self.cfg.default_subnet,
        )?;
        // docker's default bridge has no embedded DNS.
        cfg.dns = false;
        match store.insert_network(&cfg) {
            Ok(()) => {}
            Err(Error::AlreadyExists(_)) => return store.network(&cfg.name),
            Err(e) => return Err(e),
        }
        self.setup_with(&store, &cfg)?;
        Ok(cfg)
    }

    pub fn network(&self, name: &str) -> Result<NetworkConfig> {
        self.store()?.network(name)
    }

    pub fn networks(&self) -> Result<Vec<NetworkConfig>> {
        self.store()?.networks()
    }

    /// docker's predefined `host` and `none` networks, ids made on first use.
    pub fn predefined(&self) -> Result<Vec<Predefined>> {
        self.store()?.predefined()
    }

    /// Makes the kernel state of network `name` match its record: bridge,
    /// gateway address, up, sysctls, firewall rules. Idempotent; run it
    /// after a reboot or when a bridge was deleted behind berth's back.
    pub fn setup(&self, name: &str) -> Result<()> {
        let store = self.store()?;
        let cfg = store.network(name)?;
        self.setup_with(&store, &cfg)
    }

    fn setup_with(&self, store: &Store, cfg: &NetworkConfig) -> Result<()> {
        let mut rt = Rtnl::open()?;
        let existed = match rt.add_bridge(&cfg.bridge, bridge_mac(&cfg.id)) {
            Err(e) if e.raw_os_error() == Some(EEXIST) => true,
            other => other.map(|()| false)?,
        };
        let link = rt
            .link(&cfg.bridge)?
            .ok_or_else(|| Error::NotFound(format!("bridge {}", cfg.bridge)))?;
        if existed {
            // A bridge made by someone else (another root, an older berth,
            // by hand) may have no MAC of its own: it then takes its
            // lowest port's, and each container leaving can change it,
            // stranding the others' cached gateway MAC (their replies to
            // the host go nowhere until ARP gives up). Fixing it where it
            // is changes nothing for the containers already there.
            if let Some(mac) = &link.mac {
                rt.set_mac(&cfg.bridge, mac)?;
            }
        }
        let idx = link.index;
        let mut addrs = vec![(IpAddr::V4(cfg.gateway), cfg.subnet.prefix())];
        if let (Some(s6), Some(gw6)) = (cfg.subnet6, cfg.gateway6) {
            addrs.push((IpAddr::V6(gw6), s6.prefix()));
        }
        for (ip, prefix) in addrs {
            match rt.add_ip(idx, ip, prefix) {
                Err(e) if e.raw_os_error() == Some(EEXIST) => {}
                other => other?,
            }
        }
        rt.set_up(&cfg.bridge)?;
        sysctl::route_localnet(&cfg.bridge)?;
        if !cfg.internal {
            sysctl::ip_forward()?;
            if cfg.subnet6.is_some() {
                sysctl::ip6_forward()?;
            }
        }
        let tag = format!("n={}", cfg.name);
        let mut others = None;
        let mut lost = false;
        for mut fw in self.firewalls()? {
            if !fw.rules()?.iter().any(|r| r.has_tag(&tag)) {
                if others.is_none() {
                    others = Some(store.networks()?);
                }
                fw.add_network(cfg, others.as_deref().unwrap_or_default())?;
                lost = true;
            }
        }
        // Rules lost (the table deleted) while the DNS server ran: its
        // redirect went with them. Stopped, it is started again, redirect
        // and all, by the next attach.
        if lost && cfg.dns {
            dns::stop(&self.cfg.runroot, &cfg.name)?;
        }
        Ok(())
    }

    /// Removes a network with no containers: rules, bridge, record.
    pub fn remove_network(&self, name: &str) -> Result<()> {
        let mut store = self.store()?;
        let cfg = store.network(name)?;
        if !store.leases(Some(name))?.is_empty() {
            return Err(Error::Conflict(format!(
                "network {name} has active endpoints"
            )));
        }
        let mut errors = Vec::new();
        if let Err(e) = dns::stop(&self.cfg.runroot, name) {
            errors.push(e);
        }
        for fw in [self.firewall(), self.firewall6()] {
            if let Err(e) = fw.and_then(|mut fw| fw.remove_network(name)) {
                errors.push(e);
            }
        }
        if let Err(e) = Rtnl::open().and_then(|mut rt| rt.del_link(&cfg.bridge)) {
            errors.push(e);
        }
        if let Err(e) = store.delete_network(name) {
            errors.push(e);
        }
        Error::collect(errors)
    }

    /// Connects `container` (whose namespace is at `netns_path`) to
    /// `network`. On failure nothing is left: no veth, no lease.
    pub fn attach(
        &self,
        network: &str,
        container: &str,
        netns_path: &Path,
        opts: &AttachOptions,
    ) -> Result<Attachment> {
        validate_container(container)?;
        validate_ifname(&opts.iface)?;
        let mut store = self.store()?;
        let cfg = store.network(network)?;
        let req = LeaseRequest {
            ip: opts.ip,
            ip6: opts.ip6,
            names: opts.names.clone(),
            upstream: opts.upstream.clone(),
        };
        let lease = store.lease(&cfg, container, &req)?;
        let ip = lease.ip;
        let host_veth = host_veth_name(network, container);
        let att = Attachment {
            network: network.to_string(),
            ip,
            prefix: cfg.subnet.prefix(),
            gateway: cfg.gateway,
            mac: opts.mac.unwrap_or_else(|| mac_for(ip)),
            iface: opts.iface.clone(),
            host_veth,
            ip6: lease.ip6,
            prefix6: cfg.subnet6.map_or(0, |s| s.prefix()),
            gateway6: cfg.gateway6.filter(|_| lease.ip6.is_some()),
        };
        let made = self
            .plumb(&store, &cfg, netns_path, &att, opts.default_route)
            .and_then(|()| self.ensure_dns(&cfg));
        match made {
            Ok(()) => Ok(att),
            Err(e) => {
                if let Ok(mut rt) = Rtnl::open() {
                    let _ = rt.del_link(&att.host_veth);
                }
                let _ = store.release(network, container);
                Err(e)
            }
        }
    }

    fn plumb(
        &self,
        store: &Store,
        cfg: &NetworkConfig,
        netns_path: &Path,
        att: &Attachment,
        default_route: bool,
    ) -> Result<()> {
        let mut rt = Rtnl::open()?;
        let master = match rt.link_index(&cfg.bridge)? {
            Some(i) => i,
            None => {
                // Bridge gone (reboot, or deleted by hand): rebuild it.
                self.setup_with(store, cfg)?;
                rt.link_index(&cfg.bridge)?
                    .ok_or_else(|| Error::NotFound(format!("bridge {}", cfg.bridge)))?
            }
        };
        let ns = fs::File::open(netns_path)
            .map_err(|e| Error::io(format!("open {}", netns_path.display()), e))?;
        let add =
            |rt: &mut Rtnl| rt.add_veth(&att.host_veth, master, &att.iface, ns.as_fd(), att.mac);
        match add(&mut rt) {
            // A veth with our (deterministic) name: a crash's leftover if
            // it hangs off this network's bridge; anything else is not ours
            // to delete.
            Err(e) if e.raw_os_error() == Some(EEXIST) => {
                let stale = rt
                    .link(&att.host_veth)?
                    .is_some_and(|l| l.master == Some(master));
                if !stale {
                    return Err(Error::Conflict(format!(
                        "interface {} exists and is not a port of {}",
                        att.host_veth, cfg.bridge
                    )));
                }
                rt.del_link(&att.host_veth)?;
                add(&mut rt)?;
            }
            other => other?,
        }
        netns::run_in(netns_path, || {
            let mut rt = Rtnl::open()?;
            let idx = rt
                .link_index(&att.iface)?
                .ok_or_else(|| Error::NotFound(format!("{} in the container", att.iface)))?;
            rt.add_addr(idx, att.ip, att.prefix)?;
            match att.ip6 {
                Some(ip6) => rt.add_ip(idx, IpAddr::V6(ip6), att.prefix6)?,
                // As docker does on IPv4-only networks: no link-local
                // address, so no duplicate address detection, router
                // solicitations or MLD reports at each start, which every
                // other container on the bridge would receive.
                None => sysctl::disable_ipv6(&att.iface)?,
            }
            rt.set_up(&att.iface)?;
            if default_route {
                rt.add_default_route(idx, att.gateway)?;
                if let Some(gw6) = att.gateway6 {
                    rt.add_default_route_via(idx, IpAddr::V6(gw6))?;
                }
            }
            Ok(())
        })
    }

    /// What the DNS server of `network` runs with.
    pub fn dns_options(&self, network: &str) -> dns::ServeOptions {
        dns::ServeOptions {
            db: self.cfg.db.clone(),
            network: network.to_string(),
            pid_file: dns::pid_path(&self.cfg.runroot, network),
            resolv_conf: self.cfg.resolv_conf.clone(),
            port: 0,
            table: Some(self.cfg.table.clone()),
            upstream_port: 53,
        }
    }

    /// Starts the DNS server of a network with name resolution unless it
    /// runs: on the attach path this costs one open and one flock. A lock
    /// of its own serialises starters, so of fifty containers joining at
    /// once one starts the server and the others wait until it answers.
    pub fn ensure_dns(&self, cfg: &NetworkConfig) -> Result<()> {
        let Some(launcher) = &self.cfg.dns_launcher else {
            return Ok(());
        };
        let runroot = &self.cfg.runroot;
        if !cfg.dns || dns::running(runroot, &cfg.name) {
            return Ok(());
        }
        let _launching = dns::launch_lock(runroot, &cfg.name)?;
        if dns::running(runroot, &cfg.name) {
            return Ok(());
        }
        let (program, args) = launcher
            .split_first()
            .ok_or_else(|| Error::Invalid("empty DNS launcher".into()))?;
        let out = std::process::Command::new(program)
            .args(args)
            .arg(&cfg.name)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("start {}", program.to_string_lossy()), e))?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::io(
            format!("start the DNS server of network {}", cfg.name),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ))
    }

    /// Disconnects `container` from `network`: deletes its veth (the peer
    /// goes with it) and returns its address. Repeatable.
    pub fn detach(&self, network: &str, container: &str) -> Result<()> {
        let mut errors = Vec::new();
        if let Err(e) =
            Rtnl::open().and_then(|mut rt| rt.del_link(&host_veth_name(network, container)))
        {
            errors.push(e);
        }
        if let Err(e) = self.store().and_then(|mut s| s.release(network, container)) {
            errors.push(e);
        }
        Error::collect(errors)
    }

    /// Publishes `ports` of `container` (at `ip`, and `ip6` on a
    /// dual-stack network) on the host: a mapping without a host address
    /// on both families, one with an address on that address's family.
    pub fn publish(
        &self,
        container: &str,
        ip: Ipv4Addr,
        ip6: Option<Ipv6Addr>,
        ports: &[PortMapping],
    ) -> Result<PortHandle> {
        validate_container(container)?;
        for p in ports {
            match p.host_ip {
                Some(IpAddr::V6(h)) if ip6.is_none() => {
                    return Err(Error::Invalid(format!(
                        "cannot publish on {h}: the container has no IPv6 address"
                    )))
                }
                // No route_localnet for IPv6: a packet from ::1 never
                // leaves the loopback interface, so DNAT cannot serve it.
                Some(IpAddr::V6(h)) if h.is_loopback() => {
                    return Err(Error::Invalid(
                        "publishing on ::1 is not supported (use 127.0.0.1)".into(),
                    ))
                }
                _ => {}
            }
        }
        self.firewall()?.publish(container, IpAddr::V4(ip), ports)?;
        if let Some(ip6) = ip6 {
            if let Err(e) = self.firewall6()?.publish(container, IpAddr::V6(ip6), ports) {
                let _ = self.firewall()?.unpublish(container);
                return Err(e);
            }
        }
        Ok(PortHandle {
            container: container.to_string(),
            ip,
            ip6,
            ports: ports.to_vec(),
        })
    }

    /// Removes every port published for the handle's container (from the
    /// ip6 table only if it had an IPv6 address).
    pub fn unpublish(&self, handle: &PortHandle) -> Result<()> {
        validate_container(&handle.container)?;
        let mut errors = Vec::new();
        if let Err(e) = self
            .firewall()
            .and_then(|mut fw| fw.unpublish(&handle.container))
        {
            errors.push(e);
        }
        if handle.ip6.is_some() {
            if let Err(e) = self
                .firewall6()
                .and_then(|mut fw| fw.unpublish(&handle.container))
            {
                errors.push(e);
            }
        }
        Error::collect(errors)
    }

    pub fn unpublish_container(&self, container: &str) -> Result<()> {
        let mut errors = Vec::new();
        for fw in [self.firewall(), self.firewall6()] {
            if let Err(e) = fw.and_then(|mut fw| fw.unpublish(container)) {
                errors.push(e);
            }
        }
        Error::collect(errors)
    }

    /// Removes what containers that no longer exist left behind: leases,
    /// their veths, published-port rules, namespaces under the runroot,
    /// and stray `bv*` veths no lease accounts for on this store's bridges
    /// (another root's veths are left alone). `is_live` says whether a
    /// container id still exists. Keeps going past failures.
    pub fn prune(&self, is_live: &dyn Fn(&str) -> bool) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let mut errors = Vec::new();
        let mut store = self.store()?;
        let mut keep_links = HashSet::new();
        for l in store.leases(None)? {
            if is_live(&l.container) {
                keep_links.insert(host_veth_name(&l.network, &l.container));
                continue;
            }
            match store.release(&l.network, &l.container) {
                Ok(_) => report.leases.push((l.network, l.ip, l.container)),
                Err(e) => errors.push(e),
            }
        }
        let bridges: HashSet<String> = store.networks()?.into_iter().map(|n| n.bridge).collect();
        match Rtnl::open().and_then(|mut rt| {
            let links = rt.links()?;
            let ours: HashSet<u32> = links
                .iter()
                .filter(|l| bridges.contains(&l.name))
                .map(|l| l.index)
                .collect();
            let mut gone = Vec::new();
            for link in links {
                if is_ours_veth(&link.name)
                    && link.master.is_some_and(|m| ours.contains(&m))
                    && !keep_links.contains(&link.name)
                    && rt.del_link(&link.name)?
                {
                    gone.push(link.name);
                }
            }
            Ok(gone)
        }) {
            Ok(gone) => report.links = gone,
            Err(e) => errors.push(e),
        }
        for fw in [self.firewall(), self.firewall6()] {
            match fw.and_then(|mut fw| {
                let doomed: Vec<_> = fw
                    .rules()?
                    .into_iter()
                    .filter(|r| {
                        r.comment.as_deref().is_some_and(|c| {
                            c.split(' ')
                                .any(|t| t.strip_prefix("c=").is_some_and(|id| !is_live(id)))
                        })
                    })
                    .collect();
                fw.delete_rules(&doomed)?;
                Ok(doomed
                    .into_iter()
                    .filter_map(|r| r.comment)
                    .collect::<Vec<_>>())
            }) {
                Ok(tags) => report.rule_tags.extend(tags),
                Err(e) => errors.push(e),
            }
        }
        // DNS servers whose network is gone (a crash between the record's
        // removal and the server's end).
        let names: HashSet<String> = store.networks()?.into_iter().map(|n| n.name).collect();
        if let Ok(entries) = fs::read_dir(self.cfg.runroot.join("dns")) {
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                if let Some(net) = file.strip_suffix(".pid") {
                    if !names.contains(net) {
                        match dns::stop(&self.cfg.runroot, net) {
                            Ok(()) => report.dns_servers.push(net.to_string()),
                            Err(err) => errors.push(err),
                        }
                    }
                }
            }
        }
        let dir = self.cfg.runroot.join("netns");
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !is_live(&name) {
                    match netns::remove(&e.path()) {
                        Ok(()) => report.namespaces.push(e.path()),
                        Err(err) => errors.push(err),
                    }
                }
            }
        }
        Error::collect(errors).map(|()| report)
    }
}

/// The host end's name: `bv` + 12 hex digits of a hash of network and
/// container, so it is deterministic (detach and prune can recompute it)
/// and fits IFNAMSIZ.
pub fn host_veth_name(network: &str, container: &str) -> String {
    // FNV-1a, 64 bit: stable across Rust versions, unlike DefaultHasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network.bytes().chain([0]).chain(container.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{VETH_PREFIX}{:012x}", h & 0xffff_ffff_ffff)
}

fn is_ours_veth(name: &str) -> bool {
    name.len() == 14
        && name.starts_with(VETH_PREFIX)
        && name[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A bridge's fixed MAC, from its network's (random) id: locally
/// administered, unicast, and the same every time the bridge is remade.
fn bridge_mac(network_id: &str) -> [u8; 6] {
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (i, b) in mac[1..].iter_mut().enumerate() {
        *b = network_id
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    // Never 02:42:...: that is the containers' prefix (mac_for).
    if mac[1] == 0x42 {
        mac[1] = 0x43;
    }
    mac
}

/// docker's scheme: 02:42 and the IPv4 address, locally administered and
/// unique on the bridge as long as the address is.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

fn validate_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid network name {name:?}: [a-zA-Z0-9][a-zA-Z0-9_.-]* wanted"
        )))
    }
}

fn validate_container(id: &str) -> Result<()> {
    if nft::valid_tag_value(id) && !id.contains('/') {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid container id {id:?}")))
    }
}

fn validate_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
        return Err(Error::Invalid(format!("invalid interface name {name:?}")));
    }
    Ok(())
}

pub(crate) fn random_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("read /dev/urandom", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_and_ours() {
        let a = host_veth_name("bridge", "abc");
        assert_eq!(a, host_veth_name("bridge", "abc"));
        assert_ne!(a, host_veth_name("other", "abc"));
        assert!(a.len() <= 15 && is_ours_veth(&a));
        assert!(!is_ours_veth("veth1234") && !is_ours_veth("docker0"));
    }

    #[test]
    fn bridge_macs_are_fixed_and_local() {
        let id = "42ab01ff9c".to_string() + &"0".repeat(54);
        assert_eq!(bridge_mac(&id), [0x02, 0x43, 0xab, 0x01, 0xff, 0x9c]);
        assert_eq!(bridge_mac("zz"), [0x02, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("my-net_1.x").is_ok());
        assert!(validate_name("-x").is_err() && validate_name("a b").is_err());
        assert!(validate_container("abc def").is_err());
    }
}
