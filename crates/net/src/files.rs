//! The /etc/hosts and /etc/resolv.conf a container sees, as docker writes
//! them. Pure functions of their inputs, plus an atomic writer; the engine
//! decides where the files live and bind-mounts them.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::error::{Error, Result};

/// One `--add-host name:ip` entry; `host-gateway` resolves to the
/// network's gateway.
pub fn parse_add_host(s: &str, gateway: Option<Ipv4Addr>) -> Result<(String, IpAddr)> {
    let bad = |why: &str| Error::Invalid(format!("invalid --add-host {s:?}: {why}"));
    // name:ip, where ip may itself be IPv6 (with colons)
    let (name, ip) = s.split_once(':').ok_or_else(|| bad("want host:ip"))?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad("invalid host name"));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let addr = if ip == "host-gateway" {
        IpAddr::V4(gateway.ok_or_else(|| bad("no gateway on this network"))?)
    } else {
        ip.parse().map_err(|_| bad("invalid IP address"))?
    };
    Ok((name.to_string(), addr))
}

/// /etc/hosts: loopback, docker's IPv6 lines, `--add-host` entries, then
/// the container's own address with its hostname and aliases.
pub fn hosts(own: Option<(IpAddr, &[&str])>, extra: &[(String, IpAddr)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    if let Some((ip, names)) = own {
        if !names.is_empty() {
            s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
    }
    s
}

/// The host's /etc/hosts (`base`) for a container on the host's network,
/// with the `--add-host` entries after it.
pub fn host_network_hosts(base: &str, extra: &[(String, IpAddr)]) -> String {
    let mut s = base.to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

/// `--dns`, `--dns-search`, `--dns-option` as given.
#[derive(Debug, Clone, Default)]
pub struct DnsOptions {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// docker's fallback when the host has only loopback resolvers, which a
/// container on a bridge cannot reach.
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// resolv.conf for a container: `network_dns` (the embedded DNS server on
/// user networks) wins, else `--dns`, else the host's resolvers without
/// loopback ones; search and options from the flags or else the host.
pub fn resolv_conf(host: &str, network_dns: Option<IpAddr>, opts: &DnsOptions) -> String {
    let mut base = parse_resolv_conf(host);
    base.servers.retain(|ip| !ip.is_loopback());
    match network_dns {
        Some(ip) => {
            base.servers = vec![ip];
            let flags = DnsOptions {
                servers: Vec::new(),
                ..opts.clone()
            };
            render_resolv_conf(base, &flags)
        }
        None => {
            if base.servers.is_empty() {
                base.servers = FALLBACK.iter().filter_map(|s| s.parse().ok()).collect();
            }
            render_resolv_conf(base, opts)
        }
    }
}

/// resolv.conf for a container on the host's network: the host's
/// resolvers, loopback ones too (the container reaches them), with
/// `--dns`, `--dns-search` and `--dns-option` in place of what they set.
pub fn host_network_resolv_conf(host: &str, opts: &DnsOptions) -> String {
    if opts.servers.is_empty() && opts.search.is_empty() && opts.options.is_empty() {
        // docker's copy, as it is, when no flag changes it.
        return host.to_string();
    }
    render_resolv_conf(parse_resolv_conf(host), opts)
}

/// The nameservers, search list and options of a resolv.conf.
fn parse_resolv_conf(text: &str) -> DnsOptions {
    let mut r = DnsOptions::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    r.servers.push(ip);
                }
            }
            Some("search") | Some("domain") => r.search = words.map(str::to_string).collect(),
            Some("options") => r.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    r
}

/// `base` with what the flags in `opts` set in place of its own.
fn render_resolv_conf(mut base: DnsOptions, opts: &DnsOptions) -> String {
    if !opts.servers.is_empty() {
        base.servers = opts.servers.clone();
    }
    if !opts.search.is_empty() {
        base.search = opts.search.clone();
    }
    if !opts.options.is_empty() {
        base.options = opts.options.clone();
    }
    let mut out = String::new();
    for s in base.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !base.search.is_empty() {
        out.push_str(&format!("search {}\n", base.search.join(" ")));
    }
    if !base.options.is_empty() {
        out.push_str(&format!("options {}\n", base.options.join(" ")));
    }
    out
}

/// Writes `content` to `path` atomically: temporary name, fsync, rename.
pub fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file() {
        let extra = [parse_add_host("db:10.0.0.5", None).unwrap()];
        let ip: IpAddr = "10.87.0.2".parse().unwrap();
        let h = hosts(Some((ip, &["abc123", "web"])), &extra);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.0.0.5\tdb\n"));
        assert!(h.ends_with("10.87.0.2\tabc123 web\n"));
    }

    #[test]
    fn add_host_forms() {
        let gw = Some(Ipv4Addr::new(10, 87, 0, 1));
        assert_eq!(
            parse_add_host("h:host-gateway", gw).unwrap().1,
            IpAddr::V4(Ipv4Addr::new(10, 87, 0, 1))
        );
        assert_eq!(
            parse_add_host("h:::1", None).unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        for bad in ["nocolon", ":1.2.3.4", "h:notanip", "h:host-gateway"] {
            assert!(parse_add_host(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolv_conf_rules() {
        let host = "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\noptions edns0\n";
        let d = DnsOptions::default();
        assert_eq!(
            resolv_conf(host, None, &d),
            "nameserver 192.0.2.1\nsearch lan\noptions edns0\n"
        );
        let gw: IpAddr = "10.87.1.1".parse().unwrap();
        assert!(resolv_conf(host, Some(gw), &d).starts_with("nameserver 10.87.1.1\n"));
        let only_loopback = "nameserver 127.0.0.53\n";
        assert!(resolv_conf(only_loopback, None, &d).contains("nameserver 8.8.8.8"));
        let flags = DnsOptions {
            servers: vec!["192.0.2.9".parse().unwrap()],
            search: vec!["example".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(host, None, &flags),
            "nameserver 192.0.2.9\nsearch example\noptions ndots:2\n"
        );
        // The embedded server wins over --dns; the search list still comes.
        assert_eq!(
            resolv_conf(host, Some(gw), &flags),
            "nameserver 10.87.1.1\nsearch example\noptions ndots:2\n"
        );
    }

    #[test]
    fn the_host_networks_files_keep_the_hosts_and_take_the_flags() {
        let host = "# by hand\nnameserver 127.0.0.53\nsearch lan\noptions edns0\n";
        assert_eq!(host_network_resolv_conf(host, &DnsOptions::default()), host);
        // Loopback resolvers stay: a container on the host's network reaches them.
        let search = DnsOptions {
            search: vec!["example".into()],
            ..DnsOptions::default()
        };
        assert_eq!(
            host_network_resolv_conf(host, &search),
            "nameserver 127.0.0.53\nsearch example\noptions edns0\n"
        );
        let extra = [parse_add_host("db:10.0.0.5", None).unwrap()];
        assert_eq!(
            host_network_hosts("127.0.0.1 localhost", &extra),
            "127.0.0.1 localhost\n10.0.0.5\tdb\n"
        );
        assert_eq!(host_network_hosts("", &extra), "10.0.0.5\tdb\n");
    }

    #[test]
    fn atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        write_atomic(&p, "a\n").unwrap();
        write_atomic(&p, "b\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "b\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
