//! The image commands this slice needs: import, images, rmi.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_engine::{images as store, Engine};
use clap::Args;

use crate::format;

#[derive(Args)]
pub struct ImportArgs {
    /// A tar (gzip and zstd too) of a root filesystem, or - for stdin.
    file: PathBuf,
    /// REPOSITORY[:TAG] to give the image.
    reference: Option<String>,
    #[arg(short, long = "change")]
    change: Vec<String>,
    #[arg(short, long)]
    message: Option<String>,
}

pub fn import(engine: &Engine, a: ImportArgs) -> Result<u8> {
    if !a.change.is_empty() || a.message.is_some() {
        anyhow::bail!(berth_engine::Error::NotSupported {
            flag: "import --change/--message".into()
        });
    }
    let s = store::open(&engine.paths)?;
    let source = a.file.display().to_string();
    let image = if source == "-" {
        store::import(&s, std::io::stdin().lock(), a.reference.as_deref(), &source)?
    } else {
        let f = std::fs::File::open(&a.file)
            .with_context(|| format!("opening {}", a.file.display()))?;
        store::import(
            &s,
            std::io::BufReader::new(f),
            a.reference.as_deref(),
            &source,
        )?
    };
    println!("{}", image.id);
    Ok(0)
}

#[derive(Args)]
pub struct ImagesArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    no_trunc: bool,
}

pub fn images(engine: &Engine, a: ImagesArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    let list = s.images().map_err(berth_engine::Error::from)?;
    let mut out = std::io::stdout().lock();
    let id = |i: &store::StoredImage| {
        if a.no_trunc {
            i.id.to_string()
        } else {
            i.id.hex()[..12].to_string()
        }
    };
    if a.quiet {
        for i in &list {
            writeln!(out, "{}", id(i))?;
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for i in &list {
        let size = format::human_size(i.size);
        let created = format::ago(i.created);
        if i.tags.is_empty() {
            rows.push(vec![
                "<none>".into(),
                "<none>".into(),
                id(i),
                created.clone(),
                size.clone(),
            ]);
        }
        for t in &i.tags {
            rows.push(vec![
                t.familiar_name(),
                t.tag().unwrap_or("<none>").to_string(),
                id(i),
                created.clone(),
                size.clone(),
            ]);
        }
    }
    write!(
        out,
        "{}",
        format::table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    )?;
    Ok(0)
}

#[derive(Args)]
pub struct RmiArgs {
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn rmi(_engine: &Engine, _a: RmiArgs) -> Result<u8> {
    anyhow::bail!(berth_engine::Error::NotSupported {
        flag: "rmi (the image store cannot remove images yet)".into()
    })
}
