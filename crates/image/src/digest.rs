//! Content digests (`sha256:<64 hex>`) and the readers and writers that
//! compute them while bytes stream past, so nothing is read twice.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::ErrorKind;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// a digest is `algorithm:hex`
    #[error("invalid digest {0:?}: expected algorithm:hex")]
    Format(String),
    /// only sha256, sha384 and sha512 are digests docker accepts
    #[error("invalid digest {0:?}: unsupported digest algorithm")]
    Algorithm(String),
    #[error("invalid digest {input:?}: {algorithm} needs {want} lowercase hex characters")]
    Encoded {
        input: String,
        algorithm: String,
        want: usize,
    },
}

impl DigestError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// A validated content digest. The string form is kept as given because
/// digests are compared and stored as text everywhere (manifests, the
/// database, file names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `algorithm:hex`, accepting what docker accepts: sha256,
    /// sha384 and sha512 with exactly their length of lowercase hex.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Format(s.to_string()))?;
        if alg.is_empty() || hex.is_empty() {
            return Err(DigestError::Format(s.to_string()));
        }
        let want = match alg {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ if valid_algorithm(alg) => return Err(DigestError::Algorithm(s.to_string())),
            _ => return Err(DigestError::Format(s.to_string())),
        };
        if hex.len() != want || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Encoded {
                input: s.to_string(),
                algorithm: alg.to_string(),
                want,
            });
        }
        Ok(Digest(s.to_string()))
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(bytes).into())
    }

    pub fn from_sha256(sum: [u8; 32]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(sum)))
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or_default()
    }

    /// The hex part, which is also the blob's file name in the store.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, docker's short image id.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

// The OCI grammar: algorithm-component (separator algorithm-component)*,
// components [a-z0-9]+, separators [+._-].
fn valid_algorithm(alg: &str) -> bool {
    alg.split(['+', '.', '_', '-']).all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A running sha256 with a byte count.
#[derive(Default, Clone)]
pub struct Digester {
    hasher: Sha256,
    size: u64,
}

impl Digester {
    pub fn new() -> Digester {
        Digester::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest so far, without consuming the state.
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().into())
    }
}

/// A reader that digests everything read through it.
pub struct HashingReader<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            digester: Digester::new(),
        }
    }

    pub fn digester(&self) -> &Digester {
        &self.digester
    }

    pub fn into_inner(self) -> (R, Digester) {
        (self.inner, self.digester)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that digests everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            digester: Digester::new(),
        }
    }

    pub fn digester(&self) -> &Digester {
        &self.digester
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn into_inner(self) -> (W, Digester) {
        (self.inner, self.digester)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(Digest::of(b"").as_str(), EMPTY);
        assert_eq!(Digester::new().digest().as_str(), EMPTY);
    }

    #[test]
    fn parse_accepts_and_refuses() {
        let ok = [
            EMPTY,
            &format!("sha512:{}", "a".repeat(128)),
            &format!("sha384:{}", "0".repeat(96)),
        ];
        for s in ok {
            assert_eq!(Digest::parse(s).unwrap().as_str(), s);
        }
        let bad: &[(&str, &str)] = &[
            ("", "expected algorithm:hex"),
            ("sha256", "expected algorithm:hex"),
            ("sha256:", "expected algorithm:hex"),
            (":abc", "expected algorithm:hex"),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported"),
            ("sha256:abc", "64 lowercase hex"),
            (
                &EMPTY.to_uppercase().replace("SHA256", "sha256"),
                "64 lowercase hex",
            ),
            ("SHA256:abc", "expected algorithm:hex"),
        ];
        for (s, why) in bad {
            let e = Digest::parse(s).unwrap_err().to_string();
            assert!(e.contains(why), "{s:?}: {e}");
            assert!(e.contains(&format!("{s:?}")), "error names the input: {e}");
        }
    }

    #[test]
    fn hashing_reader_and_writer_agree_with_one_shot() {
        let data = b"hello, layers".repeat(1000);
        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        assert_eq!(r.digester().digest(), Digest::of(&data));
        assert_eq!(w.digester().digest(), Digest::of(&data));
        assert_eq!(w.digester().size(), data.len() as u64);
        assert_eq!(Digest::of(&data).short().len(), 12);
    }
}
