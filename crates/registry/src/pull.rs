//! `pull`: reference → manifest (choosing a platform from an index) →
//! config → layers, downloaded a few at a time, then handed to the image
//! store, which unpacks them by chain id and records the image.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use berth_image::content::{self, Provider};
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use berth_image::store::{Image, Lease, Store, StoreError};

use crate::client::{Client, Target};
use crate::error::{RegistryError, Result};
use crate::manifest::{Descriptor, ImageManifest, Manifest, Platform};
use crate::progress::{Event, Progress};

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index; the host's when `None`.
    pub platform: Option<Platform>,
}

/// What a pull produced.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: Image,
    /// The digest the reference resolved to (an index's, for a
    /// multi-platform image): docker's "Digest:" line and RepoDigest.
    pub digest: Digest,
    /// The platform's image manifest.
    pub manifest: ImageManifest,
}

/// The manifest resolved for one platform, with where it came from.
pub struct Resolved {
    pub target_digest: Digest,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    /// The image manifest's bytes, exactly as served.
    pub manifest_bytes: Vec<u8>,
    pub(crate) target: Target,
    pub(crate) repo: String,
}

impl Client {
    /// Docker Hub mirrors first (for pulls only), then the registry itself.
    fn pull_targets(&self, domain: &str) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        if domain == "docker.io" {
            for m in &self.config.mirrors {
                let base = m.trim_end_matches('/').to_string();
                let host = base.split("://").nth(1).unwrap_or(&base).to_string();
                out.push(Target { host, base });
            }
        }
        out.push(self.target(domain)?);
        Ok(out)
    }

    /// Resolves `reference` to an image manifest for `platform`: through
    /// an index when the reference names one. Nothing is stored.
    pub fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<Resolved> {
        let mut last = None;
        for target in self.pull_targets(reference.domain())? {
            match self.resolve_at(&target, reference, platform) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::debug!(registry = %target.host, error = %e, "resolve failed");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("there is always one target"))
    }

    fn resolve_at(
        &self,
        target: &Target,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Resolved> {
        let display = reference.to_string();
        let repo = reference.path();
        let tag_or_digest = match (reference.digest(), reference.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => berth_image::reference::DEFAULT_TAG.to_string(),
        };
        let top = self.fetch_manifest(target, repo, &tag_or_digest, &display)?;
        let (manifest_digest, manifest, bytes) =
            match Manifest::parse(&display, top.content_type.as_deref(), &top.bytes)? {
                Manifest::Image(m) => (top.digest.clone(), m, top.bytes.clone()),
                Manifest::Index(index) => {
                    let entry = index.select(&display, platform)?;
                    let sub = self.fetch_manifest(target, repo, entry.digest.as_str(), &display)?;
                    match Manifest::parse(&display, Some(&entry.media_type), &sub.bytes)? {
                        Manifest::Image(m) => (sub.digest, m, sub.bytes),
                        Manifest::Index(_) => {
                            return Err(RegistryError::InvalidManifest {
                                reference: display,
                                reason: format!("index entry {} is itself an index", entry.digest),
                            })
                        }
                    }
                }
            };
        Ok(Resolved {
            target_digest: top.digest,
            manifest_digest,
            manifest,
            manifest_bytes: bytes,
            target: target.clone(),
            repo: repo.to_string(),
        })
    }

    /// Pulls `reference` into `store` and records it under that
    /// reference. Blobs already in the content store are not fetched
    /// again; layers already unpacked (by any image) are not unpacked
    /// again. Everything is fetched under a lease, so a concurrent gc
    /// leaves it be and a failed pull takes back what it added.
    pub fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        opts: &PullOptions,
        progress: Progress<'_>,
    ) -> Result<Pulled> {
        let _span = tracing::info_span!("pull", reference = %reference).entered();
        progress(Event::Resolving {
            reference: reference.to_string(),
        });
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let resolved = self.resolve(reference, &platform)?;
        progress(Event::Resolved {
            digest: resolved.target_digest.clone(),
            layers: resolved
                .manifest
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.size))
                .collect(),
        });
        let lease = store.lease()?;
        match self.pull_in(store, &lease, reference, &resolved, progress) {
            Ok(image) => {
                lease.release()?;
                Ok(Pulled {
                    image,
                    digest: resolved.target_digest,
                    manifest: resolved.manifest,
                })
            }
            Err(e) => {
                if let Err(undo) = lease.collect() {
                    tracing::warn!(error = %undo, "could not take back a failed pull");
                }
                Err(e)
            }
        }
    }

    fn pull_in(
        &self,
        store: &Store,
        lease: &Lease<'_>,
        reference: &Reference,
        resolved: &Resolved,
        progress: Progress<'_>,
    ) -> Result<Image> {
        let manifest = &resolved.manifest;
        let config_desc = &manifest.config;
        lease.add_blob(&config_desc.digest)?;
        if !store.content().exists(&config_desc.digest)? {
            self.download_blob(
                &resolved.target,
                &resolved.repo,
                config_desc,
                store.content(),
                &crate::progress::ignore,
            )?;
        }
        let config = content::read_blob(store.content(), &config_desc.digest)?;
        self.download_layers(store, lease, resolved, progress)?;
        for l in &manifest.layers {
            progress(Event::Extracting {
                layer: l.digest.clone(),
            });
        }
        let image = store
            .register_in(
                lease,
                &resolved.manifest_bytes,
                &config,
                std::slice::from_ref(reference),
            )
            .map_err(|e| match e {
                StoreError::Invalid(reason) => RegistryError::InvalidManifest {
                    reference: reference.to_string(),
                    reason,
                },
                other => other.into(),
            })?;
        for l in &manifest.layers {
            progress(Event::Done {
                layer: l.digest.clone(),
            });
        }
        Ok(image)
    }

    /// Downloads the layers missing from the content store with up to
    /// `max_concurrent_downloads` threads.
    fn download_layers(
        &self,
        store: &Store,
        lease: &Lease<'_>,
        resolved: &Resolved,
        progress: Progress<'_>,
    ) -> Result<()> {
        let layers = &resolved.manifest.layers;
        let mut missing: Vec<&Descriptor> = Vec::new();
        for l in layers {
            lease.add_blob(&l.digest)?;
            let present = store.content().exists(&l.digest)?;
            progress(if present {
                Event::Exists {
                    layer: l.digest.clone(),
                }
            } else {
                Event::Waiting {
                    layer: l.digest.clone(),
                }
            });
            // A layer listed twice is fetched once.
            if !present && !missing.iter().any(|m| m.digest == l.digest) {
                missing.push(l);
            }
        }
        let workers = self
            .config
            .max_concurrent_downloads
            .clamp(1, 16)
            .min(missing.len());
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let errors: Vec<RegistryError> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (next, failed, missing) = (&next, &failed, &missing);
                    s.spawn(move || -> Result<()> {
                        loop {
                            let k = next.fetch_add(1, Ordering::SeqCst);
                            // After a failure no new download starts.
                            if k >= missing.len() || failed.load(Ordering::SeqCst) {
                                return Ok(());
                            }
                            let r = self.download_blob(
                                &resolved.target,
                                &resolved.repo,
                                missing[k],
                                store.content(),
                                progress,
                            );
                            if let Err(e) = r {
                                failed.store(true, Ordering::SeqCst);
                                return Err(e);
                            }
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| match h.join() {
                    Ok(r) => r.err(),
                    Err(p) => std::panic::resume_unwind(p),
                })
                .collect()
        });
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
