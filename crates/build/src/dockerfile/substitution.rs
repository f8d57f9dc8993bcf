//! Variable substitution with docker's rules (BuildKit's `shell.Lex`):
//! `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//! `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`; single quotes are literal,
//! double quotes allow `$`; the escape character (`\` or `` ` ``) makes the
//! next character literal; quotes are removed from the result.
//!
//! Not a shell: no command substitution, arithmetic or globbing, and the
//! pattern modifiers (`${VAR#p}`, `${VAR%p}`, `${VAR/p/r}`) are rejected as
//! unsupported, as in docker's classic builder.

/// Why a word could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0:?}) in substitution")]
    UnsupportedModifier(char),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(&'static str),
    /// Nesting is bounded so hostile input cannot exhaust the stack.
    #[error("substitution nested more than {MAX_DEPTH} levels deep")]
    TooDeep,
}

/// Deepest `${a:-${b:-...}}` nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// Substitutes one word: quotes removed, variables replaced. `lookup`
/// returns `Some` for a set variable (possibly empty); unset ones expand to
/// nothing, as in docker.
pub fn expand_word(
    word: &str,
    escape: char,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let mut lexer = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        lookup,
        depth: 0,
        heredoc: false,
    };
    let (value, _) = lexer.process_stop_on(None)?;
    Ok(value)
}

/// Substitutes an unquoted heredoc body (`COPY <<EOF`): quotes are plain
/// text and only `\$` is an escape (giving `$`), so scripts and config
/// files keep their backslashes, as with BuildKit's raw heredoc expansion.
pub fn expand_heredoc(
    content: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let mut lexer = Lexer {
        chars: content.chars().collect(),
        pos: 0,
        escape: '\\',
        lookup,
        depth: 0,
        heredoc: true,
    };
    let (value, _) = lexer.process_stop_on(None)?;
    Ok(value)
}

/// Substitutes and then splits into fields the way docker does for
/// EXPOSE: unquoted text and variable values split on whitespace, quoted
/// text stays one field.
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Vec<String>, SubstError> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        escape,
        lookup,
        depth: 0,
        heredoc: false,
    };
    let (_, words) = lexer.process_stop_on(None)?;
    Ok(words.finish())
}

/// Removes quotes and escapes without substituting anything; `$` stays.
/// Used for heredoc names, whose quoting only says "do not expand".
pub(crate) fn unquote(word: &str, escape: char) -> String {
    let mut out = String::new();
    let mut chars = word.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => {
                if let Some(n) = chars.next() {
                    if !matches!(n, '"' | '$') && n != escape {
                        out.push(c);
                    }
                    out.push(n);
                }
            }
            Some(_) => out.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == escape => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// Field splitting state, mirroring BuildKit's `wordsStruct`.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
            }
            self.in_word = false;
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a mut dyn FnMut(&str) -> Option<String>,
    depth: usize,
    /// Heredoc body mode: quotes are literal, only `\$` is an escape.
    heredoc: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end of input.
    fn process_stop_on(&mut self, stop: Option<char>) -> Result<(String, Words), SubstError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SubstError::TooDeep);
        }
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                self.depth -= 1;
                return Ok((result, words));
            }
            match c {
                '\'' | '"' if self.heredoc && self.depth == 1 => {
                    self.next();
                    words.add_char(c);
                    result.push(c);
                }
                '\'' => {
                    let s = self.single_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    words.add_string(&s);
                    result.push_str(&s);
                }
                _ => {
                    self.next();
                    if self.heredoc
                        && self.depth == 1
                        && c == self.escape
                        && self.peek() != Some('$')
                    {
                        words.add_char(c);
                        result.push(c);
                    } else if c == self.escape {
                        // An escape at the very end is dropped, as docker does.
                        let Some(n) = self.next() else { break };
                        words.add_raw_char(n);
                        result.push(n);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        if stop.is_some() {
            return Err(SubstError::Unterminated("'}'"));
        }
        self.depth -= 1;
        Ok((result, words))
    }

    fn single_quote(&mut self) -> Result<String, SubstError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err(SubstError::Unterminated("single-quote")),
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, SubstError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(SubstError::Unterminated("double-quote")),
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        match self.peek() {
                            // A trailing escape inside an unterminated quote
                            // is dropped; the missing quote is reported next.
                            None => continue,
                            // Only these can be escaped inside double quotes;
                            // any other escape character stays as written.
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                out.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn dollar(&mut self) -> Result<String, SubstError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err(SubstError::MissingBrace),
            Some('{' | '}' | ':') => return Err(SubstError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        match self.next() {
            None => Err(SubstError::MissingBrace),
            Some('}') => Ok((self.lookup)(&name).unwrap_or_default()),
            Some('?') => {
                let (word, _) = self.process_stop_on(Some('}'))?;
                (self.lookup)(&name).ok_or_else(|| required(name, word))
            }
            Some(':') => {
                let modifier = self.next();
                let (word, _) = self.process_stop_on(Some('}'))?;
                let value = (self.lookup)(&name).unwrap_or_default();
                match modifier {
                    Some('+') => Ok(if value.is_empty() {
                        String::new()
                    } else {
                        word
                    }),
                    Some('-') => Ok(if value.is_empty() { word } else { value }),
                    Some('?') if value.is_empty() => Err(required(name, word)),
                    Some('?') => Ok(value),
                    None => Err(SubstError::MissingBrace),
                    Some(c) => Err(SubstError::UnsupportedModifier(c)),
                }
            }
            Some(m @ ('-' | '+')) => {
                let (word, _) = self.process_stop_on(Some('}'))?;
                let value = (self.lookup)(&name);
                Ok(match (m, value) {
                    ('-', Some(v)) => v,
                    ('-', None) => word,
                    (_, Some(_)) => word,
                    (_, None) => String::new(),
                })
            }
            Some(c) => Err(SubstError::UnsupportedModifier(c)),
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits; or
    /// one of the shell's special parameters (which docker leaves unset).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }
}

fn required(name: String, word: String) -> SubstError {
    let message = if word.is_empty() {
        "is not allowed to be unset".to_string()
    } else {
        word
    };
    SubstError::Required { name, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("foo".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("a b  c".into()),
            "PATH" => Some("/usr/bin".into()),
            _ => None,
        }
    }

    fn ex(word: &str) -> Result<String, SubstError> {
        expand_word(word, '\\', &mut env)
    }

    #[test]
    fn table() {
        // (input, expected) with escape `\`; most rows come from docker's
        // own envVarTest table.
        let rows: &[(&str, &str)] = &[
            ("hello", "hello"),
            ("$FOO", "foo"),
            ("${FOO}", "foo"),
            ("x${FOO}y", "xfooy"),
            ("$FOO/bar", "foo/bar"),
            ("$UNSET", ""),
            ("${UNSET}", ""),
            ("${UNSET:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${FOO:-def}", "foo"),
            ("${UNSET-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${FOO:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${UNSET:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${UNSET:-$FOO}", "foo"),
            ("${UNSET:-${UNSET2:-deep}}", "deep"),
            ("${UNSET:-a b}", "a b"),
            ("\\$FOO", "$FOO"),
            ("\\${FOO}", "${FOO}"),
            ("'$FOO'", "$FOO"),
            ("\"$FOO\"", "foo"),
            ("\"\\$FOO\"", "$FOO"),
            ("\"a\\b\"", "a\\b"),
            ("\"a\\\"b\"", "a\"b"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("a$", "a$"),
            ("$/x", "$/x"),
            ("$1", ""),
            ("$$", ""),
            ("${FOO?}", "foo"),
            ("${EMPTY?}", ""),
            ("${FOO:?boom}", "foo"),
            ("'a'\"b\"c", "abc"),
            ("trailing\\", "trailing"),
            ("${UNSET:-'}'}", "}"),
        ];
        for (input, want) in rows {
            assert_eq!(ex(input).as_deref(), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn errors() {
        let rows: &[(&str, SubstError)] = &[
            ("${FOO", SubstError::MissingBrace),
            ("${FOO:-x", SubstError::Unterminated("'}'")),
            ("${", SubstError::MissingBrace),
            ("${}", SubstError::BadSubstitution),
            ("${:-x}", SubstError::BadSubstitution),
            ("${{x}", SubstError::BadSubstitution),
            ("${FOO#x}", SubstError::UnsupportedModifier('#')),
            ("${FOO:=x}", SubstError::UnsupportedModifier('=')),
            ("'abc", SubstError::Unterminated("single-quote")),
            ("\"abc", SubstError::Unterminated("double-quote")),
            (
                "${UNSET?}",
                SubstError::Required {
                    name: "UNSET".into(),
                    message: "is not allowed to be unset".into(),
                },
            ),
            (
                "${EMPTY:?need it}",
                SubstError::Required {
                    name: "EMPTY".into(),
                    message: "need it".into(),
                },
            ),
        ];
        for (input, want) in rows {
            assert_eq!(ex(input).as_ref(), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn backtick_escape_leaves_backslash_alone() {
        let got = expand_word(r"C:\dir\$FOO `$FOO", '`', &mut env).unwrap();
        assert_eq!(got, r"C:\dir\foo $FOO");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let word = "${A:-".repeat(10_000) + &"}".repeat(10_000);
        assert_eq!(ex(&word), Err(SubstError::TooDeep));
    }

    #[test]
    fn field_splitting() {
        let rows: &[(&str, &[&str])] = &[
            ("80 443", &["80", "443"]),
            ("$SPACED", &["a", "b", "c"]),
            ("\"$SPACED\"", &["a b  c"]),
            ("x$FOO y", &["xfoo", "y"]),
            ("  ", &[]),
            ("a\\ b", &["a b"]),
        ];
        for (input, want) in rows {
            assert_eq!(
                expand_words(input, '\\', &mut env).unwrap(),
                *want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn lookups_are_reported() {
        let mut seen = Vec::new();
        let mut lookup = |n: &str| {
            seen.push(n.to_string());
            env(n)
        };
        expand_word("$FOO ${BAR:-x} '$NOT'", '\\', &mut lookup).unwrap();
        assert_eq!(seen, ["FOO", "BAR"]);
    }

    #[test]
    fn heredoc_bodies_keep_quotes_and_backslashes() {
        let got = expand_heredoc(
            "echo \"$FOO\" '$FOO' \\$FOO a\\nb ${UNSET:-\"q\"}\n",
            &mut env,
        )
        .unwrap();
        assert_eq!(got, "echo \"foo\" 'foo' $FOO a\\nb q\n");
    }

    #[test]
    fn unquote_keeps_dollars() {
        assert_eq!(unquote("\"EOF\"", '\\'), "EOF");
        assert_eq!(unquote("'E$OF'", '\\'), "E$OF");
        assert_eq!(unquote("E\\OF", '\\'), "EOF");
        assert_eq!(unquote("$X", '\\'), "$X");
    }
}
