//! docker's `--format`: the part of Go's text/template people use on the
//! command line, the `table` and `json` shorthands, and docker's
//! tabwriter (minimum width 10, padding 3).
//!
//! The template is lexed into text and actions, parsed into a tree of
//! nodes and evaluated over a `serde_json::Value` (rows are JSON objects:
//! the same values `--format json` prints). Supported: field paths
//! (`{{.A.B}}`, `{{.}}`), variables (`{{$x := .A}}`, `{{$}}`),
//! `{{if}}`/`{{else if}}`/`{{else}}`, `{{with}}`, `{{range}}` over arrays
//! and objects (sorted keys, `{{range $k, $v := .M}}`, `{{else}}`),
//! pipelines (`{{.Name | upper}}`), parentheses, string/number/bool
//! literals, `{{/* comments */}}`, `{{-`/`-}}` trimming, and the functions
//! `json upper lower title join split index len println print printf
//! truncate pad not and or eq ne lt le gt ge`.

use anyhow::{anyhow, bail, Result};
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
enum Tok {
    /// `.A.B` (`.` alone is an empty path).
    Field(Vec<String>),
    /// `$name.A.B` (`$` alone is the root).
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Ident(String),
    Pipe,
    LParen,
    /// `)` and any `.A.B` right after it.
    RParen(Vec<String>),
    Comma,
    Declare,
    Assign,
}

type Toks = Vec<(Tok, usize)>;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Text(String),
    Action(Toks, usize, usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
    /// Byte span of the action in the template source.
    span: (usize, usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    If,
    With,
    Range,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipe),
    Block {
        kind: Kind,
        pipe: Pipe,
        then: Vec<Node>,
        els: Vec<Node>,
    },
}

/// Functions the engine knows: docker's plus Go's builtins people use.
const FUNCS: &[&str] = &[
    "json", "upper", "lower", "title", "join", "split", "index", "len", "println", "print",
    "printf", "truncate", "pad", "not", "and", "or", "eq", "ne", "lt", "le", "gt", "ge",
];

/// "line L, column C" of byte offset `pos` in `src`.
fn where_in(src: &str, pos: usize) -> String {
    let before = &src[..pos.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {col}")
}

fn parse_error(src: &str, pos: usize, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "template parsing error: {msg} at {} in {src:?}",
        where_in(src, pos)
    )
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits the template into text and tokenised actions.
fn lex(src: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let rest = &src[pos..];
        let Some(off) = rest.find("{{") else {
            let text = if trim_next { rest.trim_start() } else { rest };
            if !text.is_empty() {
                items.push(Item::Text(text.to_string()));
            }
            return Ok(items);
        };
        let mut text = &rest[..off];
        if trim_next {
            text = text.trim_start();
        }
        let open = pos + off;
        let mut p = open + 2;
        let after = &src[p..];
        if after.starts_with('-') && after[1..].starts_with(char::is_whitespace) {
            text = text.trim_end();
            p += 1;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let (toks, end, trim) = lex_action(src, p, open)?;
        if let Some(toks) = toks {
            items.push(Item::Action(toks, open, end));
        }
        trim_next = trim;
        pos = end;
    }
}

/// Field names after a `.` at `i`: `.A.B` → ["A", "B"].
fn lex_path(src: &str, mut i: usize) -> (Vec<String>, usize) {
    let mut path = Vec::new();
    while src[i..].starts_with('.') && src[i + 1..].starts_with(is_ident) {
        let start = i + 1;
        let len = src[start..]
            .find(|c| !is_ident(c))
            .unwrap_or(src.len() - start);
        path.push(src[start..start + len].to_string());
        i = start + len;
    }
    (path, i)
}

/// Tokens of the action starting at byte `i` (just inside `{{`); returns
/// them (None for a comment), the offset after `}}`, and whether `-}}`
/// asked to trim the text that follows.
fn lex_action(src: &str, mut i: usize, open: usize) -> Result<(Option<Toks>, usize, bool)> {
    let mut toks: Toks = Vec::new();
    let mut comment = false;
    loop {
        let rest = &src[i..];
        let Some(c) = rest.chars().next() else {
            return Err(parse_error(src, open, "unclosed action"));
        };
        if rest.starts_with("}}") || rest.starts_with("-}}") {
            let (end, trim) = if c == '-' {
                (i + 3, true)
            } else {
                (i + 2, false)
            };
            if comment && !toks.is_empty() {
                return Err(parse_error(
                    src,
                    open,
                    "comment ends before closing delimiter",
                ));
            }
            return Ok(((!comment).then_some(toks), end, trim));
        }
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let at = i;
        if rest.starts_with("/*") {
            let Some(e) = rest.find("*/") else {
                return Err(parse_error(src, at, "unclosed comment"));
            };
            comment = true;
            i += e + 2;
            continue;
        }
        let tok = match c {
            '"' => {
                let mut s = String::new();
                let mut chars = rest.char_indices().skip(1);
                loop {
                    match chars.next() {
                        None => return Err(parse_error(src, at, "unterminated quoted string")),
                        Some((j, '"')) => {
                            i += j + 1;
                            break;
                        }
                        Some((_, '\\')) => match chars.next().map(|(_, e)| e) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('r') => s.push('\r'),
                            Some('0') => s.push('\0'),
                            Some(e @ ('\\' | '"' | '\'')) => s.push(e),
                            _ => return Err(parse_error(src, at, "unknown escape in string")),
                        },
                        Some((_, ch)) => s.push(ch),
                    }
                }
                Tok::Str(s)
            }
            '`' => {
                let Some(e) = rest[1..].find('`') else {
                    return Err(parse_error(src, at, "unterminated raw string"));
                };
                i += e + 2;
                Tok::Str(rest[1..1 + e].to_string())
            }
            '.' if !rest[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                if rest[1..].starts_with(is_ident) {
                    let (path, j) = lex_path(src, i);
                    i = j;
                    Tok::Field(path)
                } else {
                    i += 1;
                    Tok::Field(Vec::new())
                }
            }
            '$' => {
                let len = rest[1..].find(|c| !is_ident(c)).unwrap_or(rest.len() - 1);
                let name = rest[..1 + len].to_string();
                let (path, j) = lex_path(src, i + 1 + len);
                i = j;
                Tok::Var(name, path)
            }
            c if c.is_ascii_digit()
                || c == '.'
                || ((c == '-' || c == '+')
                    && rest[1..].starts_with(|d: char| d.is_ascii_digit())) =>
            {
                let len = 1 + rest[1..]
                    .find(|d: char| !(d.is_ascii_alphanumeric() || d == '.' || d == '_'))
                    .unwrap_or(rest.len() - 1);
                let n = rest[..len].replace('_', "");
                i += len;
                if let Ok(v) = n.parse::<i64>() {
                    Tok::Int(v)
                } else if let Ok(v) = n.parse::<f64>() {
                    Tok::Float(v)
                } else {
                    return Err(parse_error(src, at, format!("bad number syntax: {n:?}")));
                }
            }
            c if is_ident(c) => {
                let len = rest.find(|c| !is_ident(c)).unwrap_or(rest.len());
                i += len;
                Tok::Ident(rest[..len].to_string())
            }
            '|' => {
                i += 1;
                Tok::Pipe
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                let (path, j) = lex_path(src, i + 1);
                i = j;
                Tok::RParen(path)
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            ':' if rest.starts_with(":=") => {
                i += 2;
                Tok::Declare
            }
            '=' => {
                i += 1;
                Tok::Assign
            }
            other => {
                return Err(parse_error(
                    src,
                    at,
                    format!("unexpected {other:?} in action"),
                ));
            }
        };
        toks.push((tok, at));
    }
}

enum Stop {
    Eof,
    End,
    Else(Toks, usize, usize),
}

struct Parser<'a> {
    src: &'a str,
    items: std::vec::IntoIter<Item>,
    vars: Vec<String>,
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: impl std::fmt::Display) -> anyhow::Error {
        parse_error(self.src, pos, msg)
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (toks, start, end) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action(toks, start, end) => (toks, start, end),
            };
            let kw = match toks.first() {
                Some((Tok::Ident(k), _)) => k.as_str(),
                _ => "",
            };
            match kw {
                "end" if toks.len() == 1 => return Ok((nodes, Stop::End)),
                "end" => return Err(self.err(toks[1].1, "unexpected tokens after end")),
                "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec(), start, end))),
                "if" | "with" | "range" => {
                    let kw = kw.to_string();
                    nodes.push(self.block(&kw, &toks[1..], start, end)?);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(self.err(start, format!("{{{{{kw}}}}} is not supported")));
                }
                _ => nodes.push(Node::Action(self.pipeline(&toks, start, end, false)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn block(&mut self, kw: &str, toks: &[(Tok, usize)], start: usize, end: usize) -> Result<Node> {
        let mark = self.vars.len();
        let pipe = self.pipeline(toks, start, end, kw == "range")?;
        let (then, stop) = self.list()?;
        let unclosed =
            |p: &Self| p.err(start, format!("unclosed {{{{{kw}}}}}: missing {{{{end}}}}"));
        let els = match stop {
            Stop::Eof => return Err(unclosed(self)),
            Stop::End => Vec::new(),
            Stop::Else(rest, s, e) => match rest.first() {
                None => match self.list()? {
                    (els, Stop::End) => els,
                    (_, Stop::Eof) => return Err(unclosed(self)),
                    (_, Stop::Else(_, s, _)) => {
                        return Err(self.err(s, "expected {{end}}, found {{else}}"))
                    }
                },
                Some((Tok::Ident(k), _)) if k == "if" || k == "with" => {
                    let k = k.clone();
                    vec![self.block(&k, &rest[1..], s, e)?]
                }
                Some((_, p)) => return Err(self.err(*p, "unexpected tokens after else")),
            },
        };
        self.vars.truncate(mark);
        let kind = match kw {
            "if" => Kind::If,
            "with" => Kind::With,
            _ => Kind::Range,
        };
        Ok(Node::Block {
            kind,
            pipe,
            then,
            els,
        })
    }

    fn pipeline(
        &mut self,
        toks: &[(Tok, usize)],
        start: usize,
        end: usize,
        range: bool,
    ) -> Result<Pipe> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut i = 0;
        let is_decl = |j: usize| matches!(toks.get(j), Some((Tok::Declare | Tok::Assign, _)));
        let var_at = |j: usize| match toks.get(j) {
            Some((Tok::Var(n, p), _)) if p.is_empty() => Some(n.clone()),
            _ => None,
        };
        if let (Some(a), Some(b)) = (var_at(0), var_at(2)) {
            if matches!(toks.get(1), Some((Tok::Comma, _))) && is_decl(3) {
                if !range {
                    return Err(self.err(toks[1].1, "too many declarations"));
                }
                decl = vec![a, b];
                assign = matches!(toks[3].0, Tok::Assign);
                i = 4;
            }
        }
        if decl.is_empty() {
            if let Some(a) = var_at(0).filter(|_| is_decl(1)) {
                decl = vec![a];
                assign = matches!(toks[1].0, Tok::Assign);
                i = 2;
            }
        }
        if assign {
            for d in &decl {
                if !self.vars.contains(d) {
                    return Err(self.err(start, format!("undefined variable {d:?}")));
                }
            }
        }
        let cmds = self.cmds(toks, &mut i, false, start)?;
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe {
            decl,
            assign,
            cmds,
            span: (start, end),
        })
    }

    fn cmds(
        &mut self,
        toks: &[(Tok, usize)],
        i: &mut usize,
        paren: bool,
        start: usize,
    ) -> Result<Vec<Vec<Arg>>> {
        let mut cmds = Vec::new();
        loop {
            let mut args = Vec::new();
            let mut at = toks.get(*i).map_or(start, |t| t.1);
            loop {
                let Some((tok, p)) = toks.get(*i) else {
                    if paren {
                        return Err(self.err(start, "unclosed left paren"));
                    }
                    break;
                };
                if args.is_empty() {
                    at = *p;
                }
                let arg = match tok {
                    Tok::Pipe => break,
                    Tok::RParen(_) if paren => break,
                    Tok::RParen(_) => return Err(self.err(*p, "unexpected right paren")),
                    Tok::LParen => {
                        *i += 1;
                        let sub = self.cmds(toks, i, true, *p)?;
                        let Some((Tok::RParen(path), _)) = toks.get(*i) else {
                            return Err(self.err(*p, "unclosed left paren"));
                        };
                        let pipe = Pipe {
                            decl: Vec::new(),
                            assign: false,
                            cmds: sub,
                            span: (*p, *p),
                        };
                        Arg::Sub(Box::new(pipe), path.clone())
                    }
                    Tok::Field(path) => Arg::Field(path.clone()),
                    Tok::Var(n, path) => {
                        if !self.vars.contains(n) {
                            return Err(self.err(*p, format!("undefined variable {n:?}")));
                        }
                        Arg::Var(n.clone(), path.clone())
                    }
                    Tok::Str(s) => Arg::Lit(Value::String(s.clone())),
                    Tok::Int(n) => Arg::Lit(Value::from(*n)),
                    Tok::Float(f) => Arg::Lit(Value::from(*f)),
                    Tok::Ident(b) if b == "true" || b == "false" => {
                        Arg::Lit(Value::Bool(b == "true"))
                    }
                    Tok::Ident(b) if b == "nil" => Arg::Lit(Value::Null),
                    Tok::Ident(f) if FUNCS.contains(&f.as_str()) => Arg::Func(f.clone()),
                    Tok::Ident(f) => {
                        return Err(self.err(*p, format!("function {f:?} not defined")));
                    }
                    Tok::Comma | Tok::Declare | Tok::Assign => {
                        return Err(self.err(*p, "unexpected declaration or comma"));
                    }
                };
                args.push(arg);
                *i += 1;
            }
            match args.first() {
                None => return Err(self.err(at, "missing value for command")),
                Some(Arg::Func(_)) => {}
                Some(_) if !cmds.is_empty() => {
                    return Err(self.err(
                        at,
                        format!(
                            "non executable command in pipeline stage {}",
                            cmds.len() + 1
                        ),
                    ));
                }
                Some(_) if args.len() > 1 => {
                    return Err(self.err(at, "can't give argument to non-function"));
                }
                Some(_) => {}
            }
            cmds.push(args);
            match toks.get(*i) {
                Some((Tok::Pipe, _)) => *i += 1,
                _ => return Ok(cmds),
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
}

impl Template {
    /// Parses `s`; a malformed template is one error naming the template
    /// and the line and column of the problem.
    pub fn parse(s: &str) -> Result<Template> {
        let items = lex(s)?;
        let mut p = Parser {
            src: s,
            items: items.into_iter(),
            vars: vec!["$".to_string()],
        };
        let (nodes, stop) = p.list()?;
        match stop {
            Stop::Eof => Ok(Template {
                src: s.to_string(),
                nodes,
            }),
            Stop::End => Err(parse_error(s, s.len(), "unexpected {{end}}")),
            Stop::Else(_, at, _) => Err(parse_error(s, at, "unexpected {{else}}")),
        }
    }

    /// The top-level fields the template reads, in order.
    fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_fields(&self.nodes, &mut out);
        out
    }

    pub fn render(&self, data: &Value) -> Result<String> {
        let mut exec = Exec {
            src: &self.src,
            vars: vec![("$".to_string(), data.clone())],
        };
        let mut out = String::new();
        exec.walk(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// Go's notion of truth: false, 0, nil and empty things are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// `.A.B` of `v`: a missing key of an object is nil (`<no value>`).
fn walk_path(mut v: Value, path: &[String]) -> Result<Value> {
    for k in path {
        v = match v {
            Value::Object(mut m) => m.remove(k).unwrap_or(Value::Null),
            other => bail!("can't evaluate field {k} in {other}"),
        };
    }
    Ok(v)
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !is_ident(c);
    }
    out
}

fn int_arg(v: &Value, f: &str) -> Result<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| anyhow!("{f}: {v} is not an integer"))
}

/// Go's `fmt.Sprintf` for the verbs people use: %s %v %d %q %t %%, with
/// `-` and a width.
fn printf(format: &str, args: &[Value]) -> Result<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let left = chars.next_if_eq(&'-').is_some();
        let mut width = 0usize;
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            width = width * 10 + d.to_digit(10).unwrap_or(0) as usize;
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let s = match verb {
            'q' => serde_json::to_string(&Value::String(go_string(a)))?,
            _ => go_string(a),
        };
        let pad = " ".repeat(width.saturating_sub(s.chars().count()));
        if left {
            out.push_str(&s);
            out.push_str(&pad);
        } else {
            out.push_str(&pad);
            out.push_str(&s);
        }
    }
    Ok(out)
}

/// Calls function `f`; a piped value is already the last of `args`.
fn call(f: &str, args: Vec<Value>) -> Result<Value> {
    let want = |n: usize| -> Result<()> {
        if args.len() != n {
            bail!("wrong number of args for {f}: want {n} got {}", args.len());
        }
        Ok(())
    };
    let s = |v: &Value| go_string(v);
    Ok(match f {
        "json" => {
            want(1)?;
            Value::String(serde_json::to_string(&args[0])?)
        }
        "upper" | "lower" | "title" => {
            want(1)?;
            let v = s(&args[0]);
            Value::String(match f {
                "upper" => v.to_uppercase(),
                "lower" => v.to_lowercase(),
                _ => title(&v),
            })
        }
        "join" => {
            want(2)?;
            let Value::Array(a) = &args[0] else {
                bail!("join: {} is not a list", args[0]);
            };
            Value::String(
                a.iter()
                    .map(go_string)
                    .collect::<Vec<_>>()
                    .join(&s(&args[1])),
            )
        }
        "split" => {
            want(2)?;
            let (v, sep) = (s(&args[0]), s(&args[1]));
            Value::Array(
                v.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            )
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                bail!("wrong number of args for index: want at least 1 got 0");
            };
            let mut v = first.clone();
            for k in keys {
                v = match (v, k) {
                    (Value::Array(mut a), k) => {
                        let i = int_arg(k, "index")?;
                        if i < 0 || i as usize >= a.len() {
                            bail!("index out of range: {i}");
                        }
                        a.swap_remove(i as usize)
                    }
                    (Value::Object(mut m), Value::String(k)) => m.remove(k).unwrap_or(Value::Null),
                    (Value::Object(_), k) => bail!("index: map key {k} is not a string"),
                    (Value::Null, _) => bail!("index of untyped nil"),
                    (v, _) => bail!("can't index item of type {}", type_name(&v)),
                };
            }
            v
        }
        "len" => {
            want(1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(x) => x.len(),
                v => bail!("len of type {}", type_name(v)),
            })
        }
        "println" => {
            let mut v = args.iter().map(go_string).collect::<Vec<_>>().join(" ");
            v.push('\n');
            Value::String(v)
        }
        "print" => {
            let mut v = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 && !a.is_string() && !args[i - 1].is_string() {
                    v.push(' ');
                }
                v.push_str(&go_string(a));
            }
            Value::String(v)
        }
        "printf" => {
            let Some((fmt, rest)) = args.split_first() else {
                bail!("wrong number of args for printf: want at least 1 got 0");
            };
            Value::String(printf(&s(fmt), rest)?)
        }
        "truncate" => {
            want(2)?;
            let n = int_arg(&args[1], f)?.max(0) as usize;
            Value::String(s(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            want(3)?;
            let (l, r) = (int_arg(&args[1], f)?.max(0), int_arg(&args[2], f)?.max(0));
            let v = s(&args[0]);
            Value::String(format!(
                "{}{v}{}",
                " ".repeat(l as usize),
                " ".repeat(r as usize)
            ))
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" | "or" => {
            let stop = f == "or";
            let mut last = Value::Null;
            for a in args {
                if truthy(&a) == stop {
                    return Ok(a);
                }
                last = a;
            }
            last
        }
        "eq" | "ne" => {
            let Some((a, rest)) = args.split_first().filter(|(_, r)| !r.is_empty()) else {
                bail!("missing argument for comparison");
            };
            let eq = rest
                .iter()
                .any(|b| compare(a, b) == Some(std::cmp::Ordering::Equal) || a == b);
            Value::Bool(eq == (f == "eq"))
        }
        _ => {
            want(2)?;
            let Some(o) = compare(&args[0], &args[1]) else {
                bail!(
                    "incompatible types for comparison: {} and {}",
                    args[0],
                    args[1]
                );
            };
            use std::cmp::Ordering::*;
            Value::Bool(match f {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

struct Exec<'a> {
    src: &'a str,
    vars: Vec<(String, Value)>,
}

impl Exec<'_> {
    /// Wraps a runtime error with the template and the failing action.
    fn fail(&self, pipe: &Pipe, e: anyhow::Error) -> anyhow::Error {
        let (s, t) = pipe.span;
        anyhow!(
            "template: executing {:?} at {} of {:?}: {e}",
            self.src.get(s..t).unwrap_or(""),
            where_in(self.src, s),
            self.src
        )
    }

    fn var(&self, name: &str) -> Value {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(Value::Null, |(_, v)| v.clone())
    }

    fn set(&mut self, pipe: &Pipe, names: &[&str], vals: Vec<Value>) {
        for (n, v) in names.iter().zip(vals) {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(k, _)| k == n) {
                    slot.1 = v;
                }
            } else {
                self.vars.push((n.to_string(), v));
            }
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value> {
        match a {
            Arg::Field(p) => walk_path(dot.clone(), p),
            Arg::Var(n, p) => walk_path(self.var(n), p),
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Func(f) => call(f, Vec::new()),
            Arg::Sub(pipe, p) => {
                let v = self.pipe(pipe, dot)?;
                walk_path(v, p)
            }
        }
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = match &cmd[0] {
                Arg::Func(f) => {
                    let mut args = Vec::with_capacity(cmd.len());
                    for a in &cmd[1..] {
                        args.push(self.arg(a, dot)?);
                    }
                    args.extend(prev.take());
                    call(f, args)?
                }
                a => self.arg(a, dot)?,
            };
            prev = Some(v);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn eval(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value> {
        self.pipe(pipe, dot).map_err(|e| self.fail(pipe, e))
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
        let mark = self.vars.len();
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.eval(p, dot)?;
                    if p.decl.is_empty() {
                        out.push_str(&go_string(&v));
                    } else {
                        self.set(p, &[p.decl[0].as_str()], vec![v]);
                    }
                }
                Node::Block {
                    kind,
                    pipe,
                    then,
                    els,
                } => {
                    let inner = self.vars.len();
                    let v = self.eval(pipe, dot)?;
                    let names: Vec<&str> = pipe.decl.iter().map(String::as_str).collect();
                    match kind {
                        Kind::If | Kind::With => {
                            self.set(pipe, &names, vec![v.clone()]);
                            if !truthy(&v) {
                                self.walk(els, dot, out)?;
                            } else if *kind == Kind::With {
                                self.walk(then, &v, out)?;
                            } else {
                                self.walk(then, dot, out)?;
                            }
                        }
                        Kind::Range => {
                            let items: Vec<(Value, Value)> = match v {
                                Value::Array(a) => a
                                    .into_iter()
                                    .enumerate()
                                    .map(|(i, e)| (Value::from(i), e))
                                    .collect(),
                                Value::Object(m) => {
                                    let mut kv: Vec<_> =
                                        m.into_iter().map(|(k, e)| (Value::String(k), e)).collect();
                                    kv.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
                                    kv
                                }
                                Value::Null => Vec::new(),
                                other => {
                                    let e =
                                        anyhow!("range can't iterate over {}", go_string(&other));
                                    return Err(self.fail(pipe, e));
                                }
                            };
                            if items.is_empty() {
                                self.walk(els, dot, out)?;
                            }
                            for (k, e) in items {
                                let m = self.vars.len();
                                match names.len() {
                                    0 => {}
                                    1 => self.set(pipe, &names, vec![e.clone()]),
                                    _ => self.set(pipe, &names, vec![k, e.clone()]),
                                }
                                self.walk(then, &e, out)?;
                                self.vars.truncate(m);
                            }
                        }
                    }
                    self.vars.truncate(inner);
                }
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }
}

/// Top-level fields the nodes read against the row itself (not inside
/// `range`/`with`, where the dot moves).
fn collect_fields(nodes: &[Node], out: &mut Vec<String>) {
    fn pipe_fields(p: &Pipe, out: &mut Vec<String>) {
        for a in p.cmds.iter().flatten() {
            match a {
                Arg::Field(path) => out.extend(path.first().cloned()),
                Arg::Sub(sub, _) => pipe_fields(sub, out),
                _ => {}
            }
        }
    }
    for n in nodes {
        match n {
            Node::Text(_) => {}
            Node::Action(p) => pipe_fields(p, out),
            Node::Block {
                kind,
                pipe,
                then,
                els,
            } => {
                pipe_fields(pipe, out);
                if *kind == Kind::If {
                    collect_fields(then, out);
                }
                collect_fields(els, out);
            }
        }
    }
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
        assert!(Template::parse("{{.A .B}}").is_err());
        // Unknown functions are caught when parsing, as in Go.
        assert!(Template::parse("{{nope .A}}").is_err());
    }

    /// A `docker inspect`-like container.
    fn inspect() -> Value {
        json!({
            "Id": "abc123",
            "Name": "/web",
            "State": {"Status": "running", "Running": true, "ExitCode": 0, "Health": null},
            "Config": {
                "Cmd": ["sh", "-c", "sleep 100"],
                "Env": [],
                "Labels": {"com.example.x": "yes", "tier": "web"},
                "Image": "busybox"
            },
            "Mounts": [
                {"Type": "bind", "Source": "/src", "Destination": "/dst", "RW": true},
                {"Type": "volume", "Source": "/var/v", "Destination": "/data", "RW": false}
            ],
            "NetworkSettings": {"Networks": {
                "front": {"IPAddress": "10.0.0.2", "Gateway": "10.0.0.1"},
                "back": {"IPAddress": "10.1.0.2", "Gateway": "10.1.0.1"}
            }},
            "RestartCount": 2
        })
    }

    #[test]
    fn renders_docker_style_templates() {
        let v = inspect();
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("{{.Name}}", "/web"),
            ("{{.State.Status}}", "running"),
            ("{{.State.ExitCode}} {{.RestartCount}}", "0 2"),
            ("{{.Config.Nope}}", "<no value>"),
            ("{{.Config.Cmd}}", "[sh -c sleep 100]"),
            ("{{json .Config.Cmd}}", r#"["sh","-c","sleep 100"]"#),
            ("{{json .State.Health}}", "null"),
            ("{{.Config.Labels}}", "map[com.example.x:yes tier:web]"),
            ("{{join .Config.Cmd \",\"}}", "sh,-c,sleep 100"),
            ("{{join .Config.Cmd \" \"}}", "sh -c sleep 100"),
            ("{{join .Config.Env \",\"}}", ""),
            ("{{index .Config.Labels \"com.example.x\"}}", "yes"),
            ("{{index .Config.Labels `tier`}}", "web"),
            ("{{index .Config.Cmd 0}}", "sh"),
            ("{{index .Mounts 1 \"Source\"}}", "/var/v"),
            ("{{(index .Mounts 0).Destination}}", "/dst"),
            ("{{(index .NetworkSettings.Networks \"front\").IPAddress}}", "10.0.0.2"),
            ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/src:/dst /var/v:/data "),
            ("{{range .Config.Cmd}}[{{.}}]{{end}}", "[sh][-c][sleep 100]"),
            ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Type}};{{end}}", "0=bind;1=volume;"),
            ("{{range $m := .Mounts}}{{$m.RW}} {{end}}", "true false "),
            (
                "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
                "back=10.1.0.2 front=10.0.0.2 ",
            ),
            ("{{range .NetworkSettings.Networks}}{{.Gateway}},{{end}}", "10.1.0.1,10.0.0.1,"),
            ("{{range .Mounts}}{{$.Name}}{{end}}", "/web/web"),
            ("{{range .Config.Env}}x{{else}}no env{{end}}", "no env"),
            ("{{range .State.Health}}x{{else}}none{{end}}", "none"),
            ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
            ("{{if .Config.Env}}env{{else}}no env{{end}}", "no env"),
            ("{{if .State.ExitCode}}failed{{end}}", ""),
            ("{{if eq .State.Status \"exited\"}}x{{else if .State.Running}}r{{else}}y{{end}}", "r"),
            ("{{if and .State.Running (gt .RestartCount 1)}}flappy{{end}}", "flappy"),
            ("{{if not .State.Health}}no health{{end}}", "no health"),
            ("{{with .Config}}{{.Image}}{{end}}", "busybox"),
            ("{{with .State.Health}}h{{else}}nh{{end}}", "nh"),
            ("{{.Name | upper}}", "/WEB"),
            ("{{.Config.Image | upper | lower}}", "busybox"),
            ("{{upper .State.Status}} {{lower \"ABC\"}}", "RUNNING abc"),
            ("{{title \"hello wide-world\"}}", "Hello Wide-World"),
            ("{{.State.Status | title}}", "Running"),
            ("{{index .Config.Labels \"tier\" | upper}}", "WEB"),
            ("{{.Config.Cmd | json}}", r#"["sh","-c","sleep 100"]"#),
            ("{{len .Mounts}} {{len .Config.Labels}}", "2 2"),
            ("{{split \"a:b\" \":\"}}", "[a b]"),
            ("{{printf \"%-6s|%3d\" .State.Status 7}}", "running|  7"),
            ("{{println .Name}}", "/web\n"),
            ("{{println}}", "\n"),
            ("{{range .Mounts}}{{println .Source}}{{end}}", "/src\n/var/v\n"),
            ("{{$n := .Name}}{{range .Mounts}}{{$n}}{{end}}", "/web/web"),
            ("{{truncate .Id 3}}", "abc"),
            ("a {{- \" b \" -}} c", "a b c"),
            ("{{/* a comment */}}x", "x"),
            ("{{.}}", "map[Config:map[Cmd:[sh -c sleep 100] Env:[] Image:busybox Labels:map[com.example.x:yes tier:web]] Id:abc123 Mounts:[map[Destination:/dst RW:true Source:/src Type:bind] map[Destination:/data RW:false Source:/var/v Type:volume]] Name:/web NetworkSettings:map[Networks:map[back:map[Gateway:10.1.0.1 IPAddress:10.1.0.2] front:map[Gateway:10.0.0.1 IPAddress:10.0.0.2]]] RestartCount:2 State:map[ExitCode:0 Health:<no value> Running:true Status:running]]"),
            ("{{\"}}\"}}", "}}"),
        ];
        for (tpl, want) in cases {
            let t = Template::parse(tpl).unwrap_or_else(|e| panic!("{tpl}: {e}"));
            let got = t.render(&v).unwrap_or_else(|e| panic!("{tpl}: {e}"));
            assert_eq!(&got, want, "template {tpl}");
        }
    }

    #[test]
    fn malformed_templates_fail_with_position() {
        let cases: &[(&str, &str)] = &[
            ("{{.A", "unclosed action at line 1, column 1"),
            ("x {{.A}} {{if .B}}y", "unclosed {{if}}"),
            ("{{range .A}}", "missing {{end}}"),
            ("{{end}}", "unexpected {{end}}"),
            ("{{else}}", "unexpected {{else}}"),
            ("{{if .A}}{{else}}{{else}}{{end}}", "found {{else}}"),
            ("{{nope .A}}", "function \"nope\" not defined"),
            ("{{.A | .B}}", "non executable command in pipeline stage 2"),
            ("{{.A .B}}", "can't give argument to non-function"),
            ("{{}}", "missing value for command"),
            ("{{.A |}}", "missing value for command"),
            ("{{join .A \",}}", "unterminated quoted string"),
            ("{{(index .A 0}}", "unclosed left paren"),
            ("{{.A)}}", "unexpected right paren"),
            ("{{$x}}", "undefined variable \"$x\""),
            (
                "ab\n{{.A ! }}",
                "unexpected '!' in action at line 2, column 6",
            ),
            ("{{define \"x\"}}{{end}}", "not supported"),
            ("{{$a, $b := .X}}", "too many declarations"),
        ];
        for (tpl, want) in cases {
            let e = Template::parse(tpl).expect_err(tpl).to_string();
            assert!(e.starts_with("template parsing error: "), "{tpl}: {e}");
            assert!(e.contains(want), "{tpl}: {e} (want {want})");
            assert!(
                e.contains(&format!("{tpl:?}")),
                "{tpl}: {e} names the template"
            );
        }
    }

    #[test]
    fn runtime_errors_name_the_action() {
        let v = inspect();
        let cases: &[(&str, &str)] = &[
            ("{{.Name.First}}", "can't evaluate field First"),
            ("{{.State.Health.Status}}", "can't evaluate field Status"),
            ("{{index .Config.Cmd 9}}", "index out of range: 9"),
            ("{{index .Name 0}}", "can't index item of type string"),
            ("{{range .Name}}{{end}}", "range can't iterate over /web"),
            ("{{join .Name \",\"}}", "is not a list"),
            ("{{upper}}", "wrong number of args for upper"),
        ];
        for (tpl, want) in cases {
            let e = Template::parse(tpl)
                .unwrap()
                .render(&v)
                .expect_err(tpl)
                .to_string();
            assert!(e.contains(want), "{tpl}: {e} (want {want})");
            assert!(e.contains("at line 1, column"), "{tpl}: {e}");
        }
    }

    #[test]
    fn table_headers_with_functions_and_ranges() {
        let f = Format::parse(
            Some(
                "table {{.Names | upper}}\\t{{join .Ports \",\"}}\\t{{range .Mounts}}{{.}}{{end}}",
            ),
            "",
        );
        // The header row renders each field as its name; ranging over a
        // header name is an error, so keep ranges out of table columns.
        assert!(f.unwrap().render(&[], &[("Names", "NAMES")]).is_err());
        let f = Format::parse(Some("table {{.Names | lower}}\\t{{.State}}"), "").unwrap();
        let out = f
            .render(
                &[json!({"Names": "WEB1", "State": "running"})],
                &[("Names", "NAMES"), ("State", "STATE")],
            )
            .unwrap();
        assert_eq!(out, "names     STATE\nweb1      running\n");
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
