//! The Dockerfile: parser, planner with cache keys, and the executor that
//! runs steps through the engine. Not yet written: see the builds issue.
#![forbid(unsafe_code)]
