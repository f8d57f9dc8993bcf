//! A synchronous rtnetlink client: one `NETLINK_ROUTE` socket, one request
//! at a time, each acknowledged. This is the hot path of attach and
//! detach, so it does no allocation-heavy work and spawns nothing.
//!
//! A socket belongs to the network namespace it was opened in; open one
//! inside [`crate::netns::run_in`] to configure a container's side.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result, ENODEV};

/// One interface as listed by [`Rtnl::links`].
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The rtnetlink kind ("bridge", "veth"), if the link has one.
    pub kind: Option<String>,
    /// The bridge this link is a port of.
    pub master: Option<u32>,
    /// Its hardware address, if it has one.
    pub mac: Option<Vec<u8>>,
}

pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Rtnl> {
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::netlink("open route socket", e))?;
        sock.bind_auto()
            .map_err(|e| Error::netlink("bind route socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::netlink("connect route socket", e))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one request and collects the kernel's answers until its ack
    /// (or the end of a dump).
    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        msg.finalize();
        let mut out = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut out);
        self.sock
            .send(&out, 0)
            .map_err(|e| Error::netlink(op.to_string(), e))?;

        let mut answers = Vec::new();
        loop {
            self.buf.clear();
            self.sock
                .recv(&mut self.buf, 0)
                .map_err(|e| Error::netlink(op.to_string(), e))?;
            let mut off = 0;
            while off < self.buf.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..])
                    .map_err(|e| {
                        Error::netlink(op.to_string(), std::io::Error::other(e.to_string()))
                    })?;
                let len = m.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(Error::netlink(
                                op.to_string(),
                                std::io::Error::from_raw_os_error(-code.get()),
                            )),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// The index of the interface `name`, or None if there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name)?.map(|l| l.index))
    }

    /// The interface `name`, or None if there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(
            &format!("get link {name}"),
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_ACK,
        ) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every interface in this namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let answers = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .map(to_link)
            .collect())
    }

    /// Creates a bridge, up, with MAC `mac`. EEXIST is returned as an
    /// error for the caller to treat as it likes.
    ///
    /// The MAC is set because a bridge left to choose takes the lowest of
    /// its ports' and changes it whenever that port leaves: every other
    /// container's cached gateway MAC then goes stale, and it cannot
    /// reach the host (DNS included) until its ARP entry expires.
    pub fn add_bridge(&mut self, name: &str, mac: [u8; 6]) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            &format!("create bridge {name}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Creates a veth pair in one request: `host` in this namespace, up
    /// and enslaved to `master`; `peer` created directly inside the
    /// namespace `peer_netns` (so its name, e.g. eth0, never collides with
    /// the host's), down, with MAC `peer_mac`.
    pub fn add_veth(
        &mut self,
        host: &str,
        master: u32,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
        peer_mac: [u8; 6],
    ) -> Result<()> {
        // The peer cannot be brought up here: veth_open fails with
        // ENOTCONN until both ends exist. The caller ups it in its netns.
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.into()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));

        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(host.into()));
        msg.attributes.push(LinkAttribute::Controller(master));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            &format!("create veth {host}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Brings `name` up.
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        self.request(
            &format!("set {name} up"),
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    /// Sets the MAC of `name`. Setting a bridge's MAC, even to the one it
    /// has, also fixes it: the kernel stops following its ports' lowest.
    pub fn set_mac(&mut self, name: &str, mac: &[u8]) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.request(
            &format!("set the MAC of {name}"),
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
        )
        .map(drop)
    }

    /// Deletes the interface `name`; deleting one end of a veth deletes
    /// both. Returns false if there was no such interface.
    pub fn del_link(&mut self, name: &str) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `addr/prefix` to interface `index`. EEXIST is left to the
    /// caller.
    pub fn add_addr(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        self.add_ip(index, IpAddr::V4(addr), prefix)
    }

    /// Adds an IPv4 or IPv6 address. IPv6 addresses skip duplicate
    /// address detection: IPAM already made them unique on the bridge,
    /// and DAD would leave them unusable ("tentative") for a second or
    /// more after the container starts.
    pub fn add_ip(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        match addr {
            IpAddr::V4(a) => {
                msg.header.family = AddressFamily::Inet;
                if prefix < 31 {
                    let bcast = u32::from(a) | (u32::MAX >> prefix);
                    msg.attributes
                        .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
                }
            }
            IpAddr::V6(_) => {
                msg.header.family = AddressFamily::Inet6;
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        self.request(
            &format!("add address {addr}/{prefix}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Adds the default route via `gateway` out of interface `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<()> {
        self.add_default_route_via(index, IpAddr::V4(gateway))
    }

    /// The IPv4 or IPv6 default route via `gateway`.
    pub fn add_default_route_via(&mut self, index: u32, gateway: IpAddr) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Gateway(match gateway {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            &format!("add default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}

fn to_link(l: LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        kind: None,
        master: None,
        mac: None,
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Controller(m) => link.master = Some(m),
            LinkAttribute::Address(a) => link.mac = Some(a),
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.into_iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    link
}
