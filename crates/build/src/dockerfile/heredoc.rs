//! Heredocs: finding `<<NAME` markers on a RUN, COPY or ADD line and
//! collecting their bodies from the lines that follow.
//!
//! As in BuildKit, markers are found by splitting the whole line into shell
//! words (so `"<<EOF"` in quotes or `cat<<EOF` glued to a word are not
//! markers) and matching `^[0-9]*<<-?NAME$` where NAME has no `<`.

use super::substitution::unquote;
use super::words::raw_words;

/// A marker found on the line; the body is read afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// Byte offset of the marker word in the text it was found in.
    pub offset: usize,
    /// The word as written, e.g. `<<-"EOF"`.
    pub word: String,
    pub name: String,
    pub chomp: bool,
    pub expand: bool,
}

/// The instructions whose lines may carry heredocs.
pub(crate) fn allowed(keyword: &str) -> bool {
    matches!(
        keyword.to_ascii_lowercase().as_str(),
        "run" | "copy" | "add"
    )
}

/// Parses one word as a heredoc marker.
pub(crate) fn marker(offset: usize, word: &str) -> Option<Marker> {
    let after_fd = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = after_fd.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    // Heredoc names are lexed with `\` whatever the escape directive says.
    let name = unquote(rest, '\\');
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return None;
    }
    let expand = !rest.contains(['\'', '"']);
    Some(Marker {
        offset,
        word: word.to_string(),
        name,
        chomp,
        expand,
    })
}

/// All markers in `text`, in order.
pub(crate) fn markers(text: &str) -> Vec<Marker> {
    if !text.contains("<<") {
        return Vec::new();
    }
    raw_words(text, '\\')
        .into_iter()
        .filter_map(|(offset, word)| marker(offset, &word))
        .collect()
}

/// Whether `line` ends the heredoc `marker`.
pub(crate) fn is_terminator(marker: &Marker, line: &str) -> bool {
    let candidate = if marker.chomp {
        line.trim_start_matches('\t')
    } else {
        line
    };
    candidate == marker.name
}

/// `<<-` strips leading tabs (only tabs) from every body line.
pub(crate) fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_table() {
        // (word, Some((name, chomp, expand)) or None)
        type Want = Option<(&'static str, bool, bool)>;
        let rows: &[(&str, Want)] = &[
            ("<<EOF", Some(("EOF", false, true))),
            ("<<-EOF", Some(("EOF", true, true))),
            ("<<\"EOF\"", Some(("EOF", false, false))),
            ("<<'EOF'", Some(("EOF", false, false))),
            ("<<-'END'", Some(("END", true, false))),
            ("3<<EOF", Some(("EOF", false, true))),
            ("<<file.txt", Some(("file.txt", false, true))),
            ("<<", None),
            ("<<-", None),
            ("<<<EOF", None),
            ("cat<<EOF", None),
            ("<EOF", None),
            ("x", None),
        ];
        for (word, want) in rows {
            let got = marker(0, word).map(|m| (m.name, m.chomp, m.expand));
            let want = want.map(|(n, c, e)| (n.to_string(), c, e));
            assert_eq!(got, want, "word {word:?}");
        }
    }

    #[test]
    fn markers_on_a_line() {
        let found = markers("<<FILE1 cat > file1 && <<FILE2 cat > file2");
        let names: Vec<&str> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["FILE1", "FILE2"]);
        assert_eq!(found[1].offset, 23);
        assert!(markers("echo \"<<EOF\"").is_empty());
        assert!(markers("echo a << b").is_empty());
    }

    #[test]
    fn terminators() {
        let plain = marker(0, "<<EOF").unwrap();
        let dash = marker(0, "<<-EOF").unwrap();
        assert!(is_terminator(&plain, "EOF"));
        assert!(!is_terminator(&plain, "\tEOF"));
        assert!(!is_terminator(&plain, "EOF "));
        assert!(is_terminator(&dash, "\t\tEOF"));
        assert!(!is_terminator(&dash, "  EOF"));
    }

    #[test]
    fn chomp_strips_only_tabs() {
        assert_eq!(chomp("\t\ta\n  b\n\tc"), "a\n  b\nc");
    }
}
