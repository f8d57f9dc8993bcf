//! `berth serve`: the Docker Engine HTTP API (versions 1.40 to 1.49) on
//! unix sockets and TCP (with TLS client certificates off loopback),
//! mapped onto the engine. Every docker
//! client (the docker CLI, compose, docker-py, testcontainers) talks to
//! berth through it.
//!
//! It parses requests into the engine's option structs and turns the
//! engine's answers and [`berth_engine::ErrorKind`]s into docker's JSON
//! and status codes; it decides nothing about containers itself. The
//! engine is blocking: its calls run on tokio's blocking threads. The only
//! state of its own is what lives between two requests of one client: an
//! attach waiting for its container's start, exec instances, and the exit
//! codes of containers it saw end.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

mod archive;
mod body;
mod build;
mod containers;
mod create;
mod error;
mod events;
mod exec;
#[doc(hidden)]
pub mod fuzzing;
mod images;
mod images_io;
mod listen;
mod logs;
mod networks;
mod query;
mod router;
mod server;
mod state;
mod stats;
mod streams;
mod system;
pub use system::{info_json, version_json};

/// The minor number of [`API_VERSION`]: the answers of a client that
/// names no version.
pub fn api_minor() -> u32 {
    router::minor_of(API_VERSION)
}
mod tls;
mod volumes;
mod wait;
mod websocket;

pub use error::Error;
pub use listen::{Host, DEFAULT_SOCKET};
pub use server::{serve, ServeOptions};
pub use tls::TlsOptions;

/// The newest API version served; `/_ping` and every response say so.
/// 1.49 is docker 28.1's: clients built on it (bollard 0.19, so the
/// testcontainers crate) send it without negotiating.
pub const API_VERSION: &str = "1.49";
/// The oldest API version served.
pub const MIN_API_VERSION: &str = "1.40";
