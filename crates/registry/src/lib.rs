//! The OCI distribution client: manifests, blobs, auth and TLS, with
//! progress reported as a stream of events (no UI). Not yet written: see
//! the registries issue.
#![forbid(unsafe_code)]
