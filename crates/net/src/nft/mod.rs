//! berth's firewall: one nftables table of its own per address family
//! (`table ip berth` and `table ip6 berth` by default) that nothing else
//! writes and that berth never flushes wholesale in normal operation. The
//! ip6 table has the same chains; its masquerade, hairpin and ports
//! rules exist for dual-stack networks, its isolation and `--internal`
//! drops for every network (they match interfaces, not addresses). Rules carry a comment tag so they can be
//! found and removed again, even after a crash:
//!
//! - `c=<container id>`: a published port (chain `ports`);
//! - `n=<network name>`: masquerade, hairpin, `--internal` and isolation
//!   rules of a network;
//! - `dns=<network name>` (with its `n=`): the redirect of DNS queries to
//!   the network's server.
//!
//! Layout:
//!
//! ```text
//! table ip berth {
//!   chain prerouting  { type nat hook prerouting priority dstnat;
//!                       iifname BR ip daddr GW udp/tcp dport 53 dnat to GW:P  # n=<net> dns=<net>
//!                       fib daddr type local jump ports }
//!   chain output      { type nat hook output priority dstnat;      fib daddr type local jump ports }
//!   chain ports       { [ip daddr H] meta l4proto P th dport HP dnat to C:CP   # c=<id> }
//!   chain postrouting { type nat hook postrouting priority srcnat;
//!                       ip saddr SUBNET oifname != BR masquerade            # outbound
//!                       oifname BR ct status dnat ip saddr SUBNET masquerade # hairpin
//!                       oifname BR fib saddr type local masquerade           # from 127.0.0.1 }
//!   chain forward     { type filter hook forward priority filter; --internal and isolation drops }
//! }
//! ```

mod expr;
mod wire;

use std::net::IpAddr;

pub use expr::Rule;
use expr::{comment_of, comment_userdata};
use wire::*;

use crate::error::{Result, EEXIST, ENOENT};
use crate::ports::PortMapping;
use crate::store::NetworkConfig;

const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_ACCEPT: u32 = 1;

const CHAIN_PREROUTING: &str = "prerouting";
const CHAIN_PORTS: &str = "ports";
const CHAIN_POSTROUTING: &str = "postrouting";
const CHAIN_FORWARD: &str = "forward";

/// A rule as dumped: where it is, its handle and its comment.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

impl RuleInfo {
    /// True if the rule's comment carries `tag` (e.g. `c=abc`).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.comment
            .as_deref()
            .is_some_and(|c| c.split(' ').any(|t| t == tag))
    }
}

/// Which of the two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn proto(self) -> u8 {
        match self {
            Family::V4 => NFPROTO_IPV4,
            Family::V6 => NFPROTO_IPV6,
        }
    }

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

pub struct Firewall {
    table: String,
    family: Family,
    nft: Nft,
}

impl Firewall {
    /// Opens a netfilter socket for the IPv4 table `table` ("berth" in
    /// production; tests use their own).
    pub fn open(table: &str) -> Result<Firewall> {
        Firewall::open_family(table, Family::V4)
    }

    /// The table of that name in `family`.
    pub fn open_family(table: &str, family: Family) -> Result<Firewall> {
        Ok(Firewall {
            table: table.to_string(),
            family,
            nft: Nft::open()?,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn table_exists(&mut self) -> Result<bool> {
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, &self.table);
        match self
            .nft
            .get("get table", NFT_MSG_GETTABLE, self.family.proto(), a)
        {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the table, its chains and jump rules, once. The batch
    /// creates the table with EXCL, so of two processes racing here one
    /// wins and the other's whole batch is a no-op.
    pub fn ensure_table(&mut self) -> Result<()> {
        if self.table_exists()? {
            return Ok(());
        }
        let mut b = Batch::new(self.family.proto());
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, &self.table);
        b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, a);
        let base = [
            (CHAIN_PREROUTING, "nat", NF_INET_PRE_ROUTING, -100),
            ("output", "nat", NF_INET_LOCAL_OUT, -100),
            (CHAIN_POSTROUTING, "nat", NF_INET_POST_ROUTING, 100),
            (CHAIN_FORWARD, "filter", NF_INET_FORWARD, 0),
        ];
        for (name, kind, hook, prio) in base {
            let mut a = Attrs::default();
            a.str(NFTA_CHAIN_TABLE, &self.table)
                .str(NFTA_CHAIN_NAME, name);
            a.nest(NFTA_CHAIN_HOOK, |h| {
                h.be32(NFTA_HOOK_HOOKNUM, hook)
                    .be32(NFTA_HOOK_PRIORITY, prio as u32);
            });
            a.be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
                .str(NFTA_CHAIN_TYPE, kind);
            b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, a);
        }
        let mut a = Attrs::default();
        a.str(NFTA_CHAIN_TABLE, &self.table)
            .str(NFTA_CHAIN_NAME, CHAIN_PORTS);
        b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, a);
        for chain in [CHAIN_PREROUTING, "output"] {
            let mut r = Rule::default();
            r.fib_daddr_local().jump(CHAIN_PORTS);
            self.add_rule(&mut b, chain, r, "berth");
        }
        match self.nft.commit("create table", b) {
            Err(e) if e.raw_os_error() == Some(EEXIST) => Ok(()),
            other => other,
        }
    }

    /// Deletes the whole table. Only for tests and `berth system reset`:
    /// it drops every published port and masquerade at once.
    pub fn delete_table(&mut self) -> Result<()> {
        let mut b = Batch::new(self.family.proto());
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, &self.table);
        b.add(NFT_MSG_DELTABLE, 0, a);
        match self.nft.commit("delete table", b) {
            Err(e) if e.raw_os_error() == Some(ENOENT) => Ok(()),
            other => other,
        }
    }

    fn add_rule(&self, b: &mut Batch, chain: &str, rule: Rule, comment: &str) {
        self.put_rule(b, chain, rule, comment, NLM_F_APPEND);
    }

    /// Like [`Firewall::add_rule`], at the head of the chain.
    fn insert_rule(&self, b: &mut Batch, chain: &str, rule: Rule, comment: &str) {
        self.put_rule(b, chain, rule, comment, 0);
    }

    fn put_rule(&self, b: &mut Batch, chain: &str, rule: Rule, comment: &str, flags: u16) {
        let mut a = Attrs::default();
        a.str(NFTA_RULE_TABLE, &self.table)
            .str(NFTA_RULE_CHAIN, chain)
            .nest(NFTA_RULE_EXPRESSIONS, |e| {
                e.buf.extend_from_slice(&rule.exprs.buf)
            })
            .put(NFTA_RULE_USERDATA, &comment_userdata(comment));
        b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | flags, a);
    }

    /// Sends DNS queries that containers on `bridge` address to
    /// `gateway`:53 to `gateway`:`port`, where the network's DNS server
    /// listens, replacing the rules of an earlier server, in one batch.
    /// The server so never competes for port 53 with a resolver of the
    /// host's (dnsmasq, bind) and answers even where one listens there.
    /// First in the chain: ahead of a port 53 some container published.
    /// Tagged with the network, they go with its other rules.
    pub fn redirect_dns(
        &mut self,
        network: &str,
        bridge: &str,
        gateway: IpAddr,
        port: u16,
    ) -> Result<()> {
        self.ensure_table()?;
        let tag = format!("dns={network}");
        let old: Vec<RuleInfo> = self
            .rules()?
            .into_iter()
            .filter(|r| r.has_tag(&tag))
            .collect();
        let mut b = Batch::new(self.family.proto());
        for r in &old {
            let mut a = Attrs::default();
            a.str(NFTA_RULE_TABLE, &self.table)
                .str(NFTA_RULE_CHAIN, &r.chain)
                .put(NFTA_RULE_HANDLE, &r.handle.to_be_bytes());
            b.add(NFT_MSG_DELRULE, 0, a);
        }
        for proto in [crate::ports::Proto::Udp, crate::ports::Proto::Tcp] {
            let mut r = Rule::default();
            r.iifname(bridge, true)
                .daddr(gateway)
                .l4_dport(proto.number(), 53)
                .dnat(gateway, port);
            self.insert_rule(&mut b, CHAIN_PREROUTING, r, &format!("n={network} {tag}"));
        }
        self.nft
            .commit(&format!("DNS rules of network {network}"), b)
    }

    /// The masquerade, hairpin, internal and isolation rules of `net`,
    /// isolated from every network in `others`. Call once per network
    /// (create, or repair after the table was lost).
    pub fn add_network(&mut self, net: &NetworkConfig, others: &[NetworkConfig]) -> Result<()> {
        self.ensure_table()?;
        let tag = format!("n={}", net.name);
        let mut b = Batch::new(self.family.proto());
        let br = net.bridge.as_str();
        // Addresses this family's rules match on; None: an IPv4-only
        // network in the ip6 table, which still gets the drops below.
        let subnet = match self.family {
            Family::V4 => Some(SaddrNet::V4(net.subnet)),
            Family::V6 => net.subnet6.map(SaddrNet::V6),
        };
        if let Some(subnet) = subnet {
            if !net.internal {
                let mut r = Rule::default();
                subnet.saddr(&mut r).oifname(br, false).masquerade();
                self.add_rule(&mut b, CHAIN_POSTROUTING, r, &tag);
            }
            // A container reaching a port published by a container on the
            // same bridge: without this the reply would skip the host's NAT.
            let mut r = Rule::default();
            r.oifname(br, true).ct_dnat();
            subnet.saddr(&mut r).masquerade();
            self.add_rule(&mut b, CHAIN_POSTROUTING, r, &tag);
            // 127.0.0.1:port from the host: route_localnet lets the packet
            // leave on the bridge; this gives it a source the container
            // can answer. (IPv6 has no such escape for ::1, but the rule
            // serves the host's other addresses.)
            let mut r = Rule::default();
            r.oifname(br, true).fib_saddr_local().masquerade();
            self.add_rule(&mut b, CHAIN_POSTROUTING, r, &tag);
        }
        if net.internal {
            let mut r = Rule::default();
            r.iifname(br, true).oifname(br, false).drop_();
            self.add_rule(&mut b, CHAIN_FORWARD, r, &tag);
            let mut r = Rule::default();
            r.oifname(br, true).iifname(br, false).drop_();
            self.add_rule(&mut b, CHAIN_FORWARD, r, &tag);
        }
        for o in others.iter().filter(|o| o.name != net.name) {
            let both = format!("{tag} n={}", o.name);
            for (from, to) in [(br, o.bridge.as_str()), (o.bridge.as_str(), br)] {
                let mut r = Rule::default();
                r.iifname(from, true).oifname(to, true).drop_();
                self.add_rule(&mut b, CHAIN_FORWARD, r, &both);
            }
        }
        self.nft
            .commit(&format!("rules of network {}", net.name), b)
    }

    /// Removes every rule of network `name` (its own and the isolation
    /// rules that name it).
    pub fn remove_network(&mut self, name: &str) -> Result<()> {
        self.remove_tagged(&format!("n={name}"))
    }

    /// DNATs each mapping to `ip` for `container`, in one atomic batch.
    /// Mappings bound to a host address of the other family are skipped.
    pub fn publish(&mut self, container: &str, ip: IpAddr, ports: &[PortMapping]) -> Result<()> {
        if Family::of(ip) != self.family {
            return Err(crate::Error::Invalid(format!(
                "address {ip} in the {:?} table",
                self.family
            )));
        }
        self.ensure_table()?;
        let tag = format!("c={container}");
        let mut b = Batch::new(self.family.proto());
        for p in ports {
            let mut r = Rule::default();
            match p.host_ip {
                Some(h) if Family::of(h) != self.family => continue,
                Some(h) => {
                    r.daddr(h);
                }
                None => {}
            }
            r.l4_dport(p.proto.number(), p.host_port)
                .dnat(ip, p.container_port);
            self.add_rule(&mut b, CHAIN_PORTS, r, &tag);
        }
        self.nft.commit(&format!("publish ports of {container}"), b)
    }

    /// Removes every published port of `container`.
    pub fn unpublish(&mut self, container: &str) -> Result<()> {
        self.remove_tagged(&format!("c={container}"))
    }

    /// Every rule in the table, with handles and comments.
    pub fn rules(&mut self) -> Result<Vec<RuleInfo>> {
        if !self.table_exists()? {
            return Ok(Vec::new());
        }
        let mut a = Attrs::default();
        a.str(NFTA_RULE_TABLE, &self.table);
        let replies = self
            .nft
            .dump("list rules", NFT_MSG_GETRULE, self.family.proto(), a)?;
        let mut out = Vec::new();
        for r in replies {
            let (mut table, mut chain, mut handle, mut comment) = (None, None, None, None);
            for (kind, v) in parse_attrs(&r.attrs) {
                match kind {
                    NFTA_RULE_TABLE => table = Some(cstr(v)),
                    NFTA_RULE_CHAIN => chain = Some(cstr(v)),
                    NFTA_RULE_HANDLE if v.len() == 8 => {
                        handle = Some(u64::from_be_bytes(v.try_into().expect("8 bytes")))
                    }
                    NFTA_RULE_USERDATA => comment = comment_of(v).map(str::to_string),
                    _ => {}
                }
            }
            if table.as_deref() != Some(self.table.as_str()) {
                continue;
            }
            if let (Some(chain), Some(handle)) = (chain, handle) {
                out.push(RuleInfo {
                    chain,
                    handle,
                    comment,
                });
            }
        }
        Ok(out)
    }

    /// Deletes the rules whose comment has `tag`, in one batch.
    pub fn remove_tagged(&mut self, tag: &str) -> Result<()> {
        let doomed: Vec<RuleInfo> = self
            .rules()?
            .into_iter()
            .filter(|r| r.has_tag(tag))
            .collect();
        self.delete_rules(&doomed)
    }

    pub fn delete_rules(&mut self, rules: &[RuleInfo]) -> Result<()> {
        let mut b = Batch::new(self.family.proto());
        for r in rules {
            let mut a = Attrs::default();
            a.str(NFTA_RULE_TABLE, &self.table)
                .str(NFTA_RULE_CHAIN, &r.chain)
                .put(NFTA_RULE_HANDLE, &r.handle.to_be_bytes());
            b.add(NFT_MSG_DELRULE, 0, a);
        }
        self.nft.deleted = true;
        match self.nft.commit("delete rules", b) {
            // Someone else removed them first: the goal is reached.
            Err(e) if e.raw_os_error() == Some(ENOENT) => Ok(()),
            other => other,
        }
    }
}

/// A source subnet of either family, for the rules both tables share.
#[derive(Clone, Copy)]
enum SaddrNet {
    V4(crate::subnet::Ipv4Net),
    V6(crate::subnet::Ipv6Net),
}

impl SaddrNet {
    fn saddr(self, r: &mut Rule) -> &mut Rule {
        match self {
            SaddrNet::V4(n) => r.ip_saddr(n),
            SaddrNet::V6(n) => r.ip6_saddr(n),
        }
    }
}

fn cstr(v: &[u8]) -> String {
    let v = v.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(v).into_owned()
}

/// Tags are plain tokens; a network or container name with a space would
/// make two. Names are validated before they get here.
pub(crate) fn valid_tag_value(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && !s.contains(char::is_whitespace)
}
