//! berth's image builder. The pure half: the Dockerfile parser
//! ([`dockerfile`]), the build planner with its stage graph, build-arg
//! scoping and cache keys ([`plan`]), and `.dockerignore` matching
//! ([`dockerignore`]); none of it touches the filesystem, the network or
//! the engine, so it is unit-tested and fuzzed. The executor ([`exec`])
//! feeds the planner what only it can know (base image environments,
//! content digests of COPY sources) and does the work: RUN steps as
//! containers through the engine, COPY/ADD layers written from the files,
//! images and the build cache in the store. It prints nothing: it reports
//! events for the CLI (or the API) to show.
#![forbid(unsafe_code)]

pub mod dockerfile;
pub mod dockerignore;
pub mod exec;
pub mod plan;
