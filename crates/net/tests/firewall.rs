//! nftables rules in a table of the test's own, checked with `nft list`.

mod common;

use std::net::Ipv4Addr;

use berth_net::nft::Firewall;
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
        host_ip: Some(Ipv4Addr::LOCALHOST),
        host_port: 18080,
        container_port: 80,
        proto: Proto::Tcp,
    }];
    fw.publish("ctr1", Ipv4Addr::new(10, 201, 7, 2), &ports)
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
