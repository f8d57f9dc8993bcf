//! Containers, the state database and the lifecycle; builds the OCI spec
//! from image config, options and Docker's default security profile.
//!
//! It decides; it does not run containers itself: `berth-monitor` (one per
//! container) holds the container's process through the runtime library,
//! and this crate talks to it. It must not print, parse flags or exit: the
//! binaries do that with the [`ErrorKind`] of its errors.
#![forbid(unsafe_code)]

pub mod attach;
mod container;
pub mod cp;
pub mod db;
pub mod error;
pub mod events;
pub mod filters;
pub mod health;
pub mod hostconfig;
mod hostspec;
pub mod image_ops;
pub mod images;
pub mod leftovers;
pub mod lifecycle;
pub mod logfile;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod namespaces;
pub mod network;
pub mod options;
pub mod paths;
pub mod protocol;
pub mod pull;
pub mod reaper;
pub mod recover;
pub mod restart;
pub mod security;
pub mod spec;
pub mod status;
pub mod stream;
pub use berth_runtime::{signal, timing};
pub mod tuning;
pub mod user;
pub mod userns;
mod view;
pub mod volumes;

pub use container::{unmount, Engine};
pub use db::{Container, ContainerConfig, State};
pub use error::{Error, ErrorKind, Result};
pub use hostconfig::HostConfig;
pub use options::{ExecOptions, ImageConfig, Network, RunOptions};
pub use paths::Paths;
pub use view::{inspect_json, LogOptions};
