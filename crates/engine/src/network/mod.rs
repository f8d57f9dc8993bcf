//! Containers on networks: the engine's side of the `net` crate. It turns
//! `--network` and friends into a container's [`NetSettings`] at create,
//! gives the container a namespace, addresses, ports and files at start
//! ([`sandbox`]), takes them back at exit, and answers the `network`
//! commands, `port` and inspect's NetworkSettings.
//!
//! Kernel work is the net crate's (netlink only); this module decides
//! which container gets what and keeps the records.

mod sandbox;
mod settings;

use std::collections::BTreeMap;

use berth_net::{Net, Predefined};
use serde_json::{json, Map, Value};

/// The net crate's types that cross the engine's interface.
pub use berth_net::{Ipv4Net, Ipv6Net, NetworkConfig, NetworkOptions, PortMapping};
pub(crate) use sandbox::on_predefined;
pub use sandbox::NetState;
pub(crate) use sandbox::{apply, joined, local_files, release, setup, Sandbox};
pub use settings::{
    check_driver, config_file, driver_of, expand_exposed, format_mac, is_predefined, net_config,
    parse_mac, Endpoint, NetOptions, NetSettings, DEFAULT_NETWORK,
};
pub(crate) use settings::{config_table, config_text};

use crate::container::Engine;
use crate::db::{Container, ContainerConfig, State};
use crate::error::{Error, Result};
use crate::options::{ImageConfig, Network, RunOptions};

/// Fills `cfg.net` and `cfg.network_mode` from the options at create:
/// flags are checked now, and `container:NAME` becomes the target's id.
pub(crate) fn prepare(
    engine: &Engine,
    opts: &RunOptions,
    image: &ImageConfig,
    cfg: &mut ContainerConfig,
) -> Result<()> {
    let refused = |flag: Option<&str>, mode: &str| -> Result<()> {
        match flag {
            Some(flag) => Err(Error::InvalidArgument(format!(
                "{flag} cannot be used with --network {mode}"
            ))),
            None => Ok(()),
        }
    };
    let refuse = |mode: &str| refused(settings::first_flag(&opts.net), mode);
    match &opts.network {
        Network::None => {
            refused(settings::first_bridge_flag(&opts.net), "none")?;
            // Its /etc/hosts and resolv.conf take --add-host and --dns*.
            cfg.net = settings::settings(&[], &opts.net, &image.exposed_ports)?;
            Ok(())
        }
        Network::Host => {
            refused(settings::first_bridge_flag(&opts.net), "host")?;
            // Its copies of the host's /etc/hosts and resolv.conf take
            // --add-host and --dns*, as docker's and podman's do. The
            // image's EXPOSE means nothing on the host's own ports.
            cfg.net = settings::settings(&[], &opts.net, &[])?;
            Ok(())
        }
        Network::Container(target) => {
            refuse("container:")?;
            if opts.hostname.is_some() {
                return Err(Error::InvalidArgument(
                    "--hostname cannot be used with --network container: (the other container's is used)".into(),
                ));
            }
            let t = engine.find(target)?;
            cfg.network_mode = format!("container:{}", t.id);
            cfg.hostname = t.config.hostname;
            Ok(())
        }
        Network::Networks(eps) => {
            cfg.net = settings::settings(eps, &opts.net, &image.exposed_ports)?;
            // docker refuses a link to a container it cannot find at
            // create; whether the two share a network is known at start.
            for l in &opts.net.links {
                let (target, alias) = settings::parse_link(l)?;
                let t = engine.find(&target)?;
                cfg.net.links.push(format!("{}:{alias}", t.name));
            }
            let net = engine.net()?;
            for ep in eps.iter().filter(|e| e.network != DEFAULT_NETWORK) {
                // docker refuses an unknown network at create.
                let n = match find_network(&net, &ep.network)? {
                    NetworkInfo::Bridge(n) => n,
                    // By id, or beside others: host and none are modes.
                    NetworkInfo::Predefined(p) => {
                        return Err(Error::InvalidArgument(format!(
                            "--network {}: the {} network is joined alone, as --network {}",
                            ep.network, p.name, p.name
                        )))
                    }
                };
                if n.name != ep.network {
                    cfg.net
                        .endpoints
                        .iter_mut()
                        .filter(|e| e.network == ep.network)
                        .for_each(|e| e.network = n.name.clone());
                }
            }
            cfg.network_mode = cfg
                .net
                .endpoints
                .first()
                .map_or_else(|| "none".to_string(), |e| e.network.clone());
            Ok(())
        }
    }
}

/// A network as `network ls`, inspect and rm see it: one of berth's
/// bridges, or docker's predefined `host` or `none` (no kernel state,
/// only a name, an id and a driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkInfo {
    Bridge(NetworkConfig),
    Predefined(Predefined),
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl NetworkInfo {
    pub fn id(&self) -> &str {
        match self {
            NetworkInfo::Bridge(n) => &n.id,
            NetworkInfo::Predefined(p) => &p.id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            NetworkInfo::Bridge(n) => &n.name,
            NetworkInfo::Predefined(p) => &p.name,
        }
    }

    /// docker's driver name: `bridge`, `host` or `null`.
    pub fn driver(&self) -> &'static str {
        match self {
            NetworkInfo::Bridge(_) => "bridge",
            NetworkInfo::Predefined(p) => p.driver,
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            NetworkInfo::Bridge(n) => &n.labels,
            NetworkInfo::Predefined(_) => &NO_LABELS,
        }
    }

    pub fn internal(&self) -> bool {
        matches!(self, NetworkInfo::Bridge(n) if n.internal)
    }

    pub fn ipv6(&self) -> bool {
        matches!(self, NetworkInfo::Bridge(n) if n.subnet6.is_some())
    }
}

/// A network by name, else by unique id prefix (docker's lookup), among
/// berth's bridges and the predefined networks.
fn find_network(net: &Net, key: &str) -> Result<NetworkInfo> {
    match net.network(key) {
        Ok(n) => return Ok(NetworkInfo::Bridge(n)),
        Err(e) if e.kind() != berth_net::ErrorKind::NotFound => return Err(Error::Net(e)),
        Err(_) => {}
    }
    let predefined = net.predefined().map_err(Error::Net)?;
    if let Some(p) = predefined.iter().find(|p| p.name == key) {
        return Ok(NetworkInfo::Predefined(p.clone()));
    }
    let all = net.networks().map_err(Error::Net)?;
    let mut hits = all
        .into_iter()
        .map(NetworkInfo::Bridge)
        .chain(predefined.into_iter().map(NetworkInfo::Predefined))
        .filter(|n| !key.is_empty() && n.id().starts_with(key));
    match (hits.next(), hits.next()) {
        (Some(n), None) => Ok(n),
        (Some(_), Some(_)) => Err(Error::InvalidArgument(format!(
            "network id prefix {key:?} is ambiguous"
        ))),
        _ => Err(Error::NoSuchNetwork(key.to_string())),
    }
}

/// Whether container `c` is on network `n`: one of its endpoints, or the
/// predefined network it was created on.
fn is_on(c: &Container, n: &NetworkInfo) -> bool {
    match n {
        NetworkInfo::Bridge(b) => c.config.net.endpoints.iter().any(|e| e.network == b.name),
        NetworkInfo::Predefined(p) => c.config.network_mode == p.name,
    }
}

/// dockerd's refusal to move a container onto or off `host`.
const CONFLICT_HOST: &str =
    "container cannot be disconnected from host network or connected to host network";

/// What `network prune` removed.
#[derive(Debug, Default)]
pub struct NetworkPrune {
    pub networks: Vec<String>,
    /// Leftovers of containers that are gone: leases, veths, rules,
    /// namespaces.
    pub leftovers: berth_net::PruneReport,
}

impl Engine {
    /// The net crate for this engine's root, runroot and berth.toml.
    pub fn net(&self) -> Result<Net> {
        Ok(Net::new(net_config(&self.paths)?))
    }

    /// `network create`: never under a predefined network's name.
    pub fn network_create(&self, opts: &NetworkOptions) -> Result<NetworkConfig> {
        if is_predefined(&opts.name) {
            return Err(Error::Forbidden(format!(
                "operation is not permitted on predefined {} network",
                opts.name
            )));
        }
        let n = self.net()?.create_network(opts).map_err(Error::Net)?;
        self.network_event("create", &n.id, &n.name, None);
        Ok(n)
    }

    /// docker's network events: the network's id, name and type, and the
    /// container for connect and disconnect.
    fn network_event(&self, action: &str, id: &str, name: &str, container: Option<&str>) {
        self.record(crate::events::Pending::network(action, id, name, container));
    }

    /// `network ls`: every network by name, the default one made if need
    /// be, with docker's predefined `host` and `none`.
    pub fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let net = self.net()?;
        net.ensure_default().map_err(Error::Net)?;
        let mut all: Vec<NetworkInfo> = net
            .networks()
            .map_err(Error::Net)?
            .into_iter()
            .map(NetworkInfo::Bridge)
            .collect();
        all.extend(
            net.predefined()
                .map_err(Error::Net)?
                .into_iter()
                .map(NetworkInfo::Predefined),
        );
        all.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(all)
    }

    pub fn network(&self, key: &str) -> Result<NetworkInfo> {
        let net = self.net()?;
        if key == DEFAULT_NETWORK {
            return net
                .ensure_default()
                .map(NetworkInfo::Bridge)
                .map_err(Error::Net);
        }
        find_network(&net, key)
    }

    /// `network rm`: refused while containers are attached (docker's
    /// "has active endpoints") and for the predefined networks.
    pub fn network_remove(&self, key: &str) -> Result<String> {
        let net = self.net()?;
        let n = match self.network(key)? {
            NetworkInfo::Bridge(n) if n.name != DEFAULT_NETWORK => n,
            predefined => {
                return Err(Error::Forbidden(format!(
                    "{} is a pre-defined network and cannot be removed",
                    predefined.name()
                )))
            }
        };
        // Stopped containers that name the network hold no lease, but
        // would fail to start without it: docker refuses as well.
        if let Some(c) = self
            .list()?
            .into_iter()
            .find(|c| c.config.net.endpoints.iter().any(|e| e.network == n.name))
        {
            return Err(Error::WrongState {
                id: n.name,
                state: format!("in use by container {}", c.name),
                op: "remove network",
            });
        }
        net.remove_network(&n.name).map_err(Error::Net)?;
        self.network_event("destroy", &n.id, &n.name, None);
        Ok(n.name)
    }

    /// `network prune`: first what crashed containers left (leases,
    /// veths, rules, namespaces), then every user network no container
    /// names.
    pub fn network_prune(&self, filters: &crate::filters::PruneFilters) -> Result<NetworkPrune> {
        let net = self.net()?;
        let containers = self.list()?;
        let live = self.live_ids(&containers);
        let leftovers = net.prune(&|id| live.contains(id)).map_err(Error::Net)?;
        let mut removed = Vec::new();
        for n in net.networks().map_err(Error::Net)? {
            let used = containers
                .iter()
                .any(|c| c.config.net.endpoints.iter().any(|e| e.network == n.name));
            let chosen = filters.matches(|k| n.labels.get(k).map(String::as_str), None);
            if n.name == DEFAULT_NETWORK || used || !chosen {
                continue;
            }
            match net.remove_network(&n.name) {
                Ok(()) => {
                    self.network_event("destroy", &n.id, &n.name, None);
                    removed.push(n.name)
                }
                Err(e) if e.kind() == berth_net::ErrorKind::Conflict => {}
                Err(e) => return Err(Error::Net(e)),
            }
        }
        Ok(NetworkPrune {
            networks: removed,
            leftovers,
        })
    }

    /// Containers that may hold network resources: those starting
    /// (created, their network being set up), running, or being removed.
    /// A row that says running while its process is gone (its monitor
    /// was killed, or the machine crashed) holds nothing any more.
    fn live_ids(&self, containers: &[Container]) -> std::collections::HashSet<String> {
        let rt = self.runtime();
        containers
            .iter()
            .filter(|c| match c.state {
                State::Exited => false,
                State::Running => matches!(
                    rt.status(&c.id),
                    Ok(berth_runtime::Status::Running
                        | berth_runtime::Status::Paused
                        | berth_runtime::Status::Created
                        | berth_runtime::Status::Creating)
                ),
                State::Created | State::Removing => true,
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// Gives back what dead containers still hold (see [`Engine::live_ids`]):
    /// the repair an exhausted subnet triggers. Returns how many leases
    /// came back.
    pub(crate) fn reclaim_network_leftovers(&self) -> Result<usize> {
        // The rows as they are: `list` would record dead containers' exits
        // (and release their leases) in the middle of this allocation.
        let live = self.live_ids(&self.db()?.list()?);
        let report = self
            .net()?
            .prune(&|id| live.contains(id))
            .map_err(Error::Net)?;
        Ok(report.leases.len())
    }

    /// The `dns` mode of berth-monitor: with `serve`, runs the DNS server
    /// of `network` (printing [`berth_net::dns::READY`] once it answers);
    /// without, starts that server detached and returns once it answers.
    pub fn dns_server(&self, network: &str, serve: bool) -> Result<()> {
        let net = self.net()?;
        let runroot = &net.config().runroot;
        if !serve {
            let mut cmd = crate::monitor::command(&self.paths)?;
            cmd.args(["dns", network, "--serve"]);
            return berth_net::dns::spawn_detached(
                cmd,
                &berth_net::dns::log_path(runroot, network),
            )
            .map_err(Error::Net);
        }
        use std::io::Write;
        let mut out = std::io::stdout();
        // The starter reads one line: READY, or what went wrong.
        let server = berth_net::dns::Server::bind(net.dns_options(network)).map_err(|e| {
            let _ = writeln!(out, "{e}");
            Error::Net(e)
        })?;
        let _ = writeln!(out, "{}", berth_net::dns::READY).and_then(|()| out.flush());
        match server {
            Some(s) => s.run().map_err(Error::Net),
            // Another one answers already.
            None => Ok(()),
        }
    }

    /// `network inspect`: docker's shape, with the attached containers.
    pub fn network_inspect(&self, key: &str) -> Result<Value> {
        let n = match self.network(key)? {
            NetworkInfo::Bridge(n) => n,
            NetworkInfo::Predefined(p) => return self.predefined_inspect(&p),
        };
        let net = self.net()?;
        let leases = net.leases(Some(&n.name)).map_err(Error::Net)?;
        let db = self.db()?;
        let mut containers = Map::new();
        for l in leases {
            let name = db.find(&l.container).map(|c| c.name).unwrap_or_default();
            let mac = sandbox::read_state(self, &l.container)
                .and_then(|s| {
                    s.joined
                        .into_iter()
                        .find(|j| j.attachment.network == n.name)
                })
                .map(|j| format_mac(&j.attachment.mac))
                .unwrap_or_default();
            let ip6 = match (l.ip6, n.subnet6) {
                (Some(a), Some(s6)) => format!("{a}/{}", s6.prefix()),
                _ => String::new(),
            };
            containers.insert(
                l.container.clone(),
                json!({
                    "Name": name,
                    "MacAddress": mac,
                    "IPv4Address": format!("{}/{}", l.ip, n.subnet.prefix()),
                    "IPv6Address": ip6,
                }),
            );
        }
        let mut ipam = json!({"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()});
        if let Some(r) = n.ip_range {
            ipam["IPRange"] = json!(r.to_string());
        }
        let mut ipam = vec![ipam];
        if let Some(s6) = n.subnet6 {
            ipam.push(json!({
                "Subnet": s6.to_string(),
                "Gateway": n.gateway6.map(|g| g.to_string()).unwrap_or_default(),
            }));
        }
        // Docker lists the driver options the network was created with:
        // a client (docker-compose) compares them with its own and
        // recreates a network whose options seem to have changed.
        let chosen_bridge = n.name == net.config().default_name
            || n.bridge != berth_net::network::default_bridge_name(&n.id);
        let options = if chosen_bridge {
            json!({"com.docker.network.bridge.name": n.bridge})
        } else {
            json!({})
        };
        Ok(json!({
            "Name": n.name,
            "Id": n.id,
            "Scope": "local",
            "Driver": "bridge",
            // API 1.48: every berth network carries IPv4.
            "EnableIPv4": true,
            "EnableIPv6": n.subnet6.is_some(),
            "IPAM": {"Driver": "default", "Options": {}, "Config": ipam},
            "Internal": n.internal,
            "Attachable": false,
            "Ingress": false,
            "Containers": containers,
            "Options": options,
            "Labels": n.labels,
        }))
    }

    /// docker's `network inspect` of `host` or `none`: no addresses, and
    /// the running containers that use it.
    fn predefined_inspect(&self, p: &Predefined) -> Result<Value> {
        let containers: Map<String, Value> = self
            .list()?
            .into_iter()
            .filter(|c| c.state == State::Running && c.config.network_mode == p.name)
            .map(|c| {
                let entry = json!({"Name": c.name, "EndpointID": "", "MacAddress": "",
                                   "IPv4Address": "", "IPv6Address": ""});
                (c.id, entry)
            })
            .collect();
        Ok(json!({
            "Name": p.name,
            "Id": p.id,
            "Scope": "local",
            "Driver": p.driver,
            "EnableIPv4": true,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": []},
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "Containers": containers,
            "Options": {},
            "Labels": {},
        }))
    }

    /// `network connect`: on a running container the new interface
    /// (eth1, eth2...) appears at once; either way the container keeps
    /// the network for its next starts. docker's rules and words for the
    /// predefined networks: `host` is joined only at create and alone, a
    /// container on `host` or another's stack joins nothing more, and
    /// `none` goes with no other network.
    pub fn network_connect(&self, network: &str, key: &str, ep: Endpoint) -> Result<()> {
        let c = self.find(key)?;
        let n = self.network(network)?;
        let mode = c.config.network_mode.as_str();
        if is_on(&c, &n) {
            return Err(Error::InvalidArgument(format!(
                "container {} is already connected to network {}",
                c.name,
                n.name()
            )));
        }
        if n.driver() == "host" {
            return Err(Error::InvalidArgument(CONFLICT_HOST.into()));
        }
        if mode == "host" || mode.starts_with("container:") {
            return Err(Error::InvalidArgument(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        let n = match n {
            NetworkInfo::Bridge(n) if mode != "none" => n,
            _ => {
                return Err(Error::InvalidArgument(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
                ))
            }
        };
        if let Some(m) = &ep.mac {
            parse_mac(m)?;
        }
        let ep = Endpoint {
            network: n.name.clone(),
            ..ep
        };
        if c.state == State::Running {
            let mut state = sandbox::read_state(self, &c.id).ok_or_else(|| Error::WrongState {
                id: c.id.clone(),
                state: "running without a network namespace".into(),
                op: "connect",
            })?;
            let used: Vec<&str> = state
                .joined
                .iter()
                .map(|j| j.attachment.iface.as_str())
                .collect();
            let iface = (0..)
                .map(|i| format!("eth{i}"))
                .find(|i| !used.contains(&i.as_str()))
                .expect("a free name");
            let opts = berth_net::AttachOptions {
                ip: ep.ip,
                ip6: ep.ip6,
                mac: ep.mac.as_deref().map(parse_mac).transpose()?,
                iface,
                default_route: state.joined.is_empty(),
                names: sandbox::dns_names(&c, &ep.aliases),
                upstream: c.config.net.dns.clone(),
            };
            let net = self.net()?;
            let a = sandbox::attach(self, &net, &n.name, &c.id, &state.netns, &opts)?;
            let j = sandbox::Joined {
                attachment: a,
                aliases: ep.aliases.clone(),
                network_id: n.id.clone(),
            };
            state.joined.push(j);
            sandbox::write_state(self, &c.id, &state)?;
            sandbox::refresh_resolv_conf(self, &c, &state)?;
        }
        let mut cfg = c.config.clone();
        cfg.net.endpoints.push(ep);
        self.save_config(&c.id, &cfg)?;
        self.network_event("connect", &n.id, &n.name, Some(&c.id));
        Ok(())
    }

    /// `network disconnect`. A container stays on `host` or `none`, the
    /// mode it was created with.
    pub fn network_disconnect(&self, network: &str, key: &str) -> Result<()> {
        let c = self.find(key)?;
        let n = self.network(network)?;
        if !is_on(&c, &n) {
            return Err(Error::InvalidArgument(format!(
                "container {} is not connected to network {}",
                c.name,
                n.name()
            )));
        }
        let n = match n {
            NetworkInfo::Bridge(n) => n,
            NetworkInfo::Predefined(p) if p.driver == "host" => {
                return Err(Error::InvalidArgument(CONFLICT_HOST.into()))
            }
            // dockerd lets it go, leaving a container on no network at all.
            NetworkInfo::Predefined(p) => {
                return Err(Error::NotSupported {
                    flag: format!(
                        "network disconnect of a --network {0} container ({1}) from {0}",
                        p.name, c.name
                    ),
                })
            }
        };
        if let Some(mut state) = sandbox::read_state(self, &c.id) {
            if let Some(pos) = state
                .joined
                .iter()
                .position(|j| j.attachment.network == n.name)
            {
                state.joined.remove(pos);
                self.net()?.detach(&n.name, &c.id).map_err(Error::Net)?;
                sandbox::write_state(self, &c.id, &state)?;
                sandbox::refresh_resolv_conf(self, &c, &state)?;
            }
        }
        let mut cfg = c.config.clone();
        cfg.net.endpoints.retain(|e| e.network != n.name);
        self.save_config(&c.id, &cfg)?;
        self.network_event("disconnect", &n.id, &n.name, Some(&c.id));
        Ok(())
    }

    fn save_config(&self, id: &str, cfg: &ContainerConfig) -> Result<()> {
        let db = self.db()?;
        let json = serde_json::to_string(cfg).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        db.conn()
            .execute(
                "UPDATE containers SET config = ?1 WHERE id = ?2",
                rusqlite::params![json, id],
            )
            .map_err(db.err())?;
        Ok(())
    }

    /// `port`: the published ports of a running container.
    pub fn ports(&self, key: &str) -> Result<Vec<PortMapping>> {
        let c = self.find(key)?;
        Ok(sandbox::read_state(self, &c.id)
            .map(|s| s.ports)
            .unwrap_or_default())
    }

    /// Adds the network parts of docker's inspect to `v`: NetworkSettings,
    /// HostConfig's port bindings and DNS, Config's exposed ports.
    pub(crate) fn inspect_network(&self, c: &Container, v: &mut Value) {
        let n = &c.config.net;
        let mut bindings = Map::new();
        for p in &n.port_bindings {
            let Ok(spec) = berth_net::PortSpec::parse(p) else {
                continue;
            };
            let (c0, c1) = spec.container_ports;
            for (i, port) in (c0..=c1).enumerate() {
                let host_port = match spec.host_ports {
                    Some((h0, h1)) if c0 == c1 && h0 != h1 => format!("{h0}-{h1}"),
                    Some((h0, _)) => (h0 as usize + i).to_string(),
                    None => String::new(),
                };
                let b = json!({"HostIp": spec.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                               "HostPort": host_port});
                let key = format!("{port}/{}", spec.proto);
                match bindings.get_mut(&key).and_then(Value::as_array_mut) {
                    Some(list) => list.push(b),
                    None => {
                        bindings.insert(key, json!([b]));
                    }
                }
            }
        }
        if let Some(h) = v["HostConfig"].as_object_mut() {
            h.insert("PortBindings".into(), Value::Object(bindings));
            h.insert("PublishAllPorts".into(), json!(n.publish_all_ports));
            h.insert("Dns".into(), json!(n.dns));
            h.insert("DnsSearch".into(), json!(n.dns_search));
            h.insert("DnsOptions".into(), json!(n.dns_options));
            h.insert("ExtraHosts".into(), json!(n.extra_hosts));
            let links: Vec<String> = n
                .links
                .iter()
                .filter_map(|l| l.split_once(':'))
                .map(|(t, alias)| format!("/{t}:/{}/{alias}", c.name))
                .collect();
            h.insert("Links".into(), json!(links));
        }
        if let Some(cfg) = v["Config"].as_object_mut() {
            let exposed: Map<String, Value> = n
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            cfg.insert("ExposedPorts".into(), Value::Object(exposed));
        }
        v["NetworkSettings"] = self.network_settings(c);
    }

    /// inspect's NetworkSettings, in docker's shape: per-network
    /// endpoints, and the deprecated top-level address fields filled for
    /// the default network only, as docker does.
    pub fn network_settings(&self, c: &Container) -> Value {
        let state = if c.state == State::Running {
            sandbox::read_state(self, &c.id)
        } else {
            None
        };
        let state = state.unwrap_or_default();
        let mut ports = Map::new();
        for p in &c.config.net.exposed_ports {
            ports.insert(p.clone(), Value::Null);
        }
        for m in &state.ports {
            let key = format!("{}/{}", m.container_port, m.proto);
            let binding = json!({
                "HostIp": m.host_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
                "HostPort": m.host_port.to_string(),
            });
            match ports.get_mut(&key).and_then(Value::as_array_mut) {
                Some(list) => list.push(binding),
                None => {
                    ports.insert(key, json!([binding]));
                }
            }
        }
        let mut networks = Map::new();
        for ep in &c.config.net.endpoints {
            let j = state
                .joined
                .iter()
                .find(|j| j.attachment.network == ep.network);
            let a = j.map(|j| &j.attachment);
            networks.insert(
                ep.network.clone(),
                json!({
                    "IPAMConfig": match (ep.ip, ep.ip6) {
                        (None, None) => Value::Null,
                        (ip, ip6) => {
                            let mut m = Map::new();
                            if let Some(ip) = ip {
                                m.insert("IPv4Address".into(), json!(ip.to_string()));
                            }
                            if let Some(ip6) = ip6 {
                                m.insert("IPv6Address".into(), json!(ip6.to_string()));
                            }
                            Value::Object(m)
                        }
                    },
                    "Links": null,
                    "DriverOpts": null,
                    "Aliases": if ep.aliases.is_empty() { Value::Null } else { json!(ep.aliases) },
                    "MacAddress": a.map(|a| format_mac(&a.mac)).unwrap_or_default(),
                    "NetworkID": j.map(|j| j.network_id.clone()).unwrap_or_default(),
                    "EndpointID": a.map(|a| a.host_veth.clone()).unwrap_or_default(),
                    "Gateway": a.map(|a| a.gateway.to_string()).unwrap_or_default(),
                    "IPAddress": a.map(|a| a.ip.to_string()).unwrap_or_default(),
                    "IPPrefixLen": a.map_or(0, |a| a.prefix),
                    "IPv6Gateway": a.and_then(|a| a.gateway6).map(|g| g.to_string()).unwrap_or_default(),
                    "GlobalIPv6Address": a.and_then(|a| a.ip6).map(|g| g.to_string()).unwrap_or_default(),
                    "GlobalIPv6PrefixLen": a.filter(|a| a.ip6.is_some()).map_or(0, |a| a.prefix6),
                    "DNSNames": if ep.network == DEFAULT_NETWORK { Value::Null } else {
                        json!(sandbox::dns_names(c, &ep.aliases))
                    },
                }),
            );
        }
        if c.config.network_mode == "host" || c.config.network_mode == "none" {
            // As docker: the network's id once the container is on it.
            let id = match c.state {
                State::Running => self.db().ok().and_then(|db| on_predefined(&db, c)),
                _ => None,
            };
            networks.insert(
                c.config.network_mode.clone(),
                json!({"IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                       "DriverOpts": null,
                       "NetworkID": id.map(|(id, _)| id).unwrap_or_default(),
                       "EndpointID": "", "Gateway": "", "IPAddress": "",
                       "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                       "GlobalIPv6PrefixLen": 0, "DNSNames": null}),
            );
        }
        let default = state
            .joined
            .iter()
            .find(|j| j.attachment.network == DEFAULT_NETWORK)
            .map(|j| &j.attachment);
        let sandbox_key = if state.netns.as_os_str().is_empty() {
            String::new()
        } else {
            state.netns.display().to_string()
        };
        json!({
            "Bridge": "",
            "SandboxID": if sandbox_key.is_empty() { "" } else { &c.id },
            "SandboxKey": sandbox_key,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": default.map(|a| a.host_veth.clone()).unwrap_or_default(),
            "Gateway": default.map(|a| a.gateway.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": default.and_then(|a| a.ip6).map(|g| g.to_string()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": default.filter(|a| a.ip6.is_some()).map_or(0, |a| a.prefix6),
            "IPAddress": default.map(|a| a.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": default.map_or(0, |a| a.prefix),
            "IPv6Gateway": default.and_then(|a| a.gateway6).map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": default.map(|a| format_mac(&a.mac)).unwrap_or_default(),
            "Networks": networks,
        })
    }
}
