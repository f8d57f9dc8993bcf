//! Shared test harness: stores, images built in memory, and a proxy that
//! misbehaves on purpose (the registry itself is berth_testutil::peers').
#![allow(dead_code)]

pub mod image;
pub mod proxy;
pub mod tokens;

use std::path::Path;

use berth_image::snapshot::native::NativeSnapshotter;
use berth_image::store::Store;
use berth_registry::{Client, CredentialStore, RegistryConfig};

/// A fresh image store (native snapshots: no mounts needed to look in).
pub fn store(dir: &Path) -> Store {
    let snap = NativeSnapshotter::open(&dir.join("snapshots")).unwrap();
    Store::open(dir, Box::new(snap)).unwrap()
}

/// A client with no credentials file and `certs_dir` for TLS.
pub fn client_with(certs_dir: &Path, credentials: Option<CredentialStore>) -> Client {
    let config = RegistryConfig {
        certs_dir: certs_dir.to_path_buf(),
        ..RegistryConfig::default()
    };
    Client::new(config, credentials)
}

pub fn client() -> Client {
    client_with(Path::new("/nonexistent"), None)
}

/// Collects progress events for assertions.
#[derive(Default)]
pub struct Events(pub std::sync::Mutex<Vec<berth_registry::Event>>);

impl Events {
    pub fn sink(&self) -> impl Fn(berth_registry::Event) + Send + Sync + '_ {
        move |e| self.0.lock().unwrap().push(e)
    }

    pub fn take(&self) -> Vec<berth_registry::Event> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}
