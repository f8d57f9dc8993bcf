//! The server itself: UDP and TCP on the network's gateway addresses,
//! one thread per socket, a short-lived thread per forwarded query.
//!
//! Who asks decides what is answered: the client's source address names
//! its lease, the lease its container, the container's other leases the
//! networks whose names it may resolve. A source that holds no lease on a
//! network with DNS is refused, so containers of the default bridge, the
//! host and anything else reaching the gateway get nothing, not even
//! forwarding.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};

use super::wire::{self, Answer, Query};
use crate::error::{Error, Result};
use crate::store::{Lease, Store};

/// Queries being forwarded (or TCP connections served) at once; past
/// this, clients get SERVFAIL rather than the server more threads.
const MAX_INFLIGHT: usize = 128;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How often the server checks that its network still exists.
const LIVENESS: Duration = Duration::from_secs(5);
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What one network's server needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The lease database.
    pub db: PathBuf,
    pub network: String,
    /// Its pid and lock file (see [`super::pid_path`]).
    pub pid_file: PathBuf,
    /// The resolv.conf naming the upstream servers, read for every
    /// forwarded query so an edit takes effect at once.
    pub resolv_conf: PathBuf,
    /// Where to listen on the gateway addresses: 0 picks a free port, to
    /// which queries to port 53 are redirected.
    pub port: u16,
    /// The nftables table for that redirect (berth's own); None: no
    /// redirect, clients must ask `port` itself.
    pub table: Option<String>,
    /// 53, except in tests.
    pub upstream_port: u16,
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    shared: Arc<Shared>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    /// Held (flock) for the server's life: others learn it runs.
    _lock: std::fs::File,
}

struct Shared {
    opts: ServeOptions,
    network_id: String,
    store: Mutex<Store>,
    listen: Vec<IpAddr>,
    inflight: AtomicUsize,
}

/// What to do with one message.
enum Decision {
    Reply(Vec<u8>),
    Forward(Query, Vec<SocketAddr>),
    Ignore,
}

/// The records a client may see.
struct View {
    /// Leases on the client's networks that have DNS.
    records: Vec<Lease>,
    /// False when all those networks are `--internal`: nothing leaves.
    forward: bool,
    /// The client's own `--dns` servers.
    upstream: Vec<IpAddr>,
}

impl Server {
    /// Takes the network's lock and binds its sockets. None when another
    /// server already holds the lock (so it runs, and this one is not
    /// needed).
    pub fn bind(opts: ServeOptions) -> Result<Option<Server>> {
        let Some(lock) = super::take_lock(&opts.pid_file)? else {
            return Ok(None);
        };
        let store = Store::open(&opts.db)?;
        let net = store.network(&opts.network)?;
        if !net.dns {
            return Err(Error::Invalid(format!(
                "network {} has no DNS (the default bridge never does)",
                net.name
            )));
        }
        let mut listen = vec![IpAddr::V4(net.gateway)];
        listen.extend(net.gateway6.map(IpAddr::V6));
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for ip in &listen {
            let (u, t) = bind_pair(*ip, opts.port)?;
            let port = u
                .local_addr()
                .map_err(|e| Error::io("local address", e))?
                .port();
            if let Some(table) = &opts.table {
                let family = crate::nft::Family::of(*ip);
                crate::nft::Firewall::open_family(table, family)?.redirect_dns(
                    &net.name,
                    &net.bridge,
                    *ip,
                    port,
                )?;
            }
            udp.push(u);
            tcp.push(t);
        }
        super::write_pid(&lock)?;
        Ok(Some(Server {
            shared: Arc::new(Shared {
                network_id: net.id,
                opts,
                store: Mutex::new(store),
                listen,
                inflight: AtomicUsize::new(0),
            }),
            udp,
            tcp,
            _lock: lock,
        }))
    }

    /// The addresses the server answers on (port included).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Serves until the network is gone (removed, or its database with
    /// it); `network rm` ends it sooner with a signal.
    pub fn run(self) -> Result<()> {
        for sock in self.udp {
            let shared = Arc::clone(&self.shared);
            std::thread::spawn(move || serve_udp(&shared, Arc::new(sock)));
        }
        for l in self.tcp {
            let shared = Arc::clone(&self.shared);
            std::thread::spawn(move || serve_tcp(&shared, l));
        }
        loop {
            std::thread::sleep(LIVENESS);
            if !self.shared.alive() {
                return Ok(());
            }
        }
    }
}

/// A UDP socket and a TCP listener on one port of `ip` (`port`, or a
/// free one when 0: tried until both protocols have it free).
fn bind_pair(ip: IpAddr, port: u16) -> Result<(UdpSocket, TcpListener)> {
    let mut tries = 0;
    loop {
        let u = UdpSocket::from(bound(SocketAddr::new(ip, port), SocketType::DGRAM)?);
        let at = u.local_addr().map_err(|e| Error::io("local address", e))?;
        match bound(at, SocketType::STREAM) {
            Ok(l) => {
                rustix::net::listen(&l, 64)
                    .map_err(|e| Error::io(format!("listen on {at}"), e.into()))?;
                return Ok((u, TcpListener::from(l)));
            }
            Err(e) if port == 0 && tries < 16 && e.raw_os_error() == Some(EADDRINUSE) => {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

const EADDRINUSE: i32 = 98;

/// A socket of `kind` bound to `at`. IP_FREEBIND lets it bind while the
/// bridge is being (re)made: the address need not exist yet.
fn bound(at: SocketAddr, kind: SocketType) -> Result<rustix::fd::OwnedFd> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: rustix::io::Errno| Error::io(format!("{what} {at}"), e.into())
    };
    let family = match at {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(family, kind, SocketFlags::CLOEXEC, None)
        .map_err(err("socket for"))?;
    match at {
        SocketAddr::V4(_) => sockopt::set_ip_freebind(&fd, true),
        SocketAddr::V6(_) => {
            sockopt::set_ipv6_v6only(&fd, true).and_then(|()| sockopt::set_ipv6_freebind(&fd, true))
        }
    }
    .map_err(err("options of"))?;
    if kind == SocketType::STREAM {
        sockopt::set_socket_reuseaddr(&fd, true).map_err(err("options of"))?;
    }
    rustix::net::bind(&fd, &at).map_err(err("bind"))?;
    Ok(fd)
}

impl Shared {
    fn alive(&self) -> bool {
        if !self.opts.db.exists() || !self.opts.pid_file.exists() {
            return false;
        }
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match store.network(&self.opts.network) {
            Ok(n) => n.id == self.network_id,
            Err(e) => e.kind() != crate::ErrorKind::NotFound,
        }
    }

    fn view(&self, client: IpAddr) -> Result<Option<View>> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let Some(me) = store.lease_by_addr(client)? else {
            return Ok(None);
        };
        let mut records = Vec::new();
        let mut forward = false;
        let mut any = false;
        for l in store.leases_of(&me.container)? {
            let Ok(net) = store.network(&l.network) else {
                continue;
            };
            if !net.dns {
                continue;
            }
            any = true;
            forward |= !net.internal;
            records.extend(store.leases(Some(&net.name))?);
        }
        Ok(any.then_some(View {
            records,
            forward,
            upstream: me.upstream,
        }))
    }

    fn decide(&self, client: IpAddr, msg: &[u8], max: usize) -> Decision {
        let q = match wire::parse_query(msg) {
            Ok(q) => q,
            Err(rcode) => {
                return wire::error_reply(msg, rcode).map_or(Decision::Ignore, Decision::Reply)
            }
        };
        let view = match self.view(client) {
            Ok(Some(v)) => v,
            Ok(None) => return Decision::Reply(wire::reply(&q, wire::REFUSED, &[], max)),
            Err(_) => return Decision::Reply(wire::reply(&q, wire::SERVFAIL, &[], max)),
        };
        if let Some(answers) = lookup(&view.records, &q) {
            return Decision::Reply(wire::reply(&q, wire::NOERROR, &answers, max));
        }
        if !view.forward {
            return Decision::Reply(wire::reply(&q, wire::REFUSED, &[], max));
        }
        let upstream = self.upstreams(&view);
        if upstream.is_empty() {
            return Decision::Reply(wire::reply(&q, wire::SERVFAIL, &[], max));
        }
        Decision::Forward(q, upstream)
    }

    /// The client's `--dns` servers, else the host's; never ourselves.
    fn upstreams(&self, view: &View) -> Vec<SocketAddr> {
        let ips = if view.upstream.is_empty() {
            let text = std::fs::read_to_string(&self.opts.resolv_conf).unwrap_or_default();
            super::nameservers(&text)
        } else {
            view.upstream.clone()
        };
        ips.into_iter()
            .filter(|ip| !self.listen.contains(ip))
            .map(|ip| SocketAddr::new(ip, self.opts.upstream_port))
            .collect()
    }

    /// Takes a slot for a forwarding thread or TCP connection.
    fn enter(&self) -> bool {
        if self.inflight.fetch_add(1, Ordering::AcqRel) >= MAX_INFLIGHT {
            self.leave();
            return false;
        }
        true
    }

    fn leave(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The local answer to `q`, or None to forward it. A name we know gets
/// its records of the asked type, possibly none (NODATA, so the client
/// does not go on to ask the world about a container's AAAA).
fn lookup(records: &[Lease], q: &Query) -> Option<Vec<Answer>> {
    if q.qclass != wire::CLASS_IN && q.qclass != 255 {
        return None;
    }
    if q.qtype == wire::TYPE_PTR {
        let ip = wire::reverse_addr(&q.name)?;
        let l = records
            .iter()
            .find(|l| IpAddr::V4(l.ip) == ip || l.ip6.map(IpAddr::V6) == Some(ip))?;
        // docker answers "<name>.<network>"
        let name = l.names.first()?;
        return Some(vec![Answer::Ptr(format!("{name}.{}", l.network))]);
    }
    let hits: Vec<&Lease> = records
        .iter()
        .filter(|l| l.names.iter().any(|n| n.eq_ignore_ascii_case(&q.name)))
        .collect();
    if hits.is_empty() {
        return None;
    }
    let mut answers = Vec::new();
    for l in hits {
        let a = Answer::A(l.ip);
        if matches!(q.qtype, wire::TYPE_A | 255) && !answers.contains(&a) {
            answers.push(a);
        }
        if let (Some(ip6), wire::TYPE_AAAA | 255) = (l.ip6, q.qtype) {
            let a = Answer::Aaaa(ip6);
            if !answers.contains(&a) {
                answers.push(a);
            }
        }
    }
    Some(answers)
}

fn serve_udp(shared: &Arc<Shared>, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            // Transient (a signal, an ICMP error); never spin on it.
            std::thread::sleep(ERROR_PAUSE);
            continue;
        };
        let msg = &buf[..n];
        match shared.decide(peer.ip(), msg, wire::UDP_MAX) {
            Decision::Reply(r) => {
                let _ = sock.send_to(&r, peer);
            }
            Decision::Ignore => {}
            Decision::Forward(q, upstream) => {
                if !shared.enter() {
                    let _ =
                        sock.send_to(&wire::reply(&q, wire::SERVFAIL, &[], wire::UDP_MAX), peer);
                    continue;
                }
                let (shared, sock, msg) = (Arc::clone(shared), Arc::clone(&sock), msg.to_vec());
                std::thread::spawn(move || {
                    let r = forward_udp(&msg, &upstream)
                        .unwrap_or_else(|| wire::reply(&q, wire::SERVFAIL, &[], wire::UDP_MAX));
                    let _ = sock.send_to(&r, peer);
                    shared.leave();
                });
            }
        }
    }
}

fn unspecified(of: &SocketAddr) -> SocketAddr {
    match of {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Relays `msg` to each upstream in turn until one answers it.
fn forward_udp(msg: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = wire::id_of(msg)?;
    for up in upstream {
        let Ok(sock) = UdpSocket::bind(unspecified(up)) else {
            continue;
        };
        if sock.connect(up).is_err()
            || sock.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
            || sock.send(msg).is_err()
        {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        // A connected socket hears only from `up`; skip stray ids.
        while let Ok(n) = sock.recv(&mut buf) {
            if wire::id_of(&buf[..n]) == Some(id) {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

fn forward_tcp(msg: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstream {
        let Ok(mut s) = TcpStream::connect_timeout(up, UPSTREAM_TIMEOUT) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        if let Ok(r) = write_frame(&mut s, msg).and_then(|()| read_frame(&mut s)) {
            return Some(r);
        }
    }
    None
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg)?;
    Ok(msg)
}

fn write_frame(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::ErrorKind::InvalidData)?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

fn serve_tcp(shared: &Arc<Shared>, l: TcpListener) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else {
            // Out of file descriptors, say: wait rather than spin.
            std::thread::sleep(ERROR_PAUSE);
            continue;
        };
        if !shared.enter() {
            continue;
        }
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(TCP_IDLE));
            if let Ok(peer) = s.peer_addr() {
                while let Ok(msg) = read_frame(&mut s) {
                    let r = match shared.decide(peer.ip(), &msg, usize::from(u16::MAX)) {
                        Decision::Reply(r) => r,
                        Decision::Ignore => break,
                        Decision::Forward(q, upstream) => forward_tcp(&msg, &upstream)
                            .unwrap_or_else(|| {
                                wire::reply(&q, wire::SERVFAIL, &[], usize::from(u16::MAX))
                            }),
                    };
                    if write_frame(&mut s, &r).is_err() {
                        break;
                    }
                }
            }
            shared.leave();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(net: &str, ip: &str, names: &[&str]) -> Lease {
        Lease {
            network: net.into(),
            ip: ip.parse().unwrap(),
            ip6: None,
            container: names[0].into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            upstream: Vec::new(),
        }
    }

    fn q(name: &str, qtype: u16) -> Query {
        let mut m = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
        wire::parse_query(&m).unwrap()
    }

    #[test]
    fn names_aliases_and_reverse() {
        let mut web2 = lease("front", "10.0.0.3", &["beta", "web"]);
        web2.ip6 = Some("fd00::3".parse().unwrap());
        let records = [lease("front", "10.0.0.2", &["alpha", "web"]), web2];
        assert_eq!(
            lookup(&records, &q("ALPHA", wire::TYPE_A)),
            Some(vec![Answer::A("10.0.0.2".parse().unwrap())])
        );
        assert_eq!(
            lookup(&records, &q("web", wire::TYPE_A)).unwrap().len(),
            2,
            "an alias two containers share answers with both"
        );
        assert_eq!(
            lookup(&records, &q("alpha", wire::TYPE_AAAA)),
            Some(vec![]),
            "a known name without IPv6 is NODATA, not forwarded"
        );
        assert_eq!(
            lookup(&records, &q("beta", wire::TYPE_AAAA)),
            Some(vec![Answer::Aaaa("fd00::3".parse().unwrap())])
        );
        assert_eq!(lookup(&records, &q("example.com", wire::TYPE_A)), None);
        assert_eq!(
            lookup(&records, &q("2.0.0.10.in-addr.arpa", wire::TYPE_PTR)),
            Some(vec![Answer::Ptr("alpha.front".into())])
        );
        assert_eq!(
            lookup(&records, &q("9.0.0.10.in-addr.arpa", wire::TYPE_PTR)),
            None
        );
    }
}
