//! What a container asks of the network, checked at `create` and kept in
//! its config; and the `[network]` table of berth.toml.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use berth_net::{files, Ipv4Net, Ipv6Net, NetConfig, PortSpec};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, Error, Result};
use crate::paths::Paths;

/// docker's name for the default network.
pub const DEFAULT_NETWORK: &str = "bridge";

/// docker's driver of the network named `name`: `host` and `null` for the
/// predefined `host` and `none`, `bridge` for every other (no user
/// network may take a predefined name).
pub fn driver_of(name: &str) -> &'static str {
    berth_net::PREDEFINED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("bridge", |(_, driver)| driver)
}

/// `network create --driver`: berth makes bridges; `host` and `null`
/// have their one predefined instance each, as in docker.
pub fn check_driver(driver: &str) -> Result<()> {
    match driver {
        "" | "bridge" => Ok(()),
        "host" | "null" => Err(Error::Forbidden(format!(
            "only one instance of \"{driver}\" network is allowed"
        ))),
        _ => Err(Error::NotSupported {
            flag: format!("network driver {driver:?} (berth has bridge)"),
        }),
    }
}

/// Whether `name` is one of docker's predefined networks, which no user
/// creates or removes.
pub fn is_predefined(name: &str) -> bool {
    name == DEFAULT_NETWORK || berth_net::PREDEFINED.iter().any(|(n, _)| *n == name)
}

/// One network a container joins (`--network NAME` with `--ip`,
/// `--network-alias`, `--mac-address`; or `network connect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// `--ip6`, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// As the user wrote it (checked at create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The networking flags of `run`/`create` besides `--network` itself.
#[derive(Debug, Clone, Default)]
pub struct NetOptions {
    /// `-p`, as written.
    pub publish: Vec<String>,
    /// `-P`: every exposed port on an ephemeral host port.
    pub publish_all: bool,
    /// `--expose PORT[/PROTO]` or a range.
    pub expose: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP` (IP may be `host-gateway`).
    pub add_hosts: Vec<String>,
    /// `--link CONTAINER[:ALIAS]` (the API's HostConfig.Links).
    pub links: Vec<String>,
}

/// What a container's row keeps of its networking: docker's
/// NetworkingConfig, PortBindings, ExposedPorts, Dns* and ExtraHosts.
/// Host ports are resolved at each start, as docker does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetSettings {
    pub endpoints: Vec<Endpoint>,
    pub port_bindings: Vec<String>,
    pub publish_all_ports: bool,
    /// `80/tcp`-style, one per port, image's EXPOSE first.
    pub exposed_ports: Vec<String>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<String>,
    /// `CONTAINER:ALIAS`, the container by its name at create: at each
    /// start both names resolve, in /etc/hosts, to its address on a
    /// network the two share (docker's links, without the environment
    /// variables of the legacy bridge).
    pub links: Vec<String>,
}

impl NetSettings {
    pub fn dns_options(&self) -> files::DnsOptions {
        files::DnsOptions {
            servers: self.dns.clone(),
            search: self.dns_search.clone(),
            options: self.dns_options.clone(),
        }
    }
}

/// `--mac-address`: six colon-separated hex bytes.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::InvalidArgument(format!("invalid --mac-address {s:?}"));
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    // A multicast address cannot be an interface's.
    if mac[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `--expose` and EXPOSE entries as `port/proto` strings, ranges expanded.
pub fn expand_exposed(s: &str) -> Result<Vec<String>> {
    let bad = || Error::InvalidArgument(format!("invalid exposed port {s:?}"));
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if b < a {
        return Err(bad());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Checks the flags of a container joining networks and returns what its
/// row keeps. Network names are checked at start, where they are used.
pub fn settings(
    endpoints: &[Endpoint],
    opts: &NetOptions,
    image_exposed: &[String],
) -> Result<NetSettings> {
    for ep in endpoints {
        if let Some(m) = &ep.mac {
            parse_mac(m)?;
        }
        if let Some(a) = ep.aliases.iter().find(|a| !valid_host_name(a)) {
            return Err(Error::InvalidArgument(format!(
                "invalid --network-alias {a:?}"
            )));
        }
    }
    let mut exposed: Vec<String> = Vec::new();
    let mut add = |p: String| {
        if !exposed.contains(&p) {
            exposed.push(p);
        }
    };
    for e in image_exposed.iter().chain(&opts.expose) {
        expand_exposed(e)?.into_iter().for_each(&mut add);
    }
    for p in &opts.publish {
        let spec = PortSpec::parse(p).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let (a, b) = spec.container_ports;
        (a..=b)
            .map(|c| format!("{c}/{}", spec.proto))
            .for_each(&mut add);
    }
    // host-gateway is checked for form here; its address is the gateway
    // of the network the container gets at start.
    for h in &opts.add_hosts {
        files::parse_add_host(h, Some(Ipv4Addr::UNSPECIFIED))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    }
    let dns = opts
        .dns
        .iter()
        .map(|d| {
            d.parse::<IpAddr>()
                .map_err(|_| Error::InvalidArgument(format!("invalid --dns {d:?}: not an IP")))
        })
        .collect::<Result<_>>()?;
    Ok(NetSettings {
        endpoints: endpoints.to_vec(),
        port_bindings: opts.publish.clone(),
        publish_all_ports: opts.publish_all,
        exposed_ports: exposed,
        dns,
        dns_search: opts.dns_search.clone(),
        dns_options: opts.dns_options.clone(),
        extra_hosts: opts.add_hosts.clone(),
        links: Vec::new(),
    })
}

/// `--link CONTAINER[:ALIAS]`: the container and the alias (its name
/// when none). docker also takes `/name:/me/alias`, as its inspect shows.
pub fn parse_link(s: &str) -> Result<(String, String)> {
    let (name, alias) = s.split_once(':').unwrap_or((s, s));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || !valid_host_name(alias) {
        return Err(Error::InvalidArgument(format!(
            "invalid --link {s:?}: want CONTAINER[:ALIAS]"
        )));
    }
    Ok((name.to_string(), alias.to_string()))
}

/// The first flag of `opts` that only makes sense with a network of
/// berth's own, for refusing it in the other modes.
pub fn first_flag(opts: &NetOptions) -> Option<&'static str> {
    [
        (!opts.dns.is_empty(), "--dns"),
        (!opts.dns_search.is_empty(), "--dns-search"),
        (!opts.dns_options.is_empty(), "--dns-option"),
        (!opts.add_hosts.is_empty(), "--add-host"),
    ]
    .into_iter()
    .find_map(|(set, flag)| set.then_some(flag))
    .or_else(|| first_bridge_flag(opts))
}

/// The first flag of `opts` that needs a network with addresses (ports,
/// links): refused with `none`, which takes the rest (its own hosts and
/// resolv.conf), as docker does.
pub fn first_bridge_flag(opts: &NetOptions) -> Option<&'static str> {
    [
        (!opts.publish.is_empty(), "--publish"),
        (opts.publish_all, "--publish-all"),
        (!opts.links.is_empty(), "--link"),
    ]
    .into_iter()
    .find_map(|(set, flag)| set.then_some(flag))
}

fn valid_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Where berth.toml is: `$BERTH_CONFIG`, else /etc/berth/berth.toml. The
/// variable lets tests (and several berths on one host) keep their own
/// bridges, subnets and nftables table apart.
pub fn config_file() -> PathBuf {
    std::env::var_os("BERTH_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::pull::CONFIG_FILE))
}

/// The `[network]` table of berth.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkTable {
    default_bridge: Option<String>,
    default_subnet: Option<String>,
    /// User networks without `--subnet` get /24s from here.
    pool: Option<String>,
    /// `--ipv6` networks without an IPv6 `--subnet` get /64s from here.
    pool6: Option<String>,
    /// The nftables tables (families ip and ip6) berth owns.
    table: Option<String>,
    /// The resolv.conf whose servers the default bridge's containers get
    /// and user networks' DNS servers forward to (/etc/resolv.conf).
    resolv_conf: Option<PathBuf>,
}

/// berth.toml's text and where it is read from ([`config_file`]); `None`
/// without a file.
pub(crate) fn config_text() -> Result<Option<(String, String)>> {
    let path = config_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((text, path.display().to_string()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
    }
}

/// The table `name` of berth.toml's `text` (read from `origin`), its
/// default when absent. Only that table is looked at: the others belong
/// to other readers.
pub(crate) fn config_table<T: serde::de::DeserializeOwned + Default>(
    text: &str,
    origin: &str,
    name: &str,
) -> Result<T> {
    let bad = |e: &dyn std::fmt::Display| Error::InvalidArgument(format!("{origin} [{name}]: {e}"));
    let mut all: toml::Table = toml::from_str(text).map_err(|e| bad(&e))?;
    match all.remove(name) {
        Some(table) => table.try_into().map_err(|e| bad(&e)),
        None => Ok(T::default()),
    }
}

/// berth.toml's `[network]`, and where it was read; None without a file.
fn network_table() -> Result<Option<(NetworkTable, String)>> {
    let Some((text, origin)) = config_text()? else {
        return Ok(None);
    };
    let n = config_table(&text, &origin, "network")?;
    Ok(Some((n, origin)))
}

/// The host's resolv.conf as [`net_config`] gives it, without the rest of
/// the network's configuration (a `none` or `host` container's start
/// needs only this).
pub fn host_resolv_conf(paths: &Paths) -> Result<PathBuf> {
    Ok(match network_table()?.and_then(|(n, _)| n.resolv_conf) {
        Some(r) => r,
        None => NetConfig::new(paths.db(), &paths.runroot).resolv_conf,
    })
}

/// The net crate's configuration for this engine: its database, its
/// runroot, and berth.toml's `[network]` over the defaults.
pub fn net_config(paths: &Paths) -> Result<NetConfig> {
    let mut cfg = NetConfig::new(paths.db(), &paths.runroot);
    // The DNS servers of user networks are berth-monitor in its `dns`
    // mode; a missing binary fails when a server is first needed.
    let monitor =
        crate::monitor::binary().unwrap_or_else(|_| PathBuf::from(crate::monitor::BINARY));
    cfg.dns_launcher = Some(vec![
        monitor.into_os_string(),
        "--root".into(),
        paths.root.clone().into_os_string(),
        "--runroot".into(),
        paths.runroot.clone().into_os_string(),
        "dns".into(),
    ]);
    let Some((n, origin)) = network_table()? else {
        return Ok(cfg);
    };
    let bad =
        |e: &dyn std::fmt::Display| Error::InvalidArgument(format!("{origin} [network]: {e}"));
    let subnet = |s: &str| s.parse::<Ipv4Net>().map_err(|e| bad(&e));
    if let Some(b) = n.default_bridge {
        cfg.default_bridge = b;
    }
    if let Some(s) = n.default_subnet {
        cfg.default_subnet = subnet(&s)?;
    }
    if let Some(s) = n.pool {
        cfg.pool = subnet(&s)?;
    }
    if let Some(s) = n.pool6 {
        cfg.pool6 = s.parse::<Ipv6Net>().map_err(|e| bad(&e))?;
    }
    if let Some(t) = n.table {
        cfg.table = t;
    }
    if let Some(r) = n.resolv_conf {
        cfg.resolv_conf = r;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:0a:00:00:09").unwrap(),
            [2, 0x42, 10, 0, 0, 9]
        );
        assert_eq!(format_mac(&[2, 0x42, 10, 0, 0, 9]), "02:42:0a:00:00:09");
        for bad in [
            "02:42:0a:00:00",
            "01:00:00:00:00:00",
            "zz:42:0a:00:00:09",
            "",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exposed_ports_and_settings() {
        assert_eq!(expand_exposed("80").unwrap(), ["80/tcp"]);
        assert_eq!(expand_exposed("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expand_exposed("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expand_exposed("0").is_err() && expand_exposed("80/icmp").is_err());
        let o = NetOptions {
            publish: vec!["8080:80".into(), "53/udp".into()],
            expose: vec!["9000".into()],
            add_hosts: vec!["gw:host-gateway".into()],
            dns: vec!["192.0.2.1".into()],
            ..Default::default()
        };
        let s = settings(&[], &o, &["80/tcp".into()]).unwrap();
        assert_eq!(s.exposed_ports, ["80/tcp", "9000/tcp", "53/udp"]);
        assert_eq!(s.dns, ["192.0.2.1".parse::<IpAddr>().unwrap()]);
        for bad in [
            NetOptions {
                publish: vec!["x".into()],
                ..Default::default()
            },
            NetOptions {
                dns: vec!["nope".into()],
                ..Default::default()
            },
            NetOptions {
                add_hosts: vec!["nocolon".into()],
                ..Default::default()
            },
        ] {
            assert_eq!(
                settings(&[], &bad, &[]).unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument
            );
        }
        let ep = Endpoint {
            network: "n".into(),
            mac: Some("bad".into()),
            ..Default::default()
        };
        assert!(settings(&[ep], &NetOptions::default(), &[]).is_err());
        assert_eq!(
            first_flag(&NetOptions {
                publish_all: true,
                ..Default::default()
            }),
            Some("--publish-all")
        );
    }

    #[test]
    fn predefined_names_and_drivers() {
        assert_eq!(
            ["bridge", "host", "none", "front"].map(driver_of),
            ["bridge", "host", "null", "bridge"]
        );
        assert!(["bridge", "host", "none"].into_iter().all(is_predefined));
        assert!(!is_predefined("front"));
        assert!(check_driver("").is_ok() && check_driver("bridge").is_ok());
        for (driver, kind) in [
            ("host", crate::ErrorKind::Forbidden),
            ("null", crate::ErrorKind::Forbidden),
            ("macvlan", crate::ErrorKind::InvalidArgument),
        ] {
            assert_eq!(check_driver(driver).unwrap_err().kind(), kind, "{driver}");
        }
    }

    #[test]
    fn links_name_a_container_and_an_alias() {
        let l = |s: &str| parse_link(s).map(|(n, a)| format!("{n} {a}"));
        assert_eq!(l("db").unwrap(), "db db");
        assert_eq!(l("db:data").unwrap(), "db data");
        // As docker's inspect writes them, and compose sends them back.
        assert_eq!(l("/db:/web/data").unwrap(), "db data");
        for bad in ["", ":x", "db:", "db:a b"] {
            assert!(parse_link(bad).is_err(), "{bad:?}");
        }
    }
}
