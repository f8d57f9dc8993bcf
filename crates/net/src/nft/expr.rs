//! The nf_tables expressions berth's rules are made of, each a builder
//! that appends one `NFTA_LIST_ELEM` to a rule's expression list. Rules
//! read like `nft` syntax: see [`Rule`]'s methods.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::wire::{Attrs, NFPROTO_IPV4, NFPROTO_IPV6};
use crate::subnet::{Ipv4Net, Ipv6Net};

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;

const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_L4PROTO: u32 = 16;
const NFT_CT_STATUS: u32 = 2;
const IPS_DST_NAT: u32 = 1 << 5;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_SADDR: u32 = 1;
const NFTA_FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
const NF_DROP: i32 = 0;
const NFT_JUMP: i32 = -3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;

/// Where `libnftnl` puts a rule comment inside NFTA_RULE_USERDATA, so
/// `nft list` shows berth's tags as comments.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

/// A rule's expressions, built in order.
#[derive(Default)]
pub struct Rule {
    pub exprs: Attrs,
}

impl Rule {
    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Attrs)) -> &mut Self {
        self.exprs.nest(NFTA_LIST_ELEM, |e| {
            e.str(NFTA_EXPR_NAME, name);
            e.nest(NFTA_EXPR_DATA, data);
        });
        self
    }

    fn cmp(&mut self, op: u32, value: &[u8]) -> &mut Self {
        self.expr("cmp", |a| {
            a.be32(1, NFT_REG_1); // NFTA_CMP_SREG
            a.be32(2, op); // NFTA_CMP_OP
            a.nest(3, |d| {
                d.put(NFTA_DATA_VALUE, value);
            });
        })
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32) -> &mut Self {
        self.expr("payload", |a| {
            a.be32(1, NFT_REG_1); // DREG
            a.be32(2, base);
            a.be32(3, offset);
            a.be32(4, len);
        })
    }

    fn bitwise_mask(&mut self, mask: &[u8]) -> &mut Self {
        let zero = vec![0u8; mask.len()];
        self.expr("bitwise", |a| {
            a.be32(1, NFT_REG_1); // SREG
            a.be32(2, NFT_REG_1); // DREG
            a.be32(3, mask.len() as u32); // LEN
            a.nest(4, |d| {
                d.put(NFTA_DATA_VALUE, mask);
            });
            a.nest(5, |d| {
                d.put(NFTA_DATA_VALUE, &zero);
            });
        })
    }

    fn meta(&mut self, key: u32) -> &mut Self {
        self.expr("meta", |a| {
            a.be32(1, NFT_REG_1); // DREG
            a.be32(2, key);
        })
    }

    fn ip_net(&mut self, offset: u32, net: Ipv4Net) -> &mut Self {
        self.payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 4);
        if net.prefix() < 32 {
            self.bitwise_mask(&net.mask().to_be_bytes());
        }
        self.cmp(NFT_CMP_EQ, &net.network().octets())
    }

    /// `ip saddr NET`
    pub fn ip_saddr(&mut self, net: Ipv4Net) -> &mut Self {
        self.ip_net(12, net)
    }

    /// `ip daddr ADDR`
    pub fn ip_daddr(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
        self.cmp(NFT_CMP_EQ, &addr.octets())
    }

    /// `ip6 saddr NET`
    pub fn ip6_saddr(&mut self, net: Ipv6Net) -> &mut Self {
        self.payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16);
        if net.prefix() < 128 {
            self.bitwise_mask(&net.mask().to_be_bytes());
        }
        self.cmp(NFT_CMP_EQ, &net.network().octets())
    }

    /// `ip6 daddr ADDR`
    pub fn ip6_daddr(&mut self, addr: Ipv6Addr) -> &mut Self {
        self.payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
        self.cmp(NFT_CMP_EQ, &addr.octets())
    }

    /// `ip daddr ADDR` or `ip6 daddr ADDR`, by the address's family.
    pub fn daddr(&mut self, addr: IpAddr) -> &mut Self {
        match addr {
            IpAddr::V4(a) => self.ip_daddr(a),
            IpAddr::V6(a) => self.ip6_daddr(a),
        }
    }

    fn ifname(&mut self, key: u32, name: &str, eq: bool) -> &mut Self {
        let mut v = name.as_bytes().to_vec();
        v.push(0);
        self.meta(key);
        self.cmp(if eq { NFT_CMP_EQ } else { NFT_CMP_NEQ }, &v)
    }

    /// `iifname NAME` (or `!=` when `eq` is false)
    pub fn iifname(&mut self, name: &str, eq: bool) -> &mut Self {
        self.ifname(NFT_META_IIFNAME, name, eq)
    }

    /// `oifname NAME` (or `!=` when `eq` is false)
    pub fn oifname(&mut self, name: &str, eq: bool) -> &mut Self {
        self.ifname(NFT_META_OIFNAME, name, eq)
    }

    /// `meta l4proto PROTO th dport PORT`
    pub fn l4_dport(&mut self, proto: u8, port: u16) -> &mut Self {
        self.meta(NFT_META_L4PROTO);
        self.cmp(NFT_CMP_EQ, &[proto]);
        self.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
        self.cmp(NFT_CMP_EQ, &port.to_be_bytes())
    }

    fn fib_local(&mut self, flag: u32) -> &mut Self {
        self.expr("fib", |a| {
            a.be32(1, NFT_REG_1); // DREG
            a.be32(2, NFT_FIB_RESULT_ADDRTYPE);
            a.be32(3, flag);
        });
        self.cmp(NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes())
    }

    /// `fib daddr type local`: the packet is for one of the host's addresses.
    pub fn fib_daddr_local(&mut self) -> &mut Self {
        self.fib_local(NFTA_FIB_F_DADDR)
    }

    /// `fib saddr type local`: the packet comes from one of the host's
    /// addresses (127.0.0.1 included).
    pub fn fib_saddr_local(&mut self) -> &mut Self {
        self.fib_local(NFTA_FIB_F_SADDR)
    }

    /// `ct status dnat`: the connection was destination-NATed.
    pub fn ct_dnat(&mut self) -> &mut Self {
        self.expr("ct", |a| {
            a.be32(1, NFT_REG_1); // DREG
            a.be32(2, NFT_CT_STATUS);
        });
        self.bitwise_mask(&IPS_DST_NAT.to_ne_bytes());
        self.cmp(NFT_CMP_NEQ, &0u32.to_ne_bytes())
    }

    /// `dnat to ADDR:PORT` (`dnat ip6 to [ADDR]:PORT` for IPv6)
    pub fn dnat(&mut self, addr: IpAddr, port: u16) -> &mut Self {
        let (family, octets) = match addr {
            IpAddr::V4(a) => (NFPROTO_IPV4, a.octets().to_vec()),
            IpAddr::V6(a) => (NFPROTO_IPV6, a.octets().to_vec()),
        };
        self.expr("immediate", |a| {
            a.be32(1, NFT_REG_1);
            a.nest(2, |d| {
                d.put(NFTA_DATA_VALUE, &octets);
            });
        });
        self.expr("immediate", |a| {
            a.be32(1, NFT_REG_2);
            a.nest(2, |d| {
                d.put(NFTA_DATA_VALUE, &port.to_be_bytes());
            });
        });
        self.expr("nat", |a| {
            a.be32(1, NFT_NAT_DNAT); // TYPE
            a.be32(2, u32::from(family)); // FAMILY
            a.be32(3, NFT_REG_1); // REG_ADDR_MIN
            a.be32(5, NFT_REG_2); // REG_PROTO_MIN
        })
    }

    /// `masquerade`
    pub fn masquerade(&mut self) -> &mut Self {
        self.exprs.nest(NFTA_LIST_ELEM, |e| {
            e.str(NFTA_EXPR_NAME, "masq");
        });
        self
    }

    fn verdict(&mut self, code: i32, chain: Option<&str>) -> &mut Self {
        self.expr("immediate", |a| {
            a.be32(1, NFT_REG_VERDICT);
            a.nest(2, |d| {
                d.nest(NFTA_DATA_VERDICT, |v| {
                    v.be32(NFTA_VERDICT_CODE, code as u32);
                    if let Some(c) = chain {
                        v.str(NFTA_VERDICT_CHAIN, c);
                    }
                });
            });
        })
    }

    /// `drop`
    pub fn drop_(&mut self) -> &mut Self {
        self.verdict(NF_DROP, None)
    }

    /// `jump CHAIN`
    pub fn jump(&mut self, chain: &str) -> &mut Self {
        self.verdict(NFT_JUMP, Some(chain))
    }
}

/// Encodes a rule comment the way libnftnl does.
pub fn comment_userdata(comment: &str) -> Vec<u8> {
    let mut v = vec![NFTNL_UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    v
}

/// Decodes a rule comment written by [`comment_userdata`] (or by nft).
pub fn comment_of(userdata: &[u8]) -> Option<&str> {
    let mut rest = userdata;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if kind == NFTNL_UDATA_RULE_COMMENT {
            let s = value.strip_suffix(&[0]).unwrap_or(value);
            return std::str::from_utf8(s).ok();
        }
        rest = &rest[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_round_trips() {
        let u = comment_userdata("berth c=abc");
        assert_eq!(comment_of(&u), Some("berth c=abc"));
        assert_eq!(comment_of(&[]), None);
    }
}
