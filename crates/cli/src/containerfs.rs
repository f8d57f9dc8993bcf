//! A container's filesystem as data: `export` (all of it as a tar),
//! `commit` (its changes as a new image) and `diff` (its changes listed).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Result};
use berth_engine::image_ops;
use berth_engine::{images as store, Engine};
use berth_image::store::{CommitOptions, Progress};
use clap::Args;

use crate::progress;

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    container: String,
}

pub fn export(engine: &Engine, a: ExportArgs) -> Result<u8> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let s = store::open(&engine.paths)?;
    // Found before any output file exists.
    engine.find(&a.container)?;
    crate::archive::write_output(a.output.as_deref(), "Exporting", false, |w| {
        image_ops::export(engine, &s, &a.container, w)?;
        Ok(())
    })?;
    Ok(0)
}

#[derive(Args)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>").
    #[arg(short, long)]
    author: Option<String>,
    /// Apply a Dockerfile instruction to the image's config.
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// Pause the container during commit.
    #[arg(short, long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pause: bool,
    container: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

pub fn commit(engine: &Engine, a: CommitArgs) -> Result<u8> {
    let reference = a
        .reference
        .as_deref()
        .map(berth_image::Reference::parse)
        .transpose()
        .map_err(|e| berth_engine::Error::Image(e.into()))?;
    let bar = progress::bytes_bar("Committing", None, false);
    let opts = CommitOptions {
        reference,
        author: a.author,
        message: a.message,
        changes: a.change,
        created_by: None,
        progress: bar
            .clone()
            .map(|b| Progress::new(move |n| b.set_position(n))),
    };
    let s = store::open(&engine.paths)?;
    let image = image_ops::commit(engine, &s, &a.container, &opts, a.pause)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!("{}", image.id);
    Ok(0)
}

#[derive(Args)]
pub struct DiffArgs {
    container: String,
}

pub fn diff(engine: &Engine, a: DiffArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    let changes = image_ops::diff(engine, &s, &a.container)?;
    let mut out = std::io::stdout().lock();
    for c in changes {
        writeln!(out, "{} {}", c.kind.letter(), c.path)?;
    }
    Ok(0)
}
