//! The DNS servers of user networks, run in-process inside a namespace of
//! the test's own: names and aliases resolve for containers of the
//! network, other questions go to a fake upstream on the namespace's
//! loopback, and clients of other networks get neither.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;

use berth_net::dns::wire::REFUSED;
use berth_net::dns::Server;
use berth_net::{netns, AttachOptions, NetworkOptions};
use common::fake_dns::{FakeUpstream, OUTSIDE, OUTSIDE_IP};
use common::{in_lab, nslookup, NsGuard, TestNet};

fn resolves_to(ns: &Path, name: &str, server: Ipv4Addr, want: &str) {
    let (ok, out) = nslookup(ns, name, &server.to_string());
    assert!(ok, "{name}: {out}");
    assert!(out.contains(&format!("Address: {want}")), "{name}: {out}");
}

fn fails(ns: &Path, name: &str, server: Ipv4Addr, why: &str) {
    let (ok, out) = nslookup(ns, name, &server.to_string());
    assert!(
        !ok && out.contains(why),
        "{name} should fail with {why}: {out}"
    );
}

/// One A query over TCP from inside `ns`: the reply's rcode, and its
/// address if it has exactly one.
fn tcp_lookup(ns: &Path, server: SocketAddr, name: &str) -> (u8, Option<Ipv4Addr>) {
    use std::io::{Read, Write};
    let mut q = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let reply = netns::run_in(ns, || {
        let mut s = std::net::TcpStream::connect(server).unwrap();
        s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut r).unwrap();
        Ok(r)
    })
    .unwrap();
    assert_eq!(&reply[..2], &[0x12, 0x34]);
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    // The answer follows the echoed question; its address is its last
    // four bytes when it is the only one.
    let ip = (answers == 1).then(|| {
        let a = &reply[reply.len() - 4..];
        Ipv4Addr::new(a[0], a[1], a[2], a[3])
    });
    (reply[3] & 0x0f, ip)
}

fn names(v: &[&str]) -> AttachOptions {
    AttachOptions {
        names: v.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn names_aliases_forwarding_and_refusal() {
    if !berth_testutil::require_root("names_aliases_forwarding_and_refusal") {
        return;
    }
    in_lab("dns", || {
        let mut t = TestNet::new("dn", 31);
        let mut cfg = t.net.config().clone();
        cfg.pool = "10.203.32.0/22".parse().unwrap();
        let upstream = FakeUpstream::serve(UdpSocket::bind("127.0.0.1:0").unwrap());
        let resolv = t.dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        cfg.resolv_conf = resolv;
        t.net = berth_net::Net::new(cfg);
        let mk = |name: &str, internal| {
            t.net
                .create_network(&NetworkOptions {
                    name: name.into(),
                    internal,
                    ..Default::default()
                })
                .unwrap()
        };
        let front = mk("front", false);
        let back = mk("back", false);
        let def = t.net.ensure_default().unwrap();
        let ns = |id: &str| NsGuard(netns::create(&t.runroot(), id).unwrap());
        let (a, b, c, d) = (ns("a"), ns("b"), ns("c"), ns("d"));
        let att_a = t
            .net
            .attach(
                "front",
                "a",
                &a.0,
                &names(&["alpha", "aaaaaaaaaaaa", "web"]),
            )
            .unwrap();
        let att_b = t.net.attach("front", "b", &b.0, &names(&["beta"])).unwrap();
        let att_c = t.net.attach("back", "c", &c.0, &names(&["gamma"])).unwrap();
        t.net
            .attach(&def.name, "d", &d.0, &names(&["delta"]))
            .unwrap();

        // In-process servers, on their runroot pid files' siblings:
        // remove_network would signal the owner of the real ones, which
        // is this test process.
        let serve = |network: &str| {
            let mut opts = t.net.dns_options(network);
            opts.pid_file = t.dir.path().join("inproc").join(network);
            opts.upstream_port = upstream.port;
            let server = Server::bind(opts).unwrap().expect("no other server");
            let at = server.local_addrs()[0];
            std::thread::spawn(move || server.run());
            at
        };
        let front_at = serve("front");
        assert_ne!(front_at.port(), 53, "a port of its own, redirected from 53");
        let gw = front.gateway;

        resolves_to(&a.0, "beta", gw, &att_b.ip.to_string());
        resolves_to(&b.0, "alpha", gw, &att_a.ip.to_string());
        resolves_to(&b.0, "WEB", gw, &att_a.ip.to_string());
        resolves_to(&b.0, "aaaaaaaaaaaa", gw, &att_a.ip.to_string());
        assert!(!upstream.asked("alpha"), "a container's name went upstream");
        // The world, through the fake upstream.
        resolves_to(&a.0, OUTSIDE, gw, &OUTSIDE_IP.to_string());
        assert!(upstream.asked(OUTSIDE));
        fails(&a.0, "nosuchname.test", gw, "NXDOMAIN");
        // Over TCP too (what a client does after a truncated answer).
        let gw53 = SocketAddr::new(IpAddr::V4(gw), 53);
        assert_eq!(tcp_lookup(&b.0, gw53, "alpha"), (0, Some(att_a.ip)));
        // Another network's server knows only its own network.
        serve("back");
        fails(&c.0, "alpha", back.gateway, "NXDOMAIN");
        resolves_to(&c.0, "gamma", back.gateway, &att_c.ip.to_string());
        // Only front's containers are sent to front's server...
        let (ok, out) = nslookup(&c.0, "alpha", &gw.to_string());
        assert!(!ok, "back reached front's server: {out}");
        // ... and a client without a lease on a network with DNS (the
        // default bridge has none) is refused even at its real port.
        let refused = tcp_lookup(&d.0, front_at, "alpha");
        assert_eq!(refused, (REFUSED, None));
        assert_eq!(tcp_lookup(&d.0, front_at, OUTSIDE), (REFUSED, None));
        // Records follow the leases: beta disconnects, beta is gone. (And
        // the others still reach the gateway: the bridge's MAC must not
        // change with its ports.)
        t.net.detach("front", "b").unwrap();
        fails(&a.0, "after.test", gw, "NXDOMAIN");
        fails(&a.0, "beta", gw, "NXDOMAIN");
        // An --internal network resolves its own names but forwards
        // nothing.
        let inner = mk("inner", true);
        serve("inner");
        let e = ns("e");
        let att_e = t
            .net
            .attach("inner", "e", &e.0, &names(&["epsilon"]))
            .unwrap();
        let second = AttachOptions {
            iface: "eth1".into(),
            default_route: false,
            ..names(&["alpha"])
        };
        let att_a2 = t.net.attach("inner", "a", &a.0, &second).unwrap();
        resolves_to(&e.0, "alpha", inner.gateway, &att_a2.ip.to_string());
        fails(&e.0, OUTSIDE, inner.gateway, "REFUSED");
        // a is on front and inner: it sees both, and still forwards.
        resolves_to(&a.0, "epsilon", gw, &att_e.ip.to_string());
        resolves_to(&a.0, OUTSIDE, gw, &OUTSIDE_IP.to_string());
    });
}
