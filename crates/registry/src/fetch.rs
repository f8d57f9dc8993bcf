//! Fetching from a repository: manifests (verified against the digest
//! they were asked by) and blobs, streamed into the content store with
//! HTTP range resume after a broken connection and digest verification
//! before anything becomes visible.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use berth_image::content::{ContentError, ContentWriter, Info, Ingester};
use berth_image::digest::Digest;

use crate::auth::Scope;
use crate::client::{backoff, Client, Request, Target};
use crate::error::{RegistryError, Result};
use crate::manifest::{Descriptor, ACCEPT};
use crate::progress::{Event, Progress};

/// Manifests are small; anything bigger is not one.
const MANIFEST_LIMIT: u64 = 4 << 20;
const ATTEMPTS: u32 = 5;
/// How often (in bytes) a download reports progress.
const REPORT_EVERY: u64 = 256 << 10;

/// Whoever follows a download as it happens (a pull unpacking the layer
/// meanwhile) hears of each new ingest and of every write to it.
pub(crate) trait Tap: Sync {
    /// A new ingest started (the first, or a fresh one after the server
    /// ignored a `Range`): `reader` reads it from its first byte.
    fn ingest(&self, reader: Option<std::fs::File>);
    /// The ingest now holds `size` bytes.
    fn wrote(&self, size: u64);
}

/// A manifest as fetched: its bytes, digest and declared media type.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub content_type: Option<String>,
}

impl Client {
    /// GETs the manifest `tag_or_digest` of `repo`. A manifest asked for
    /// by digest must hash to it; one asked for by tag is named by its own
    /// hash (the registry's `Docker-Content-Digest` is only a claim).
    pub(crate) fn fetch_manifest(
        &self,
        target: &Target,
        repo: &str,
        tag_or_digest: &str,
        display: &str,
    ) -> Result<Fetched> {
        let url = format!("{}/v2/{repo}/manifests/{tag_or_digest}", target.base);
        let req = Request::new("GET", url).header("Accept", ACCEPT);
        let resp = match self.send(target, &Scope::pull(repo), &req) {
            Ok(r) => r,
            Err(e) => {
                let anonymous = matches!(self.credentials_for(&target.host), Ok(None));
                return Err(not_found_as(e, display, anonymous));
            }
        };
        let content_type = resp.header("content-type").map(str::to_string);
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MANIFEST_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Unavailable {
                registry: target.host.clone(),
                reason: format!("reading manifest of {display}: {e}"),
            })?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(RegistryError::InvalidManifest {
                reference: display.to_string(),
                reason: "larger than 4 MiB".into(),
            });
        }
        let digest = Digest::of(&bytes);
        if let Ok(want) = Digest::parse(tag_or_digest) {
            if want != digest {
                return Err(RegistryError::DigestMismatch {
                    registry: target.host.clone(),
                    expected: want,
                    actual: digest,
                });
            }
        }
        Ok(Fetched {
            bytes,
            digest,
            content_type,
        })
    }

    /// Downloads blob `desc` of `repo` into `ingester`. A broken transfer
    /// resumes where it stopped (`Range`); the bytes become a blob only if
    /// they hash to `desc.digest`; on any error, or once `cancel` is set,
    /// the partial ingest is dropped, which deletes it. `tap` follows the
    /// ingest as it grows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn download_blob(
        &self,
        target: &Target,
        repo: &str,
        desc: &Descriptor,
        ingester: &dyn Ingester,
        progress: Progress<'_>,
        cancel: &AtomicBool,
        tap: Option<&dyn Tap>,
    ) -> Result<Info> {
        let scope = Scope::pull(repo);
        let url = format!("{}/v2/{repo}/blobs/{}", target.base, desc.digest);
        let mut writer = ingester.writer()?;
        if let Some(t) = tap {
            t.ingest(writer.reopen().ok());
        }
        let mut failures = 0;
        loop {
            let done = writer.status().size;
            let mut req = Request::new("GET", url.clone());
            if done > 0 {
                req = req.header("Range", format!("bytes={done}-"));
            }
            let resp = match self.send(target, &scope, &req) {
                Ok(r) => r,
                Err(RegistryError::Http { status: 404, .. }) => {
                    return Err(RegistryError::BlobUnknown {
                        registry: target.host.clone(),
                        repository: repo.to_string(),
                        digest: desc.digest.clone(),
                    })
                }
                Err(e) => return Err(e),
            };
            if done > 0 && resp.status() != 206 {
                // The server ignored the range: take the whole blob again.
                tracing::debug!(blob = %desc.digest, status = resp.status(), "range not honoured; restarting");
                writer = ingester.writer()?;
                if let Some(t) = tap {
                    t.ingest(writer.reopen().ok());
                }
            }
            match copy_body(&target.host, resp, &mut writer, desc, progress, cancel, tap) {
                Ok(()) => break,
                Err(Interrupted::Fatal(e)) => return Err(e),
                Err(Interrupted::Io(e)) => {
                    failures += 1;
                    let offset = writer.status().size;
                    if failures >= ATTEMPTS {
                        return Err(RegistryError::Unavailable {
                            registry: target.host.clone(),
                            reason: format!("downloading blob {} failed {failures} times, last at byte {offset}: {e}", desc.digest),
                        });
                    }
                    tracing::debug!(blob = %desc.digest, offset, error = %e, "download interrupted; resuming");
                    progress(Event::Retrying {
                        layer: desc.digest.clone(),
                        offset,
                    });
                    std::thread::sleep(backoff(failures));
                }
            }
        }
        progress(Event::Verifying {
            layer: desc.digest.clone(),
        });
        writer
            .commit(Some(&desc.digest), Some(desc.size))
            .map_err(|e| match e {
                ContentError::DigestMismatch { expected, actual } => {
                    RegistryError::DigestMismatch {
                        registry: target.host.clone(),
                        expected,
                        actual,
                    }
                }
                other => other.into(),
            })
    }
}

/// Copies a response body into `writer` until `desc.size` bytes are
/// there. An early end is an interruption (resumable); more bytes than
/// the descriptor says is fatal.
fn copy_body(
    registry: &str,
    resp: ureq::Response,
    writer: &mut Box<dyn ContentWriter>,
    desc: &Descriptor,
    progress: Progress<'_>,
    cancel: &AtomicBool,
    tap: Option<&dyn Tap>,
) -> std::result::Result<(), Interrupted> {
    let mut body = resp.into_reader();
    let mut buf = vec![0u8; 256 << 10];
    let mut last_report = 0;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Interrupted::Fatal(RegistryError::Unavailable {
                registry: registry.to_string(),
                reason: format!("download of blob {} cancelled", desc.digest),
            }));
        }
        let done = writer.status().size;
        if done > desc.size {
            return Err(Interrupted::Fatal(RegistryError::SizeMismatch {
                registry: registry.to_string(),
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: done,
            }));
        }
        if done - last_report >= REPORT_EVERY || (done == desc.size && last_report != done) {
            last_report = done;
            progress(Event::Downloading {
                layer: desc.digest.clone(),
                done,
                total: desc.size,
            });
        }
        let n = match body.read(&mut buf) {
            Ok(0) if done == desc.size => return Ok(()),
            Ok(0) => {
                return Err(Interrupted::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {done} of {} bytes", desc.size),
                )))
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Interrupted::Io(e)),
        };
        writer.write_all(&buf[..n]).map_err(|e| {
            Interrupted::Fatal(crate::error::io_err(format!(
                "writing blob {}",
                desc.digest
            ))(e))
        })?;
        if let Some(t) = tap {
            t.wrote(done + n as u64);
        }
    }
}

enum Interrupted {
    /// The connection broke: worth resuming.
    Io(std::io::Error),
    Fatal(RegistryError),
}

/// A 404 on a manifest is "manifest unknown" for the reference; a
/// refusal of an anonymous pull is most often a repository that is not
/// there (Docker Hub answers 401 for those), said as docker says it.
fn not_found_as(e: RegistryError, display: &str, anonymous: bool) -> RegistryError {
    match e {
        RegistryError::Unauthorized { registry, reason } if anonymous => RegistryError::Unauthorized {
            registry,
            reason: format!(
                "pull access denied for {display}, repository does not exist or may require 'berth login' ({reason})"
            ),
        },
        RegistryError::Http {
            status: 404,
            ref message,
            ref registry,
            ..
        } => {
            if message.contains("NAME_UNKNOWN") {
                RegistryError::RepositoryNotFound {
                    registry: registry.clone(),
                    repository: display.to_string(),
                }
            } else {
                RegistryError::ManifestUnknown {
                    reference: display.to_string(),
                }
            }
        }
        other => other,
    }
}
