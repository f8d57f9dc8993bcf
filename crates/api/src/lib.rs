//! `berth serve`: the Docker Engine HTTP API mapped onto the engine. Not yet
//! written: see the API issue.
#![forbid(unsafe_code)]
