//! Bridge + veth + namespace plumbing, published ports on 127.0.0.1 and
//! through the bridge (hairpin), and prune after a "crash". Traffic goes
//! only to loopback and to namespaces these tests create.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use berth_net::netns;
use berth_net::rtnl::Rtnl;
use berth_net::{AttachOptions, ErrorKind, NetworkOptions, PortSpec};
use common::{in_lab, NsGuard, TestNet};

fn ip_in(ns: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("ip")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac_of(rt: &mut Rtnl, name: &str) -> Vec<u8> {
    rt.link(name).unwrap().unwrap().mac.unwrap()
}

#[test]
fn a_bridge_made_elsewhere_keeps_its_mac_when_ports_come_and_go() {
    if !berth_testutil::require_root("a_bridge_made_elsewhere_keeps_its_mac_when_ports_come_and_go")
    {
        return;
    }
    in_lab("pinmac", || {
        let t = TestNet::new("pm", 16);
        let bridge = t.net.config().default_bridge.clone();
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        // Made by hand, as another root or an older berth would leave it:
        // no MAC of its own.
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let mut rt = Rtnl::open().unwrap();
        let before = mac_of(&mut rt, &bridge);
        t.net.ensure_default().unwrap();
        assert_eq!(
            mac_of(&mut rt, &bridge),
            before,
            "unchanged when taken over"
        );
        // A port with a lower MAC than any: a bridge left to choose would
        // take it.
        ip(&[
            "link", "add", "pmlow", "type", "veth", "peer", "name", "pmlow-p",
        ]);
        ip(&["link", "set", "pmlow", "address", "00:00:00:00:00:01"]);
        ip(&["link", "set", "pmlow", "master", &bridge]);
        assert_eq!(
            mac_of(&mut rt, &bridge),
            before,
            "fixed while ports come and go"
        );
        rt.del_link("pmlow").unwrap();
    })
}

#[test]
fn attach_detach_default_network() {
    if !berth_testutil::require_root("attach_detach_default_network") {
        return;
    }
    let t = TestNet::new("ad", 11);
    let def = t.net.ensure_default().unwrap();
    assert_eq!(t.net.ensure_default().unwrap(), def, "idempotent");
    t.net.setup(&def.name).unwrap(); // and repeatable
    let ns = NsGuard(netns::create(&t.runroot(), "ctr-a").unwrap());
    let att = t
        .net
        .attach(&def.name, "ctr-a", &ns.0, &AttachOptions::default())
        .unwrap();
    assert_eq!(att.ip, Ipv4Addr::new(10, 201, 11, 2));
    assert_eq!(att.gateway, Ipv4Addr::new(10, 201, 11, 1));
    assert_eq!(att.mac, [0x02, 0x42, 10, 201, 11, 2]);

    let addrs = ip_in(&ns.0, &["-4", "addr", "show", "eth0"]);
    assert!(addrs.contains("inet 10.201.11.2/24"), "{addrs}");
    // An IPv4-only network: no IPv6 on eth0, not even link-local.
    let addrs6 = ip_in(&ns.0, &["-6", "addr", "show", "eth0"]);
    assert!(!addrs6.contains("inet6"), "{addrs6}");
    let link = ip_in(&ns.0, &["link", "show", "eth0"]);
    assert!(
        link.contains("02:42:0a:c9:0b:02") && link.contains(",UP"),
        "{link}"
    );
    let routes = ip_in(&ns.0, &["route"]);
    assert!(
        routes.contains("default via 10.201.11.1 dev eth0"),
        "{routes}"
    );
    // the container reaches its gateway (the host's bridge address)
    let ping = Command::new("nsenter")
        .arg(format!("--net={}", ns.0.display()))
        .args(["ping", "-c1", "-W2", "10.201.11.1"])
        .output()
        .unwrap();
    let busybox_ping = ping.status.success()
        || Command::new("nsenter")
            .arg(format!("--net={}", ns.0.display()))
            .arg(berth_testutil::busybox())
            .args(["ping", "-c1", "-W2", "10.201.11.1"])
            .output()
            .unwrap()
            .status
            .success();
    assert!(busybox_ping, "gateway unreachable from the container");

    let mut rt = Rtnl::open().unwrap();
    assert!(rt.link_index(&att.host_veth).unwrap().is_some());
    // the same container twice: its lease comes back, the veth conflicts
    // and nothing is left over from the failed try
    let again = t
        .net
        .attach(&def.name, "ctr-b", &ns.0, &AttachOptions::default());
    assert!(again.is_err(), "eth0 already exists in that namespace");
    assert_eq!(t.net.network(&def.name).map(|_| ()).ok(), Some(()));
    let leases = berth_net::store::Store::open(&t.net.config().db)
        .unwrap()
        .leases(None)
        .unwrap();
    assert_eq!(leases.len(), 1, "failed attach kept its lease: {leases:?}");
    assert!(rt
        .link_index(&berth_net::network::host_veth_name(&def.name, "ctr-b"))
        .unwrap()
        .is_none());

    t.net.detach(&def.name, "ctr-a").unwrap();
    t.net.detach(&def.name, "ctr-a").unwrap(); // repeatable
    assert!(rt.link_index(&att.host_veth).unwrap().is_none());
    assert!(!ip_in(&ns.0, &["link"]).contains("eth0"));
    assert_eq!(
        t.net.remove_network("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    t.net.remove_network(&def.name).unwrap();
    assert!(rt.link_index(&def.bridge).unwrap().is_none());
}

#[test]
fn published_port_answers_on_localhost_and_hairpin() {
    if !berth_testutil::require_root("published_port_answers_on_localhost_and_hairpin") {
        return;
    }
    let t = TestNet::new("pp", 12);
    let def = t.net.ensure_default().unwrap();
    let ns_a = NsGuard(netns::create(&t.runroot(), "srv").unwrap());
    let ns_b = NsGuard(netns::create(&t.runroot(), "cli").unwrap());
    let a = t
        .net
        .attach(&def.name, "srv", &ns_a.0, &AttachOptions::default())
        .unwrap();
    t.net
        .attach(&def.name, "cli", &ns_b.0, &AttachOptions::default())
        .unwrap();
    let _server = common::serve_in(&ns_a.0, 8080, "hello");

    // all host addresses, an ephemeral host port
    let ports = PortSpec::parse("8080").unwrap().resolve().unwrap();
    let handle = t.net.publish("srv", a.ip, None, &ports).unwrap();
    let hp = handle.ports[0].host_port;
    let got = common::read_from(SocketAddr::from((Ipv4Addr::LOCALHOST, hp)));
    assert_eq!(got.trim(), "hello");

    // hairpin: another container reaches the published port through the
    // host's address on the bridge
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns_b.0.display()))
        .arg(berth_testutil::busybox())
        .args(["nc", "-w", "3", &def.gateway.to_string(), &hp.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");

    t.net.unpublish(&handle).unwrap();
    let left = common::nft_list(&t.net.config().table);
    assert!(!left.contains("c=srv"), "{left}");
    assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, hp)).is_err());
}

#[test]
fn published_on_127_only() {
    if !berth_testutil::require_root("published_on_127_only") {
        return;
    }
    let t = TestNet::new("lo", 13);
    let def = t.net.ensure_default().unwrap();
    let ns = NsGuard(netns::create(&t.runroot(), "srv127").unwrap());
    let a = t
        .net
        .attach(&def.name, "srv127", &ns.0, &AttachOptions::default())
        .unwrap();
    let _server = common::serve_in(&ns.0, 9090, "hi127");
    let ports = PortSpec::parse("127.0.0.1::9090")
        .unwrap()
        .resolve()
        .unwrap();
    let h = t.net.publish("srv127", a.ip, None, &ports).unwrap();
    let hp = h.ports[0].host_port;
    assert_eq!(
        common::read_from(SocketAddr::from((Ipv4Addr::LOCALHOST, hp))).trim(),
        "hi127"
    );
    let listing = common::nft_list(&t.net.config().table);
    assert!(
        listing.contains(&format!("ip daddr 127.0.0.1 tcp dport {hp}")),
        "{listing}"
    );
}

#[test]
fn user_network_and_prune_after_crash() {
    if !berth_testutil::require_root("user_network_and_prune_after_crash") {
        return;
    }
    let t = TestNet::new("un", 14);
    let opts = NetworkOptions {
        name: format!("u{}", std::process::id()),
        bridge: Some(common::unique("ub")),
        ..Default::default()
    };
    let n = t.net.create_network(&opts).unwrap();
    assert_eq!(
        n.subnet.to_string(),
        "10.202.14.0/24",
        "first /24 of the pool"
    );
    let e = t.net.create_network(&opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let ns = NsGuard(netns::create(&t.runroot(), "dead1").unwrap());
    let att = t
        .net
        .attach(
            &n.name,
            "dead1",
            &ns.0,
            &AttachOptions {
                ip: Some(Ipv4Addr::new(10, 202, 14, 77)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(att.ip, Ipv4Addr::new(10, 202, 14, 77));
    let ports = PortSpec::parse("127.0.0.1::80").unwrap().resolve().unwrap();
    t.net.publish("dead1", att.ip, None, &ports).unwrap();
    assert_eq!(
        t.net.remove_network(&n.name).unwrap_err().kind(),
        ErrorKind::Conflict
    );

    // "crash": the container is gone but nothing was torn down
    let report = t.net.prune(&|_| false).unwrap();
    assert_eq!(report.leases.len(), 1);
    assert_eq!(report.links, std::slice::from_ref(&att.host_veth));
    assert_eq!(report.rule_tags, ["c=dead1"]);
    assert_eq!(report.namespaces.len(), 1);
    assert!(!ns.0.exists());
    let again = t.net.prune(&|_| false).unwrap();
    assert_eq!(again, Default::default());
    t.net.remove_network(&n.name).unwrap();
    let listing = common::nft_list(&t.net.config().table);
    assert!(!listing.contains(&format!("n={}", n.name)), "{listing}");
}
