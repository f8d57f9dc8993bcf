//! `push`: blobs first (skipped when the registry has them, mounted from
//! another repository of the same registry when possible, else uploaded
//! in one PUT or in PATCH chunks), the manifest last, so a tag never
//! points at a manifest whose blobs are missing.

use berth_image::content::{self, Provider};
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use berth_image::store::{Image, Store};

use crate::auth::Scope;
use crate::client::{absolute, with_query, Body, Client, Request, Target};
use crate::error::{RegistryError, Result};
use crate::manifest::{Descriptor, ImageManifest, OCI_MANIFEST};
use crate::progress::{Event, Progress};

impl Client {
    /// Pushes `image` from `store` as `reference` (by its tag, or
    /// `latest`). Other tags of the image in the same registry are tried
    /// as cross-repository mount sources. Returns the manifest digest.
    pub fn push(
        &self,
        store: &Store,
        image: &Image,
        reference: &Reference,
        progress: Progress<'_>,
    ) -> Result<Digest> {
        let _span = tracing::info_span!("push", reference = %reference).entered();
        let bytes = content::read_blob(store.content(), &image.manifest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidManifest {
                reference: reference.to_string(),
                reason: format!("stored manifest {}: {e}", image.manifest),
            })?;
        let mount_from: Vec<String> = image
            .tags
            .iter()
            .filter(|t| t.domain() == reference.domain() && t.path() != reference.path())
            .map(|t| t.path().to_string())
            .collect();
        for desc in manifest.layers.iter().chain([&manifest.config]) {
            self.push_blob(reference, store.content(), desc, &mount_from, progress)?;
        }
        let media_type = manifest.media_type.as_deref().unwrap_or(OCI_MANIFEST);
        self.put_manifest(reference, media_type, &bytes)
    }

    /// Makes blob `desc` (read from `provider`) present in `reference`'s
    /// repository.
    pub fn push_blob(
        &self,
        reference: &Reference,
        provider: &(dyn Provider + Sync),
        desc: &Descriptor,
        mount_from: &[String],
        progress: Progress<'_>,
    ) -> Result<()> {
        let target = self.target(reference.domain())?;
        let repo = reference.path();
        let scope = Scope::push(repo);
        let layer = || desc.digest.clone();
        if self.blob_exists(&target, repo, &desc.digest)? {
            progress(Event::Exists { layer: layer() });
            return Ok(());
        }
        let mut location = None;
        // One mount attempt: a refused mount (202) already opened an upload
        // session, which the upload below then uses.
        if let Some(from) = mount_from.first() {
            let url = format!(
                "{}/v2/{repo}/blobs/uploads/?mount={}&from={from}",
                target.base, desc.digest
            );
            let resp = self.send(
                &target,
                &scope.clone().and_pull(from),
                &Request::new("POST", url),
            )?;
            if resp.status() == 201 {
                tracing::debug!(blob = %desc.digest, from, "mounted");
                progress(Event::Exists { layer: layer() });
                return Ok(());
            }
            location = resp.header("location").map(|l| absolute(&target, l));
        }
        let location = match location {
            Some(l) => l,
            None => self.start_upload(&target, repo, &scope)?,
        };
        let size = desc.size;
        let chunk = self.config.chunk_size.max(1);
        let last = if size <= chunk {
            location
        } else {
            self.upload_chunks(&target, &scope, location, provider, desc, chunk, progress)?
        };
        let body = if size <= chunk {
            Body::Blob {
                provider,
                digest: &desc.digest,
                offset: 0,
                len: size,
            }
        } else {
            Body::Empty
        };
        let req = Request::new("PUT", with_query(&last, "digest", desc.digest.as_str()))
            .header("Content-Type", "application/octet-stream")
            .body(body);
        let req = if size > chunk {
            req.header("Content-Length", "0")
        } else {
            req
        };
        self.send(&target, &scope, &req)?;
        progress(Event::Uploading {
            layer: layer(),
            done: size,
            total: size,
        });
        progress(Event::Done { layer: layer() });
        Ok(())
    }

    fn blob_exists(&self, target: &Target, repo: &str, digest: &Digest) -> Result<bool> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", target.base);
        match self.send(target, &Scope::push(repo), &Request::new("HEAD", url)) {
            Ok(_) => Ok(true),
            Err(RegistryError::Http { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn start_upload(&self, target: &Target, repo: &str, scope: &Scope) -> Result<String> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", target.base);
        let resp = self.send(target, scope, &Request::new("POST", url.clone()))?;
        resp.header("location")
            .map(|l| absolute(target, l))
            .ok_or_else(|| RegistryError::Http {
                registry: target.host.clone(),
                method: "POST",
                url,
                status: resp.status(),
                message: "no Location for the upload".into(),
            })
    }

    /// PATCHes the blob in `chunk`-sized pieces; each answer names where
    /// the next piece goes. Returns the location for the closing PUT.
    #[allow(clippy::too_many_arguments)]
    fn upload_chunks(
        &self,
        target: &Target,
        scope: &Scope,
        mut location: String,
        provider: &(dyn Provider + Sync),
        desc: &Descriptor,
        chunk: u64,
        progress: Progress<'_>,
    ) -> Result<String> {
        let mut offset = 0;
        while offset < desc.size {
            let len = chunk.min(desc.size - offset);
            let req = Request::new("PATCH", location.clone())
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{}-{}", offset, offset + len - 1))
                .body(Body::Blob {
                    provider,
                    digest: &desc.digest,
                    offset,
                    len,
                });
            let resp = self.send(target, scope, &req)?;
            if let Some(l) = resp.header("location") {
                location = absolute(target, l);
            }
            offset += len;
            progress(Event::Uploading {
                layer: desc.digest.clone(),
                done: offset,
                total: desc.size,
            });
        }
        Ok(location)
    }

    /// PUTs a manifest (or index) under `reference`'s tag, or its digest
    /// when it has no tag. Returns the manifest's digest.
    pub fn put_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let target = self.target(reference.domain())?;
        let repo = reference.path();
        let digest = Digest::of(bytes);
        let name = match reference.tag() {
            Some(t) => t.to_string(),
            None => digest.to_string(),
        };
        let url = format!("{}/v2/{repo}/manifests/{name}", target.base);
        let req = Request::new("PUT", url)
            .header("Content-Type", media_type)
            .body(Body::Bytes(bytes));
        self.send(&target, &Scope::push(repo), &req)?;
        Ok(digest)
    }
}
