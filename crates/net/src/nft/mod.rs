//! berth's firewall: one nftables table of its own (`table ip berth` by
//! default) that nothing else writes and that berth never flushes
//! wholesale in normal operation. Rules carry a comment tag so they can be
//! found and removed again, even after a crash:
//!
//! - `c=<container id>`: a published port (chain `ports`);
//! - `n=<network name>`: masquerade, hairpin, `--internal` and isolation
//!   rules of a network.
//!
//! Layout:
//!
//! ```text
//! table ip berth {
//!   chain prerouting  { type nat hook prerouting priority dstnat;  fib daddr type local jump ports }
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

use std::net::Ipv4Addr;

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

pub struct Firewall {
    table: String,
    nft: Nft,
}

impl Firewall {
    /// Opens a netfilter socket for the table `table` ("berth" in
    /// production; tests use their own).
    pub fn open(table: &str) -> Result<Firewall> {
        Ok(Firewall {
            table: table.to_string(),
            nft: Nft::open()?,
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn table_exists(&mut self) -> Result<bool> {
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, &self.table);
        match self.nft.get("get table", NFT_MSG_GETTABLE, NFPROTO_IPV4, a) {
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
        let mut b = Batch::new(NFPROTO_IPV4);
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, &self.table);
        b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, a);
        let base = [
            ("prerouting", "nat", NF_INET_PRE_ROUTING, -100),
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
        for chain in ["prerouting", "output"] {
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
        let mut b = Batch::new(NFPROTO_IPV4);
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, &self.table);
        b.add(NFT_MSG_DELTABLE, 0, a);
        match self.nft.commit("delete table", b) {
            Err(e) if e.raw_os_error() == Some(ENOENT) => Ok(()),
            other => other,
        }
    }

    fn add_rule(&self, b: &mut Batch, chain: &str, rule: Rule, comment: &str) {
        let mut a = Attrs::default();
        a.str(NFTA_RULE_TABLE, &self.table)
            .str(NFTA_RULE_CHAIN, chain)
            .nest(NFTA_RULE_EXPRESSIONS, |e| {
                e.buf.extend_from_slice(&rule.exprs.buf)
            })
            .put(NFTA_RULE_USERDATA, &comment_userdata(comment));
        b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, a);
    }

    /// The masquerade, hairpin, internal and isolation rules of `net`,
    /// isolated from every network in `others`. Call once per network
    /// (create, or repair after the table was lost).
    pub fn add_network(&mut self, net: &NetworkConfig, others: &[NetworkConfig]) -> Result<()> {
        self.ensure_table()?;
        let tag = format!("n={}", net.name);
        let mut b = Batch::new(NFPROTO_IPV4);
        let br = net.bridge.as_str();
        if !net.internal {
            let mut r = Rule::default();
            r.ip_saddr(net.subnet).oifname(br, false).masquerade();
            self.add_rule(&mut b, CHAIN_POSTROUTING, r, &tag);
        }
        // A container reaching a port published by a container on the
        // same bridge: without this the reply would skip the host's NAT.
        let mut r = Rule::default();
        r.oifname(br, true)
            .ct_dnat()
            .ip_saddr(net.subnet)
            .masquerade();
        self.add_rule(&mut b, CHAIN_POSTROUTING, r, &tag);
        // 127.0.0.1:port from the host: route_localnet lets the packet
        // leave on the bridge; this gives it a source the container can
        // answer.
        let mut r = Rule::default();
        r.oifname(br, true).fib_saddr_local().masquerade();
        self.add_rule(&mut b, CHAIN_POSTROUTING, r, &tag);
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
    pub fn publish(&mut self, container: &str, ip: Ipv4Addr, ports: &[PortMapping]) -> Result<()> {
        self.ensure_table()?;
        let tag = format!("c={container}");
        let mut b = Batch::new(NFPROTO_IPV4);
        for p in ports {
            let mut r = Rule::default();
            if let Some(h) = p.host_ip {
                r.ip_daddr(h);
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
            .dump("list rules", NFT_MSG_GETRULE, NFPROTO_IPV4, a)?;
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
        let mut b = Batch::new(NFPROTO_IPV4);
        for r in rules {
            let mut a = Attrs::default();
            a.str(NFTA_RULE_TABLE, &self.table)
                .str(NFTA_RULE_CHAIN, &r.chain)
                .put(NFTA_RULE_HANDLE, &r.handle.to_be_bytes());
            b.add(NFT_MSG_DELRULE, 0, a);
        }
        match self.nft.commit("delete rules", b) {
            // Someone else removed them first: the goal is reached.
            Err(e) if e.raw_os_error() == Some(ENOENT) => Ok(()),
            other => other,
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
