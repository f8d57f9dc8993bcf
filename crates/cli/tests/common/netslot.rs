//! Network room for one test: tests run in parallel (threads of one
//! binary, and binaries of several engineers at once), and berth's default
//! network would otherwise be one bridge, one subnet and one nftables
//! table for all of them. Each `Berth` takes a slot — a /22 of
//! 10.87.128.0/17, bridges `bt<n>-<k>` and table `berth-t<n>` — through a
//! lock file, and points berth at it with a berth.toml of its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const LOCKS: &str = "/run/berth-test-slots";
const SLOTS: u32 = 32;

pub struct Slot {
    pub n: u32,
    lock: PathBuf,
    /// The berth.toml to pass as BERTH_CONFIG.
    pub config: PathBuf,
}

impl Slot {
    /// Takes a free slot (waiting if all are busy) and writes its config
    /// into `dir`. A slot whose holder died is cleaned and reused.
    pub fn acquire(dir: &Path) -> Slot {
        fs::create_dir_all(LOCKS).unwrap();
        for attempt in 0.. {
            for n in 0..SLOTS {
                let lock = Path::new(LOCKS).join(n.to_string());
                let take = || {
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&lock)
                        .is_ok()
                };
                let mut got = take();
                if !got {
                    let holder = fs::read_to_string(&lock).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    // An empty file is a holder between create and write.
                    if !alive && !holder.is_empty() && fs::remove_file(&lock).is_ok() {
                        got = take();
                    }
                }
                if got {
                    fs::write(&lock, std::process::id().to_string()).unwrap();
                    let slot = Slot {
                        n,
                        lock,
                        config: dir.join("berth.toml"),
                    };
                    // Whatever a crashed holder left.
                    slot.clean();
                    // DNS servers forward to loopback, where nothing (or a
                    // test's fake resolver) answers: never the host's.
                    let resolv = dir.join("resolv.conf");
                    fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
                    fs::write(
                        &slot.config,
                        format!(
                            "[network]\ndefault_bridge = \"{}\"\ndefault_subnet = \"{}\"\npool = \"10.87.{}.0/22\"\ntable = \"{}\"\nresolv_conf = \"{}\"\n",
                            slot.bridge(0),
                            slot.subnet(0),
                            slot.octet(0),
                            slot.table(),
                            resolv.display()
                        ),
                    )
                    .unwrap();
                    return slot;
                }
            }
            assert!(
                attempt < 600,
                "no free network slot in {LOCKS} for a minute"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        unreachable!()
    }

    fn octet(&self, k: u32) -> u32 {
        128 + 4 * self.n + k
    }

    /// Subnet `k` (0: the default network's; 1 to 3 for the test's own).
    pub fn subnet(&self, k: u32) -> String {
        assert!(k < 4);
        format!("10.87.{}.0/24", self.octet(k))
    }

    /// An address of subnet `k`.
    pub fn ip(&self, k: u32, host: u8) -> String {
        format!("10.87.{}.{host}", self.octet(k))
    }

    pub fn bridge(&self, k: u32) -> String {
        format!("bt{}-{k}", self.n)
    }

    pub fn table(&self) -> String {
        format!("berth-t{}", self.n)
    }

    /// What containers of the slot may leave: veths on its bridges and
    /// published-port rules (the bridges themselves are the networks').
    pub fn leftovers(&self) -> Vec<String> {
        let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("bt{}-", self.n);
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&format!("master {prefix}")))
            .map(|l| l.split(": ").nth(1).unwrap_or_default().to_string())
            .collect();
        let rules = Command::new("nft")
            .args(["-a", "list", "table", "ip", &self.table()])
            .output()
            .unwrap();
        for l in String::from_utf8_lossy(&rules.stdout).lines() {
            if l.contains("comment \"c=") {
                v.push(l.trim().to_string());
            }
        }
        v
    }

    fn clean(&self) {
        let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
        let prefix = format!("bt{}-", self.n);
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = l.split(": ").nth(1) {
                let name = name.split('@').next().unwrap_or(name);
                if name.starts_with(&prefix) {
                    let _ = Command::new("ip").args(["link", "del", name]).status();
                }
            }
        }
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &self.table()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.clean();
        let _ = fs::remove_file(&self.lock);
    }
}
