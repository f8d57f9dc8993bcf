//! Guards that undo what a test made, even when it panics, and names
//! unique to the test process so parallel tests never collide.
#![allow(dead_code)]

pub mod fake_dns;

use std::process::Command;

use berth_net::nft::{Family, Firewall};
use berth_net::store::NetworkConfig;

/// A name unique to this process and tag, at most 15 bytes (IFNAMSIZ).
pub fn unique(tag: &str) -> String {
    let name = format!("bt{}{}", tag, std::process::id() % 100_000);
    assert!(name.len() <= 15, "{name} too long for an interface name");
    name
}

/// Deletes an nftables table of the test's own on drop.
pub struct TableGuard(pub String);

impl TableGuard {
    pub fn new(tag: &str) -> TableGuard {
        TableGuard(format!("berth_test_{}", unique(tag)))
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        for family in [Family::V4, Family::V6] {
            if let Ok(mut fw) = Firewall::open_family(&self.0, family) {
                let _ = fw.delete_table();
            }
        }
    }
}

/// Deletes an interface on drop (a bridge, or a veth and its peer).
pub struct LinkGuard(pub String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Ok(mut r) = berth_net::rtnl::Rtnl::open() {
            let _ = r.del_link(&self.0);
        }
    }
}

/// `nft list table ip NAME`: tests may exec nft to inspect; the library
/// never does.
pub fn nft_list(table: &str) -> String {
    nft_list_family("ip", table)
}

pub fn nft_list_family(family: &str, table: &str) -> String {
    let out = Command::new("nft")
        .args(["list", "table", family, table])
        .output()
        .expect("nft (apt-get install nftables)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

pub fn net_config(name: &str, bridge: &str, subnet: &str) -> NetworkConfig {
    let subnet: berth_net::subnet::Ipv4Net = subnet.parse().unwrap();
    NetworkConfig {
        name: name.into(),
        id: "0".repeat(64),
        bridge: bridge.into(),
        subnet,
        gateway: subnet.first_host(),
        ip_range: None,
        internal: false,
        dns: false,
        labels: Default::default(),
        subnet6: None,
        gateway6: None,
    }
}

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_net::{Net, NetConfig};

/// A [`Net`] with its own database, runroot, nftables table and default
/// bridge; on drop it prunes everything, removes its networks and table.
pub struct TestNet {
    pub net: Net,
    pub dir: tempfile::TempDir,
}

impl TestNet {
    /// `tag` makes names unique among tests; `third` picks the test's
    /// 10.201.<third>.0/24 default subnet.
    pub fn new(tag: &str, third: u8) -> TestNet {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = NetConfig::new(dir.path().join("net.db"), dir.path().join("run"));
        cfg.table = format!("berth_test_{}", unique(tag));
        cfg.default_bridge = unique(tag);
        cfg.default_subnet = format!("10.201.{third}.0/24").parse().unwrap();
        cfg.pool = format!("10.202.{third}.0/24").parse().unwrap();
        TestNet {
            net: Net::new(cfg),
            dir,
        }
    }

    pub fn runroot(&self) -> PathBuf {
        self.net.config().runroot.clone()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = self.net.prune(&|_| false);
        if let Ok(nets) = self.net.networks() {
            for n in nets {
                let _ = self.net.remove_network(&n.name);
                if let Ok(mut r) = berth_net::rtnl::Rtnl::open() {
                    let _ = r.del_link(&n.bridge);
                }
            }
        }
        for family in [Family::V4, Family::V6] {
            if let Ok(mut fw) = Firewall::open_family(&self.net.config().table, family) {
                let _ = fw.delete_table();
            }
        }
    }
}

/// Removes a namespace on drop.
pub struct NsGuard(pub PathBuf);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = berth_net::netns::remove(&self.0);
    }
}

/// Kills and reaps a child on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A persistent busybox TCP server inside the namespace at `ns`, answering
/// every connection with `reply`. nsenter is fine in tests; the library
/// itself never execs.
pub fn serve_in(ns: &Path, port: u16, reply: &str) -> ChildGuard {
    let child = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(berth_testutil::busybox())
        .args(["nc", "-ll", "-p", &port.to_string(), "-e", "echo", reply])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("nsenter");
    ChildGuard(child)
}

/// Connects to `addr` until it answers (the server may still be
/// starting) and returns what it sent.
pub fn read_from(addr: std::net::SocketAddr) -> String {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if !out.is_empty() {
                return out;
            }
        }
        assert!(Instant::now() < deadline, "nothing answered on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` in a thread inside a network namespace of its own (loopback
/// up, nothing else), so what it makes — bridges, nftables tables,
/// sysctls, sockets — never touches the host's. Threads and processes it
/// starts inherit the namespace.
pub fn in_lab<T: Send>(tag: &str, f: impl FnOnce() -> T + Send) -> T {
    let dir = tempfile::tempdir().unwrap();
    let lab = NsGuard(berth_net::netns::create(dir.path(), &format!("lab-{tag}")).unwrap());
    let mut out = None;
    let ran = berth_net::netns::run_in(&lab.0, || {
        out = Some(f());
        Ok(())
    });
    ran.expect("the test body panicked (see above)");
    out.expect("ran")
}

/// `busybox nslookup NAME SERVER` from inside the namespace `ns`: whether
/// it resolved, and what it printed.
pub fn nslookup(ns: &Path, name: &str, server: &str) -> (bool, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(berth_testutil::busybox())
        .args(["nslookup", name, server])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
