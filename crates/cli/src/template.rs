//! docker's `--format`: the part of Go's text/template people use on the
//! command line (`{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{upper .X}}`,
//! `{{lower .X}}`), the `table` and `json` shorthands, and docker's
//! tabwriter (minimum width 10, padding 3).
//!
//! Rows are JSON objects: the same values `--format json` prints.

use anyhow::{bail, Result};
use serde_json::Value;

/// How a listing is to be printed.
pub enum Format {
    /// `table [TEMPLATE]`: a header row and aligned columns.
    Table(Template),
    /// Each row through the template, one line each.
    Lines(Template),
}

impl Format {
    /// Parses `--format`; `default` is the table template without the
    /// `table ` prefix, used for an empty format or a bare `table`.
    pub fn parse(format: Option<&str>, default: &str) -> Result<Format> {
        let f = format.unwrap_or("").trim();
        // docker replaces the escapes a shell passes through literally.
        let f = f.replace("\\t", "\t").replace("\\n", "\n");
        Ok(match f.as_str() {
            "" | "table" => Format::Table(Template::parse(default)?),
            "json" => Format::Lines(Template::parse("{{json .}}")?),
            t => match t.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => {
                    Format::Table(Template::parse(rest.trim_start())?)
                }
                _ => Format::Lines(Template::parse(t)?),
            },
        })
    }

    /// Renders `rows`; `headers` names the column of each field.
    pub fn render(&self, rows: &[Value], headers: &[(&str, &str)]) -> Result<String> {
        match self {
            Format::Lines(t) => {
                let mut out = String::new();
                for r in rows {
                    out.push_str(&t.render(r)?);
                    out.push('\n');
                }
                Ok(out)
            }
            Format::Table(t) => {
                let mut header = serde_json::Map::new();
                for f in t.fields() {
                    let name = headers
                        .iter()
                        .find(|(k, _)| *k == f)
                        .map_or_else(|| f.to_uppercase(), |(_, h)| h.to_string());
                    header.insert(f, Value::String(name));
                }
                let mut lines = vec![t.render(&Value::Object(header))?];
                for r in rows {
                    lines.push(t.render(r)?);
                }
                Ok(tabwrite(&lines))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Action {
        func: Option<String>,
        path: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

impl Template {
    pub fn parse(s: &str) -> Result<Template> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let Some(end) = rest[start..].find("}}") else {
                bail!("template parsing error: unclosed action in {s:?}");
            };
            let inner = rest[start + 2..start + end]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim();
            pieces.push(parse_action(inner, s)?);
            rest = &rest[start + end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// The top-level fields the template reads, in order.
    fn fields(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Piece::Action { path, .. } => path.first().cloned(),
                Piece::Text(_) => None,
            })
            .collect()
    }

    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action { func, path } => {
                    let mut v = data;
                    for k in path {
                        v = match v.get(k) {
                            Some(x) => x,
                            None if v.is_object() => &Value::Null,
                            None => bail!("template: can't evaluate field {k} in {v}"),
                        };
                    }
                    let s = match func.as_deref() {
                        None => go_string(v),
                        Some("json") => serde_json::to_string(v)?,
                        Some("upper") => go_string(v).to_uppercase(),
                        Some("lower") => go_string(v).to_lowercase(),
                        Some(f) => bail!("template: function {f:?} not defined"),
                    };
                    out.push_str(&s);
                }
            }
        }
        Ok(out)
    }
}

fn parse_action(inner: &str, whole: &str) -> Result<Piece> {
    let words: Vec<&str> = inner.split_whitespace().collect();
    let (func, arg) = match words.as_slice() {
        [arg] => (None, *arg),
        [f, arg] => (Some(f.to_string()), *arg),
        _ => bail!("template parsing error: unsupported action {{{{{inner}}}}} in {whole:?}"),
    };
    if !arg.starts_with('.') {
        bail!("template parsing error: {arg:?} is not a field (fields start with '.')");
    }
    let path = arg[1..]
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    Ok(Piece::Action { func, path })
}

/// A value as Go's `fmt.Print` shows it.
fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

/// docker's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`: each
/// tab-terminated cell padded to its column's widest cell plus 3, at
/// least 10; text after the last tab is left as is.
pub fn tabwrite(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &cells {
        for (i, c) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let last = row.len().saturating_sub(1);
        for (i, c) in row.iter().enumerate() {
            out.push_str(c);
            if i < last {
                let w = (widths[i] + 3).max(10);
                out.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_template_subset() {
        let row = json!({"Repository": "bb", "Tag": "latest", "Config": {"Cmd": ["sh", "-c"]}});
        let t = Template::parse(
            "{{.Repository}}:{{.Tag}} {{json .Config.Cmd}} {{.Config.Cmd}} {{upper .Tag}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&row).unwrap(),
            r#"bb:latest ["sh","-c"] [sh -c] LATEST"#
        );
        assert_eq!(
            Template::parse("{{.Nope}}").unwrap().render(&row).unwrap(),
            "<no value>"
        );
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{index .A 1 2}}").is_err());
        assert!(Template::parse("{{nope .A}}")
            .unwrap()
            .render(&row)
            .is_err());
    }

    #[test]
    fn tables_like_docker() {
        let f = Format::parse(Some("table {{.Repository}}\\t{{.Tag}}"), "").unwrap();
        let out = f
            .render(
                &[json!({"Repository": "busybox", "Tag": "latest"})],
                &[("Repository", "REPOSITORY"), ("Tag", "TAG")],
            )
            .unwrap();
        assert_eq!(out, "REPOSITORY   TAG\nbusybox      latest\n");
        let f = Format::parse(Some("json"), "").unwrap();
        assert_eq!(f.render(&[json!({"A": 1})], &[]).unwrap(), "{\"A\":1}\n");
        assert_eq!(
            tabwrite(&["A\tB\tC".into(), "xy\tlonger cell\tz".into()]),
            "A         B             C\nxy        longer cell   z\n"
        );
    }
}
