//! Registries from the engine's side: the `[registry]` table of
//! `/etc/berth/berth.toml`, docker's credentials file, and pull, push,
//! login and logout over the registry crate; plus `run --pull`'s policy.
//!
//! Progress goes to the caller's [`Progress`] sink; nothing is printed.

use std::path::Path;

use berth_image::store::{Image, Store, StoreError};
use berth_image::{Digest, Reference};
use berth_registry::{
    Client, CredentialStore, Credentials, Platform, Progress, PullOptions, Pulled, RegistryConfig,
};

use crate::error::{io_err, Error, Result};
use crate::Engine;

/// Where the engine's configuration lives; only `[registry]` is read here.
pub const CONFIG_FILE: &str = "/etc/berth/berth.toml";

/// The `[registry]` table of `path`; a missing file means the defaults.
pub fn registry_config(path: &Path) -> Result<RegistryConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(RegistryConfig::from_toml(
            &text,
            &path.display().to_string(),
        )?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryConfig::default()),
        Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
    }
}

/// A client with berth.toml's `[registry]` (`$BERTH_CONFIG` or
/// /etc/berth/berth.toml) and the user's docker credentials
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
pub fn client() -> Result<Client> {
    Ok(Client::new(
        registry_config(&crate::network::config_file())?,
        Some(credentials()),
    ))
}

pub fn credentials() -> CredentialStore {
    CredentialStore::new(CredentialStore::default_path())
}

fn parse_ref(name: &str) -> Result<Reference> {
    Reference::parse(name).map_err(|e| Error::Image(e.into()))
}

/// `--platform os/arch[/variant]`.
pub fn parse_platform(s: &str) -> Result<Platform> {
    Ok(Platform::parse(s)?)
}

/// `run`/`create --platform P` (the API's `platform`): berth runs this
/// machine's platform only (it has no emulation), from an image made for
/// it. A foreign platform is refused by name; a local image of another
/// platform than asked for gets dockerd's not-found (its clients pull
/// then).
pub fn check_platform(store: &Store, image: &str, platform: &str) -> Result<()> {
    let want = parse_platform(platform)?;
    let host = Platform::host();
    if !want.matches(&host) {
        return Err(Error::NotSupported {
            flag: format!(
                "--platform {platform} (berth runs this machine's platform only, {host})"
            ),
        });
    }
    let found = crate::images::find(store, image)?;
    matches_image(&want, image, &store.config(&found)?)
}

/// Whether the image whose config is `config` is of platform `want`, in
/// [`check_platform`]'s words if not.
fn matches_image(want: &Platform, image: &str, config: &serde_json::Value) -> Result<()> {
    let field = |k: &str| config[k].as_str().map(str::to_string);
    let have = Platform {
        os: field("os").unwrap_or_else(|| "linux".into()),
        architecture: field("architecture").unwrap_or_default(),
        variant: field("variant"),
    };
    // An image that does not say (an old import) is taken as this
    // machine's.
    if !have.architecture.is_empty() && !want.matches(&have) {
        return Err(Error::PlatformMismatch {
            image: image.to_string(),
            wanted: want.to_string(),
            actual: have.to_string(),
        });
    }
    Ok(())
}

/// `docker pull NAME`: the reference as normalised, and what came of it.
/// dockerd's `pull` event names the reference as pulled (`busybox:latest`)
/// and its repository.
pub fn pull(
    engine: &Engine,
    client: &Client,
    store: &Store,
    name: &str,
    platform: Option<&str>,
    progress: Progress<'_>,
) -> Result<(Reference, Pulled)> {
    let reference = parse_ref(name)?;
    let opts = PullOptions {
        platform: platform.map(parse_platform).transpose()?,
    };
    let pulled = client.pull(store, &reference, &opts, progress)?;
    engine.image_event(
        store,
        &pulled.image,
        "pull",
        &reference.familiar(),
        &reference.familiar_name(),
    );
    Ok((reference, pulled))
}

/// `pull --all-tags`: the tags of `name`'s repository, with the
/// repository reference itself. A tag or digest in `name` is refused,
/// as docker does.
pub fn repository_tags(client: &Client, name: &str) -> Result<(Reference, Vec<String>)> {
    let named = Reference::parse_named(name).map_err(|e| Error::Image(e.into()))?;
    if named.tag().is_some() || named.digest().is_some() {
        return Err(Error::InvalidArgument(
            "tag can't be used with --all-tags/-a".into(),
        ));
    }
    let tags = client.tags(&named)?;
    Ok((named, tags))
}

/// `docker push NAME[:TAG]`: the local image so named goes to the
/// registry in its domain. Returns the reference and the manifest's digest.
pub fn push(
    engine: &Engine,
    client: &Client,
    store: &Store,
    name: &str,
    progress: Progress<'_>,
) -> Result<(Reference, Image, Digest)> {
    let reference = parse_ref(name)?;
    if reference.digest().is_some() {
        return Err(Error::InvalidArgument(format!(
            "cannot push a digest reference: {name}"
        )));
    }
    let image = store.image(&reference.to_string()).map_err(|e| match e {
        StoreError::NotFound(_) => Error::NoSuchImage(reference.familiar()),
        e => Error::Image(e),
    })?;
    let digest = client.push(store, &image, &reference, progress)?;
    // dockerd's `push` event, named as `pull`'s.
    engine.image_event(
        store,
        &image,
        "push",
        &reference.familiar(),
        &reference.familiar_name(),
    );
    Ok((reference, image, digest))
}

/// `docker login`: checks the credentials against `server`, then stores
/// them. Returns the registry as credentials are filed under it.
pub fn login(client: &Client, server: &str, creds: &Credentials) -> Result<String> {
    berth_registry::login(client, &credentials(), server, creds)?;
    Ok(berth_registry::normalize_registry(server))
}

/// `docker logout`: whether there were credentials to forget.
pub fn logout(server: &str) -> Result<bool> {
    Ok(berth_registry::logout(&credentials(), server)?)
}

/// `run --pull` / `create --pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
}

impl PullPolicy {
    pub fn parse(s: &str) -> Result<PullPolicy> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(Error::InvalidArgument(format!(
                "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
            ))),
        }
    }
}

/// What [`needs_pull`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The image is there (or pulling is off): create goes ahead.
    Present,
    /// Pull this reference first.
    Pull(Reference),
}

/// Whether `run`/`create` must pull `name` first under `policy`. Only a
/// missing image is pulled under `missing`; an ambiguous id or a corrupt
/// store is an error here, not a pull.
pub fn needs_pull(store: &Store, name: &str, policy: PullPolicy) -> Result<Need> {
    match policy {
        PullPolicy::Never => Ok(Need::Present),
        PullPolicy::Always => Ok(Need::Pull(parse_ref(name)?)),
        PullPolicy::Missing => match store.image(name) {
            Ok(_) => Ok(Need::Present),
            Err(StoreError::NotFound(_)) => Ok(Need::Pull(parse_ref(name)?)),
            Err(e) => Err(Error::Image(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_config() {
        assert_eq!(PullPolicy::parse("never").unwrap(), PullPolicy::Never);
        let e = PullPolicy::parse("sometimes").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            registry_config(&t.path().join("missing.toml")).unwrap(),
            RegistryConfig::default()
        );
        let p = t.path().join("berth.toml");
        std::fs::write(&p, "[registry]\ninsecure-registries = [\"r:5000\"]\n").unwrap();
        assert_eq!(
            registry_config(&p).unwrap().insecure_registries,
            vec!["r:5000"]
        );
        std::fs::write(&p, "[registry]\nnope = 1\n").unwrap();
        assert!(registry_config(&p).is_err());
    }

    #[test]
    fn a_platform_is_checked_against_the_image() {
        let amd64 = serde_json::json!({"os": "linux", "architecture": "amd64"});
        let arm64 = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        let want = |s: &str| parse_platform(s).unwrap();
        assert!(matches_image(&want("linux/amd64"), "bb", &amd64).is_ok());
        assert!(matches_image(&want("amd64"), "bb", &amd64).is_ok());
        assert!(matches_image(&want("linux/arm64"), "bb", &arm64).is_ok());
        let e = matches_image(&want("linux/amd64"), "bb", &arm64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image with reference bb was found but does not match the specified platform: \
             wanted linux/amd64, actual: linux/arm64/v8"
        );
        assert_eq!(
            e.kind(),
            crate::ErrorKind::NotFound,
            "dockerd's clients pull then"
        );
        // An image that does not say is taken as it comes.
        assert!(matches_image(&want("linux/arm64"), "bb", &serde_json::json!({})).is_ok());
        assert!(parse_platform("linux//x").is_err());
    }
}
