//! Credentials in docker's `config.json` format, so a `docker login` works
//! for berth and the other way round: `auths` (base64 `user:password`),
//! `credsStore` and `credHelpers` (`docker-credential-<name>` programs
//! speaking JSON on stdin/stdout). Secrets never reach a log, a command
//! line or an error message.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{io_err, RegistryError, Result};

/// Docker Hub's key in config.json, kept for compatibility with docker.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A username and its secret. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The server key docker files credentials under: Docker Hub's legacy URL
/// for `docker.io`, the bare `host[:port]` for everything else.
pub fn server_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// A docker `config.json` and the credential helpers it names.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
    /// Where `docker-credential-*` helpers are looked up; `None` is `$PATH`.
    helper_dir: Option<PathBuf>,
}

impl CredentialStore {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return PathBuf::from(dir).join("config.json");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        home.join(".docker/config.json")
    }

    pub fn new(path: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore {
            path: path.into(),
            helper_dir: None,
        }
    }

    /// Looks helpers up in `dir` instead of `$PATH` (tests, sandboxes).
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> CredentialStore {
        self.helper_dir = Some(dir.into());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Map<String, Value>> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err(self.err("registry-wide", "not a JSON object".into())),
                Err(e) => Err(self.err("registry-wide", e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(io_err(format!("reading {}", self.path.display()))(e)),
        }
    }

    fn err(&self, registry: &str, reason: String) -> RegistryError {
        RegistryError::Credentials {
            registry: registry.to_string(),
            reason: format!("{}: {reason}", self.path.display()),
        }
    }

    /// The helper for `key`: its `credHelpers` entry, else `credsStore`.
    fn helper_for(cfg: &Map<String, Value>, registry: &str) -> Option<String> {
        let host = registry_host(registry);
        cfg.get("credHelpers")
            .and_then(|h| h.get(host).or_else(|| h.get(registry)))
            .or_else(|| cfg.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// Credentials for `registry` (`host[:port]` or `docker.io`), or `None`
    /// when there are none: anonymous access is then tried.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let cfg = self.load()?;
        let key = server_key(registry);
        if let Some(helper) = Self::helper_for(&cfg, &key) {
            return self.helper_get(&helper, &key);
        }
        let Some(auths) = cfg.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let host = registry_host(&key);
        // docker matches entries written as URLs too (`https://host/v1/`).
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| registry_host(k) == host)
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else { return Ok(None) };
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    self.err(registry, "\"auth\" is not base64 of user:password".into())
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                self.err(registry, "\"auth\" is not base64 of user:password".into())
            })?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        let field = |n: &str| entry.get(n).and_then(Value::as_str).map(str::to_string);
        Ok(match (field("username"), field("password")) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            _ => None,
        })
    }

    /// Saves credentials the way docker would: through the helper if one
    /// is configured, else base64 in `auths`. The file is written 0600.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<()> {
        let mut cfg = self.load()?;
        let key = server_key(registry);
        if let Some(helper) = Self::helper_for(&cfg, &key) {
            let input = serde_json::json!({
                "ServerURL": key, "Username": creds.username, "Secret": creds.password,
            });
            self.helper(&helper, "store", input.to_string().as_bytes(), registry)?;
            return Ok(());
        }
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let auths = cfg
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        auths
            .as_object_mut()
            .expect("made an object above")
            .insert(key, serde_json::json!({ "auth": auth }));
        self.save(&cfg)
    }

    /// Forgets `registry`'s credentials; `Ok(false)` if there were none.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let mut cfg = self.load()?;
        let key = server_key(registry);
        if let Some(helper) = Self::helper_for(&cfg, &key) {
            self.helper(&helper, "erase", key.as_bytes(), registry)?;
            return Ok(true);
        }
        let removed = cfg
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .and_then(|a| a.remove(&key))
            .is_some();
        if removed {
            self.save(&cfg)?;
        }
        Ok(removed)
    }

    fn save(&self, cfg: &Map<String, Value>) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(cfg).expect("json values serialize");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(format!("writing {}", self.path.display()))(e)
        })
    }

    fn helper_get(&self, helper: &str, key: &str) -> Result<Option<Credentials>> {
        let out = match self.helper(helper, "get", key.as_bytes(), key) {
            Ok(out) => out,
            Err(RegistryError::Credentials { reason, .. })
                if reason.contains("credentials not found") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_slice(&out)
            .map_err(|e| self.err(key, format!("docker-credential-{helper} get: {e}")))?;
        let s = |n: &str| v.get(n).and_then(Value::as_str).unwrap_or("").to_string();
        let (username, password) = (s("Username"), s("Secret"));
        if password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials { username, password }))
    }

    /// Runs `docker-credential-<name> <action>` with `input` on stdin. Its
    /// stdout may hold a secret, so only stderr goes into an error.
    fn helper(&self, name: &str, action: &str, input: &[u8], registry: &str) -> Result<Vec<u8>> {
        let program = format!("docker-credential-{name}");
        let program = match &self.helper_dir {
            Some(d) => d.join(&program),
            None => PathBuf::from(program),
        };
        let fail = |reason: String| RegistryError::Credentials {
            registry: registry.to_string(),
            reason: format!("{} {action}: {reason}", program.display()),
        };
        let mut child = Command::new(&program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(|e| fail(e.to_string()))?;
        }
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            // Helpers print "credentials not found in native keychain" on
            // stdout; that message carries no secret.
            let msg = String::from_utf8_lossy(if out.stderr.is_empty() {
                &out.stdout
            } else {
                &out.stderr
            })
            .trim()
            .chars()
            .take(200)
            .collect::<String>();
            return Err(fail(msg));
        }
        Ok(out.stdout)
    }
}

/// `https://host:5000/v1/` → `host:5000`.
fn registry_host(key: &str) -> &str {
    let s = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    s.split('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests;
