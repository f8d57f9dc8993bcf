//! Compiled filters kept on disk by the hash of their config: compiling
//! Docker's default profile with libseccomp costs milliseconds, loading its
//! BPF microseconds, and every container of an engine uses the same one.
//!
//! The cache lives in the runtime's root (root-owned, 0700); a file is
//! written under a temporary name and renamed, so a reader sees a whole
//! program or none, and a damaged one is recompiled.

use std::io::Write;
use std::path::Path;

use berth_sys::seccomp::FilterFlags;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::{compile, Error, Filter};

/// Bumped whenever compile() may produce a different program for the same
/// config, so old entries are never loaded.
const FORMAT: &[u8] = b"berth-seccomp-cache-v1";

fn key(spec: &LinuxSeccomp) -> Option<String> {
    let json = serde_json::to_vec(spec).ok()?;
    let mut h = Sha256::new();
    h.update(FORMAT);
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(&json);
    Some(hex::encode(h.finalize()))
}

fn flags_byte(f: FilterFlags) -> u8 {
    (f.tsync as u8)
        | (f.log as u8) << 1
        | (f.spec_allow as u8) << 2
        | (f.new_listener as u8) << 3
        | (f.wait_killable_recv as u8) << 4
}

fn flags_of(b: u8) -> FilterFlags {
    FilterFlags {
        tsync: b & 1 != 0,
        log: b & 2 != 0,
        spec_allow: b & 4 != 0,
        new_listener: b & 8 != 0,
        wait_killable_recv: b & 16 != 0,
    }
}

/// [`compile`], through the cache in `dir`. Cache trouble is never an
/// error: it only costs a compile.
pub fn compile_cached(spec: &LinuxSeccomp, dir: &Path) -> Result<Filter, Error> {
    let Some(k) = key(spec) else {
        return compile(spec);
    };
    let path = dir.join(&k);
    if let Ok(bytes) = std::fs::read(&path) {
        // One flags byte, then whole 8-byte BPF instructions.
        if bytes.len() > 1 && (bytes.len() - 1) % 8 == 0 {
            return Ok(Filter::from_bpf(bytes[1..].to_vec(), flags_of(bytes[0])));
        }
    }
    let f = compile(spec)?;
    let _ = std::fs::create_dir_all(dir);
    let tmp = dir.join(format!(".{k}.{}", std::process::id()));
    let stored = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(&[flags_byte(f.flags())])?;
        file.write_all(f.bpf())
    });
    if stored.is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_compile_comes_from_the_cache_and_equals_the_first() {
        let d = tempfile::tempdir().unwrap();
        let spec: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":5}]}"#,
        )
        .unwrap();
        let a = compile_cached(&spec, d.path()).unwrap();
        let files: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let b = compile_cached(&spec, d.path()).unwrap();
        assert!(a == b);
        // A damaged entry is recompiled, not loaded.
        let p = files[0].as_ref().unwrap().path();
        std::fs::write(&p, b"xyz").unwrap();
        let c = compile_cached(&spec, d.path()).unwrap();
        assert!(a == c);
        // Another config gets another entry.
        let other: LinuxSeccomp =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let o = compile_cached(&other, d.path()).unwrap();
        assert!(o != a);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn flags_round_trip() {
        for b in 0..32u8 {
            assert_eq!(flags_byte(flags_of(b)), b);
        }
    }
}
