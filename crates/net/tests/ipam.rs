//! IP address management: allocation order, static addresses, ranges,
//! release, and 50 concurrent allocators. SQLite only; no root needed.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use berth_net::store::{NetworkConfig, Store};
use berth_net::ErrorKind;

fn net(subnet: &str, range: Option<&str>) -> NetworkConfig {
    let subnet: berth_net::Ipv4Net = subnet.parse().unwrap();
    NetworkConfig {
        name: "n1".into(),
        id: "0".repeat(64),
        bridge: "brx".into(),
        subnet,
        gateway: subnet.first_host(),
        ip_range: range.map(|r| r.parse().unwrap()),
        internal: false,
        dns: false,
        labels: Default::default(),
        subnet6: None,
        gateway6: None,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn allocates_in_order_skipping_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("db")).unwrap();
    let n = net("10.9.0.0/29", None);
    s.insert_network(&n).unwrap();
    // .0 network, .1 gateway, .7 broadcast: .2 to .6 are free
    let got: Vec<_> = (0..5)
        .map(|i| s.allocate(&n, &format!("c{i}"), None).unwrap())
        .collect();
    assert_eq!(
        got,
        ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"].map(ip)
    );
    let e = s.allocate(&n, "c5", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("no free address"), "{e}");
    // idempotent for a container that holds a lease
    assert_eq!(s.allocate(&n, "c2", None).unwrap(), ip("10.9.0.4"));
    assert_eq!(s.release("n1", "c2").unwrap(), Some(ip("10.9.0.4")));
    assert_eq!(s.release("n1", "c2").unwrap(), None);
    assert_eq!(s.allocate(&n, "c9", None).unwrap(), ip("10.9.0.4"));
    assert_eq!(s.leases(Some("n1")).unwrap().len(), 5);
}

#[test]
fn static_addresses_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("db")).unwrap();
    let n = net("10.9.0.0/24", Some("10.9.0.128/25"));
    s.insert_network(&n).unwrap();
    assert_eq!(s.allocate(&n, "a", None).unwrap(), ip("10.9.0.128"));
    // --ip may be outside --ip-range but not outside the subnet
    assert_eq!(
        s.allocate(&n, "b", Some(ip("10.9.0.50"))).unwrap(),
        ip("10.9.0.50")
    );
    let taken = s.allocate(&n, "c", Some(ip("10.9.0.50"))).unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);
    for bad in ["10.9.1.5", "10.9.0.1", "10.9.0.0", "10.9.0.255"] {
        let e = s.allocate(&n, "c", Some(ip(bad))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
    let other = s.allocate(&n, "b", Some(ip("10.9.0.51"))).unwrap_err();
    assert_eq!(other.kind(), ErrorKind::Conflict, "b already has .50");
}

#[test]
fn networks_conflict_on_name_bridge_and_subnet() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("db")).unwrap();
    let n = net("10.9.0.0/24", None);
    s.insert_network(&n).unwrap();
    assert_eq!(
        s.insert_network(&n).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let mut m = net("10.9.0.128/25", None);
    m.name = "n2".into();
    m.bridge = "bry".into();
    assert_eq!(
        s.insert_network(&m).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    m.subnet = "10.9.1.0/24".parse().unwrap();
    m.bridge = "brx".into();
    assert_eq!(
        s.insert_network(&m).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    m.bridge = "bry".into();
    s.insert_network(&m).unwrap();
    s.allocate(&m, "c", None).unwrap();
    assert_eq!(
        s.delete_network("n2").unwrap_err().kind(),
        ErrorKind::Conflict
    );
    s.release("n2", "c").unwrap();
    s.delete_network("n2").unwrap();
    assert_eq!(s.network("n2").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn fifty_concurrent_allocations_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let n = net("10.9.0.0/24", None);
    Store::open(&db).unwrap().insert_network(&n).unwrap();
    let barrier = std::sync::Barrier::new(50);
    let ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (db, n, barrier) = (&db, &n, &barrier);
                s.spawn(move || {
                    // each thread its own connection, as each engine process would
                    let mut store = Store::open(db).unwrap();
                    barrier.wait();
                    store.allocate(n, &format!("ctr{i}"), None).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: HashSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), 50, "{ips:?}");
    assert!(ips.iter().all(|a| n.subnet.contains(*a) && *a != n.gateway));
    assert_eq!(Store::open(&db).unwrap().leases(None).unwrap().len(), 50);
}
