//! The OCI distribution client: resolving references to manifests
//! (choosing a platform from an index), pulling blobs into the image
//! crate's content store (verified, resumed, a few at a time) and
//! unpacking them into its snapshots, pushing images, and authenticating
//! (basic, bearer tokens, docker's config.json and credential helpers)
//! over TLS with per-registry certificates.
//!
//! It reports progress as [`Event`]s and draws no UI; it reads no global
//! configuration of its own: the engine hands it a [`RegistryConfig`] and
//! a [`CredentialStore`].
#![forbid(unsafe_code)]

mod arrivals;
mod auth;
mod client;
pub mod config;
pub mod credentials;
mod error;
mod fetch;
pub mod manifest;
pub mod progress;
mod pull;
mod push;
mod tags;
mod tls;

pub use auth::Scope;
pub use client::Client;
pub use config::RegistryConfig;
pub use credentials::{CredentialStore, Credentials};
pub use error::{ErrorKind, RegistryError, Result};
pub use manifest::{Descriptor, ImageManifest, Index, Manifest, Platform};
pub use progress::{Event, Progress};
pub use pull::{PullOptions, Pulled, Resolved};

/// `berth login`: checks `creds` against `registry`, then saves them in
/// `store` (docker's config.json or its credential helper).
pub fn login(
    client: &Client,
    store: &CredentialStore,
    registry: &str,
    creds: &Credentials,
) -> Result<()> {
    let registry = normalize_registry(registry);
    client.check_login(&registry, creds)?;
    store.store(&registry, creds)
}

/// `berth logout`: forgets `registry`'s credentials; `Ok(false)` if
/// there were none.
pub fn logout(store: &CredentialStore, registry: &str) -> Result<bool> {
    store.erase(&normalize_registry(registry))
}

/// What `login`/`logout` accept as a server (`https://host:5000/v1/`,
/// `index.docker.io`, nothing) as the registry domain references use.
pub fn normalize_registry(server: &str) -> String {
    let s = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}
