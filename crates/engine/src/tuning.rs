//! berth.toml's `[cgroups]` table: what the engine may change on the host
//! for speed, when the administrator asks for it.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The `[cgroups]` table.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cgroups {
    /// Put the kernel's `favordynmods` on the cgroup2 mount before a
    /// container starts (see [`berth_runtime::cgroups::favor_dynmods`]).
    /// Off by default: it is a setting of the whole host, which docker and
    /// podman leave alone too.
    #[serde(default)]
    pub favordynmods: bool,
}

/// The `[cgroups]` table of `text` (berth.toml at `origin`).
pub fn parse(text: &str, origin: &str) -> Result<Cgroups> {
    crate::network::config_table(text, origin, "cgroups")
}

/// The `[cgroups]` table of berth.toml (`$BERTH_CONFIG` or
/// /etc/berth/berth.toml); defaults without a file.
pub fn cgroups() -> Result<Cgroups> {
    match crate::network::config_text()? {
        Some((text, origin)) => parse(&text, &origin),
        None => Ok(Cgroups::default()),
    }
}

/// Applies what `[cgroups]` asks of the host; a start calls it first, so
/// a setting the host refuses fails the start with the reason rather than
/// being ignored.
pub fn apply() -> Result<()> {
    if cgroups()?.favordynmods {
        let done = berth_runtime::cgroups::favor_dynmods(true).map_err(|e| {
            Error::InvalidArgument(format!(
                "{} [cgroups] favordynmods: {e}",
                crate::network::config_file().display()
            ))
        })?;
        if let berth_runtime::cgroups::DynMods::Set(point) = done {
            tracing::info!(mount = %point.display(), "cgroups: favordynmods set");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroups_table() {
        assert_eq!(parse("", "b").unwrap(), Cgroups::default());
        let on = parse(
            "[network]\npool = \"x\"\n[cgroups]\nfavordynmods = true\n",
            "b",
        )
        .unwrap();
        assert!(on.favordynmods);
        let e = parse("[cgroups]\nfavordynmod = true\n", "berth.toml").unwrap_err();
        assert!(e.to_string().contains("berth.toml [cgroups]"), "{e}");
        assert!(e.to_string().contains("favordynmod"), "{e}");
        assert!(parse("[cgroups]\nfavordynmods = \"yes\"\n", "b").is_err());
    }
}
