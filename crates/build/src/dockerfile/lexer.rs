//! From source text to logical lines: parser directives at the top,
//! comments dropped, continuations joined (skipping comment and empty lines
//! inside them, as BuildKit allows), heredoc bodies collected. Each logical
//! line keeps a map back to physical lines and columns for errors.

use super::ast::{Directives, Heredoc};
use super::error::{snippet, ParseError, ParseErrorKind};
use super::heredoc;

/// Maps byte offsets in a logical line to (line, column) in the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    /// (offset in logical text, physical line, 1-based column of that offset)
    segments: Vec<(usize, usize, usize)>,
}

/// One instruction's text with its location and heredoc bodies.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    pub text: String,
    pub map: SourceMap,
    pub start_line: usize,
    pub end_line: usize,
    pub heredocs: Vec<Heredoc>,
}

impl LogicalLine {
    /// (line, column) of a byte offset into `text`.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let segs = &self.map.segments;
        let Some(&(seg_off, line, col)) = segs.iter().rev().find(|(o, _, _)| *o <= offset) else {
            return (self.start_line, 1);
        };
        // Offsets come from char_indices, but stay safe if one does not.
        let chars = self
            .text
            .get(seg_off..offset)
            .map_or(0, |s| s.chars().count());
        (line, col + chars)
    }
}

/// Reads the parser directives (`# escape=`, `# syntax=`, `# check=`) at
/// the top of the file. They end at the first line that is not one; later
/// ones are plain comments. Unknown directives are ignored like comments.
pub(crate) fn directives(lines: &[&str], file: &str) -> Result<Directives, ParseError> {
    let mut d = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let Some((key, value, col)) = directive(raw) else {
            break;
        };
        let key = key.to_ascii_lowercase();
        let err = |kind| ParseError {
            file: file.to_string(),
            line: i + 1,
            column: col,
            kind,
        };
        if seen.contains(&key) {
            return Err(err(ParseErrorKind::DuplicateDirective(key)));
        }
        match key.as_str() {
            "escape" => {
                d.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(err(ParseErrorKind::InvalidEscape(snippet(other)))),
                }
            }
            "syntax" => d.syntax = Some(value.to_string()),
            "check" => d.check = Some(value.to_string()),
            _ => {}
        }
        seen.push(key);
    }
    Ok(d)
}

/// `# key = value` → (key, value, column of `#`).
fn directive(line: &str) -> Option<(&str, &str, usize)> {
    let trimmed = line.trim_start();
    let col = line.len() - trimmed.len() + 1;
    let body = trimmed.strip_prefix('#')?.trim_start_matches([' ', '\t']);
    let (key, value) = body.split_once('=')?;
    let key = key.trim_end_matches([' ', '\t']);
    let mut kc = key.chars();
    if !kc.next()?.is_ascii_alphabetic() || !kc.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    Some((key, value, col))
}

/// Iterates the logical lines of a file.
pub(crate) struct Lexer<'a> {
    lines: Vec<&'a str>,
    next: usize,
    escape: char,
    file: &'a str,
}

impl<'a> Lexer<'a> {
    pub fn new(lines: Vec<&'a str>, escape: char, file: &'a str) -> Self {
        Lexer {
            lines,
            next: 0,
            escape,
            file,
        }
    }

    fn take(&mut self) -> Option<(usize, &'a str)> {
        let line = *self.lines.get(self.next)?;
        self.next += 1;
        Some((self.next, line))
    }

    /// `line` without its continuation escape, and whether one was there.
    fn continues(&self, line: &'a str) -> (&'a str, bool) {
        let t = line.trim_end_matches([' ', '\t']);
        match t.strip_suffix(self.escape) {
            Some(rest) => (rest, true),
            None => (line, false),
        }
    }

    pub fn next_line(&mut self) -> Result<Option<LogicalLine>, ParseError> {
        loop {
            let Some((lineno, raw)) = self.take() else {
                return Ok(None);
            };
            let body = raw.trim_start();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let col = raw[..raw.len() - body.len()].chars().count() + 1;
            let (first, mut more) = self.continues(body);
            let mut text = first.to_string();
            let mut map = SourceMap {
                segments: vec![(0, lineno, col)],
            };
            let mut end_line = lineno;
            while more {
                let Some((n, raw)) = self.take() else { break };
                end_line = n;
                let t = raw.trim_start();
                if t.starts_with('#') || t.is_empty() {
                    continue;
                }
                // Continuation lines keep their indentation, as in BuildKit.
                let (part, again) = self.continues(raw);
                map.segments.push((text.len(), n, 1));
                text.push_str(part);
                more = again;
            }
            if text.trim().is_empty() {
                continue;
            }
            let mut line = LogicalLine {
                text,
                map,
                start_line: lineno,
                end_line,
                heredocs: Vec::new(),
            };
            self.read_heredocs(&mut line)?;
            return Ok(Some(line));
        }
    }

    fn read_heredocs(&mut self, line: &mut LogicalLine) -> Result<(), ParseError> {
        let keyword = line.text.split_whitespace().next().unwrap_or("");
        if !heredoc::allowed(keyword) {
            return Ok(());
        }
        for m in heredoc::markers(&line.text) {
            let mut content = String::new();
            let mut done = false;
            while let Some((n, raw)) = self.take() {
                line.end_line = n;
                if heredoc::is_terminator(&m, raw) {
                    done = true;
                    break;
                }
                content.push_str(raw);
                content.push('\n');
            }
            if !done {
                let (l, c) = line.locate(m.offset);
                return Err(ParseError {
                    file: self.file.to_string(),
                    line: l,
                    column: c,
                    kind: ParseErrorKind::UnterminatedHeredoc(m.name),
                });
            }
            if m.chomp {
                content = heredoc::chomp(&content);
            }
            line.heredocs.push(Heredoc {
                name: m.name,
                content,
                expand: m.expand,
                chomp: m.chomp,
            });
        }
        Ok(())
    }
}

/// Splits source into physical lines: a BOM dropped, `\r\n` accepted.
pub(crate) fn physical_lines(src: &str) -> Vec<&str> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let src = src.strip_suffix('\n').unwrap_or(src);
    src.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logical(src: &str) -> Vec<(String, usize, usize)> {
        let lines = physical_lines(src);
        let mut lx = Lexer::new(lines, '\\', "Dockerfile");
        let mut out = Vec::new();
        while let Some(l) = lx.next_line().unwrap() {
            out.push((l.text, l.start_line, l.end_line));
        }
        out
    }

    #[test]
    fn continuations_comments_and_blank_lines() {
        let src = "FROM a\n# comment\n\nRUN a \\\n  b \\\n# inside\n\n  c\n  # indented comment\nCMD x\\   \n";
        assert_eq!(
            logical(src),
            [
                ("FROM a".to_string(), 1, 1),
                ("RUN a   b   c".to_string(), 4, 8),
                ("CMD x".to_string(), 10, 10),
            ]
        );
    }

    #[test]
    fn locate_maps_back_across_continuations() {
        let lines = physical_lines("  RUN a \\\n    bad");
        let mut lx = Lexer::new(lines, '\\', "Dockerfile");
        let l = lx.next_line().unwrap().unwrap();
        assert_eq!(l.locate(0), (1, 3));
        let bad = l.text.find("bad").unwrap();
        assert_eq!(l.locate(bad), (2, 5));
    }

    #[test]
    fn heredoc_bodies_follow_the_line() {
        let src = "RUN <<A cat && <<-B cat\none\n  # not a comment\nA\n\ttwo\n\tB\nCMD x\n";
        let lines = physical_lines(src);
        let mut lx = Lexer::new(lines, '\\', "Dockerfile");
        let run = lx.next_line().unwrap().unwrap();
        assert_eq!(run.end_line, 6);
        assert_eq!(run.heredocs[0].content, "one\n  # not a comment\n");
        assert_eq!(run.heredocs[1].content, "two\n");
        assert_eq!(lx.next_line().unwrap().unwrap().text, "CMD x");
    }

    #[test]
    fn unterminated_heredoc_points_at_marker() {
        let lines = physical_lines("FROM a\nRUN cat <<EOF\nbody\n");
        let mut lx = Lexer::new(lines, '\\', "Dockerfile");
        lx.next_line().unwrap();
        let err = lx.next_line().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:2:9: unterminated heredoc \"EOF\""
        );
    }

    #[test]
    fn directive_table() {
        let d = directives(
            &[
                "# syntax=docker/dockerfile:1",
                "#escape=`",
                "# check=skip=all",
                "FROM a",
            ],
            "D",
        )
        .unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.check.as_deref(), Some("skip=all"));
        // Directives stop at the first other line, blank ones included.
        assert_eq!(directives(&["", "# escape=`"], "D").unwrap().escape, '\\');
        assert_eq!(
            directives(&["# hello", "# escape=`"], "D").unwrap().escape,
            '\\'
        );
        assert_eq!(
            directives(&["FROM a", "# escape=`"], "D").unwrap().escape,
            '\\'
        );
        // Unknown directives are skipped without ending the block.
        assert_eq!(
            directives(&["# foo=bar", "# escape=`"], "D")
                .unwrap()
                .escape,
            '`'
        );

        let e = directives(&["# escape=x"], "D").unwrap_err();
        assert_eq!(
            e.to_string(),
            "D:1:1: invalid escape token \"x\": must be \\ or `"
        );
        let e = directives(&["# escape=`", "# ESCAPE=\\"], "D").unwrap_err();
        assert_eq!(
            e.to_string(),
            "D:2:1: only one \"escape\" parser directive can be used"
        );
    }

    #[test]
    fn backtick_continuation() {
        let lines = physical_lines("RUN dir c:\\ `\n  && echo");
        let mut lx = Lexer::new(lines, '`', "Dockerfile");
        assert_eq!(
            lx.next_line().unwrap().unwrap().text,
            "RUN dir c:\\   && echo"
        );
    }

    #[test]
    fn bom_and_crlf() {
        assert_eq!(
            logical("\u{feff}FROM a\r\nRUN b \\\r\n c\r\n"),
            [("FROM a".into(), 1, 1), ("RUN b  c".into(), 2, 3)]
        );
    }
}
