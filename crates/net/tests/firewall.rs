//! nftables rules in a table of the test's own, checked with `nft list`.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use berth_net::nft::{Family, Firewall};
use berth_net::ports::{PortMapping, Proto};
use common::TableGuard;

#[test]
fn table_rules_publish_and_unpublish() {
    if !berth_testutil::require_root("table_rules_publish_and_unpublish") {
        return;
    }
    let t = TableGuard::new("fw");
    let mut fw = Firewall::open(&t.0).unwrap();
    fw.ensure_table().unwrap();
    fw.ensure_table().unwrap(); // idempotent
    let net = common::net_config("fwnet", "brfw", "10.201.7.0/24");
    fw.add_network(&net, &[]).unwrap();
    let ports = [PortMapping {
        host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        host_port: 18080,
        container_port: 80,
        proto: Proto::Tcp,
    }];
    fw.publish("ctr1", IpAddr::V4(Ipv4Addr::new(10, 201, 7, 2)), &ports)
        .unwrap();
    let listing = common::nft_list(&t.0);
    eprintln!("{listing}");
    assert!(listing.contains("dnat to 10.201.7.2:80"), "{listing}");
    assert!(listing.contains("tcp dport 18080"), "{listing}");
    assert!(listing.contains("comment \"c=ctr1\""), "{listing}");
    assert!(listing.contains("masquerade"), "{listing}");
    assert_eq!(listing.matches("jump ports").count(), 2, "{listing}");

    fw.unpublish("ctr1").unwrap();
    let listing = common::nft_list(&t.0);
    assert!(!listing.contains("c=ctr1"), "{listing}");
    fw.remove_network("fwnet").unwrap();
    let listing = common::nft_list(&t.0);
    assert!(!listing.contains("masquerade"), "{listing}");
}

#[test]
fn ip6_table_rules() {
    if !berth_testutil::require_root("ip6_table_rules") {
        return;
    }
    let t = TableGuard::new("fw6");
    let mut fw = Firewall::open_family(&t.0, Family::V6).unwrap();
    let mut net = common::net_config("fw6net", "brfw6", "10.201.8.0/24");
    net.subnet6 = Some("fd00:201:8::/64".parse().unwrap());
    net.gateway6 = Some("fd00:201:8::1".parse().unwrap());
    let mut v4only = common::net_config("fw4net", "brfw4", "10.201.9.0/24");
    v4only.internal = true;
    fw.add_network(&net, &[]).unwrap();
    fw.add_network(&v4only, std::slice::from_ref(&net)).unwrap();
    let ports = [
        PortMapping {
            host_ip: None,
            host_port: 18081,
            container_port: 80,
            proto: Proto::Tcp,
        },
        // Bound to an IPv4 address: not in the ip6 table.
        PortMapping {
            host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            host_port: 18082,
            container_port: 81,
            proto: Proto::Tcp,
        },
    ];
    fw.publish("ctr6", "fd00:201:8::2".parse().unwrap(), &ports)
        .unwrap();
    let err = fw.publish("ctr6", IpAddr::V4(Ipv4Addr::LOCALHOST), &ports);
    assert!(err.is_err(), "an IPv4 address in the ip6 table");
    let listing = common::nft_list_family("ip6", &t.0);
    eprintln!("{listing}");
    assert!(listing.contains("dnat to [fd00:201:8::2]:80"), "{listing}");
    assert!(!listing.contains("18082"), "{listing}");
    assert!(listing.contains("ip6 saddr fd00:201:8::/64"), "{listing}");
    // The IPv4-only internal network still gets its drops and isolation.
    assert!(
        listing.contains("iifname \"brfw4\" oifname != \"brfw4\" drop"),
        "{listing}"
    );
    assert!(
        listing.contains("iifname \"brfw6\" oifname \"brfw4\" drop"),
        "{listing}"
    );
    fw.unpublish("ctr6").unwrap();
    fw.remove_network("fw4net").unwrap();
    let listing = common::nft_list_family("ip6", &t.0);
    assert!(
        !listing.contains("c=ctr6") && !listing.contains("brfw4"),
        "{listing}"
    );
}
