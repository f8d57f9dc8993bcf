//! Two user networks cannot reach each other; an --internal network
//! cannot forward out. Pings go only to the tests' own namespaces.

mod common;

use std::path::Path;
use std::process::Command;

use berth_net::{netns, AttachOptions, NetworkOptions};
use common::{NsGuard, TestNet};

fn ping(from: &Path, to: std::net::Ipv4Addr) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", from.display()))
        .arg(berth_testutil::busybox())
        .args(["ping", "-c1", "-W1", &to.to_string()])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn networks_are_isolated_and_internal_stays_inside() {
    if !berth_testutil::require_root("networks_are_isolated_and_internal_stays_inside") {
        return;
    }
    let mut t = TestNet::new("is", 15);
    // two /24s for two networks
    let mut cfg = t.net.config().clone();
    cfg.pool = "10.203.12.0/22".parse().unwrap();
    t.net = berth_net::Net::new(cfg);
    let pid = std::process::id();
    let mk = |n: &str, internal| {
        t.net
            .create_network(&NetworkOptions {
                name: format!("{n}{pid}"),
                bridge: Some(common::unique(n)),
                internal,
                ..Default::default()
            })
            .unwrap()
    };
    let n1 = mk("i1", false);
    let n2 = mk("i2", true);
    let n3 = mk("i3", false);
    assert_ne!(n1.subnet, n2.subnet);
    let ns1 = NsGuard(netns::create(&t.runroot(), "iso1").unwrap());
    let ns2 = NsGuard(netns::create(&t.runroot(), "iso2").unwrap());
    let ns3 = NsGuard(netns::create(&t.runroot(), "iso3").unwrap());
    let ns4 = NsGuard(netns::create(&t.runroot(), "iso4").unwrap());
    let o = AttachOptions::default();
    let a1 = t.net.attach(&n1.name, "iso1", &ns1.0, &o).unwrap();
    let a2 = t.net.attach(&n2.name, "iso2", &ns2.0, &o).unwrap();
    let a3 = t.net.attach(&n2.name, "iso3", &ns3.0, &o).unwrap();
    let a4 = t.net.attach(&n3.name, "iso4", &ns4.0, &o).unwrap();

    assert!(ping(&ns1.0, a1.gateway), "own gateway");
    assert!(ping(&ns2.0, a3.ip), "same network");
    assert!(ping(&ns4.0, a4.gateway), "own gateway");
    // two ordinary networks: only the isolation rules stand between them
    assert!(
        !ping(&ns1.0, a4.ip),
        "crossed from {} to {}",
        n1.name,
        n3.name
    );
    assert!(
        !ping(&ns4.0, a1.ip),
        "crossed from {} to {}",
        n3.name,
        n1.name
    );
    assert!(
        !ping(&ns1.0, a2.ip),
        "crossed from {} to {}",
        n1.name,
        n2.name
    );
    assert!(!ping(&ns2.0, a1.ip), "internal network forwarded out");
    let listing = common::nft_list(&t.net.config().table);
    assert!(
        !listing.contains(&format!("ip saddr {} oifname", n2.subnet)),
        "{listing}"
    );
}
