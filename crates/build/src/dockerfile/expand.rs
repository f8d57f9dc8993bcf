//! Substitution applied to an instruction: which fields docker expands.
//!
//! Expanded: FROM image and platform; RUN mount options; ENV and LABEL
//! keys and values; ARG names and defaults; EXPOSE (with field splitting);
//! COPY/ADD paths, flags and unquoted heredoc bodies; WORKDIR; USER;
//! VOLUME; STOPSIGNAL. Left alone: RUN/CMD/ENTRYPOINT/HEALTHCHECK commands
//! (the shell substitutes them at run time), SHELL, MAINTAINER, and ONBUILD
//! triggers, which docker stores as text and substitutes when they fire in a
//! child build.
//!
//! Within one instruction every word sees the environment from before it:
//! `ENV a=1 b=$a` gives `b` the old `a`, as in docker.

use super::ast::*;
use super::substitution::{expand_heredoc, expand_word, expand_words, SubstError};

type Lookup<'a> = &'a mut dyn FnMut(&str) -> Option<String>;

impl Instruction {
    /// This instruction with its words substituted; see the module docs for
    /// which fields. `lookup` gives the value of a set variable.
    pub fn expand(&self, escape: char, lookup: Lookup) -> Result<Instruction, SubstError> {
        let mut w = |s: &str| expand_word(s, escape, lookup);
        Ok(match self {
            Instruction::From(f) => Instruction::From(From {
                platform: f.platform.as_deref().map(&mut w).transpose()?,
                image: w(&f.image)?,
                name: f.name.clone(),
            }),
            Instruction::Run(r) => {
                let mut r = r.clone();
                for m in &mut r.mounts {
                    for field in [
                        &mut m.target,
                        &mut m.source,
                        &mut m.from,
                        &mut m.id,
                        &mut m.mode,
                        &mut m.uid,
                        &mut m.gid,
                        &mut m.size,
                        &mut m.env,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        *field = w(field)?;
                    }
                }
                Instruction::Run(r)
            }
            Instruction::Env(kvs) => Instruction::Env(key_values(kvs, &mut w)?),
            Instruction::Label(kvs) => Instruction::Label(key_values(kvs, &mut w)?),
            Instruction::Arg(decls) => Instruction::Arg(
                decls
                    .iter()
                    .map(|d| {
                        Ok(ArgDecl {
                            name: w(&d.name)?,
                            default: d.default.as_deref().map(&mut w).transpose()?,
                        })
                    })
                    .collect::<Result<_, SubstError>>()?,
            ),
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(expand_words(p, escape, lookup)?);
                }
                Instruction::Expose(out)
            }
            Instruction::Copy(c) => Instruction::Copy(copy(c, escape, lookup)?),
            Instruction::Add(c) => Instruction::Add(copy(c, escape, lookup)?),
            Instruction::Workdir(s) => Instruction::Workdir(w(s)?),
            Instruction::User(s) => Instruction::User(w(s)?),
            Instruction::StopSignal(s) => Instruction::StopSignal(w(s)?),
            Instruction::Volume(v) => {
                Instruction::Volume(v.iter().map(|s| w(s)).collect::<Result<_, _>>()?)
            }
            other => other.clone(),
        })
    }
}

fn key_values(
    kvs: &[KeyValue],
    w: &mut impl FnMut(&str) -> Result<String, SubstError>,
) -> Result<Vec<KeyValue>, SubstError> {
    kvs.iter()
        .map(|kv| {
            Ok(KeyValue {
                key: w(&kv.key)?,
                value: w(&kv.value)?,
            })
        })
        .collect()
}

fn copy(c: &Copy, escape: char, lookup: Lookup) -> Result<Copy, SubstError> {
    let mut sources = Vec::with_capacity(c.sources.len());
    for s in &c.sources {
        sources.push(match s {
            Source::Path(p) => Source::Path(expand_word(p, escape, lookup)?),
            Source::Heredoc(h) if h.expand => Source::Heredoc(Heredoc {
                content: expand_heredoc(&h.content, lookup)?,
                ..h.clone()
            }),
            Source::Heredoc(h) => Source::Heredoc(h.clone()),
        });
    }
    let mut w = |s: &str| expand_word(s, escape, lookup);
    let mut opt = |v: &Option<String>| v.as_deref().map(&mut w).transpose();
    Ok(Copy {
        from: opt(&c.from)?,
        chown: opt(&c.chown)?,
        chmod: opt(&c.chmod)?,
        checksum: opt(&c.checksum)?,
        excludes: c.excludes.iter().map(|e| w(e)).collect::<Result<_, _>>()?,
        dest: w(&c.dest)?,
        link: c.link,
        parents: c.parents,
        keep_git_dir: c.keep_git_dir,
        unpack: c.unpack,
        sources,
    })
}
