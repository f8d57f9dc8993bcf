//! Networks, IP address management, bridges, veths and network namespaces
//! over netlink, published ports and container DNS. Not yet written: see
//! the networking issue.
#![forbid(unsafe_code)]
