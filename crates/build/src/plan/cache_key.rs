//! Cache keys for build steps.
//!
//! A step's key is `sha256` over a length-prefixed encoding of, in order:
//!
//! 1. the domain tag `berth-build/step/v1`;
//! 2. the parent key: the previous step's key, or for a stage's first step
//!    [`base_key`] of what it builds FROM;
//! 3. the instruction after substitution, rendered with `{:?}` of the typed
//!    [`Instruction`](crate::dockerfile::Instruction) (heredoc bodies,
//!    mounts and flags included; quoting and spacing differences in the
//!    source that do not change meaning do not change the key);
//! 4. each build arg the step depends on ([`Step::args`]), sorted by name,
//!    as name then value;
//! 5. for COPY/ADD, the caller's digest of the source content (files,
//!    modes, ownership as it decides), or an empty field.
//!
//! Every field is written as an 8-byte little-endian length then its bytes,
//! so no two different inputs encode the same. Changing the AST's shape
//! changes keys: a berth upgrade may then miss the cache, never hit wrongly.

use berth_image::digest::{Digest, Digester};

use super::scope::Step;

const DOMAIN: &str = "berth-build/step/v1";

fn field(d: &mut Digester, bytes: &[u8]) {
    d.update(&(bytes.len() as u64).to_le_bytes());
    d.update(bytes);
}

/// What a stage starts from, for the first step's parent key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseKey<'a> {
    /// `FROM scratch`.
    Scratch,
    /// An image, by its config (or manifest) digest: the reference text
    /// is not enough, as tags move.
    Image(&'a Digest),
    /// Another stage, by the key of its last step.
    Stage(&'a Digest),
}

/// The parent key of a stage's first step.
pub fn base_key(base: BaseKey) -> Digest {
    let mut d = Digester::new();
    field(&mut d, b"berth-build/base/v1");
    match base {
        BaseKey::Scratch => field(&mut d, b"scratch"),
        BaseKey::Image(digest) => {
            field(&mut d, b"image");
            field(&mut d, digest.as_str().as_bytes());
        }
        BaseKey::Stage(digest) => {
            field(&mut d, b"stage");
            field(&mut d, digest.as_str().as_bytes());
        }
    }
    d.digest()
}

/// The key of the layer a `COPY --link` makes: the step's key without a
/// parent, and with the working directory it resolves a relative
/// destination against. Such a layer does not depend on what is below
/// it, so a build whose earlier steps changed may still reuse it.
pub fn link_key(step: &Step, content: Option<&Digest>, workdir: &str) -> Digest {
    let mut d = Digester::new();
    field(&mut d, b"berth-build/link/v1");
    field(&mut d, workdir.as_bytes());
    field(
        &mut d,
        step_key(&Digest::of(b""), step, content)
            .as_str()
            .as_bytes(),
    );
    d.digest()
}

/// The cache key of `step` on top of `parent`; see the module docs.
pub fn step_key(parent: &Digest, step: &Step, content: Option<&Digest>) -> Digest {
    let mut d = Digester::new();
    field(&mut d, DOMAIN.as_bytes());
    field(&mut d, parent.as_str().as_bytes());
    field(&mut d, format!("{:?}", step.instruction).as_bytes());
    field(&mut d, &(step.args.len() as u64).to_le_bytes());
    for (k, v) in &step.args {
        field(&mut d, k.as_bytes());
        field(&mut d, v.as_bytes());
    }
    field(&mut d, content.map_or("", |c| c.as_str()).as_bytes());
    d.digest()
}
