//! `.dockerignore`: which context paths the build never sees.
//!
//! docker's rules (moby/patternmatcher and its ignorefile reader): one
//! pattern a line; lines starting with `#` are comments; surrounding space
//! is trimmed; `!` makes an exception that re-includes; patterns are
//! cleaned like Go's `filepath.Clean` (so `./a/` is `a`) and a leading `/`
//! is dropped; `*` and `?` never match `/`, `**` matches any number of
//! directories, `[...]` is a character class, `\` escapes. The last
//! matching pattern wins, and a path is also excluded when one of its parent
//! directories matches (so `build` excludes `build/out.o`).

/// A `.dockerignore` pattern that cannot be used, at its line and column
/// (the caller knows the file's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("{line}:{column}: illegal exclusion pattern \"!\"")]
    BareExclusion { line: usize, column: usize },
    #[error("{line}:{column}: syntax error in pattern {pattern:?}")]
    BadPattern {
        line: usize,
        column: usize,
        pattern: String,
    },
}

/// Parsed `.dockerignore` rules.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    text: String,
    matcher: Matcher,
}

/// How a pattern matches, chosen the way patternmatcher chooses, including
/// its shortcuts (`**foo` is a plain suffix test there, and so here).
#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Tokens(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run without `/`.
    Star,
    /// `**` (and `**/`) not at the end: `(.*/)?`.
    Dirs,
    /// `**` at the end: anything.
    Rest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl DockerIgnore {
    /// Reads `.dockerignore` text.
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let column = 1 + raw.chars().take_while(|c| c.is_whitespace()).count();
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(IgnoreError::BareExclusion { line, column });
                }
            }
            let mut cleaned = clean(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let matcher = compile(&cleaned).ok_or_else(|| IgnoreError::BadPattern {
                line,
                column,
                pattern: raw.to_string(),
            })?;
            patterns.push(Pattern {
                exclusion,
                text: cleaned,
                matcher,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// The cleaned patterns, `!` marking exceptions, in file order.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    /// Whether any `!` exception re-includes paths: a walk must then look
    /// inside excluded directories too.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context, `/`-separated) is ignored.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.strip_prefix('/').unwrap_or(&path);
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // An include only matters while unmatched, an exception only
            // once matched.
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.matcher.matches(path);
            if !hit {
                hit = (1..=parents.len()).any(|n| p.matcher.matches(&parents[..n].join("/")));
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// A path pattern with `.dockerignore`'s syntax (`*`, `?`, `[...]`, `**`,
/// `\` escapes), for COPY sources: BuildKit matches those the same way.
#[derive(Debug, Clone)]
pub struct Glob(Matcher);

impl Glob {
    /// `None` when the pattern's syntax is bad. The pattern is cleaned
    /// like a path first (`./a//b` is `a/b`).
    pub fn new(pattern: &str) -> Option<Glob> {
        let cleaned = clean(pattern);
        compile(cleaned.trim_start_matches('/')).map(Glob)
    }

    /// Whether `path` (relative, `/`-separated, clean) matches.
    pub fn matches(&self, path: &str) -> bool {
        self.0.matches(path)
    }
}

/// Whether `text` has glob metacharacters (a COPY source to match rather
/// than to look up).
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

impl Matcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(s) => path == s,
            Matcher::Prefix(s) => path.starts_with(s.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|t| path == t)
            }
            Matcher::Tokens(toks) => {
                let chars: Vec<char> = path.chars().collect();
                let mut memo = vec![None; (toks.len() + 1) * (chars.len() + 1)];
                match_at(toks, 0, &chars, 0, &mut memo)
            }
        }
    }
}

/// Backtracking with memoisation, so hostile patterns stay polynomial.
fn match_at(toks: &[Tok], ti: usize, path: &[char], pi: usize, memo: &mut [Option<bool>]) -> bool {
    let slot = ti * (path.len() + 1) + pi;
    if let Some(r) = memo[slot] {
        return r;
    }
    let r = match toks.get(ti) {
        None => pi == path.len(),
        Some(Tok::Lit(c)) => path.get(pi) == Some(c) && match_at(toks, ti + 1, path, pi + 1, memo),
        Some(Tok::One) => {
            path.get(pi).is_some_and(|c| *c != '/') && match_at(toks, ti + 1, path, pi + 1, memo)
        }
        Some(Tok::Star) => {
            let mut k = pi;
            loop {
                if match_at(toks, ti + 1, path, k, memo) {
                    break true;
                }
                if k == path.len() || path[k] == '/' {
                    break false;
                }
                k += 1;
            }
        }
        Some(Tok::Dirs) => {
            match_at(toks, ti + 1, path, pi, memo)
                || (pi + 1..=path.len())
                    .any(|k| path[k - 1] == '/' && match_at(toks, ti + 1, path, k, memo))
        }
        Some(Tok::Rest) => true,
        Some(Tok::Class { negated, ranges }) => {
            path.get(pi)
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&c)) != *negated)
                && match_at(toks, ti + 1, path, pi + 1, memo)
        }
    };
    memo[slot] = Some(r);
    r
}

/// Compiles a cleaned pattern, or `None` if its syntax is bad.
fn compile(p: &str) -> Option<Matcher> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut kind = Kind::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    toks.push(Tok::Rest);
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        kind = Kind::Regex;
                    }
                } else {
                    toks.push(Tok::Dirs);
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                kind = Kind::Regex;
            }
            '?' => {
                toks.push(Tok::One);
                kind = Kind::Regex;
            }
            // An escape alone does not make a pattern a glob: patternmatcher
            // then compares the pattern text, backslash included.
            '\\' => match chars.get(i) {
                Some(&n) => {
                    toks.push(Tok::Lit(n));
                    i += 1;
                }
                None => return None,
            },
            '[' => {
                let (tok, next) = class(&chars, i)?;
                toks.push(tok);
                i = next;
                kind = Kind::Regex;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                kind = Kind::Regex;
            }
            c => toks.push(Tok::Lit(c)),
        }
        first = false;
    }
    Some(match kind {
        Kind::Exact => Matcher::Exact(p.to_string()),
        Kind::Prefix => Matcher::Prefix(p[..p.len() - 2].to_string()),
        Kind::Suffix => Matcher::Suffix(p.get(2..).unwrap_or("").to_string()),
        Kind::Regex => Matcher::Tokens(toks),
    })
}

/// A `[...]` class starting after `[`; returns it and the index after `]`.
fn class(chars: &[char], mut i: usize) -> Option<(Tok, usize)> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let mut c = *chars.get(i)?;
        i += 1;
        if c == ']' && !ranges.is_empty() {
            return Some((Tok::Class { negated, ranges }, i));
        }
        if c == '\\' {
            c = *chars.get(i)?;
            i += 1;
        }
        let mut hi = c;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|n| *n != ']') {
            hi = chars[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *chars.get(i)?;
                i += 1;
            }
            if hi < c {
                return None;
            }
        }
        ranges.push((c, hi));
    }
}

/// Go's `path.Clean`: drop empty and `.` elements, resolve `..` lexically.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rules: &str, rows: &[(&str, bool)]) {
        let ig = DockerIgnore::parse(rules).unwrap();
        for (path, want) in rows {
            assert_eq!(ig.matches(path), *want, "rules {rules:?} path {path:?}");
        }
    }

    #[test]
    fn docker_documented_example() {
        // The example from docker's .dockerignore documentation.
        let rules = "# comment\n*/temp*\n*/*/temp*\ntemp?\n";
        check(
            rules,
            &[
                ("somedir/temporary.txt", true),
                ("somedir/temp", true),
                ("somedir/subdir/temporary.txt", true),
                ("tempa", true),
                ("tempb", true),
                ("temp", false),
                ("temporary.txt", false),
                ("a/b/c/temp", false),
                ("# comment", false),
            ],
        );
    }

    #[test]
    fn double_star() {
        check(
            "**/*.go",
            &[
                ("main.go", true),
                ("a/b/c.go", true),
                ("a/go", false),
                ("a/b.gox", false),
            ],
        );
        check(
            "a/**/b",
            &[
                ("a/b", true),
                ("a/x/b", true),
                ("a/x/y/b", true),
                ("ab", false),
                ("a/xb", false),
            ],
        );
        check(
            "vendor/**",
            &[("vendor/x", true), ("vendor/a/b", true), ("vendorx", false)],
        );
        check("**", &[("anything", true), ("a/b/c", true)]);
        // patternmatcher treats a leading `**` with a literal rest as a suffix.
        check(
            "**foo",
            &[("barfoo", true), ("a/foo", true), ("foox", false)],
        );
    }

    #[test]
    fn exceptions_last_match_wins() {
        check(
            "*.md\n!README.md",
            &[("CHANGES.md", true), ("README.md", false)],
        );
        // docker docs: README-secret.md excluded, other README*.md kept.
        check(
            "*.md\n!README*.md\nREADME-secret.md",
            &[
                ("README-secret.md", true),
                ("README-public.md", false),
                ("notes.md", true),
            ],
        );
        // Order flipped: every README*.md kept, the secret one too.
        check(
            "*.md\nREADME-secret.md\n!README*.md",
            &[("README-secret.md", false), ("x.md", true)],
        );
    }

    #[test]
    fn parents_and_cleaning() {
        check(
            "/build\n./dist/\nnode_modules\n",
            &[
                ("build", true),
                ("build/out.o", true),
                ("dist/app.js", true),
                ("src/node_modules", false),
                ("node_modules/x/y", true),
                ("./build/x", true),
                ("/dist", true),
                ("builder", false),
            ],
        );
        check("a/../b", &[("b", true), ("a", false)]);
        // An exception re-includes a directory's contents too (parent match).
        check(
            "*\n!src\n",
            &[
                ("src", false),
                ("src/x", false),
                ("other", true),
                ("other/x", true),
            ],
        );
    }

    #[test]
    fn classes_and_escapes() {
        check(
            "file[0-9].txt",
            &[("file1.txt", true), ("filea.txt", false)],
        );
        check(
            "file[^0-9].txt",
            &[("file1.txt", false), ("filea.txt", true)],
        );
        check("a\\*b*", &[("a*bc", true), ("axbc", false)]);
        // docker quirk kept: with no other wildcard the text is compared as is.
        check("a\\*b", &[("a\\*b", true), ("a*b", false)]);
        check("?", &[("a", true), ("ab", false)]);
        check("  spaced.txt  \n", &[("spaced.txt", true)]);
    }

    #[test]
    fn errors_and_comments() {
        assert_eq!(
            DockerIgnore::parse("ok\n!\n").unwrap_err(),
            IgnoreError::BareExclusion { line: 2, column: 1 }
        );
        assert_eq!(
            DockerIgnore::parse("a\n  [abc").unwrap_err(),
            IgnoreError::BadPattern {
                line: 2,
                column: 3,
                pattern: "  [abc".into()
            }
        );
        assert!(DockerIgnore::parse("x\\").is_err());
        assert!(DockerIgnore::parse("[z-a]").is_err());
        let ig = DockerIgnore::parse("# c\n\n  \n !keep \nx").unwrap();
        assert_eq!(ig.patterns(), ["!keep", "x"]);
    }

    #[test]
    fn hostile_pattern_stays_fast() {
        let ig = DockerIgnore::parse(&"*a".repeat(30)).unwrap();
        let path = "a".repeat(200) + "b";
        let started = std::time::Instant::now();
        assert!(!ig.matches(&path));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
