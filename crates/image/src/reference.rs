//! Image references, parsed and normalised the way docker does
//! (distribution/reference's `ParseNormalizedNamed` + `TagNameOnly`):
//! `busybox` is `docker.io/library/busybox:latest`, and [`Reference::familiar`]
//! turns it back into what `docker images` shows.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::ErrorKind;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Why a reference was refused. Each reason reads as the tail of
/// "invalid reference format "X": ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("repository name must have at least one component")]
    Empty,
    #[error("repository name must be lowercase")]
    Uppercase,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("cannot specify 64-byte hexadecimal strings as a repository name")]
    HexName,
    #[error("path component {0:?} must be lowercase letters and digits, joined by '.', '_', '__' or '-'")]
    BadComponent(String),
    #[error("registry host {0:?} is not a valid host[:port]")]
    BadDomain(String),
    #[error("tag is empty")]
    EmptyTag,
    #[error("tag must not be more than 128 characters")]
    TagTooLong,
    #[error("tag {0:?} must start with a letter, digit or '_' and contain only letters, digits, '_', '.' and '-'")]
    BadTag(String),
    #[error("more than one '@'")]
    ManyAt,
    #[error("{0}")]
    Digest(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: Reason,
}

impl ReferenceError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// A normalised reference: always a domain and a full path, and a tag
/// unless only a digest was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` would: adds the
    /// default domain, the `library/` prefix for official images and the
    /// `latest` tag when neither a tag nor a digest is given.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_named(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Like [`Reference::parse`] but without adding `latest`: `busybox`
    /// stays a bare repository name (for `docker images busybox` style
    /// filters and for `docker push` of all tags).
    pub fn parse_named(input: &str) -> Result<Reference, ReferenceError> {
        let err = |reason| ReferenceError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(err(Reason::Empty));
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(err(Reason::HexName));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((_, d)) if d.contains('@') => return Err(err(Reason::ManyAt)),
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|e| err(Reason::Digest(digest_reason(&e))))?),
            ),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to
        // a registry port (`host:5000/a`).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(err)?;
        }
        if name.is_empty() {
            return Err(err(Reason::Empty));
        }
        let (domain, path) = split_domain(name);
        if let Some(d) = domain {
            validate_domain(d).map_err(err)?;
        }
        if path.is_empty() {
            return Err(err(Reason::Empty));
        }
        // docker reports case before anything else about the path, which
        // is the mistake people actually make (`Busybox`, `myOrg/app`).
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err(Reason::Uppercase));
        }
        for component in path.split('/') {
            if !valid_component(component) {
                return Err(err(Reason::BadComponent(component.to_string())));
            }
        }
        let domain = match domain {
            None | Some(LEGACY_DOMAIN) => DEFAULT_DOMAIN.to_string(),
            Some(d) => d.to_string(),
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_string()
        };
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(err(Reason::NameTooLong));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name, `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as docker shows it: `busybox`, `user/app`,
    /// `quay.io/org/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        let short = match self.path.strip_prefix(OFFICIAL_PREFIX) {
            Some(short) if !short.contains('/') => short,
            _ => &self.path,
        };
        // A Docker Hub path whose first component reads as a domain
        // (`docker.io/l.io/app`) would, shortened, name an image of
        // another registry; docker shortens it anyway, berth keeps it whole.
        if split_domain(short).0.is_some() {
            return self.name();
        }
        short.to_string()
    }

    /// The whole reference as docker shows it: `busybox:latest`.
    pub fn familiar(&self) -> String {
        self.render(self.familiar_name())
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag).map_err(|reason| ReferenceError {
            input: format!("{}:{tag}", self.name()),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    fn render(&self, mut s: String) -> String {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(self.name()))
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn digest_reason(e: &crate::digest::DigestError) -> String {
    use crate::digest::DigestError as E;
    match e {
        E::Format(_) => "invalid checksum digest format".into(),
        E::Algorithm(_) => "unsupported digest algorithm".into(),
        E::Encoded {
            algorithm, want, ..
        } => {
            format!("invalid checksum digest: {algorithm} needs {want} lowercase hex characters")
        }
    }
}

/// docker's rule: the first component is a registry only if it looks like
/// a host (has a '.' or ':', or is `localhost`) and is not an uppercase
/// repository name.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_tag(tag: &str) -> Result<(), Reason> {
    if tag.is_empty() {
        return Err(Reason::EmptyTag);
    }
    if tag.len() > TAG_MAX {
        return Err(Reason::TagTooLong);
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(word);
    if !first_ok || !bytes.all(|b| word(b) || b == b'.' || b == b'-') {
        return Err(Reason::BadTag(tag.to_string()));
    }
    Ok(())
}

/// host := domain-name | IPv4 | `[` IPv6 `]`, then optional `:port`.
fn validate_domain(d: &str) -> Result<(), Reason> {
    let bad = || Reason::BadDomain(d.to_string());
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(bad());
        }
        match after {
            "" => (v6, None),
            p => (v6, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        let (host, port) = match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad());
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    Ok(())
}

/// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, where a separator
/// is `.`, `_`, `__` or one or more `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn familiar_forms_name_the_same_image() {
        // Found by fuzz/reference_parse: the familiar form of a Hub path
        // starting with something domain-like named another registry.
        for (input, familiar) in [
            ("docker.io/l.io/app", "docker.io/l.io/app:latest"),
            ("docker.io/localhost/app:1", "docker.io/localhost/app:1"),
            ("docker.io/library/l.io", "l.io:latest"),
            ("user/app", "user/app:latest"),
            ("busybox", "busybox:latest"),
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn normalises_like_docker() {
        let cases: &[(&str, &str, &str)] = &[
            // input, normalised, familiar
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/library/busybox:x",
                "docker.io/library/busybox:x",
                "busybox:x",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            (
                "host:5000/a/b:tag",
                "host:5000/a/b:tag",
                "host:5000/a/b:tag",
            ),
            ("host:5000/a", "host:5000/a:latest", "host:5000/a:latest"),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
            ),
            (
                "quay.io/org/app:v1.2-rc_3",
                "quay.io/org/app:v1.2-rc_3",
                "quay.io/org/app:v1.2-rc_3",
            ),
            (
                "[::1]:5000/app",
                "[::1]:5000/app:latest",
                "[::1]:5000/app:latest",
            ),
            (
                "192.168.1.1:5000/app",
                "192.168.1.1:5000/app:latest",
                "192.168.1.1:5000/app:latest",
            ),
            (
                "Registry.Example.com/app",
                "Registry.Example.com/app:latest",
                "Registry.Example.com/app:latest",
            ),
            // A bare host:port is a name and a tag, as in docker.
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost:5000",
            ),
            (
                "a__b/c.d-e---f_g",
                "docker.io/a__b/c.d-e---f_g:latest",
                "a__b/c.d-e---f_g:latest",
            ),
            ("busybox:_x", "docker.io/library/busybox:_x", "busybox:_x"),
            // An uppercase first component is a registry host to docker.
            ("myOrg/app", "myOrg/app:latest", "myOrg/app:latest"),
        ];
        for (input, full, familiar) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), *full, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            assert_eq!(
                Reference::parse(full).unwrap(),
                r,
                "normalised form of {input} parses to itself"
            );
        }
    }

    #[test]
    fn digests_keep_or_drop_the_tag_as_docker_does() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None, "a digest alone gets no latest tag");
        assert_eq!(r.digest().unwrap().as_str(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.familiar(), format!("busybox@{D}"));

        let r = Reference::parse(&format!("host:5000/a/b:tag@{D}")).unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("host:5000", "a/b", Some("tag"))
        );
        assert_eq!(r.familiar(), format!("host:5000/a/b:tag@{D}"));
    }

    #[test]
    fn parse_named_does_not_add_latest() {
        let r = Reference::parse_named("busybox").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), "busybox");
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.with_tag("v2").unwrap().familiar(), "busybox:v2");
        assert!(r.with_tag("-bad").is_err());
    }

    #[test]
    fn refuses_malformed_references_and_says_why() {
        let long_tag = format!("busybox:{}", "a".repeat(129));
        let long_name = format!("{}/{}", "a".repeat(200), "b".repeat(60));
        let hex = "a".repeat(64);
        let cases: &[(&str, Reason)] = &[
            ("", Reason::Empty),
            (":tag", Reason::Empty),
            ("@sha256:abc", Reason::Digest(String::new())),
            (&format!("@{D}"), Reason::Empty),
            ("Busybox", Reason::Uppercase),
            ("docker.io/library/Busybox", Reason::Uppercase),
            ("myorg/App", Reason::Uppercase),
            ("busybox:", Reason::EmptyTag),
            ("busybox:-x", Reason::BadTag("-x".into())),
            ("busybox:.x", Reason::BadTag(".x".into())),
            ("busybox:a/b", Reason::BadDomain("busybox:a".into())),
            ("busybox:a+b", Reason::BadTag("a+b".into())),
            (&long_tag, Reason::TagTooLong),
            (&long_name, Reason::NameTooLong),
            (&hex, Reason::HexName),
            ("a//b", Reason::BadComponent(String::new())),
            ("a/b/", Reason::BadComponent(String::new())),
            ("/busybox", Reason::BadComponent(String::new())),
            ("a/-b", Reason::BadComponent("-b".into())),
            ("a/b.", Reason::BadComponent("b.".into())),
            ("a/b..c", Reason::BadComponent("b..c".into())),
            ("a/b___c", Reason::BadComponent("b___c".into())),
            ("a b", Reason::BadComponent("a b".into())),
            ("host:port/app", Reason::BadDomain("host:port".into())),
            ("-host.io/app", Reason::BadDomain("-host.io".into())),
            ("host..io/app", Reason::BadDomain("host..io".into())),
            ("busybox@sha256:abc", Reason::Digest(String::new())),
            ("busybox@md5:abc", Reason::Digest(String::new())),
            (&format!("busybox@{D}@{D}"), Reason::ManyAt),
        ];
        for (input, want) in cases {
            let e = Reference::parse(input).expect_err(input);
            match (&e.reason, want) {
                (Reason::Digest(_), Reason::Digest(_)) => {}
                (got, want) => assert_eq!(got, want, "{input:?}"),
            }
            assert_eq!(e.input, *input);
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("invalid reference format {input:?}: ")),
                "{msg}"
            );
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn tag_of_exactly_128_is_accepted() {
        let r = Reference::parse(&format!("busybox:{}", "a".repeat(128))).unwrap();
        assert_eq!(r.tag().unwrap().len(), 128);
    }
}
