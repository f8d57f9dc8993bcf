//! Builder flags (`--name=value`) checked against what each instruction
//! accepts, with docker's rules: string flags need `=value`, bool flags
//! take none or `=true|false`, only list flags may repeat.

use super::error::ParseErrorKind;
use super::words::FlagWord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    Bool,
    String,
    /// May be given more than once (`--mount`, `--exclude`).
    List,
}

/// The flags an instruction was given, after checking.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// (name, value, offset) in the order given.
    values: Vec<(&'static str, String, usize)>,
}

impl Flags {
    pub fn string(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v.clone())
    }

    /// The value and offset of a flag, for checks that point at it.
    pub fn located(&self, name: &str) -> Option<(String, usize)> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, o)| (v.clone(), *o))
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }

    pub fn list(&self, name: &str) -> Vec<(String, usize)> {
        self.values
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(_, v, o)| (v.clone(), *o))
            .collect()
    }
}

/// Checks `words` against `spec`; errors carry the offset of the flag.
pub(crate) fn check(
    instruction: &'static str,
    words: &[FlagWord],
    spec: &[(&'static str, FlagKind)],
) -> Result<Flags, (usize, ParseErrorKind)> {
    let mut flags = Flags::default();
    for w in words {
        let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == w.name) else {
            return Err((
                w.offset,
                ParseErrorKind::UnknownFlag {
                    instruction,
                    flag: w.name.clone(),
                },
            ));
        };
        if kind != FlagKind::List && flags.values.iter().any(|(n, _, _)| *n == name) {
            return Err((w.offset, ParseErrorKind::DuplicateFlag(w.name.clone())));
        }
        let value = match (kind, &w.value) {
            (FlagKind::Bool, None) => "true".to_string(),
            (FlagKind::Bool, Some(v)) if v.is_empty() => {
                return Err((w.offset, ParseErrorKind::MissingFlagValue(w.name.clone())))
            }
            (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" => "true".to_string(),
                "false" => "false".to_string(),
                _ => {
                    return Err((
                        w.offset,
                        ParseErrorKind::BadBool {
                            flag: w.name.clone(),
                            value: v.clone(),
                        },
                    ));
                }
            },
            (_, None) => return Err((w.offset, ParseErrorKind::MissingFlagValue(w.name.clone()))),
            (_, Some(v)) => v.clone(),
        };
        flags.values.push((name, value, w.offset));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[(&str, FlagKind)] = &[
        ("from", FlagKind::String),
        ("link", FlagKind::Bool),
        ("exclude", FlagKind::List),
    ];

    fn w(name: &str, value: Option<&str>) -> FlagWord {
        FlagWord {
            offset: 7,
            name: name.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn accepted() {
        let f = check(
            "COPY",
            &[
                w("from", Some("a")),
                w("link", None),
                w("exclude", Some("x")),
                w("exclude", Some("y")),
            ],
            SPEC,
        )
        .unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.list("exclude").len(), 2);
        let f = check("COPY", &[w("link", Some("FALSE"))], SPEC).unwrap();
        assert_eq!(f.bool("link"), Some(false));
    }

    #[test]
    fn rejected() {
        let rows: Vec<(Vec<FlagWord>, ParseErrorKind)> = vec![
            (
                vec![w("nope", None)],
                ParseErrorKind::UnknownFlag {
                    instruction: "COPY",
                    flag: "nope".into(),
                },
            ),
            (
                vec![w("from", Some("a")), w("from", Some("b"))],
                ParseErrorKind::DuplicateFlag("from".into()),
            ),
            (
                vec![w("from", None)],
                ParseErrorKind::MissingFlagValue("from".into()),
            ),
            (
                vec![w("link", Some(""))],
                ParseErrorKind::MissingFlagValue("link".into()),
            ),
            (
                vec![w("link", Some("yes"))],
                ParseErrorKind::BadBool {
                    flag: "link".into(),
                    value: "yes".into(),
                },
            ),
        ];
        for (words, want) in rows {
            assert_eq!(check("COPY", &words, SPEC).unwrap_err(), (7, want));
        }
    }
}
