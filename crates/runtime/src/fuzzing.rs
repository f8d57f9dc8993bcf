//! The spec checks the init runs before it changes anything, reachable
//! without a container so the fuzz target (`fuzz/`) can drive them: a
//! panic there would kill the init instead of reporting the error.

use oci_spec::runtime::Spec;

use crate::init::{mounts, user};
use crate::Result;

/// Parses every mount's options and the capability sets of `spec`, the
/// way the init reads them.
pub fn init_checks(spec: &Spec) -> Result<()> {
    for m in spec.mounts().iter().flatten() {
        mounts::parse_options(m.options().as_deref().unwrap_or(&[]))?;
    }
    if let Some(p) = spec.process() {
        user::masks(p.capabilities().as_ref(), user::last_cap())?;
    }
    Ok(())
}
