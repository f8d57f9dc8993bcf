//! The only crate of berth allowed `unsafe`: thin, safe wrappers over the
//! system calls that rustix does not offer (clone with namespace flags,
//! execve from a prepared argument list, close_range), each with the
//! invariant it relies on written beside it.
//!
//! It holds no policy: what to clone, when to exec and which fds to keep
//! are decided by the runtime. Nothing here allocates in a child between
//! clone and exec except where the caller already proved it is single
//! threaded.

pub mod activation;
pub mod bpf;
pub mod memory;
pub mod mount;
pub mod process;
pub mod seccomp;
pub mod signal;
