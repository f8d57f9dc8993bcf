//! Published ports: docker's `-p [ip:][hostPort:]containerPort[/proto]`
//! syntax with ranges, and the concrete host-port choices made from it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// The IP protocol number nftables matches on.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// One `-p` flag as written: ranges are inclusive `(first, last)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// None: every host address (docker's 0.0.0.0, and :: on dual-stack
    /// networks).
    pub host_ip: Option<IpAddr>,
    /// None: the host picks an ephemeral port per container port.
    pub host_ports: Option<(u16, u16)>,
    pub container_ports: (u16, u16),
    pub proto: Proto,
}

/// One concrete mapping, host side to container side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortMapping {
    /// docker port's format: `80/tcp -> 0.0.0.0:8080`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.container_port,
            self.proto,
            self.host_addr()
        )
    }
}

impl PortMapping {
    /// `0.0.0.0:8080`, `127.0.0.1:8080` or `[fd00::1]:8080`.
    pub fn host_addr(&self) -> String {
        match self.host_ip {
            None => format!("0.0.0.0:{}", self.host_port),
            Some(IpAddr::V4(a)) => format!("{a}:{}", self.host_port),
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", self.host_port),
        }
    }
}

fn bad(s: &str, why: &str) -> Error {
    Error::Invalid(format!("invalid port specification {s:?}: {why}"))
}

fn parse_range(s: &str, whole: &str, what: &str) -> Result<(u16, u16)> {
    let port = |p: &str| -> Result<u16> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(whole, &format!("invalid {what} port {p:?}"))),
            Ok(n) => Ok(n),
        }
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if b < a {
        return Err(bad(whole, &format!("invalid {what} port range {s:?}")));
    }
    Ok((a, b))
}

impl PortSpec {
    /// Parses one `-p` value.
    pub fn parse(s: &str) -> Result<PortSpec> {
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, p)) => {
                let proto = match p.to_ascii_lowercase().as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    "sctp" => Proto::Sctp,
                    _ => return Err(bad(s, &format!("invalid protocol {p:?}"))),
                };
                (r, proto)
            }
            None => (s, Proto::Tcp),
        };
        if rest.is_empty() {
            return Err(bad(s, "no container port"));
        }
        // An IPv6 host address goes in brackets: [fd00::1]:8080:80.
        let (ip, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let (ip, after) = r
                    .split_once(']')
                    .ok_or_else(|| bad(s, "unclosed [ in the host address"))?;
                let after = after
                    .strip_prefix(':')
                    .ok_or_else(|| bad(s, "want [IPv6]:hostPort:containerPort"))?;
                (Some(ip), after)
            }
            None => (None, rest),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, ctr) = match (ip, parts.as_slice()) {
            (None, [c]) => (None, None, *c),
            (None, [h, c]) => (None, Some(*h), *c),
            (None, [ip, h, c]) => (Some(*ip), Some(*h), *c),
            (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
            (None, _) => return Err(bad(s, "IPv6 host addresses go in brackets")),
            (Some(_), _) => return Err(bad(s, "want [IPv6]:hostPort:containerPort")),
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(ip) => {
                let a: IpAddr = ip
                    .parse()
                    .map_err(|_| bad(s, &format!("invalid IP address {ip:?}")))?;
                (!a.is_unspecified()).then_some(a)
            }
        };
        let container_ports = parse_range(ctr, s, "container")?;
        let host_ports = match host {
            None | Some("") => None,
            Some(h) => Some(parse_range(h, s, "host")?),
        };
        if let Some((a, b)) = host_ports {
            let (hn, cn) = (b - a, container_ports.1 - container_ports.0);
            // docker: equal ranges map one to one; a host range with one
            // container port means "any free port of the range".
            if cn != 0 && hn != cn {
                return Err(bad(s, "host and container port ranges differ in size"));
            }
        }
        Ok(PortSpec {
            host_ip,
            host_ports,
            container_ports,
            proto,
        })
    }

    /// The concrete mappings: ranges paired one to one; where the host
    /// port is left to us, a port the kernel says is free now (found by
    /// binding and releasing, as there is no proxy to hold it).
    pub fn resolve(&self) -> Result<Vec<PortMapping>> {
        let (c0, c1) = self.container_ports;
        let mapping = |host_port, container_port| PortMapping {
            host_ip: self.host_ip,
            host_port,
            container_port,
            proto: self.proto,
        };
        match self.host_ports {
            Some((h0, h1)) if c0 == c1 && h0 != h1 => {
                let p = (h0..=h1)
                    .find(|p| self.port_free(*p))
                    .ok_or_else(|| Error::Conflict(format!("no free host port in {h0}-{h1}")))?;
                Ok(vec![mapping(p, c0)])
            }
            Some((h0, _)) => Ok((c0..=c1).map(|c| mapping(h0 + (c - c0), c)).collect()),
            None => (c0..=c1)
                .map(|c| Ok(mapping(self.ephemeral()?, c)))
                .collect(),
        }
    }

    fn port_free(&self, port: u16) -> bool {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        match self.proto {
            Proto::Udp => UdpSocket::bind((ip, port)).is_ok(),
            _ => TcpListener::bind((ip, port)).is_ok(),
        }
    }

    fn ephemeral(&self) -> Result<u16> {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let port = match self.proto {
            Proto::Udp => UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()),
            _ => TcpListener::bind((ip, 0)).and_then(|s| s.local_addr()),
        }
        .map_err(|e| Error::io("pick a host port", e))?
        .port();
        Ok(port)
    }
}

/// Parses every `-p` flag and resolves them into concrete mappings,
/// refusing two mappings of one host address, port and protocol.
pub fn parse_all(flags: &[&str]) -> Result<Vec<PortMapping>> {
    let mut out: Vec<PortMapping> = Vec::new();
    for f in flags {
        for m in PortSpec::parse(f)?.resolve()? {
            if out.iter().any(|o| {
                o.host_port == m.host_port
                    && o.proto == m.proto
                    && (o.host_ip.is_none() || m.host_ip.is_none() || o.host_ip == m.host_ip)
            }) {
                return Err(Error::Conflict(format!(
                    "host port {}/{} is published twice",
                    m.host_port, m.proto
                )));
            }
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PortSpec {
        PortSpec::parse(s).unwrap()
    }

    #[test]
    fn docker_forms() {
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            spec("80"),
            PortSpec {
                host_ip: None,
                host_ports: None,
                container_ports: (80, 80),
                proto: Proto::Tcp
            }
        );
        assert_eq!(spec("8080:80").host_ports, Some((8080, 8080)));
        assert_eq!(spec("127.0.0.1:8080:80").host_ip, lo);
        let s = spec("127.0.0.1::80/udp");
        assert_eq!((s.host_ip, s.host_ports, s.proto), (lo, None, Proto::Udp));
        assert_eq!(spec("0.0.0.0:8080:80").host_ip, None);
        assert_eq!(spec(":8080:80").host_ports, Some((8080, 8080)));
        let r = spec("8000-8002:9000-9002/tcp");
        assert_eq!(
            (r.host_ports, r.container_ports),
            (Some((8000, 8002)), (9000, 9002))
        );
        assert_eq!(spec("53/UDP").proto, Proto::Udp);
        assert_eq!(spec("8000-8010:80").container_ports, (80, 80));
        let v6 = spec("[fd00::1]:8080:80/udp");
        assert_eq!(
            (v6.host_ip, v6.host_ports, v6.proto),
            (
                Some("fd00::1".parse().unwrap()),
                Some((8080, 8080)),
                Proto::Udp
            )
        );
        assert_eq!(spec("[::]:8080:80").host_ip, None);
        assert_eq!(spec("[fd00::1]::80").host_ports, None);
    }

    #[test]
    fn docker_errors() {
        for s in [
            "",
            "/tcp",
            "0",
            "65536",
            "80/icmp",
            "abc",
            "8080:",
            "1.2.3:80:80",
            "8000-8001:80-82",
            "90-80",
            "a:b:c:d",
            "[::1:80:80",
            "[::1]80:80",
            "[::1]:80",
            "[nope]:80:80",
            "fd00::1:80:80",
            "8080:80:70:1",
        ] {
            let e = PortSpec::parse(s).expect_err(s);
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{s}");
        }
    }

    #[test]
    fn resolves_ranges_one_to_one() {
        let m = spec("127.0.0.1:8000-8002:9000-9002").resolve().unwrap();
        let pairs: Vec<_> = m.iter().map(|m| (m.host_port, m.container_port)).collect();
        assert_eq!(pairs, [(8000, 9000), (8001, 9001), (8002, 9002)]);
        assert_eq!(m[0].to_string(), "9000/tcp -> 127.0.0.1:8000");
    }

    #[test]
    fn picks_ephemeral_ports() {
        let m = spec("127.0.0.1::80").resolve().unwrap();
        assert_eq!(m.len(), 1);
        assert!(m[0].host_port > 0);
    }

    #[test]
    fn refuses_duplicates() {
        let e = parse_all(&["8080:80", "127.0.0.1:8080:81"]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert!(parse_all(&["8080:80", "8080:80/udp"]).is_ok());
    }
}
