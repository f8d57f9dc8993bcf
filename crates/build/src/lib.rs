//! berth's image builder, the pure half: the Dockerfile parser
//! ([`dockerfile`]), the build planner with its stage graph, build-arg
//! scoping and cache keys ([`plan`]), and `.dockerignore` matching
//! ([`dockerignore`]).
//!
//! Nothing here touches the filesystem, the network or the engine: the
//! executor that runs steps as containers lives elsewhere and feeds in what
//! only it can know (base image environments, content digests of COPY
//! sources). That keeps all of this testable with plain unit tests and
//! fuzzable.
#![forbid(unsafe_code)]

pub mod dockerfile;
pub mod dockerignore;
pub mod plan;
