//! Networks for berth containers: network namespaces, bridges and veths,
//! IP address management, published ports (nftables NAT), and the
//! /etc/hosts and resolv.conf a container sees.
//!
//! Everything on the path of starting a container talks to the kernel over
//! netlink (rtnetlink for links, addresses and routes; nfnetlink for
//! nftables): this crate never runs `ip`, `nft` or `iptables`, and needs
//! no async runtime. It knows nothing about images or the container
//! lifecycle; the engine hands it ids, namespace paths and options as
//! plain data.
//!
//! The engine uses [`Net`] ([`network`]) and the helpers in [`netns`],
//! [`ports`] and [`files`]; [`dns`] is the server of user networks; [`rtnl`], [`nft`] and [`store`] are the layers
//! beneath, public for tests and tools.
#![forbid(unsafe_code)]

pub mod dns;
pub mod error;
pub mod files;
pub mod netns;
pub mod network;
pub mod nft;
pub mod ports;
pub mod rtnl;
pub mod store;
pub mod subnet;
mod sysctl;

pub use error::{Error, ErrorKind, Result};
pub use network::{
    AttachOptions, Attachment, Net, NetConfig, NetworkOptions, PortHandle, PruneReport,
};
pub use ports::{PortMapping, PortSpec, Proto};
pub use store::{Lease, LeaseRequest, NetworkConfig, Predefined, PREDEFINED};
pub use subnet::{Ipv4Net, Ipv6Net};
