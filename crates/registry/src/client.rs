//! The HTTP core: one agent per registry host (each with that host's TLS
//! settings), scheme choice (HTTPS; plain HTTP only for insecure and
//! loopback registries), authentication on a 401, and retries with
//! backoff for what the network or an overloaded server gets wrong.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use berth_image::content::Provider;
use berth_image::digest::Digest;

use crate::auth::{parse_challenge, Challenge, Scope, TokenCache, TokenResponse};
use crate::config::RegistryConfig;
use crate::credentials::{CredentialStore, Credentials};
use crate::error::{RegistryError, Result};

const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Talks to registries. Cheap to share between threads: a pull downloads
/// several layers through one client.
pub struct Client {
    pub(crate) config: RegistryConfig,
    credentials: Option<CredentialStore>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    agents: HashMap<String, ureq::Agent>,
    bases: HashMap<String, String>,
    challenges: HashMap<String, Challenge>,
    creds: HashMap<String, Option<Credentials>>,
    tokens: TokenCache,
}

/// Where requests for one registry go: `host` names it (credentials,
/// certificates, errors), `base` is `scheme://api-host`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub host: String,
    pub base: String,
}

/// A request body that can be produced again for a retry.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a stored blob from `offset`.
    Blob {
        provider: &'a (dyn Provider + Sync),
        digest: &'a Digest,
        offset: u64,
        len: u64,
    },
}

pub(crate) struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, url: String) -> Request<'a> {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }
}

/// Docker Hub's API lives on another host than its name.
pub(crate) fn api_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

impl Client {
    /// A client reading credentials from `credentials` (docker's
    /// config.json) when a registry asks for them; `None` is anonymous
    /// unless [`Client::set_credentials`] is used.
    pub fn new(config: RegistryConfig, credentials: Option<CredentialStore>) -> Client {
        Client {
            config,
            credentials,
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Uses `creds` for `registry` instead of the config file (`login`, or
    /// `--username/--password` style callers).
    pub fn set_credentials(&self, registry: &str, creds: Credentials) {
        let mut st = self.lock();
        st.creds.insert(registry.to_string(), Some(creds));
        // Tokens got with other credentials must not be reused.
        st.tokens = TokenCache::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn agent(&self, host: &str) -> Result<ureq::Agent> {
        if let Some(a) = self.lock().agents.get(host) {
            return Ok(a.clone());
        }
        let tls = crate::tls::client_config(host, &self.config.certs_dir)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .timeout_connect(Duration::from_secs(15))
            // Per read: a stalled transfer fails and resumes instead of
            // hanging the pull.
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(60))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build();
        self.lock().agents.insert(host.to_string(), agent.clone());
        Ok(agent)
    }

    /// The target for `domain`: HTTPS, or for an insecure or loopback
    /// registry whichever of HTTPS and HTTP answers (HTTPS first, as
    /// docker does).
    pub(crate) fn target(&self, domain: &str) -> Result<Target> {
        if let Some(base) = self.lock().bases.get(domain) {
            return Ok(Target {
                host: domain.to_string(),
                base: base.clone(),
            });
        }
        let api = api_host(domain);
        let https = format!("https://{api}");
        let base = if self.config.is_insecure(domain) {
            let agent = self.agent(domain)?;
            match agent
                .get(&format!("{https}/v2/"))
                .timeout(Duration::from_secs(5))
                .call()
            {
                Ok(_) | Err(ureq::Error::Status(..)) => https,
                // It speaks TLS but the handshake failed (a certificate
                // not trusted, a client certificate wanted): say so rather
                // than retrying in plain text.
                Err(ureq::Error::Transport(t)) if speaks_tls(&t) => https,
                Err(ureq::Error::Transport(t)) => {
                    tracing::debug!(registry = domain, error = %t, "HTTPS failed; using HTTP");
                    format!("http://{api}")
                }
            }
        } else {
            https
        };
        self.lock().bases.insert(domain.to_string(), base.clone());
        Ok(Target {
            host: domain.to_string(),
            base,
        })
    }

    pub(crate) fn credentials_for(&self, host: &str) -> Result<Option<Credentials>> {
        if let Some(c) = self.lock().creds.get(host) {
            return Ok(c.clone());
        }
        let found = match &self.credentials {
            Some(store) => store.get(host)?,
            None => None,
        };
        self.lock().creds.insert(host.to_string(), found.clone());
        Ok(found)
    }

    /// The Authorization header for a request in `scope`, fetching a token
    /// if the registry wants bearer auth and none is cached.
    fn authorization(&self, target: &Target, scope: &Scope) -> Result<Option<String>> {
        let challenge = self.lock().challenges.get(&target.host).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials_for(&target.host)?.map(|c| basic(&c))),
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(t) = self.lock().tokens.get(&target.host, scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(target, &realm, service.as_deref(), scope)?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the challenge's realm for a token for `scope`, with the
    /// registry's credentials when there are any.
    fn fetch_token(
        &self,
        target: &Target,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<String> {
        let creds = self.credentials_for(&target.host)?;
        let realm_host = realm
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or(&target.host)
            .to_string();
        let mut req = self.agent(&realm_host)?.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in scope.items() {
            req = req.query("scope", s);
        }
        if let Some(c) = &creds {
            req = req.set("Authorization", &basic(c));
        }
        let unauthorized = |reason: String| RegistryError::Unauthorized {
            registry: target.host.clone(),
            reason,
        };
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code @ (401 | 403), r)) => {
                let who = creds.as_ref().map_or("anonymous access".to_string(), |c| {
                    format!("the credentials of {:?}", c.username)
                });
                return Err(unauthorized(format!(
                    "token server {realm} refused {who} (HTTP {code}: {})",
                    error_message(r)
                )));
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(RegistryError::Http {
                    registry: target.host.clone(),
                    method: "GET",
                    url: realm.to_string(),
                    status: code,
                    message: error_message(r),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryError::Unavailable {
                    registry: target.host.clone(),
                    reason: format!("token server: {t}"),
                })
            }
        };
        let mut body = Vec::new();
        let _ = resp.into_reader().take(1 << 20).read_to_end(&mut body);
        let token = serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| unauthorized(format!("token server {realm} sent no token")))?;
        let value = token.value.clone();
        self.lock().tokens.put(&target.host, scope, token);
        Ok(value)
    }

    /// Sends `req`, answering one auth challenge and retrying transient
    /// failures with exponential backoff. Any status >= 400 is an error;
    /// callers that expect 404 look at [`RegistryError::Http`]'s status.
    pub(crate) fn send(
        &self,
        target: &Target,
        scope: &Scope,
        req: &Request<'_>,
    ) -> Result<ureq::Response> {
        let agent = self.agent(&target.host)?;
        let mut answered_challenge = false;
        let mut attempt = 0;
        loop {
            let mut r = agent.request(req.method, &req.url);
            for (k, v) in &req.headers {
                r = r.set(k, v);
            }
            if let Some(auth) = self.authorization(target, scope)? {
                r = r.set("Authorization", &auth);
            }
            let result = match &req.body {
                Body::Empty => r.call(),
                Body::Bytes(b) => r.send_bytes(b),
                Body::Blob {
                    provider,
                    digest,
                    offset,
                    len,
                } => {
                    let mut reader = provider.reader(digest)?;
                    reader
                        .seek(SeekFrom::Start(*offset))
                        .map_err(crate::error::io_err(format!("reading blob {digest}")))?;
                    r.set("Content-Length", &len.to_string())
                        .send(reader.take(*len))
                }
            };
            let err = match result {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !answered_challenge => {
                    answered_challenge = true;
                    let header = resp.header("www-authenticate").unwrap_or("").to_string();
                    let Some(ch) = parse_challenge(&header) else {
                        return Err(RegistryError::Unauthorized {
                            registry: target.host.clone(),
                            reason: format!("unsupported authentication challenge {header:?}"),
                        });
                    };
                    let mut st = self.lock();
                    st.tokens.forget(&target.host, scope);
                    st.challenges.insert(target.host.clone(), ch.clone());
                    drop(st);
                    if ch == Challenge::Basic && self.credentials_for(&target.host)?.is_none() {
                        return Err(RegistryError::Unauthorized {
                            registry: target.host.clone(),
                            reason: "authentication required; log in first".into(),
                        });
                    }
                    continue;
                }
                Err(ureq::Error::Status(code @ (401 | 403), resp)) => {
                    return Err(RegistryError::Unauthorized {
                        registry: target.host.clone(),
                        reason: format!(
                            "{} {}: HTTP {code}: {}",
                            req.method,
                            req.url,
                            error_message(resp)
                        ),
                    })
                }
                Err(ureq::Error::Status(code, resp)) => RegistryError::Http {
                    registry: target.host.clone(),
                    method: req.method,
                    url: req.url.clone(),
                    status: code,
                    message: error_message(resp),
                },
                // A name that does not resolve will not resolve on a retry.
                Err(ureq::Error::Transport(t)) if t.kind() == ureq::ErrorKind::Dns => {
                    return Err(RegistryError::Unavailable {
                        registry: target.host.clone(),
                        reason: transport_reason(&t),
                    })
                }
                Err(ureq::Error::Transport(t)) => RegistryError::Unavailable {
                    registry: target.host.clone(),
                    reason: transport_reason(&t),
                },
            };
            attempt += 1;
            if !err.is_transient() || attempt >= ATTEMPTS {
                return Err(err);
            }
            tracing::debug!(registry = %target.host, error = %err, attempt, "retrying");
            std::thread::sleep(backoff(attempt));
        }
    }

    /// Checks that `creds` open `registry`: basic auth must pass at
    /// `/v2/`, or the token server must hand out a token for them.
    pub fn check_login(&self, registry: &str, creds: &Credentials) -> Result<()> {
        self.set_credentials(registry, creds.clone());
        let target = self.target(registry)?;
        let url = format!("{}/v2/", target.base);
        // A 401 makes `send` fetch a token (or retry basic auth) with the
        // new credentials; a refusal comes back as Unauthorized. A registry
        // that needs no auth at all takes any credentials, as with docker.
        self.send(&target, &Scope::none(), &Request::new("GET", url))?;
        Ok(())
    }
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(5))
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The registry's own words from an error body
/// (`{"errors":[{"code":..,"message":..}]}`), else the status text.
pub(crate) fn error_message(resp: ureq::Response) -> String {
    let status_text = resp.status_text().to_string();
    let mut body = String::new();
    let _ = resp.into_reader().take(64 << 10).read_to_string(&mut body);
    let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("errors")?.as_array().cloned())
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {msg}")
                        .trim_matches([':', ' '])
                        .to_string()
                })
                .collect()
        });
    match parsed {
        Some(list) if !list.is_empty() => list.join("; "),
        _ => status_text,
    }
}

/// "connection refused", "unknown host" and friends, without ureq's
/// internal wording.
fn transport_reason(t: &ureq::Transport) -> String {
    let detail = std::error::Error::source(t)
        .map(|s| s.to_string())
        .unwrap_or_default();
    match t.kind() {
        ureq::ErrorKind::Dns => format!("unknown host: {detail}"),
        ureq::ErrorKind::ConnectionFailed => format!("cannot connect: {detail}"),
        _ => t.to_string(),
    }
}

/// Whether a failed HTTPS attempt reached a TLS server: any TLS error but
/// a peer answering with something that is not TLS (a plain HTTP server).
fn speaks_tls(t: &ureq::Transport) -> bool {
    let mut source = std::error::Error::source(t);
    while let Some(e) = source {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return !matches!(tls, rustls::Error::InvalidMessage(_));
        }
        source = e.source();
    }
    false
}

/// Resolves a `Location` header against the registry's base URL.
pub(crate) fn absolute(target: &Target, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{}{location}", target.base)
    } else {
        format!("{}/{location}", target.base)
    }
}

/// Adds `key=value` to a URL that may already have a query.
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode(value))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
