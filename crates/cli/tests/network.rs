//! Networking end to end, as root: the default bridge, published ports,
//! user networks, `container:` sharing, connect/disconnect, inspect, and
//! that nothing is left behind. Each test has its own bridges, subnets
//! and nftables table (common::netslot); traffic goes only to loopback
//! and to the test's own containers.

mod common;
#[path = "../../net/tests/common/fake_dns.rs"]
mod fake_dns;

use std::collections::HashSet;
use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Berth;
use fake_dns::{FakeUpstream, OUTSIDE, OUTSIDE_IP};

fn root(test: &str) -> bool {
    berth_testutil::require_root(test)
}

/// A port free on the host now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a connection to 127.0.0.1:`port` reads, retrying while the
/// container's listener comes up.
fn read_from(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(2),
        ) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if !out.is_empty() {
                return out;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nothing answered on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn inspect(b: &Berth, what: &[&str]) -> serde_json::Value {
    let out = b.ok(what);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// The namespaces under the test's runroot still there.
fn namespaces(b: &Berth) -> Vec<String> {
    std::fs::read_dir(b.runroot.join("netns"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Veths and port rules of the test's slot, once the kernel has had a
/// moment: a namespace's veths die in its asynchronous cleanup.
fn leftovers(b: &Berth) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = b.net.leftovers();
        if l.is_empty() || Instant::now() > deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A user network on the slot's subnet `k` with the slot's bridge name.
fn network(b: &Berth, name: &str, k: u32, extra: &[&str]) {
    let subnet = b.net.subnet(k);
    let bridge = format!("com.docker.network.bridge.name={}", b.net.bridge(k));
    let mut args = vec!["network", "create", "--subnet", &subnet, "-o", &bridge];
    args.extend_from_slice(extra);
    args.push(name);
    b.ok(&args);
}

#[test]
fn default_bridge_gives_an_address_a_route_and_files() {
    if !root("default_bridge_gives_an_address_a_route_and_files") {
        return;
    }
    let b = Berth::with_image();
    let out = b.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:192.0.2.7",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:2",
        "bb",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; echo ---; cat /etc/hosts; echo ---; \
         cat /etc/resolv.conf; echo ---; hostname; cat /etc/hostname",
    ]);
    let parts: Vec<&str> = out.split("---\n").collect();
    let ip = b.net.ip(0, 2);
    assert!(parts[0].contains(&format!("inet {ip}/24")), "{out}");
    assert!(
        parts[0].contains(&format!("default via {}", b.net.ip(0, 1))),
        "{out}"
    );
    let hosts = parts[1];
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.contains("192.0.2.7\tdb\n"), "{hosts}");
    assert!(
        hosts.contains(&format!("{}\tgw\n", b.net.ip(0, 1))),
        "{hosts}"
    );
    let hostname = parts[3].lines().next().unwrap();
    assert!(
        hosts.contains(&format!("{ip}\t{hostname}")),
        "own line: {hosts}"
    );
    assert_eq!(
        parts[2],
        "nameserver 192.0.2.53\nsearch example.test\noptions ndots:2\n"
    );
    assert_eq!(parts[3], format!("{hostname}\n{hostname}\n"));
    // --rm gave everything back.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(namespaces(&b).is_empty(), "{:?}", namespaces(&b));
    assert!(leftovers(&b).is_empty(), "{:?}", leftovers(&b));
    // The address is free again: the next container gets it too.
    let again = b.ok(&[
        "run", "--rm", "bb", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(again.contains(&format!("inet {ip}/24")), "{again}");
}

#[test]
fn published_ports_answer_on_loopback() {
    if !root("published_ports_answer_on_loopback") {
        return;
    }
    let b = Berth::with_image();
    let (p1, p2) = (free_port(), free_port());
    let id = b
        .ok(&[
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{p1}:8080"),
            "-p",
            &format!("{p2}:8080"),
            "--expose",
            "9090",
            "-P",
            "bb",
            "sh",
            "-c",
            "nc -ll -p 9090 -e echo nine & exec nc -ll -p 8080 -e echo hello",
        ])
        .trim()
        .to_string();
    assert_eq!(read_from(p1), "hello\n");
    assert_eq!(read_from(p2), "hello\n");
    let ports = b.ok(&["port", &id]);
    assert!(
        ports.contains(&format!("8080/tcp -> 127.0.0.1:{p1}\n")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("8080/tcp -> 0.0.0.0:{p2}\n")),
        "{ports}"
    );
    let ps = b.ok(&["ps"]);
    assert!(
        ps.contains(&format!("127.0.0.1:{p1}->8080/tcp, 0.0.0.0:{p2}->8080/tcp")),
        "{ps}"
    );
    // -P published the exposed 9090 on a port the host chose.
    let nine = b.ok(&["port", &id, "9090"]);
    let p3: u16 = nine.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(read_from(p3), "nine\n");
    let v = inspect(&b, &["inspect", &id]);
    let bound = &v["NetworkSettings"]["Ports"]["8080/tcp"];
    assert_eq!(bound[0]["HostIp"], "127.0.0.1", "{v}");
    assert_eq!(bound[0]["HostPort"], p1.to_string(), "{v}");
    assert_eq!(
        v["HostConfig"]["PortBindings"]["8080/tcp"][1]["HostPort"],
        p2.to_string()
    );
    assert!(v["Config"]["ExposedPorts"]["9090/tcp"].is_object(), "{v}");
    b.ok(&["rm", "-f", &id]);
    assert!(leftovers(&b).is_empty(), "{:?}", leftovers(&b));
    assert!(
        TcpStream::connect_timeout(
            &format!("127.0.0.1:{p1}").parse().unwrap(),
            Duration::from_millis(500)
        )
        .is_err(),
        "the port still answers after rm"
    );
    // A port range maps one to one.
    let (r0, o) = loop {
        let r0 = free_port();
        if (1..3).all(|i| TcpListener::bind(("127.0.0.1", r0 + i)).is_ok()) {
            break (r0, r0 + 2);
        }
    };
    let id = b
        .ok(&[
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{r0}-{o}:7000-7002"),
            "bb",
            "nc",
            "-ll",
            "-p",
            "7001",
            "-e",
            "echo",
            "range",
        ])
        .trim()
        .to_string();
    assert_eq!(read_from(r0 + 1), "range\n");
    b.ok(&["rm", "-f", &id]);
}

#[test]
fn user_network_containers_reach_each_other_by_ip_and_name() {
    if !root("user_network_containers_reach_each_other_by_ip_and_name") {
        return;
    }
    let b = Berth::with_image();
    network(&b, "front", 1, &["--label", "tier=web"]);
    let a = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "alpha",
            "--network",
            "front",
            "--network-alias",
            "web",
            "--ip",
            &b.net.ip(1, 50),
            "--mac-address",
            "02:42:0a:57:aa:01",
            "-h",
            "alpha-host",
            "bb",
            "sleep",
            "60",
        ])
        .trim()
        .to_string();
    let out = b.ok(&[
        "run",
        "--rm",
        "--name",
        "beta",
        "--network",
        "front",
        "bb",
        "sh",
        "-c",
        &format!(
            "ping -c1 -W2 {} >/dev/null && echo by-ip; ping -c1 -W2 alpha >/dev/null && echo by-name; \
             ping -c1 -W2 web >/dev/null && echo by-alias; ping -c1 -W2 alpha-host >/dev/null && echo by-hostname",
            b.net.ip(1, 50)
        ),
    ]);
    assert_eq!(out, "by-ip\nby-name\nby-alias\nby-hostname\n");
    // A container started later is announced in alpha's /etc/hosts.
    let g = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "gamma",
            "--network",
            "front",
            "bb",
            "sleep",
            "60",
        ])
        .trim()
        .to_string();
    let seen = b.ok(&[
        "exec",
        &a,
        "sh",
        "-c",
        "ping -c1 -W2 gamma >/dev/null && echo ok",
    ]);
    assert_eq!(seen, "ok\n");
    let mac = b.ok(&["exec", &a, "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(mac, "02:42:0a:57:aa:01\n");
    // ls --filter: docker's keys, each a network of this test's.
    let names = |f: &[&str]| {
        let mut v = vec!["network", "ls", "--format", "{{.Name}}"];
        v.extend_from_slice(f);
        b.ok(&v)
    };
    assert_eq!(names(&["-f", "name=fro"]), "front\n");
    assert_eq!(
        names(&["-f", "label=tier=web", "-f", "type=custom"]),
        "front\n"
    );
    assert_eq!(names(&["-f", "type=builtin", "-f", "name=fro"]), "");
    assert_eq!(names(&["-f", "driver=null"]), "none\n");
    b.fails(
        &["network", "ls", "-f", "colour=red"],
        1,
        "invalid filter 'colour'",
    );
    let n = inspect(&b, &["network", "inspect", "front"]);
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], b.net.subnet(1));
    assert_eq!(n["Labels"]["tier"], "web");
    assert_eq!(n["Containers"][&a]["Name"], "alpha");
    assert_eq!(
        n["Containers"][&a]["IPv4Address"],
        format!("{}/24", b.net.ip(1, 50))
    );
    // gamma's exit takes its line out of alpha's hosts.
    b.ok(&["rm", "-f", &g]);
    let hosts = b.ok(&["exec", &a, "cat", "/etc/hosts"]);
    assert!(!hosts.contains("gamma"), "{hosts}");
    let o = b.run(&["network", "rm", "front"]);
    assert_eq!(o.status.code(), Some(1), "in use, refused");
    b.ok(&["rm", "-f", &a]);
    assert_eq!(b.ok(&["network", "rm", "front"]), "front\n");
    let ls = b.ok(&["network", "ls"]);
    assert!(!ls.contains("front") && ls.contains("bridge"), "{ls}");
    assert!(leftovers(&b).is_empty(), "{:?}", leftovers(&b));
}

#[test]
fn containers_on_two_networks_are_isolated() {
    if !root("containers_on_two_networks_are_isolated") {
        return;
    }
    let b = Berth::with_image();
    network(&b, "red", 1, &[]);
    network(&b, "blue", 2, &["--internal"]);
    let a = b
        .ok(&["run", "-d", "--network", "red", "bb", "sleep", "60"])
        .trim()
        .to_string();
    let red_ip = b.net.ip(1, 2);
    let same = b.run(&[
        "run",
        "--rm",
        "--network",
        "red",
        "bb",
        "ping",
        "-c1",
        "-W2",
        &red_ip,
    ]);
    assert!(same.status.success(), "same network must reach");
    let other = b.run(&[
        "run",
        "--rm",
        "--network",
        "blue",
        "bb",
        "ping",
        "-c1",
        "-W2",
        &red_ip,
    ]);
    assert_eq!(other.status.code(), Some(1), "blue reached red");
    // The default bridge is isolated from both too.
    let def = b.run(&["run", "--rm", "bb", "ping", "-c1", "-W2", &red_ip]);
    assert_eq!(def.status.code(), Some(1), "bridge reached red");
    b.ok(&["rm", "-f", &a]);
    let pruned = b.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("red") && pruned.contains("blue"),
        "{pruned}"
    );
}

#[test]
fn network_container_shares_the_stack() {
    if !root("network_container_shares_the_stack") {
        return;
    }
    let b = Berth::with_image();
    let x = b
        .ok(&[
            "run", "-d", "--name", "xs", "bb", "nc", "-ll", "-p", "9000", "-e", "echo", "shared",
        ])
        .trim()
        .to_string();
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "container:xs",
        "bb",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; hostname; for i in 1 2 3 4 5 6 7 8 9 10; do nc 127.0.0.1 9000 </dev/null && break; sleep 0.2; done",
    ]);
    assert!(
        out.contains(&format!("inet {}/24", b.net.ip(0, 2))),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}\n", &x[..12])),
        "x's hostname: {out}"
    );
    assert!(out.ends_with("shared\n"), "{out}");
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "container:xs",
        "-p",
        "80",
        "bb",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    b.ok(&["stop", "-t", "0", &x]);
    let o = b.run(&["run", "--rm", "--network", "container:xs", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "x is not running");
    b.ok(&["rm", &x]);
}

#[test]
fn connect_and_disconnect_a_running_container() {
    if !root("connect_and_disconnect_a_running_container") {
        return;
    }
    let b = Berth::with_image();
    network(&b, "extra", 1, &[]);
    let a = b.ok(&["run", "-d", "bb", "sleep", "60"]).trim().to_string();
    let ip = b.net.ip(1, 9);
    b.ok(&[
        "network", "connect", "--ip", &ip, "--alias", "late", "extra", &a,
    ]);
    let addr = b.ok(&["exec", &a, "ip", "-4", "-o", "addr", "show", "eth1"]);
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    let v = inspect(&b, &["inspect", &a]);
    assert_eq!(v["NetworkSettings"]["Networks"]["extra"]["IPAddress"], ip);
    assert_eq!(
        v["NetworkSettings"]["Networks"]["extra"]["Aliases"][0],
        "late"
    );
    assert_eq!(
        v["NetworkSettings"]["IPAddress"],
        b.net.ip(0, 2),
        "the default network's address stays on top"
    );
    let peer = b.run(&[
        "run",
        "--rm",
        "--network",
        "extra",
        "bb",
        "ping",
        "-c1",
        "-W2",
        "late",
    ]);
    assert!(peer.status.success(), "the alias resolves on the network");
    b.ok(&["network", "disconnect", "extra", &a]);
    let gone = b.run(&["exec", &a, "ip", "link", "show", "eth1"]);
    assert!(!gone.status.success(), "eth1 is still there");
    let v = inspect(&b, &["inspect", &a]);
    assert!(v["NetworkSettings"]["Networks"]["extra"].is_null(), "{v}");
    let n = inspect(&b, &["network", "inspect", "extra"]);
    assert_eq!(n["Containers"], serde_json::json!({}));
    b.ok(&["rm", "-f", &a]);
    assert!(leftovers(&b).is_empty(), "{:?}", leftovers(&b));
}

#[test]
fn no_leftovers_after_a_loop_of_run_rm() {
    if !root("no_leftovers_after_a_loop_of_run_rm") {
        return;
    }
    let b = Berth::with_image();
    network(&b, "loop", 1, &[]);
    for i in 0..15 {
        let net = if i % 2 == 0 { "bridge" } else { "loop" };
        b.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            "-p",
            "127.0.0.1::80",
            "bb",
            "true",
        ]);
    }
    // A start that fails (no such command) gives its network back too.
    let o = b.run(&["run", "--rm", "-p", "127.0.0.1::80", "bb", "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127));
    // So does a stopped container, at exit rather than at rm.
    let id = b.ok(&["run", "-d", "bb", "sleep", "60"]).trim().to_string();
    b.ok(&["stop", "-t", "0", &id]);
    assert_eq!(b.ok(&["ps", "-q"]), "");
    assert!(namespaces(&b).is_empty(), "{:?}", namespaces(&b));
    assert!(leftovers(&b).is_empty(), "{:?}", leftovers(&b));
    let n = inspect(&b, &["network", "inspect", "bridge"]);
    assert_eq!(n["Containers"], serde_json::json!({}), "leases left: {n}");
    let f = [
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{len .Containers}}",
        "bridge",
    ];
    assert_eq!(b.ok(&f), "bridge 0\n");
    let v = inspect(&b, &["inspect", &id]);
    assert_eq!(v["NetworkSettings"]["IPAddress"], "");
    assert_eq!(v["HostConfig"]["NetworkMode"], "bridge");
    // It starts again with its network.
    b.ok(&["start", &id]);
    let addr = b.ok(&["exec", &id, "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&b.net.subnet(0)[..8]), "{addr}");
    b.ok(&["rm", "-f", &id]);
    assert!(namespaces(&b).is_empty() && leftovers(&b).is_empty());
}

/// A network namespace of the test's own (under its directory, so the
/// guard unmounts it) in which berth runs: bridges, tables, sysctls and
/// DNS servers never touch the host's, and nothing can leave.
fn lab(b: Berth) -> (Berth, PathBuf) {
    let ns = berth_net::netns::create(b.dir.path(), "lab").unwrap();
    (b.in_netns(&ns), ns)
}

/// The fake resolver on the lab's 127.0.0.1:53, which the slot's
/// resolv.conf names as the host's resolver.
fn fake_upstream(ns: &std::path::Path) -> FakeUpstream {
    let sock = berth_net::netns::run_in(ns, || {
        UdpSocket::bind("127.0.0.1:53").map_err(|e| berth_net::Error::Invalid(e.to_string()))
    })
    .unwrap();
    FakeUpstream::serve(sock)
}

/// `nslookup NAME` in a running container, through its resolv.conf.
fn lookup(b: &Berth, ctr: &str, name: &str) -> (bool, String) {
    let o = b.run(&["exec", ctr, "nslookup", name]);
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

fn ip_of(b: &Berth, ctr: &str, network: &str) -> String {
    let v = inspect(b, &["inspect", ctr]);
    v["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn dns_names_aliases_and_ids_follow_connect_and_rm() {
    if !root("dns_names_aliases_and_ids_follow_connect_and_rm") {
        return;
    }
    let (b, ns) = lab(Berth::with_image());
    let upstream = fake_upstream(&ns);
    network(&b, "front", 1, &[]);
    network(&b, "back", 2, &[]);
    let run = |args: &[&str]| -> String {
        let mut v = vec!["run", "-d"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["bb", "sleep", "120"]);
        b.ok(&v).trim().to_string()
    };
    let alpha = run(&[
        "--name",
        "alpha",
        "--network",
        "front",
        "--network-alias",
        "web",
    ]);
    let beta = run(&["--name", "beta", "--network", "front"]);
    let gamma = run(&["--name", "gamma", "--network", "back"]);
    let delta = run(&["--name", "delta"]);
    let alpha_ip = ip_of(&b, &alpha, "front");

    let resolv = b.ok(&["exec", &beta, "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.starts_with(&format!("nameserver {}\n", b.net.ip(1, 1))),
        "{resolv}"
    );
    for name in ["alpha", "web", &alpha[..12]] {
        let (ok, out) = lookup(&b, &beta, name);
        assert!(
            ok && out.contains(&format!("Address: {alpha_ip}")),
            "{name}: {out}"
        );
    }
    let ping = b.run(&["exec", &beta, "ping", "-c1", "-W2", "web"]);
    assert!(ping.status.success(), "ping by alias");
    assert!(!upstream.asked("alpha"), "a container's name went upstream");
    // Anything else goes to the host's resolver (here the fake one).
    let (ok, out) = lookup(&b, &beta, OUTSIDE);
    assert!(ok && out.contains(&OUTSIDE_IP.to_string()), "{out}");
    assert!(upstream.asked(OUTSIDE));

    // Another network neither resolves nor reaches them.
    let (ok, out) = lookup(&b, &gamma, "alpha");
    assert!(!ok, "back resolved front's alpha: {out}");
    let ping = b.run(&["exec", &gamma, "ping", "-c1", "-W1", &alpha_ip]);
    assert!(!ping.status.success(), "back reached front");
    // The default bridge has no name resolution, as docker's.
    let resolv = b.ok(&["exec", &delta, "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains(&b.net.ip(1, 1)), "{resolv}");
    let (ok, out) = lookup(&b, &delta, "alpha");
    assert!(!ok, "the default bridge resolved alpha: {out}");

    // connect --alias: gamma joins front and answers to its alias there,
    // and now resolves front's names itself.
    b.ok(&["network", "connect", "--alias", "late", "front", &gamma]);
    let gamma_ip = ip_of(&b, &gamma, "front");
    let (ok, out) = lookup(&b, &beta, "late");
    assert!(ok && out.contains(&format!("Address: {gamma_ip}")), "{out}");
    let (ok, out) = lookup(&b, &gamma, "alpha");
    assert!(ok && out.contains(&format!("Address: {alpha_ip}")), "{out}");
    // delta joins front: its resolv.conf now names front's server.
    b.ok(&["network", "connect", "front", &delta]);
    let (ok, out) = lookup(&b, &delta, "beta");
    assert!(ok, "delta after connect: {out}");
    b.ok(&["network", "disconnect", "front", &gamma]);
    let (ok, out) = lookup(&b, &beta, "late");
    assert!(!ok, "late still resolves after disconnect: {out}");
    b.ok(&["rm", "-f", &alpha]);
    let (ok, out) = lookup(&b, &beta, "web");
    assert!(!ok, "web still resolves after rm: {out}");
    for c in [&beta, &gamma, &delta] {
        b.ok(&["rm", "-f", c]);
    }
    // The network's server ends with it.
    let pid_file = b.runroot.join("dns").join("front.pid");
    assert!(pid_file.exists());
    b.ok(&["network", "rm", "front", "back"]);
    assert!(!pid_file.exists(), "the DNS server outlived its network");
}

#[test]
fn ipv6_dual_stack_network_with_names_and_ports() {
    if !root("ipv6_dual_stack_network_with_names_and_ports") {
        return;
    }
    let (b, ns) = lab(Berth::with_image());
    let subnet = b.net.subnet(1);
    let bridge = format!("com.docker.network.bridge.name={}", b.net.bridge(1));
    let o = b.run(&["network", "create", "--subnet", "fd00:87:1::/64", "v6"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--ipv6"), "{err}");
    b.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &subnet,
        "--subnet",
        "fd00:87:1::/64",
        "-o",
        &bridge,
        "v6",
    ]);
    let n = inspect(&b, &["network", "inspect", "v6"]);
    assert_eq!(n["EnableIPv6"], true, "{n}");
    assert_eq!(n["IPAM"]["Config"][1]["Subnet"], "fd00:87:1::/64", "{n}");
    assert_eq!(n["IPAM"]["Config"][1]["Gateway"], "fd00:87:1::1", "{n}");
    let port = free_port();
    let a = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "six",
            "--network",
            "v6",
            "--ip6",
            "fd00:87:1::66",
            "-p",
            &format!("{port}:8080"),
            "bb",
            "nc",
            "-ll",
            "-p",
            "8080",
            "-e",
            "echo",
            "over6",
        ])
        .trim()
        .to_string();
    let v = inspect(&b, &["inspect", &a]);
    let ep = &v["NetworkSettings"]["Networks"]["v6"];
    assert_eq!(ep["GlobalIPv6Address"], "fd00:87:1::66", "{v}");
    assert_eq!(ep["GlobalIPv6PrefixLen"], 64, "{v}");
    assert_eq!(ep["IPv6Gateway"], "fd00:87:1::1", "{v}");
    let out = b.ok(&[
        "run", "--rm", "--network", "v6", "bb", "sh", "-c",
        "ip -6 -o addr show eth0 scope global; ip -6 route; ping6 -c1 -W2 six >/dev/null && echo by-name",
    ]);
    assert!(out.contains("inet6 fd00:87:1::2/64"), "{out}");
    assert!(out.contains("default via fd00:87:1::1 dev eth0"), "{out}");
    assert!(out.ends_with("by-name\n"), "{out}");
    // The port answers on the lab's IPv6 address of the bridge too.
    let got = berth_net::netns::run_in(&ns, || {
        let at: std::net::SocketAddr = format!("[fd00:87:1::1]:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect_timeout(&at, Duration::from_secs(2)) {
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if !out.is_empty() || Instant::now() > deadline {
                    return Ok(out);
                }
            }
            if Instant::now() > deadline {
                return Ok(String::new());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .unwrap();
    assert_eq!(got, "over6\n");
    b.ok(&["rm", "-f", &a]);
    let n = inspect(&b, &["network", "inspect", "v6"]);
    assert_eq!(n["Containers"], serde_json::json!({}), "{n}");
}

/// The monitor of a running container: its init's parent.
fn monitor_pid(b: &Berth, id: &str) -> i32 {
    let v = inspect(b, &["inspect", id]);
    let pid = v["State"]["Pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Kills a container the way a crash would: its monitor first (so no
/// exit is recorded), then its init. Both are processes this test made.
fn crash(b: &Berth, id: &str) {
    let v = inspect(b, &["inspect", id]);
    let init = v["State"]["Pid"].as_i64().unwrap() as i32;
    let monitor = monitor_pid(b, id);
    for pid in [monitor, init] {
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{init}")).exists() {
        assert!(Instant::now() < deadline, "container {id} survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fifty_concurrent_runs_get_distinct_addresses_and_give_them_back() {
    if !root("fifty_concurrent_runs_get_distinct_addresses_and_give_them_back") {
        return;
    }
    let b = Berth::with_image();
    network(&b, "many", 1, &[]);
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let b = &b;
                s.spawn(move || {
                    b.ok(&["run", "-d", "--network", "many", "bb", "sleep", "300"])
                        .trim()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: HashSet<String> = ids.iter().map(|id| ip_of(&b, id, "many")).collect();
    assert_eq!(ips.len(), 50, "{ips:?}");
    let n = inspect(&b, &["network", "inspect", "many"]);
    assert_eq!(n["Containers"].as_object().unwrap().len(), 50);
    // Names resolve for all of them, through one DNS server.
    let (ok, out) = lookup(&b, &ids[0], &ids[49][..12]);
    assert!(ok, "{out}");
    std::thread::scope(|s| {
        for id in &ids {
            let b = &b;
            s.spawn(move || b.ok(&["rm", "-f", id]));
        }
    });
    let n = inspect(&b, &["network", "inspect", "many"]);
    assert_eq!(n["Containers"], serde_json::json!({}), "leases left: {n}");
    assert!(leftovers(&b).is_empty(), "{:?}", leftovers(&b));
    assert!(namespaces(&b).is_empty(), "{:?}", namespaces(&b));
}

#[test]
fn addresses_come_back_after_a_crash() {
    if !root("addresses_come_back_after_a_crash") {
        return;
    }
    let b = Berth::with_image();
    // Five addresses: .2 to .6.
    let small = b.net.subnet(2).replace(".0/24", ".0/29");
    let bridge = format!("com.docker.network.bridge.name={}", b.net.bridge(2));
    b.ok(&[
        "network", "create", "--subnet", &small, "-o", &bridge, "tiny",
    ]);
    let run = || b.run(&["run", "-d", "--network", "tiny", "bb", "sleep", "300"]);
    let ids: Vec<String> = (0..5)
        .map(|_| String::from_utf8(run().stdout).unwrap().trim().to_string())
        .collect();
    let full = run();
    assert_ne!(full.status.code(), Some(0), "a sixth address in a /29");
    let err = String::from_utf8_lossy(&full.stderr);
    assert!(err.contains("no free address"), "{err}");
    // Two crash: their rows still say running, their leases are held.
    crash(&b, &ids[0]);
    crash(&b, &ids[1]);
    let n = inspect(&b, &["network", "inspect", "tiny"]);
    assert_eq!(n["Containers"].as_object().unwrap().len(), 5);
    // network prune gives back what the dead held, and only that.
    b.ok(&["network", "prune", "-f"]);
    let n = inspect(&b, &["network", "inspect", "tiny"]);
    let held: Vec<&String> = n["Containers"].as_object().unwrap().keys().collect();
    assert_eq!(held.len(), 3, "{n}");
    assert!(!held.contains(&&ids[0]) && !held.contains(&&ids[1]), "{n}");
    assert!(!namespaces(&b).contains(&ids[0]), "{:?}", namespaces(&b));
    // Crash two more and run without a prune: the full subnet repairs
    // itself at the next start.
    let a = String::from_utf8(run().stdout).unwrap().trim().to_string();
    let c = String::from_utf8(run().stdout).unwrap().trim().to_string();
    crash(&b, &a);
    crash(&b, &c);
    let again = run();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let n = inspect(&b, &["network", "inspect", "tiny"]);
    assert_eq!(n["Containers"].as_object().unwrap().len(), 4, "{n}");
}

#[test]
fn links_resolve_a_running_container_sharing_a_network() {
    if !root("links_resolve_a_running_container_sharing_a_network") {
        return;
    }
    let b = Berth::with_image();
    network(&b, "front", 1, &[]);
    network(&b, "back", 2, &[]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "alpha",
        "--network",
        "front",
        "bb",
        "sleep",
        "60",
    ]);
    let alpha_ip = ip_of(&b, "alpha", "front");
    let hosts = b.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--link",
        "alpha:db",
        "bb",
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.contains(&format!("{alpha_ip}\tdb\n")), "{hosts}");
    assert!(hosts.contains(&format!("{alpha_ip}\talpha\n")), "{hosts}");
    b.ok(&[
        "create",
        "--name",
        "gamma",
        "--network",
        "front",
        "--link",
        "alpha:db",
        "bb",
        "true",
    ]);
    let v = inspect(&b, &["inspect", "gamma"]);
    assert_eq!(
        v["HostConfig"]["Links"],
        serde_json::json!(["/alpha:/gamma/db"])
    );
    b.ok(&["rm", "gamma"]);
    // Refused: a missing container (at create), one on no shared network
    // and a stopped one (at start), and a link without a network.
    b.fails(
        &[
            "create",
            "--network",
            "front",
            "--link",
            "nosuch:db",
            "bb",
            "true",
        ],
        125,
        "nosuch",
    );
    b.fails(
        &[
            "run",
            "--rm",
            "--network",
            "back",
            "--link",
            "alpha",
            "bb",
            "true",
        ],
        125,
        "share no network",
    );
    b.ok(&["stop", "-t", "0", "alpha"]);
    b.fails(
        &[
            "run",
            "--rm",
            "--network",
            "front",
            "--link",
            "alpha",
            "bb",
            "true",
        ],
        125,
        "not running",
    );
    b.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--link",
            "alpha",
            "bb",
            "true",
        ],
        125,
        "--link cannot be used with --network none",
    );
    b.ok(&["rm", "-f", "alpha"]);
}

#[test]
fn none_and_host_containers_get_their_hosts_hostname_and_resolv_conf() {
    if !root("none_and_host_containers_get_their_hosts_hostname_and_resolv_conf") {
        return;
    }
    let b = Berth::with_image();
    let show = "cat /etc/hosts; echo --; cat /etc/hostname; echo --; cat /etc/resolv.conf";
    // none: loopback names (a glibc program finds "localhost" only
    // there), --add-host, its hostname, and --dns as docker takes them.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-h",
        "quiet",
        "--add-host",
        "db.test:10.1.2.3",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "bb",
        "sh",
        "-c",
        show,
    ]);
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert!(parts[0].starts_with("127.0.0.1\tlocalhost\n"), "{out}");
    assert!(parts[0].contains("10.1.2.3\tdb.test\n"), "{out}");
    assert_eq!(parts[1], "quiet\n");
    assert_eq!(parts[2], "nameserver 192.0.2.53\nsearch example.test\n");
    // Ports and links need addresses: still refused.
    b.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-p",
            "8080:80",
            "bb",
            "true",
        ],
        125,
        "--publish cannot be used with --network none",
    );
    // host: the host's own files and name (its resolv.conf is the one
    // berth.toml names: the test slot's, naming its fake resolver).
    let out = b.ok(&["run", "--rm", "--network", "host", "bb", "sh", "-c", show]);
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert_eq!(parts[0], std::fs::read_to_string("/etc/hosts").unwrap());
    let host = rustix::system::uname();
    assert_eq!(
        parts[1].trim_end(),
        host.nodename().to_string_lossy(),
        "{out}"
    );
    assert_eq!(parts[2], "nameserver 127.0.0.1\n");
    // --add-host and --dns* go into host's copies, as docker's and
    // podman's: after the host's entries, in place of what they set.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "db.test:192.0.2.7",
        "--dns-search",
        "example.test",
        "bb",
        "sh",
        "-c",
        show,
    ]);
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(parts[0].starts_with(host_hosts.trim_end()), "{out}");
    assert!(parts[0].ends_with("192.0.2.7\tdb.test\n"), "{out}");
    assert_eq!(parts[2], "nameserver 127.0.0.1\nsearch example.test\n");
    // Published ports mean nothing there: dropped with docker's warning.
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "8080:80",
        "-P",
        "bb",
        "echo",
        "up",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "up\n");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "WARNING: Published ports are discarded when using host network mode\n"
    );
    // Nothing of them shows as the container's change.
    b.ok(&["run", "--name", "quiet", "--network", "none", "bb", "true"]);
    let diff = b.ok(&["diff", "quiet"]);
    assert!(
        !diff.contains("/etc/h") && !diff.contains("resolv"),
        "{diff}"
    );
}

#[test]
fn predefined_host_and_none_networks_as_docker_has_them() {
    if !root("predefined_host_and_none_networks_as_docker_has_them") {
        return;
    }
    let b = Berth::with_image();
    let ls = |b: &Berth| {
        b.ok(&[
            "network",
            "ls",
            "--no-trunc",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}} {{.ID}}",
        ])
    };
    let first = ls(&b);
    let rows: Vec<Vec<&str>> = first.lines().map(|l| l.split(' ').collect()).collect();
    let named: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        named,
        [
            ("bridge", "bridge", "local"),
            ("host", "host", "local"),
            ("none", "null", "local")
        ],
        "{first}"
    );
    assert!(
        rows.iter()
            .all(|r| r[3].len() == 64 && r[3].chars().all(|c| c.is_ascii_hexdigit())),
        "{first}"
    );
    let (host_id, none_id) = (rows[1][3].to_string(), rows[2][3].to_string());
    assert_ne!(host_id, none_id);
    assert_eq!(ls(&b), first, "the ids are kept");

    // inspect, by name and by id prefix, in docker's shape.
    let h = inspect(&b, &["network", "inspect", "host"]);
    assert_eq!(
        (&h["Name"], &h["Id"], &h["Driver"], &h["Scope"]),
        (
            &serde_json::json!("host"),
            &serde_json::json!(host_id),
            &serde_json::json!("host"),
            &serde_json::json!("local")
        ),
        "{h}"
    );
    assert_eq!(
        h["IPAM"],
        serde_json::json!({"Driver": "default", "Options": null, "Config": []})
    );
    assert_eq!(h["Containers"], serde_json::json!({}));
    let n = inspect(&b, &["network", "inspect", &none_id[..12]]);
    assert_eq!((&n["Name"], &n["Driver"]), (&"none".into(), &"null".into()));
    assert_eq!(b.ok(&["inspect", "-f", "{{.Driver}}", "host"]), "host\n");

    // Containers on them: listed by the network, naming it in their own.
    let detached = |name: &str, net: &str| {
        let args = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "bb",
            "sleep",
            "100",
        ];
        b.ok(&args).trim().to_string()
    };
    let on_host = detached("onhost", "host");
    let on_none = detached("onnone", "none");
    b.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "host",
        "bb",
        "true",
    ]);
    for (net, id, name) in [("host", &on_host, "onhost"), ("none", &on_none, "onnone")] {
        let n = inspect(&b, &["network", "inspect", net]);
        let members: Vec<&String> = n["Containers"].as_object().unwrap().keys().collect();
        assert_eq!(members, [id], "{n}");
        assert_eq!(n["Containers"][id]["Name"], name);
        let nets = inspect(&b, &["inspect", name])["NetworkSettings"]["Networks"].clone();
        let keys: Vec<&String> = nets.as_object().unwrap().keys().collect();
        assert_eq!(keys, [net], "{nets}");
        assert_eq!(nets[net]["NetworkID"], n["Id"], "{nets}");
        assert_eq!(nets[net]["IPAddress"], "");
    }
    // Created, not started: on host, but not joined yet (docker's empty id).
    let later = inspect(&b, &["inspect", "later"]);
    assert_eq!(
        later["NetworkSettings"]["Networks"]["host"]["NetworkID"],
        ""
    );

    // Never removed, created over or pruned.
    for net in ["host", "none", "bridge", &host_id[..12]] {
        let name = if net.len() == 12 { "host" } else { net };
        b.fails(
            &["network", "rm", net],
            1,
            &format!("{name} is a pre-defined network and cannot be removed"),
        );
    }
    for net in ["host", "none", "bridge"] {
        b.fails(
            &["network", "create", net],
            1,
            &format!("operation is not permitted on predefined {net} network"),
        );
    }
    b.fails(
        &["network", "create", "-d", "host", "h2"],
        1,
        "only one instance of \"host\" network is allowed",
    );
    b.fails(
        &["network", "create", "--driver", "null", "n2"],
        1,
        "only one instance of \"null\" network is allowed",
    );
    b.ok(&["network", "prune", "-f"]);
    assert_eq!(ls(&b), first);

    // connect and disconnect: dockerd's rules and words.
    network(&b, "front", 1, &[]);
    detached("onfront", "front");
    let host_rule =
        "container cannot be disconnected from host network or connected to host network";
    let shared = "container sharing network namespace with another container or host cannot be connected to any other network";
    let private = "container cannot be connected to multiple networks with one of the networks in private (none) mode";
    for (args, why) in [
        (["connect", "host", "onfront"], host_rule),
        (["connect", "host", "onnone"], host_rule),
        (["connect", "none", "onfront"], private),
        (["connect", "front", "onnone"], private),
        (["connect", "front", "onhost"], shared),
        (["connect", "none", "onhost"], shared),
        (
            ["connect", "host", "onhost"],
            "already connected to network host",
        ),
        (["disconnect", "host", "onhost"], host_rule),
        (
            ["disconnect", "host", "onfront"],
            "onfront is not connected to network host",
        ),
        (
            ["disconnect", "none", "onhost"],
            "onhost is not connected to network none",
        ),
    ] {
        let mut a = vec!["network"];
        a.extend(args);
        b.fails(&a, 1, why);
    }
    // Nothing changed.
    let keys = |name: &str| -> Vec<String> {
        inspect(&b, &["inspect", name])["NetworkSettings"]["Networks"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(keys("onhost"), ["host"]);
    assert_eq!(keys("onnone"), ["none"]);
    // dockerd would leave onnone on no network at all; berth says so.
    b.fails(
        &["network", "disconnect", "none", "onnone"],
        1,
        "is not supported",
    );
    assert_eq!(keys("onnone"), ["none"]);
    // A user network the container was created on leaves and comes back.
    b.ok(&["network", "disconnect", "front", "onfront"]);
    assert!(keys("onfront").is_empty());
    b.ok(&["network", "connect", "front", "onfront"]);
    assert_eq!(keys("onfront"), ["front"]);
}
