//! IPv4 and IPv6 subnets ("10.89.0.0/24", "fd00:1::/64"), with the
//! arithmetic IPAM needs.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// An IPv4 network: the address is always the network address (host bits
/// zero), so two spellings of one subnet compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// `addr/prefix`, with host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, Error> {
        if prefix > 32 {
            return Err(Error::Invalid(format!("invalid prefix length /{prefix}")));
        }
        let mask = Self::mask_of(prefix);
        Ok(Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn mask(&self) -> u32 {
        Self::mask_of(self.prefix)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// True if `other` lies entirely inside this subnet.
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The first usable host address, conventionally the gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        if self.prefix >= 31 {
            self.addr
        } else {
            Ipv4Addr::from(u32::from(self.addr) + 1)
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid(format!("invalid IPv4 subnet {s:?} (want a.b.c.d/n)"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv6 network, normalised like [`Ipv4Net`]. There is no broadcast
/// in IPv6; the subnet-router anycast address (host bits zero) is still
/// never given to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

impl Ipv6Net {
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, Error> {
        if prefix > 128 {
            return Err(Error::Invalid(format!("invalid prefix length /{prefix}")));
        }
        Ok(Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr) & Self::mask_of(prefix)),
            prefix,
        })
    }

    fn mask_of(prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix)
        }
    }

    pub fn network(&self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn mask(&self) -> u128 {
        Self::mask_of(self.prefix)
    }

    /// The highest address of the subnet.
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.addr)
    }

    pub fn contains_net(&self, other: &Ipv6Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// `network + 1`, conventionally the gateway.
    pub fn first_host(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) + u128::from(self.prefix < 128))
    }
}

impl FromStr for Ipv6Net {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid(format!("invalid IPv6 subnet {s:?} (want x:y::/n)"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Ipv6Net::new(addr, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Ipv6Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let n: Ipv4Net = "10.89.0.77/24".parse().unwrap();
        assert_eq!(n.to_string(), "10.89.0.0/24");
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 89, 0, 255));
        assert_eq!(n.first_host(), Ipv4Addr::new(10, 89, 0, 1));
        assert!(n.contains(Ipv4Addr::new(10, 89, 0, 9)));
        assert!(!n.contains(Ipv4Addr::new(10, 89, 1, 9)));
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        let r: Ipv4Net = "10.89.0.128/25".parse().unwrap();
        assert!(n.contains_net(&r) && !r.contains_net(&n) && r.overlaps(&n));
    }

    #[test]
    fn ipv6_subnets() {
        let n: Ipv6Net = "fd00:1:2:3::77/64".parse().unwrap();
        assert_eq!(n.to_string(), "fd00:1:2:3::/64");
        assert_eq!(n.first_host(), "fd00:1:2:3::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            n.last(),
            "fd00:1:2:3:ffff:ffff:ffff:ffff"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        assert!(n.contains("fd00:1:2:3::9".parse().unwrap()));
        assert!(!n.contains("fd00:1:2:4::9".parse().unwrap()));
        let m: Ipv6Net = "fd00:1:2::/48".parse().unwrap();
        assert!(m.contains_net(&n) && m.overlaps(&n) && !n.contains_net(&m));
        for bad in ["fd00::/129", "10.0.0.0/8", "fd00::"] {
            assert!(bad.parse::<Ipv6Net>().is_err(), "{bad}");
        }
    }
}
