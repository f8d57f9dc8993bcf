//! The typed syntax tree of a Dockerfile.
//!
//! Fields documented as *words* hold source text exactly as written (quotes,
//! escapes and `$` references intact), because docker substitutes them only
//! when the step runs, with the environment of that moment. Call
//! [`Instruction::expand`] to turn words into values. Fields that docker never
//! substitutes (shell text of RUN/CMD/ENTRYPOINT, exec-form arrays of those)
//! hold their final value.

use std::time::Duration;

/// Where an instruction starts in the file (1-based, column in characters)
/// and the last physical line it spans (continuations and heredoc bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
}

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` frontend image; recorded, not acted on.
    pub syntax: Option<String>,
    /// `# escape=`: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=`: lint configuration; recorded and otherwise ignored.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A parsed Dockerfile: the global ARGs (before the first FROM) and stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The name used in error messages (`Dockerfile` unless told).
    pub file: String,
    pub directives: Directives,
    /// ARG instructions before the first FROM; only FROM lines see them,
    /// unless a stage redeclares them.
    pub global_args: Vec<Node>,
    pub stages: Vec<Stage>,
}

/// One build stage: its FROM line and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    pub from: From,
    pub span: Span,
    /// The FROM line as written (continuations joined).
    pub source: String,
    pub instructions: Vec<Node>,
}

/// An instruction with its location and its source text (continuations
/// joined, heredoc bodies not included), kept for history and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub span: Span,
    pub source: String,
    pub instruction: Instruction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(From),
    Run(Run),
    Cmd(Command),
    Entrypoint(Command),
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDecl>),
    Label(Vec<KeyValue>),
    /// Port specs (*words*); see [`crate::dockerfile::PortSpec::parse`].
    Expose(Vec<String>),
    Copy(Copy),
    /// ADD shares COPY's shape; `checksum`, `keep_git_dir` and `unpack` are
    /// only ever set for ADD, `from` only for COPY.
    Add(Copy),
    /// *word*
    Workdir(String),
    /// *word*
    User(String),
    /// *words*
    Volume(Vec<String>),
    /// *word*
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    Onbuild(Onbuild),
    Maintainer(String),
}

impl Instruction {
    /// The instruction keyword, upper case, as docker prints it.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// `FROM [--platform=P] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// *word*
    pub platform: Option<String>,
    /// *word*: an image reference, `scratch`, or an earlier stage's name.
    pub image: String,
    /// The stage name, lower-cased as docker does.
    pub name: Option<String>,
}

/// Exec form (a JSON array) or shell form (text handed to the shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub mounts: Vec<Mount>,
    pub network: Option<NetworkMode>,
    pub security: Option<Security>,
    pub command: Command,
    /// Heredoc bodies named on the line, in order; the `<<NAME` markers stay
    /// in the shell text, as the shell needs them.
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// `RUN --mount=type=...,k=v`. String options are *words*; numeric ones
/// are checked at parse time when they contain no `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub read_only: Option<bool>,
    pub sharing: Option<CacheSharing>,
    pub mode: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub size: Option<String>,
    pub required: Option<bool>,
    pub env: Option<String>,
}

impl Mount {
    pub(crate) fn new(kind: MountKind) -> Mount {
        Mount {
            kind,
            target: None,
            source: None,
            from: None,
            id: None,
            read_only: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            required: None,
            env: None,
        }
    }
}

/// `KEY=VALUE` of ENV and LABEL; both sides are *words*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `ARG NAME[=default]`; both are *words*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// COPY and ADD. Paths and flag values are *words*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
    pub sources: Vec<Source>,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(String),
    Heredoc(Heredoc),
}

/// A heredoc body. `content` already has leading tabs removed for `<<-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// False when the name was quoted: the body is then taken literally.
    pub expand: bool,
    pub chomp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Check(HealthCheck),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
    pub command: Command,
}

/// `ONBUILD <instruction>`: the trigger is stored as text in the image
/// config and substituted only when it fires in a child build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    pub trigger: Box<Instruction>,
    /// The trigger as written, e.g. `COPY . /app`.
    pub source: String,
}
