//! Splitting an instruction's text into words, each with its byte offset
//! in the logical line so errors can point at it. Three splitters exist
//! because docker uses three: builder flags, quote-aware words (ENV, LABEL,
//! ARG) and plain whitespace (COPY, ADD, VOLUME, EXPOSE).

/// One `--name[=value]` builder flag, quotes and `\` escapes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlagWord {
    pub offset: usize,
    pub name: String,
    pub value: Option<String>,
}

/// Takes the leading `--flag` words off `text` (BuildKit's
/// `extractBuilderFlags`). Returns the flags and the offset of the rest.
/// A lone `--` ends the flags and is dropped.
pub(crate) fn extract_flags(text: &str) -> (Vec<FlagWord>, usize) {
    let mut flags = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return (flags, text.len());
        };
        if !text[start..].starts_with("--") {
            return (flags, start);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = text.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    // A backslash at the very end is dropped.
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        if word == "--" {
            return (flags, end);
        }
        let body = &word[2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        flags.push(FlagWord {
            offset: start,
            name,
            value,
        });
    }
}

/// Quote-aware words with quotes and escapes kept (BuildKit's
/// `parseWords`), for ENV, LABEL and ARG whose values are substituted later.
pub(crate) fn raw_words(text: &str, escape: char) -> Vec<(usize, String)> {
    let mut words = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return words;
        };
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some((_, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => break,
                None => {
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                    }
                    if c == escape {
                        // Outside quotes the escape and the next character
                        // are kept together, even if that is a quote.
                        if let Some((_, n)) = chars.next() {
                            word.push(c);
                            word.push(n);
                        }
                        continue;
                    }
                    word.push(c);
                }
                Some(q) => {
                    if c == q {
                        quote = None;
                    } else if c == escape && q != '\'' {
                        match chars.next() {
                            Some((_, n)) => {
                                word.push(c);
                                word.push(n);
                            }
                            None => quote = None,
                        }
                        continue;
                    }
                    word.push(c);
                }
            }
        }
        words.push((start, word));
    }
}

/// Whitespace-separated words, no quoting (BuildKit's
/// `parseStringsWhitespaceDelimited`).
pub(crate) fn plain_words(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, &text[s..]));
    }
    words
}

/// A JSON array of strings, or `None` when `text` is not one (docker then
/// falls back to the shell form for RUN, CMD and ENTRYPOINT).
pub(crate) fn json_array(text: &str) -> Option<Vec<String>> {
    let text = text.trim();
    if !text.starts_with('[') {
        return None;
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    values
        .into_iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let (flags, rest) = extract_flags("--from=build --chown=1:1 --link a b");
        assert_eq!(
            flags,
            [
                FlagWord {
                    offset: 0,
                    name: "from".into(),
                    value: Some("build".into())
                },
                FlagWord {
                    offset: 13,
                    name: "chown".into(),
                    value: Some("1:1".into())
                },
                FlagWord {
                    offset: 25,
                    name: "link".into(),
                    value: None
                },
            ]
        );
        assert_eq!(rest, 32);

        let (flags, rest) = extract_flags("--mount=type=cache,target=\"/a b\" echo");
        assert_eq!(flags[0].value.as_deref(), Some("type=cache,target=/a b"));
        assert_eq!(rest, 33);

        let (flags, rest) = extract_flags("  -- --notaflag");
        assert!(flags.is_empty());
        assert_eq!(rest, 4);

        let (flags, rest) = extract_flags("--x");
        assert_eq!(flags.len(), 1);
        assert_eq!(rest, 3);

        let (flags, rest) = extract_flags("-x");
        assert!(flags.is_empty());
        assert_eq!(rest, 0);
    }

    #[test]
    fn raw_words_keep_quotes() {
        let got = raw_words(r#"a=1 b="x y" c='p q' d=e\ f"#, '\\');
        let words: Vec<&str> = got.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(words, ["a=1", "b=\"x y\"", "c='p q'", r"d=e\ f"]);
        assert_eq!(got[1].0, 4);
    }

    #[test]
    fn raw_words_with_backtick() {
        let got = raw_words(r"p=C:\dir q=a` b", '`');
        let words: Vec<&str> = got.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(words, [r"p=C:\dir", "q=a` b"]);
    }

    #[test]
    fn plain() {
        assert_eq!(plain_words(" a  b\tc "), [(1, "a"), (4, "b"), (6, "c")]);
        assert_eq!(plain_words("\"a b\""), [(0, "\"a"), (3, "b\"")]);
    }

    #[test]
    fn json() {
        assert_eq!(
            json_array(r#" ["a", "b c"] "#),
            Some(vec!["a".into(), "b c".into()])
        );
        assert_eq!(json_array("[]"), Some(vec![]));
        assert_eq!(json_array("[1]"), None);
        assert_eq!(json_array("[\"a\""), None);
        assert_eq!(json_array("echo [x]"), None);
    }
}
