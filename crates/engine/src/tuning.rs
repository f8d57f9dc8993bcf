//! berth.toml's `[cgroups]` table: what the engine may change on the host
//! for speed, when the administrator asks for it.

use serde::Deserialize;

use crate::error::{io_err, Error, Result};

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

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    cgroups: Cgroups,
}

/// The `[cgroups]` table of `text` (berth.toml at `origin`); other tables
/// belong to other readers.
pub fn parse(text: &str, origin: &str) -> Result<Cgroups> {
    let bad =
        |e: &dyn std::fmt::Display| Error::InvalidArgument(format!("{origin} [cgroups]: {e}"));
    let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(&e))?;
    table.retain(|k, _| k == "cgroups");
    let file: ConfigFile = table.try_into().map_err(|e| bad(&e))?;
    Ok(file.cgroups)
}

/// The `[cgroups]` table of berth.toml (`$BERTH_CONFIG` or
/// /etc/berth/berth.toml); defaults without a file.
pub fn cgroups() -> Result<Cgroups> {
    let path = crate::network::config_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cgroups::default()),
        Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
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
