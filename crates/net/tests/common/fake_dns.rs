//! A resolver standing in for the host's, on a socket the test bound
//! (inside a namespace of its own): `outside.test` is 192.0.2.99,
//! anything else NXDOMAIN, and it remembers every name it was asked.
//! Shared with the CLI's network tests.
#![allow(dead_code)]

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};

use berth_net::dns::wire;

pub const OUTSIDE: &str = "outside.test";
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

pub struct FakeUpstream {
    pub port: u16,
    asked: Arc<Mutex<Vec<String>>>,
}

impl FakeUpstream {
    pub fn serve(sock: UdpSocket) -> FakeUpstream {
        let port = sock.local_addr().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                let Ok(q) = wire::parse_query(&buf[..n]) else {
                    continue;
                };
                log.lock().unwrap().push(q.name.clone());
                let r = match (q.name == OUTSIDE, q.qtype) {
                    (true, wire::TYPE_A) => {
                        wire::reply(&q, wire::NOERROR, &[wire::Answer::A(OUTSIDE_IP)], 512)
                    }
                    (true, _) => wire::reply(&q, wire::NOERROR, &[], 512),
                    (false, _) => wire::reply(&q, wire::NXDOMAIN, &[], 512),
                };
                let _ = sock.send_to(&r, peer);
            }
        });
        FakeUpstream { port, asked }
    }

    pub fn asked(&self, name: &str) -> bool {
        self.asked.lock().unwrap().iter().any(|n| n == name)
    }
}
