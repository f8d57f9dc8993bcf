//! Dual-stack networks, inside a namespace of the test's own (so the
//! host's IPv6 forwarding and tables are never touched): both addresses,
//! both default routes, traffic between containers, a port published on
//! IPv6, and isolation from another network in the ip6 table too.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use berth_net::{netns, AttachOptions, ErrorKind, NetworkOptions, PortMapping, Proto};
use common::{in_lab, NsGuard, TestNet};

fn run_in(ns: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(berth_testutil::busybox())
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn ping6(from: &Path, to: Ipv6Addr) -> bool {
    run_in(from, &["ping6", "-c1", "-W2", &to.to_string()]).0
}

#[test]
fn dual_stack_network() {
    if !berth_testutil::require_root("dual_stack_network") {
        return;
    }
    in_lab("v6", || {
        let t = TestNet::new("v6", 41);
        let mk = |name: &str, subnet: &str, subnet6: Option<&str>| {
            t.net.create_network(&NetworkOptions {
                name: name.into(),
                subnet: Some(subnet.parse().unwrap()),
                ipv6: subnet6.is_some(),
                subnet6: subnet6.map(|s| s.parse().unwrap()),
                ..Default::default()
            })
        };
        let err = t
            .net
            .create_network(&NetworkOptions {
                name: "no".into(),
                subnet6: Some("fd00:41:9::/64".parse().unwrap()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        let dual = mk("dual", "10.204.1.0/24", Some("fd00:41:1::/64")).unwrap();
        assert_eq!(dual.gateway6, Some("fd00:41:1::1".parse().unwrap()));
        let err = mk("clash", "10.204.2.0/24", Some("fd00:41:1:0:8000::/80")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        mk("other", "10.204.3.0/24", Some("fd00:41:3::/64")).unwrap();
        // --ipv6 without a subnet: one from the pool.
        let auto = t
            .net
            .create_network(&NetworkOptions {
                name: "auto".into(),
                ipv6: true,
                ..Default::default()
            })
            .unwrap();
        let s6 = auto.subnet6.expect("an IPv6 subnet from the pool");
        assert!(t.net.config().pool6.contains_net(&s6), "{s6}");

        let ns = |id: &str| NsGuard(netns::create(&t.runroot(), id).unwrap());
        let (a, b, c) = (ns("a"), ns("b"), ns("c"));
        let o = AttachOptions::default();
        let att_a = t.net.attach("dual", "a", &a.0, &o).unwrap();
        let fixed = AttachOptions {
            ip6: Some("fd00:41:1::99".parse().unwrap()),
            ..Default::default()
        };
        let att_b = t.net.attach("dual", "b", &b.0, &fixed).unwrap();
        let att_c = t.net.attach("other", "c", &c.0, &o).unwrap();
        let a6 = att_a.ip6.expect("a has IPv6");
        assert_eq!(a6, "fd00:41:1::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(att_b.ip6, Some("fd00:41:1::99".parse().unwrap()));
        assert_eq!(att_a.gateway6, dual.gateway6);

        let (_, addrs) = run_in(&a.0, &["ip", "-6", "addr", "show", "eth0"]);
        assert!(addrs.contains("inet6 fd00:41:1::2/64"), "{addrs}");
        let global = addrs.lines().find(|l| l.contains("fd00:41:1::2")).unwrap();
        assert!(!global.contains("tentative"), "DAD still running: {addrs}");
        let (_, routes) = run_in(&a.0, &["ip", "-6", "route"]);
        assert!(
            routes.contains("default via fd00:41:1::1 dev eth0"),
            "{routes}"
        );
        let (_, routes4) = run_in(&a.0, &["ip", "-4", "route"]);
        assert!(routes4.contains("default via 10.204.1.1"), "{routes4}");

        assert!(ping6(&a.0, dual.gateway6.unwrap()), "own IPv6 gateway");
        assert!(ping6(&a.0, att_b.ip6.unwrap()), "same network over IPv6");
        assert!(!ping6(&c.0, a6), "other network reached dual over IPv6");
        assert!(
            !ping6(&a.0, att_c.ip6.unwrap()),
            "dual reached other over IPv6"
        );

        // A port published without a host address answers on IPv6 too,
        // here on the lab's own address of the bridge.
        let _server = common::serve_in(&a.0, 8080, "hello6");
        let port = berth_testutil::peers::free_port();
        let ports = [PortMapping {
            host_ip: None,
            host_port: port,
            container_port: 8080,
            proto: Proto::Tcp,
        }];
        t.net.publish("a", att_a.ip, att_a.ip6, &ports).unwrap();
        let at = SocketAddr::new(IpAddr::V6(dual.gateway6.unwrap()), port);
        assert_eq!(common::read_from(at), "hello6\n");
        let at4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), port);
        assert_eq!(common::read_from(at4), "hello6\n");
        let loop6 = [PortMapping {
            host_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ..ports[0]
        }];
        let err = t.net.publish("a", att_a.ip, att_a.ip6, &loop6).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        t.net.unpublish_container("a").unwrap();
        let listing = common::nft_list_family("ip6", &t.net.config().table);
        assert!(!listing.contains("c=a"), "{listing}");

        t.net.detach("dual", "b").unwrap();
        let again = t
            .net
            .attach("dual", "b", &b.0, &AttachOptions::default())
            .unwrap();
        assert_eq!(again.ip6, Some("fd00:41:1::3".parse().unwrap()));
    });
}
