//! The networking flags of `run`/`create`, and the `network` and `port`
//! commands: flags into the engine's options, docker's tables out.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};
use berth_engine::network::{Endpoint, NetOptions};
use berth_engine::{Engine, Network};
use clap::{Args, Subcommand};

use crate::format;

/// `run`/`create`'s network flags.
#[derive(Args, Debug, Default)]
pub struct NetFlags {
    /// bridge (the default), host, none, container:NAME, or a network's
    /// name; repeat to join several networks.
    #[arg(long, alias = "net")]
    network: Vec<String>,
    /// IPv4 address on the (first) network.
    #[arg(long)]
    ip: Option<Ipv4Addr>,
    /// IPv6 address on the (first) network, which must have --ipv6.
    #[arg(long)]
    ip6: Option<Ipv6Addr>,
    /// Another name for the container on the (first) network.
    #[arg(long, alias = "net-alias")]
    network_alias: Vec<String>,
    /// Container MAC address (e.g. 02:42:0a:57:00:05).
    #[arg(long)]
    mac_address: Option<String>,
    /// [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO], ports as ranges too.
    #[arg(short = 'p', long)]
    publish: Vec<String>,
    /// Publish every exposed port on a random host port.
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Expose a port or a range (PORT[-PORT][/PROTO]).
    #[arg(long)]
    expose: Vec<String>,
    /// A custom host-to-IP mapping (HOST:IP, IP may be host-gateway).
    #[arg(long)]
    add_host: Vec<String>,
    /// Resolve a container sharing a network by ALIAS (CONTAINER[:ALIAS]).
    #[arg(long)]
    link: Vec<String>,
    /// A DNS server for the container.
    #[arg(long)]
    dns: Vec<String>,
    /// A DNS search domain.
    #[arg(long)]
    dns_search: Vec<String>,
    /// A resolv.conf option (ndots:2...).
    #[arg(long, alias = "dns-opt")]
    dns_option: Vec<String>,
}

impl NetFlags {
    /// `--network` with the per-endpoint flags applied to its first
    /// network, as docker's short flags are.
    pub fn network(&self) -> Result<Network> {
        let modes = if self.network.is_empty() {
            vec![Network::on(berth_engine::network::DEFAULT_NETWORK)]
        } else {
            self.network
                .iter()
                .map(|n| Network::parse(n))
                .collect::<berth_engine::Result<Vec<_>>>()?
        };
        let mut eps: Vec<Endpoint> = Vec::new();
        let mut single = None;
        for m in modes {
            match m {
                Network::Networks(e) => eps.extend(e),
                other => single = Some(other),
            }
        }
        let endpoint_flag = [
            (self.ip.is_some(), "--ip"),
            (self.ip6.is_some(), "--ip6"),
            (!self.network_alias.is_empty(), "--network-alias"),
            (self.mac_address.is_some(), "--mac-address"),
        ]
        .into_iter()
        .find_map(|(set, f)| set.then_some(f));
        if let Some(mode) = single {
            if !eps.is_empty() || self.network.len() > 1 {
                bail!(berth_engine::Error::InvalidArgument(format!(
                    "--network {} cannot be combined with other networks",
                    mode.mode()
                )));
            }
            if let Some(f) = endpoint_flag {
                bail!(berth_engine::Error::InvalidArgument(format!(
                    "{f} needs a network (not --network {})",
                    mode.mode()
                )));
            }
            return Ok(mode);
        }
        if let Some(first) = eps.first_mut() {
            first.ip = self.ip;
            first.ip6 = self.ip6;
            first.aliases = self.network_alias.clone();
            first.mac = self.mac_address.clone();
        }
        Ok(Network::Networks(eps))
    }

    pub fn options(&self) -> NetOptions {
        NetOptions {
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_option.clone(),
            add_hosts: self.add_host.clone(),
            links: self.link.clone(),
        }
    }
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks' details as JSON.
    Inspect(InspectArgs),
    /// Remove networks.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused networks and what crashed containers left behind.
    Prune(PruneArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Only bridge exists.
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// CIDR, e.g. 10.87.5.0/24; once more for IPv6 (with --ipv6).
    #[arg(long)]
    subnet: Vec<String>,
    /// The gateway of a --subnet (IPv4 or IPv6).
    #[arg(long)]
    gateway: Vec<IpAddr>,
    /// Allocate container addresses from this sub-range (IPv4).
    #[arg(long)]
    ip_range: Option<String>,
    /// Dual stack: containers get an IPv6 address too.
    #[arg(long)]
    ipv6: bool,
    /// No access to or from outside the network.
    #[arg(long)]
    internal: bool,
    /// key=value
    #[arg(long)]
    label: Vec<String>,
    /// Driver options: com.docker.network.bridge.name=NAME.
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    name: String,
}

#[derive(Args)]
pub struct LsArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    no_trunc: bool,
    /// Only what these select: name=PART, id=PREFIX, label=K[=V],
    /// driver=D, type=builtin|custom, scope=local.
    #[arg(short, long)]
    filter: Vec<String>,
    /// `table`, `json` or a Go template over ID, Name, Driver, Scope,
    /// IPv6, Internal and Labels.
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A Go template over each network's JSON.
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask (berth never asks; accepted for docker's scripts).
    #[arg(short, long)]
    force: bool,
    /// Only what these select: label=K[=V], label!=K[=V].
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct ConnectArgs {
    #[arg(long)]
    ip: Option<Ipv4Addr>,
    #[arg(long)]
    ip6: Option<Ipv6Addr>,
    #[arg(long)]
    alias: Vec<String>,
    network: String,
    container: String,
}

#[derive(Args)]
pub struct DisconnectArgs {
    /// Disconnect even if the container is not running (always allowed).
    #[arg(short, long)]
    force: bool,
    network: String,
    container: String,
}

pub fn run(engine: &Engine, cmd: NetworkCmd) -> Result<u8> {
    match cmd {
        NetworkCmd::Create(a) => create(engine, a),
        NetworkCmd::Ls(a) => ls(engine, a),
        NetworkCmd::Inspect(a) => format::inspect(&a.networks, a.format.as_deref(), |n| {
            engine.network_inspect(n)
        }),
        NetworkCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.networks {
                match engine.network_remove(n) {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        NetworkCmd::Prune(a) => {
            let filters =
                berth_engine::filters::PruneFilters::parse_flags(&a.filter, "network", false)?;
            let r = engine.network_prune(&filters)?;
            if !r.networks.is_empty() {
                println!("Deleted Networks:");
                for n in &r.networks {
                    println!("{n}");
                }
            }
            Ok(0)
        }
        NetworkCmd::Connect(a) => {
            let ep = Endpoint {
                network: a.network.clone(),
                ip: a.ip,
                ip6: a.ip6,
                aliases: a.alias,
                mac: None,
            };
            engine.network_connect(&a.network, &a.container, ep)?;
            Ok(0)
        }
        NetworkCmd::Disconnect(a) => {
            engine.network_disconnect(&a.network, &a.container)?;
            Ok(0)
        }
    }
}

fn create(engine: &Engine, a: CreateArgs) -> Result<u8> {
    berth_engine::network::check_driver(&a.driver)?;
    let invalid = |m: String| berth_engine::Error::InvalidArgument(m);
    let (mut subnet, mut subnet6) = (None, None);
    for sn in &a.subnet {
        let bad = |e: &dyn std::fmt::Display| invalid(format!("--subnet {sn}: {e}"));
        if sn.contains(':') {
            if subnet6.is_some() {
                bail!(invalid("only one IPv6 --subnet per network".into()));
            }
            subnet6 = Some(
                sn.parse::<berth_engine::network::Ipv6Net>()
                    .map_err(|e| bad(&e))?,
            );
        } else {
            if subnet.is_some() {
                bail!(invalid("only one IPv4 --subnet per network".into()));
            }
            subnet = Some(
                sn.parse::<berth_engine::network::Ipv4Net>()
                    .map_err(|e| bad(&e))?,
            );
        }
    }
    let (mut gateway, mut gateway6) = (None, None);
    for g in &a.gateway {
        match g {
            IpAddr::V4(v4) if gateway.is_none() => gateway = Some(*v4),
            IpAddr::V6(v6) if gateway6.is_none() => gateway6 = Some(*v6),
            _ => bail!(invalid(format!("a second --gateway {g} of one family"))),
        }
    }
    if subnet6.is_some() && !a.ipv6 {
        bail!(invalid(
            "an IPv6 --subnet needs --ipv6 (docker's rule too)".into()
        ));
    }
    if (gateway.is_some() && subnet.is_none()) || (gateway6.is_some() && subnet6.is_none()) {
        bail!(invalid("--gateway needs a --subnet of its family".into()));
    }
    let ip_range = a
        .ip_range
        .as_deref()
        .map(|s| {
            s.parse::<berth_engine::network::Ipv4Net>()
                .map_err(|e| invalid(format!("--ip-range {s}: {e}")))
        })
        .transpose()?;
    if subnet.is_none() && ip_range.is_some() {
        bail!(invalid("--ip-range needs an IPv4 --subnet".into()));
    }
    let mut opts = berth_engine::network::NetworkOptions {
        name: a.name.clone(),
        subnet,
        gateway,
        ip_range,
        internal: a.internal,
        ipv6: a.ipv6,
        subnet6,
        gateway6,
        ..Default::default()
    };
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        opts.labels.insert(k.to_string(), v.to_string());
    }
    for o in &a.opt {
        match o.split_once('=') {
            Some(("com.docker.network.bridge.name", v)) => opts.bridge = Some(v.to_string()),
            _ => bail!(berth_engine::Error::NotSupported {
                flag: format!("network create -o {o}")
            }),
        }
    }
    let n = engine.network_create(&opts)?;
    println!("{}", n.id);
    Ok(0)
}

fn ls(engine: &Engine, a: LsArgs) -> Result<u8> {
    let filters = berth_engine::filters::NetworkFilters::parse(berth_engine::filters::flag_pairs(
        &a.filter,
    )?)?;
    let nets: Vec<_> = engine
        .networks()?
        .into_iter()
        .filter(|n| filters.matches(n))
        .collect();
    let mut out = std::io::stdout().lock();
    let id = |s: &str| {
        if a.no_trunc {
            s.to_string()
        } else {
            s[..12.min(s.len())].to_string()
        }
    };
    if a.quiet {
        for n in &nets {
            writeln!(out, "{}", id(n.id()))?;
        }
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = nets
        .iter()
        .map(|n| {
            let labels: Vec<String> = n.labels().iter().map(|(k, v)| format!("{k}={v}")).collect();
            serde_json::json!({
                "ID": id(n.id()),
                "Name": n.name(),
                "Driver": n.driver(),
                "Scope": "local",
                "IPv6": n.ipv6().to_string(),
                "Internal": n.internal().to_string(),
                "Labels": labels.join(","),
            })
        })
        .collect();
    let fmt = crate::template::Format::parse(
        a.format.as_deref(),
        "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    )?;
    let headers = [
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
    ];
    write!(out, "{}", fmt.render(&rows, &headers)?)?;
    Ok(0)
}

/// `ps`'s PORTS column: `127.0.0.1:8080->80/tcp, 9090/tcp`.
pub fn ps_ports(engine: &Engine, c: &berth_engine::Container) -> String {
    let published = if c.state == berth_engine::State::Running {
        engine.ports(&c.id).unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut out: Vec<String> = published
        .iter()
        .map(|m| format!("{}->{}/{}", m.host_addr(), m.container_port, m.proto))
        .collect();
    for p in &c.config.net.exposed_ports {
        let shown = published
            .iter()
            .any(|m| format!("{}/{}", m.container_port, m.proto) == *p);
        if !shown {
            out.push(p.clone());
        }
    }
    out.join(", ")
}

#[derive(Args)]
pub struct PortArgs {
    container: String,
    /// PORT[/PROTO]: only this one.
    port: Option<String>,
}

/// `port`: `80/tcp -> 0.0.0.0:8080`, or with a port just the addresses.
pub fn port(engine: &Engine, a: PortArgs) -> Result<u8> {
    let ports = engine.ports(&a.container)?;
    let filter = a
        .port
        .as_deref()
        .map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            n.parse::<u16>()
                .map(|n| (n, proto.to_ascii_lowercase()))
                .map_err(|_| berth_engine::Error::InvalidArgument(format!("invalid port {p:?}")))
        })
        .transpose()?;
    let mut out = std::io::stdout().lock();
    let mut any = false;
    for m in &ports {
        match &filter {
            Some((n, proto)) => {
                if m.container_port == *n && m.proto.to_string() == *proto {
                    writeln!(out, "{}", m.host_addr())?;
                    any = true;
                }
            }
            None => {
                writeln!(out, "{m}")?;
                any = true;
            }
        }
    }
    if let (Some(p), false) = (&a.port, any) {
        bail!(berth_engine::Error::InvalidArgument(format!(
            "no public port '{p}' published for {}",
            a.container
        )));
    }
    Ok(0)
}
