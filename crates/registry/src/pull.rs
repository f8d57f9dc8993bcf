//! `pull`: reference → manifest (choosing a platform from an index) →
//! config → layers, downloaded a few at a time and unpacked by the image
//! store (by chain id) as they arrive; the image is recorded last.

use std::sync::atomic::AtomicBool;

use berth_image::content::{self, Provider};
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use berth_image::store::{EarlyUnpack, Image, Lease, Store, StoreError};

use crate::arrivals::Arrivals;
use crate::client::{Client, Target};
use crate::error::{RegistryError, Result};
use crate::manifest::{ImageManifest, Manifest, Platform};
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
        let asked = opts.platform.as_ref();
        match self.pull_in(store, &lease, reference, &resolved, asked, progress) {
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
                Err(e.or_disk_full())
            }
        }
    }

    /// Downloads what is missing and unpacks as the layers arrive:
    /// download workers fetch blobs, the biggest first, while the store's
    /// [`EarlyUnpack`] workers unpack each as it downloads (see
    /// [`Arrivals`]); once every blob is in, the store records the image,
    /// adopting those layers. The first failed download stops the others.
    fn pull_in(
        &self,
        store: &Store,
        lease: &Lease<'_>,
        reference: &Reference,
        resolved: &Resolved,
        platform: Option<&Platform>,
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
                &AtomicBool::new(false),
                None,
            )?;
        }
        let config = content::read_blob(store.content(), &config_desc.digest)?;
        // An index was already chosen from; a lone manifest is checked
        // against the platform asked for, as docker does.
        if let Some(want) = platform {
            if resolved.target_digest == resolved.manifest_digest {
                check_platform(&reference.to_string(), want, &config)?;
            }
        }

        let layers = &manifest.layers;
        let mut present = Vec::with_capacity(layers.len());
        for l in layers {
            lease.add_blob(&l.digest)?;
            let here = store.content().exists(&l.digest)?;
            progress(if here {
                Event::Exists {
                    layer: l.digest.clone(),
                }
            } else {
                Event::Waiting {
                    layer: l.digest.clone(),
                }
            });
            present.push((l.digest.clone(), here));
        }
        let arrivals = Arrivals::new(
            layers,
            |d| present.iter().any(|(p, here)| *p == d.digest && *here),
            progress,
        );
        let early = EarlyUnpack::new(Some(Box::new(|d: &Digest| arrivals.staged(d))));
        let downloaders = self
            .config
            .max_concurrent_downloads
            .clamp(1, MAX_CONCURRENT_DOWNLOADS)
            .min(arrivals.missing());
        // One per download at least: a follower mostly waits for the
        // network, and one held up must not keep another layer waiting.
        let unpackers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(downloaders)
            .min(arrivals.missing());
        std::thread::scope(|s| {
            for _ in 0..unpackers {
                s.spawn(|| early.work(store));
            }
            let downloads: Vec<_> = (0..downloaders)
                .map(|_| {
                    s.spawn(|| {
                        while let Some((b, desc)) = arrivals.next() {
                            let r = self.download_blob(
                                &resolved.target,
                                &resolved.repo,
                                desc,
                                store.content(),
                                progress,
                                &arrivals.cancel,
                                Some(&arrivals.tap(b, &early)),
                            );
                            arrivals.arrived(b, r);
                        }
                    })
                })
                .collect();
            for d in downloads {
                if let Err(p) = d.join() {
                    std::panic::resume_unwind(p);
                }
            }
            early.close(arrivals.failed());
        });
        if let Some(e) = arrivals.take_failure() {
            return Err(e);
        }
        arrivals.registering();
        let registered = store.register_early(
            lease,
            &resolved.manifest_bytes,
            &config,
            std::slice::from_ref(reference),
            Some(&early),
        );
        if registered.is_ok() {
            arrivals.finish();
        }
        registered.map_err(|e| match e {
            StoreError::Invalid(reason) => RegistryError::InvalidManifest {
                reference: reference.to_string(),
                reason,
            },
            other => other.into(),
        })
    }
}

/// Refuses an image whose config names another platform than `want`;
/// a config that names none is taken as it is.
fn check_platform(reference: &str, want: &Platform, config: &[u8]) -> Result<()> {
    let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(config) else {
        return Ok(());
    };
    let field = |k: &str| {
        cfg[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (Some(os), Some(architecture)) = (field("os"), field("architecture")) else {
        return Ok(());
    };
    let actual = Platform {
        os,
        architecture,
        variant: field("variant"),
    };
    if want.matches(&actual) {
        return Ok(());
    }
    Err(RegistryError::UnsupportedPlatform {
        reference: reference.to_string(),
        wanted: want.to_string(),
        available: vec![actual.to_string()],
    })
}

/// Most layers one pull downloads at once, whatever the configuration
/// asks: more only splits the same link into more connections.
pub const MAX_CONCURRENT_DOWNLOADS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_manifest_must_be_for_the_platform_asked() {
        let amd = br#"{"os":"linux","architecture":"amd64","rootfs":{}}"#;
        let want = |s: &str| Platform::parse(s).unwrap();
        check_platform("r", &want("linux/amd64"), amd).unwrap();
        let e = check_platform("r", &want("linux/s390x"), amd).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r: no manifest for platform linux/s390x (available: linux/amd64)"
        );
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        // arm64 is v8 whether the config says so or not.
        let arm = br#"{"os":"linux","architecture":"arm64"}"#;
        check_platform("r", &want("linux/arm64/v8"), arm).unwrap();
        // Nothing said, nothing refused.
        check_platform("r", &want("linux/s390x"), b"{}").unwrap();
    }
}
