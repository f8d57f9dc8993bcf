//! The OCI runtime: an OCI bundle (a rootfs and `config.json`) becomes an
//! isolated process. Namespaces, rootfs and mounts, devices, cgroups v1 and
//! v2, seccomp, capabilities, rlimits, console, hooks and the runtime state
//! all live here.
//!
//! It knows nothing of images, networks or container names: callers (the
//! `berth-runtime` binary, the monitor) hand it a bundle and an id.
#![forbid(unsafe_code)]

pub mod cgroups;
mod channel;
pub mod cloned;
pub mod config;
mod console_proxy;
mod container;
pub mod error;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
mod hooks;
mod init;
pub mod namespaces;
pub mod seccomp;
pub mod signal;
pub mod state;
pub mod timing;

pub use container::{default_spec, exit_code, CreateOptions, ExecOptions, Runtime};
pub use error::{Error, ErrorKind, Result};
/// A user namespace holding id mappings, for idmapped mounts made outside
/// a container (the engine's rootfs of a container with its own).
pub use init::idmap::userns_with;
pub use init::user::CAP_NAMES;
pub use state::Status;
