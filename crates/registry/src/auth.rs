//! Registry authentication: the `WWW-Authenticate` challenge, basic auth,
//! and bearer tokens fetched from the challenge's realm for a scope
//! (`repository:<path>:pull[,push]`) and reused until they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a registry asked for in its 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header: a scheme, then `key="value"`
/// pairs separated by commas (values may hold commas inside quotes).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

/// The scopes one operation needs, e.g. `repository:library/busybox:pull`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Scope(Vec<String>);

impl Scope {
    pub fn pull(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull")])
    }

    pub fn push(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }

    /// Adds pull access to another repository: a cross-repository mount
    /// needs both.
    pub fn and_pull(mut self, repository: &str) -> Scope {
        let s = format!("repository:{repository}:pull");
        if !self.0.contains(&s) {
            self.0.push(s);
        }
        self
    }

    pub fn none() -> Scope {
        Scope(Vec::new())
    }

    pub(crate) fn items(&self) -> &[String] {
        &self.0
    }
}

/// A bearer token with its expiry.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

/// Tokens by registry and scope. A token is used until shortly before it
/// expires so a long download does not start with a token about to die.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<(String, Scope), Token>,
}

impl TokenCache {
    pub fn get(&self, host: &str, scope: &Scope) -> Option<String> {
        let t = self.tokens.get(&(host.to_string(), scope.clone()))?;
        (t.expires > Instant::now() + Duration::from_secs(5)).then(|| t.value.clone())
    }

    pub fn put(&mut self, host: &str, scope: &Scope, token: Token) {
        self.tokens.insert((host.to_string(), scope.clone()), token);
    }

    pub fn forget(&mut self, host: &str, scope: &Scope) {
        self.tokens.remove(&(host.to_string(), scope.clone()));
    }
}

/// The token endpoint's answer (docker's and OAuth's field names).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // The spec's default lifetime is 60 seconds.
        let secs = self.expires_in.unwrap_or(60).max(10);
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"Registry Realm\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=http://127.0.0.1:1/t"),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: None
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
    }

    #[test]
    fn tokens_expire_and_are_keyed_by_scope() {
        let mut c = TokenCache::default();
        let pull = Scope::pull("a/b");
        c.put(
            "r",
            &pull,
            Token {
                value: "t".into(),
                expires: Instant::now() + Duration::from_secs(60),
            },
        );
        assert_eq!(c.get("r", &pull).as_deref(), Some("t"));
        assert_eq!(c.get("r", &Scope::push("a/b")), None);
        assert_eq!(c.get("other", &pull), None);
        c.put(
            "r",
            &pull,
            Token {
                value: "t".into(),
                expires: Instant::now() + Duration::from_secs(2),
            },
        );
        assert_eq!(
            c.get("r", &pull),
            None,
            "a token about to expire is not reused"
        );
        let r: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":300}"#).unwrap();
        assert_eq!(r.into_token().unwrap().value, "x");
        let r: TokenResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert!(r.into_token().is_none());
    }
}
