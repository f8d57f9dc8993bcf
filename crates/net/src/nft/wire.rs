//! nf_tables over nfnetlink, encoded by hand: the few message and
//! expression types berth's own table needs. No maintained, permissively
//! licensed Rust crate covers nf_tables without linking libnftnl (C), and
//! the wire format is small and stable (uapi `linux/netfilter/nf_tables.h`;
//! the constants below carry their uapi names).
//!
//! Changes go in batches, which the kernel applies atomically: a batch
//! that fails changes nothing.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{Error, Result};

pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_GETTABLE: u16 = 1;
pub const NFT_MSG_DELTABLE: u16 = 2;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_GETRULE: u16 = 7;
pub const NFT_MSG_DELRULE: u16 = 8;

pub const NFTA_TABLE_NAME: u16 = 1;
pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_NAME: u16 = 3;
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFTA_CHAIN_POLICY: u16 = 5;
pub const NFTA_CHAIN_TYPE: u16 = 7;
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
pub const NFTA_HOOK_PRIORITY: u16 = 2;
pub const NFTA_RULE_TABLE: u16 = 1;
pub const NFTA_RULE_CHAIN: u16 = 2;
pub const NFTA_RULE_HANDLE: u16 = 3;
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub const NFTA_RULE_USERDATA: u16 = 7;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const MSG_DONTWAIT: i32 = 0x40;

/// A netlink attribute stream being written; nests are closed by
/// patching their length.
#[derive(Default)]
pub struct Attrs {
    pub buf: Vec<u8>,
}

impl Attrs {
    pub fn put(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
        self
    }

    pub fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(kind, &v)
    }

    /// Integers in nf_tables attributes are big-endian.
    pub fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.put(kind, &v.to_be_bytes())
    }

    pub fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::default();
        f(&mut inner);
        let len = 4 + inner.buf.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self.buf.extend_from_slice(&inner.buf);
        self
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }
}

/// Iterates the attributes in `buf` as (type without flags, value).
pub fn parse_attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            return None;
        }
        let value = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((kind, value))
    })
}

fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version (NFNETLINK_V0), resource id (big-endian)
    out.push(family);
    out.push(0);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

/// A sequence of nf_tables changes, committed atomically by [`Nft::commit`].
pub struct Batch {
    family: u8,
    msgs: Vec<(u16, u16, Vec<u8>)>,
}

impl Batch {
    pub fn new(family: u8) -> Batch {
        Batch {
            family,
            msgs: Vec::new(),
        }
    }

    /// Adds one message: an `NFT_MSG_*` type, extra `NLM_F_*` flags, and
    /// its attributes.
    pub fn add(&mut self, msg: u16, flags: u16, attrs: Attrs) {
        self.msgs.push((msg, flags, attrs.buf));
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }
}

/// One decoded nf_tables message of a dump: its type and attributes.
pub struct Reply {
    pub attrs: Vec<u8>,
}

pub struct Nft {
    sock: Socket,
    seq: u32,
    /// It deleted rules: see its `Drop`.
    pub(crate) deleted: bool,
}

impl Drop for Nft {
    fn drop(&mut self) {
        // The last close of a netfilter socket waits for nf_tables to
        // finish destroying the rules deleted lately (an RCU grace period:
        // 7-13 ms here). One that deleted rules is closed on a thread of
        // its own, off the path of the exit or `rm` that deleted them; our
        // fd then closes at once, as the copy keeps the socket.
        if !self.deleted {
            return;
        }
        if let Ok(copy) = rustix::io::fcntl_dupfd_cloexec(&self.sock, 0) {
            let _ = std::thread::Builder::new()
                .name("nft-close".into())
                .spawn(move || drop(copy));
        }
    }
}

impl Nft {
    pub fn open() -> Result<Nft> {
        let mut sock = Socket::new(NETLINK_NETFILTER)
            .map_err(|e| Error::netlink("open netfilter socket", e))?;
        sock.bind_auto()
            .map_err(|e| Error::netlink("bind netfilter socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::netlink("connect netfilter socket", e))?;
        Ok(Nft {
            sock,
            seq: 0,
            deleted: false,
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `batch` and returns the first error the kernel reported; on
    /// error nothing in the batch took effect.
    pub fn commit(&mut self, op: &str, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(4096);
        let first = self.next_seq();
        message(
            &mut out,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            first,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        for (msg, flags, attrs) in &batch.msgs {
            let seq = self.next_seq();
            let kind = (NFNL_SUBSYS_NFTABLES << 8) | msg;
            message(
                &mut out,
                kind,
                NLM_F_REQUEST | NLM_F_ACK | flags,
                seq,
                batch.family,
                0,
                attrs,
            );
        }
        let end = self.next_seq();
        message(
            &mut out,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        self.sock
            .send(&out, 0)
            .map_err(|e| Error::netlink(op.to_string(), e))?;
        // nfnetlink handles the batch inside sendmsg, so every answer is
        // already queued: read without blocking until the queue is empty.
        let mut first_err = None;
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            match self.sock.recv(&mut buf, MSG_DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::netlink(op.to_string(), e)),
            }
            for (kind, _seq, payload) in split(&buf) {
                if kind == NLMSG_ERROR && payload.len() >= 4 {
                    let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    if code != 0 && first_err.is_none() {
                        first_err = Some(io::Error::from_raw_os_error(-code));
                    }
                }
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(Error::netlink(op.to_string(), e)),
        }
    }

    /// A GET request (`NFT_MSG_GET*`) answered by one message or an error.
    pub fn get(&mut self, op: &str, msg: u16, family: u8, attrs: Attrs) -> Result<Vec<Reply>> {
        self.query(op, msg, NLM_F_ACK, family, attrs)
    }

    /// A dump (`NFT_MSG_GET*` with NLM_F_DUMP), filtered by `attrs`.
    pub fn dump(&mut self, op: &str, msg: u16, family: u8, attrs: Attrs) -> Result<Vec<Reply>> {
        self.query(op, msg, NLM_F_DUMP, family, attrs)
    }

    fn query(
        &mut self,
        op: &str,
        msg: u16,
        flags: u16,
        family: u8,
        attrs: Attrs,
    ) -> Result<Vec<Reply>> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        message(
            &mut out,
            kind,
            NLM_F_REQUEST | flags,
            seq,
            family,
            0,
            &attrs.buf,
        );
        self.sock
            .send(&out, 0)
            .map_err(|e| Error::netlink(op.to_string(), e))?;
        let mut replies = Vec::new();
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            self.sock
                .recv(&mut buf, 0)
                .map_err(|e| Error::netlink(op.to_string(), e))?;
            for (kind, s, payload) in split(&buf) {
                if s != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(replies),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(payload[..4].try_into().unwrap_or([0; 4]));
                        return if code == 0 {
                            Ok(replies)
                        } else {
                            Err(Error::netlink(
                                op.to_string(),
                                io::Error::from_raw_os_error(-code),
                            ))
                        };
                    }
                    _ if payload.len() >= 4 => replies.push(Reply {
                        attrs: payload[4..].to_vec(),
                    }),
                    _ => {}
                }
            }
        }
    }
}

/// Splits a receive buffer into (type, seq, payload) messages.
fn split(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut v = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes"));
        v.push((kind, seq, &buf[16..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    v
}
