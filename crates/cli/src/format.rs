//! Docker's output formats: aligned tables, "2 minutes ago", "4.26MB".

/// Columns padded to the widest cell plus three spaces, as docker's
/// tabwriter does; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    for r in std::iter::once(&head).chain(rows) {
        let last = r.len().saturating_sub(1);
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

pub use berth_engine::status::ago;

/// docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three
/// significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[u])
}

/// docker ps's COMMAND: quoted, cut to 20 characters with an ellipsis.
pub fn command(args: &[String]) -> String {
    let s = args.join(" ");
    let s = if s.chars().count() > 20 {
        format!("{}…", s.chars().take(19).collect::<String>())
    } else {
        s
    };
    format!("\"{s}\"")
}

/// Docker's `inspect` for any kind of object: the JSON array of those
/// found, or the Go template `format` rendered once per object ("json"
/// is the array too). A name that is not found is one line on stderr and
/// an exit status of 1, after the others were printed. The template is
/// checked before anything is looked up.
pub fn inspect<T, E>(
    names: &[String],
    format: Option<&str>,
    mut find: impl FnMut(&str) -> Result<T, E>,
) -> anyhow::Result<u8>
where
    T: serde::Serialize,
    E: std::fmt::Display,
{
    use std::io::Write;
    let template = match format {
        None | Some("json") => None,
        Some(f) => Some(crate::template::Template::parse(
            &f.replace("\\t", "\t").replace("\\n", "\n"),
        )?),
    };
    let mut found = Vec::new();
    let mut failed = false;
    for name in names {
        match find(name) {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    match &template {
        Some(t) => {
            for v in &found {
                writeln!(out, "{}", t.render(&serde_json::to_value(v)?)?)?;
            }
        }
        // The objects themselves, not Values: those would sort the keys.
        None => writeln!(out, "{}", serde_json::to_string_pretty(&found)?)?,
    }
    Ok(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_240), "1.24kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_300_000), "12.3MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A     LONGER\nxyz   1\n");
        assert_eq!(
            command(&["sh".into(), "-c".into(), "echo hello world again".into()]),
            "\"sh -c echo hello wo…\""
        );
    }
}
