//! One logical line to one typed [`Instruction`]. Each parser gets the
//! text after the keyword and flags, and reports errors as a byte offset in
//! the logical line, which the caller turns into line and column.

use super::ast::*;
use super::error::{invalid, ParseErrorKind};
use super::flags::{check, FlagKind, Flags};
use super::heredoc;
use super::lexer::LogicalLine;
use super::mounts::parse_mount;
use super::values::{parse_duration, valid_chmod, valid_signal, PortSpec};
use super::words::{extract_flags, json_array, plain_words, raw_words};

/// An error at a byte offset of the logical line.
pub(crate) type Located<T> = Result<T, (usize, ParseErrorKind)>;

/// Everything a per-instruction parser needs.
struct Args<'a> {
    line: &'a LogicalLine,
    keyword: &'static str,
    /// Offset of the keyword, where errors about the whole line point.
    at: usize,
    flag_words: Vec<super::words::FlagWord>,
    /// Offset of the text after keyword and flags.
    rest_at: usize,
    escape: char,
}

impl Args<'_> {
    fn rest(&self) -> &str {
        self.line.text[self.rest_at..].trim_end()
    }

    fn flags(&self, spec: &[(&'static str, FlagKind)]) -> Located<Flags> {
        check(self.keyword, &self.flag_words, spec)
    }

    fn invalid(&self, offset: usize, problem: &str, text: &str) -> (usize, ParseErrorKind) {
        (offset, invalid(self.keyword, problem, text))
    }

    fn missing(&self) -> (usize, ParseErrorKind) {
        (self.at, ParseErrorKind::MissingArguments(self.keyword))
    }
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "ARG",
    "LABEL",
    "EXPOSE",
    "COPY",
    "ADD",
    "WORKDIR",
    "USER",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "ONBUILD",
    "MAINTAINER",
];

/// Parses the instruction that starts at or after byte `start`.
pub(crate) fn parse(line: &LogicalLine, start: usize, escape: char) -> Located<Instruction> {
    let text = &line.text;
    let tail = &text[start..];
    let at = start + (tail.len() - tail.trim_start().len());
    let kw_end = text[at..]
        .find(char::is_whitespace)
        .map_or(text.len(), |i| at + i);
    let word = &text[at..kw_end];
    let Some(&keyword) = KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(word)) else {
        return Err((
            at,
            ParseErrorKind::UnknownInstruction(super::error::snippet(word)),
        ));
    };
    if keyword == "ONBUILD" {
        return onbuild(line, at, kw_end, escape);
    }
    let (flag_words, rest_rel) = extract_flags(&text[kw_end..]);
    let flag_words = flag_words
        .into_iter()
        .map(|mut f| {
            f.offset += kw_end;
            f
        })
        .collect();
    let a = Args {
        line,
        keyword,
        at,
        flag_words,
        rest_at: kw_end + rest_rel,
        escape,
    };
    match keyword {
        "FROM" => from(&a),
        "RUN" => run(&a),
        "CMD" => command(&a, false).map(Instruction::Cmd),
        "ENTRYPOINT" => command(&a, true).map(Instruction::Entrypoint),
        "ENV" => name_values(&a).map(Instruction::Env),
        "LABEL" => name_values(&a).map(Instruction::Label),
        "ARG" => arg(&a),
        "EXPOSE" => expose(&a),
        "COPY" => copy(&a, false).map(Instruction::Copy),
        "ADD" => copy(&a, true).map(Instruction::Add),
        "WORKDIR" => string(&a).map(Instruction::Workdir),
        "MAINTAINER" => string(&a).map(Instruction::Maintainer),
        "USER" => single_word(&a, |_| true).map(Instruction::User),
        "STOPSIGNAL" => single_word(&a, valid_signal).map(Instruction::StopSignal),
        "VOLUME" => volume(&a),
        "HEALTHCHECK" => healthcheck(&a),
        _ => shell(&a),
    }
}

fn from(a: &Args) -> Located<Instruction> {
    let flags = a.flags(&[("platform", FlagKind::String)])?;
    let words = plain_words(a.rest());
    let (image, name) = match words.as_slice() {
        [(_, image)] => (image, None),
        [(_, image), (_, as_), (off, name)] if as_.eq_ignore_ascii_case("as") => {
            (image, Some((*off, *name)))
        }
        [] => return Err(a.missing()),
        _ => {
            return Err(a.invalid(
                a.rest_at,
                "expected \"FROM [--platform=...] image [AS name]\"",
                a.rest(),
            ))
        }
    };
    let name = match name {
        None => None,
        Some((off, name)) => {
            let lower = name.to_ascii_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(a.invalid(a.rest_at + off, "invalid stage name: start with a letter; then letters, digits, '-', '_' or '.'", name));
            }
            Some(lower)
        }
    };
    Ok(Instruction::From(From {
        platform: flags.string("platform"),
        image: image.to_string(),
        name,
    }))
}

fn run(a: &Args) -> Located<Instruction> {
    let flags = a.flags(&[
        ("mount", FlagKind::List),
        ("network", FlagKind::String),
        ("security", FlagKind::String),
    ])?;
    let mut mounts = Vec::new();
    for (value, off) in flags.list("mount") {
        mounts.push(parse_mount(&value).map_err(|p| a.invalid(off, &p, &value))?);
    }
    let network = match flags.located("network") {
        None => None,
        Some((v, off)) => Some(match v.as_str() {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => return Err(a.invalid(off, "network must be default, none or host", &v)),
        }),
    };
    let security = match flags.located("security") {
        None => None,
        Some((v, off)) => Some(match v.as_str() {
            "sandbox" => Security::Sandbox,
            "insecure" => Security::Insecure,
            _ => return Err(a.invalid(off, "security must be sandbox or insecure", &v)),
        }),
    };
    let command = command(a, false)?;
    Ok(Instruction::Run(Run {
        mounts,
        network,
        security,
        command,
        heredocs: a.line.heredocs.clone(),
    }))
}

/// Exec form when the text is a JSON array of strings, else shell form.
fn command(a: &Args, empty_exec_ok: bool) -> Located<Command> {
    if a.keyword != "RUN" {
        a.flags(&[])?;
    }
    let rest = a.rest();
    match json_array(rest) {
        Some(v) if v.is_empty() && !empty_exec_ok && a.keyword == "RUN" => Err(a.missing()),
        Some(v) => Ok(Command::Exec(v)),
        None if rest.is_empty() => Err(a.missing()),
        None => Ok(Command::Shell(rest.to_string())),
    }
}

/// ENV and LABEL: `k=v k2="v 2"`, or the legacy `k some value`.
fn name_values(a: &Args) -> Located<Vec<KeyValue>> {
    a.flags(&[])?;
    let rest = a.rest();
    let words = raw_words(rest, a.escape);
    let Some((_, first)) = words.first() else {
        return Err(a.missing());
    };
    if !first.contains('=') {
        // Legacy form: the first word is the name, the rest of the line the value.
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(a.invalid(a.rest_at, "needs a value (NAME=value or NAME value)", rest));
        }
        return Ok(vec![KeyValue {
            key: first.clone(),
            value: value.to_string(),
        }]);
    }
    words
        .into_iter()
        .map(|(off, w)| match w.split_once('=') {
            Some(("", _)) => Err(a.invalid(a.rest_at + off, "empty name", &w)),
            Some((k, v)) => Ok(KeyValue {
                key: k.to_string(),
                value: v.to_string(),
            }),
            None => Err(a.invalid(a.rest_at + off, "expected NAME=value", &w)),
        })
        .collect()
}

fn arg(a: &Args) -> Located<Instruction> {
    a.flags(&[])?;
    let words = raw_words(a.rest(), a.escape);
    if words.is_empty() {
        return Err(a.missing());
    }
    let decls = words
        .into_iter()
        .map(|(off, w)| {
            let (name, default) = match w.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (w.clone(), None),
            };
            if name.is_empty() {
                return Err(a.invalid(a.rest_at + off, "empty name", &w));
            }
            Ok(ArgDecl { name, default })
        })
        .collect::<Located<Vec<_>>>()?;
    Ok(Instruction::Arg(decls))
}

fn expose(a: &Args) -> Located<Instruction> {
    a.flags(&[])?;
    let words = plain_words(a.rest());
    if words.is_empty() {
        return Err(a.missing());
    }
    for (off, w) in &words {
        if !w.contains('$') {
            PortSpec::parse(w).map_err(|p| a.invalid(a.rest_at + off, p, w))?;
        }
    }
    Ok(Instruction::Expose(
        words.into_iter().map(|(_, w)| w.to_string()).collect(),
    ))
}

fn copy(a: &Args, add: bool) -> Located<Copy> {
    let mut spec = vec![
        ("chown", FlagKind::String),
        ("chmod", FlagKind::String),
        ("link", FlagKind::Bool),
        ("exclude", FlagKind::List),
    ];
    if add {
        spec.extend([
            ("checksum", FlagKind::String),
            ("keep-git-dir", FlagKind::Bool),
            ("unpack", FlagKind::Bool),
        ]);
    } else {
        spec.extend([("from", FlagKind::String), ("parents", FlagKind::Bool)]);
    }
    let flags = a.flags(&spec)?;
    if let Some((v, off)) = flags.located("chmod") {
        if !v.contains('$') && !valid_chmod(&v) {
            return Err(a.invalid(
                off,
                "invalid --chmod (octal like 755 or symbolic like u+x)",
                &v,
            ));
        }
    }
    if let Some((v, off)) = flags.located("checksum") {
        if !v.contains('$') && berth_image::Digest::parse(&v).is_err() {
            return Err(a.invalid(off, "invalid --checksum (expected sha256:<hex>)", &v));
        }
    }
    let rest = a.rest();
    let (words, json): (Vec<(usize, String)>, bool) = match json_array(rest) {
        Some(v) => (v.into_iter().map(|w| (0, w)).collect(), true),
        None => (
            plain_words(rest)
                .into_iter()
                .map(|(o, w)| (o, w.to_string()))
                .collect(),
            false,
        ),
    };
    if words.len() < 2 {
        return Err(a.invalid(
            a.rest_at,
            "needs at least one source and a destination",
            rest,
        ));
    }
    let mut heredocs = a.line.heredocs.iter();
    let Some((dest, sources)) = words.split_last() else {
        return Err(a.missing());
    };
    let sources = sources
        .iter()
        .map(|(_, w)| {
            // A heredoc marker stands for the next collected body.
            match heredoc::marker(0, w).filter(|_| !json) {
                Some(m) => match heredocs.find(|h| h.name == m.name) {
                    Some(h) => Source::Heredoc(h.clone()),
                    None => Source::Path(w.clone()),
                },
                None => Source::Path(w.clone()),
            }
        })
        .collect();
    Ok(Copy {
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        excludes: flags.list("exclude").into_iter().map(|(v, _)| v).collect(),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        unpack: flags.bool("unpack"),
        sources,
        dest: dest.1.clone(),
    })
}

/// WORKDIR and MAINTAINER: the rest of the line.
fn string(a: &Args) -> Located<String> {
    a.flags(&[])?;
    match a.rest() {
        "" => Err(a.missing()),
        s => Ok(s.to_string()),
    }
}

fn single_word(a: &Args, ok: impl Fn(&str) -> bool) -> Located<String> {
    a.flags(&[])?;
    match plain_words(a.rest()).as_slice() {
        [] => Err(a.missing()),
        [(off, w)] if !w.contains('$') && !ok(w) => {
            Err(a.invalid(a.rest_at + off, "invalid value", w))
        }
        [(_, w)] => Ok(w.to_string()),
        _ => Err(a.invalid(a.rest_at, "takes exactly one argument", a.rest())),
    }
}

fn volume(a: &Args) -> Located<Instruction> {
    a.flags(&[])?;
    let rest = a.rest();
    let vols: Vec<String> = match json_array(rest) {
        Some(v) => v,
        None => plain_words(rest)
            .into_iter()
            .map(|(_, w)| w.to_string())
            .collect(),
    };
    if vols.is_empty() {
        return Err(a.missing());
    }
    if vols.iter().any(|v| v.trim().is_empty()) {
        return Err(a.invalid(a.rest_at, "a volume path can not be empty", rest));
    }
    Ok(Instruction::Volume(vols))
}

fn healthcheck(a: &Args) -> Located<Instruction> {
    let flags = a.flags(&[
        ("interval", FlagKind::String),
        ("timeout", FlagKind::String),
        ("start-period", FlagKind::String),
        ("start-interval", FlagKind::String),
        ("retries", FlagKind::String),
    ])?;
    let duration = |name: &str| -> Located<Option<std::time::Duration>> {
        let Some((v, off)) = flags.located(name) else {
            return Ok(None);
        };
        match parse_duration(&v) {
            Some(d) if d.is_zero() || d >= std::time::Duration::from_millis(1) => Ok(Some(d)),
            _ => Err(a.invalid(
                off,
                &format!("--{name} must be a duration of at least 1ms (like 30s)"),
                &v,
            )),
        }
    };
    let interval = duration("interval")?;
    let timeout = duration("timeout")?;
    let start_period = duration("start-period")?;
    let start_interval = duration("start-interval")?;
    let retries = match flags.located("retries") {
        None => None,
        Some((v, off)) => Some(
            v.parse::<u32>()
                .map_err(|_| a.invalid(off, "--retries must be a whole number", &v))?,
        ),
    };
    let rest = a.rest();
    let kind_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (kind, after) = rest.split_at(kind_end);
    if kind.eq_ignore_ascii_case("NONE") {
        if !after.trim().is_empty() {
            return Err(a.invalid(a.rest_at, "HEALTHCHECK NONE takes no arguments", rest));
        }
        return Ok(Instruction::Healthcheck(Healthcheck::None));
    }
    if !kind.eq_ignore_ascii_case("CMD") {
        if rest.is_empty() {
            return Err(a.missing());
        }
        return Err(a.invalid(a.rest_at, "unknown type (use CMD or NONE)", kind));
    }
    let after = after.trim();
    let command = match json_array(after) {
        Some(v) if !v.is_empty() => Command::Exec(v),
        Some(_) => return Err(a.invalid(a.rest_at, "missing command after CMD", rest)),
        None if after.is_empty() => {
            return Err(a.invalid(a.rest_at, "missing command after CMD", rest))
        }
        None => Command::Shell(after.to_string()),
    };
    Ok(Instruction::Healthcheck(Healthcheck::Check(HealthCheck {
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
        command,
    })))
}

fn shell(a: &Args) -> Located<Instruction> {
    a.flags(&[])?;
    match json_array(a.rest()) {
        Some(v) if !v.is_empty() => Ok(Instruction::Shell(v)),
        _ if a.rest().is_empty() => Err(a.missing()),
        _ => Err(a.invalid(
            a.rest_at,
            "needs a non-empty JSON array, like [\"/bin/sh\", \"-c\"]",
            a.rest(),
        )),
    }
}

fn onbuild(line: &LogicalLine, at: usize, kw_end: usize, escape: char) -> Located<Instruction> {
    let tail = &line.text[kw_end..];
    let trigger_at = kw_end + (tail.len() - tail.trim_start().len());
    let source = line.text[trigger_at..].trim_end().to_string();
    if source.is_empty() {
        return Err((at, ParseErrorKind::MissingArguments("ONBUILD")));
    }
    let first = source.split_whitespace().next().unwrap_or("");
    for banned in ["ONBUILD", "FROM", "MAINTAINER"] {
        if first.eq_ignore_ascii_case(banned) {
            return Err((trigger_at, ParseErrorKind::BadOnbuildTrigger(banned)));
        }
    }
    let trigger = parse(line, trigger_at, escape)?;
    Ok(Instruction::Onbuild(Onbuild {
        trigger: Box::new(trigger),
        source,
    }))
}
