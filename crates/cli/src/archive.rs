//! `save`, `load` and `import`: images to and from tar streams, on a file
//! or stdin/stdout, with a byte bar on a terminal.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_engine::{images as store, Engine};
use berth_image::archive::{ArchiveFormat, SaveOptions};
use berth_image::layer::Compression;
use berth_image::store::ImportOptions;
use clap::Args;

use crate::progress;

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// docker (docker-archive, what `docker load` reads) or oci.
    #[arg(long, default_value = "docker")]
    format: String,
    /// How layers are written: none (docker's choice), gzip or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Draw no progress.
    #[arg(short, long)]
    quiet: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(engine: &Engine, a: SaveArgs) -> Result<u8> {
    let format = match a.format.as_str() {
        "docker" | "docker-archive" => ArchiveFormat::Docker,
        "oci" | "oci-archive" => ArchiveFormat::Oci,
        f => bail!(berth_engine::Error::InvalidArgument(format!(
            "invalid --format {f:?}: use docker or oci"
        ))),
    };
    let compression = match a.compression.as_str() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        c => bail!(berth_engine::Error::InvalidArgument(format!(
            "invalid --compression {c:?}: use none, gzip or zstd"
        ))),
    };
    if a.output.is_none() && std::io::stdout().is_terminal() {
        // docker's words: an archive is no use on a terminal.
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let s = store::open(&engine.paths)?;
    let names: Vec<&str> = a.images.iter().map(String::as_str).collect();
    // Every name is checked before a byte is written, so an unknown image
    // leaves no half-written file behind.
    for n in &names {
        store::find(&s, n)?;
    }
    let opts = SaveOptions {
        format,
        compression,
    };
    write_output(a.output.as_deref(), "Saving", a.quiet, |w| {
        berth_engine::image_ops::save(engine, &s, &names, w, &opts)?;
        Ok(())
    })?;
    Ok(0)
}

/// Streams what `write` produces to `-o FILE` or, without one, to stdout,
/// through a byte bar on a terminal. A file is written beside its target
/// and renamed into place: a failed write never leaves a truncated
/// archive under the asked name. (The caller refuses a terminal stdout.)
pub fn write_output(
    output: Option<&Path>,
    label: &str,
    quiet: bool,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let bar = progress::bytes_bar(label, None, quiet);
    match output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            let mut w = through_bar(&bar, Box::new(BufWriter::new(tmp.reopen()?)));
            write(&mut *w)?;
            w.flush()?;
            drop(w);
            // NamedTempFile makes 0600; an archive is as readable as any
            // file the user would have made (docker: 0644 under umask 022).
            std::fs::set_permissions(
                tmp.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut w = through_bar(&bar, Box::new(BufWriter::new(std::io::stdout().lock())));
            write(&mut *w)?;
            w.flush()?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(())
}

fn through_bar<'a>(
    bar: &Option<indicatif::ProgressBar>,
    w: Box<dyn Write + 'a>,
) -> Box<dyn Write + 'a> {
    match bar {
        Some(b) => Box::new(b.wrap_write(w)),
        None => w,
    }
}

/// Opens `-i FILE` (or `-`/nothing: stdin) with its length when known.
fn input(path: Option<&PathBuf>) -> Result<(Box<dyn Read>, Option<u64>)> {
    match path {
        Some(p) if p.as_os_str() != "-" => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            Ok((Box::new(BufReader::new(f)), len))
        }
        _ => Ok((Box::new(std::io::stdin().lock()), None)),
    }
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from a file instead of stdin.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Draw no progress.
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(engine: &Engine, a: LoadArgs) -> Result<u8> {
    if a.input.is_none() && std::io::stdin().is_terminal() {
        bail!("requested load from stdin, but stdin is empty");
    }
    let (r, len) = input(a.input.as_ref())?;
    let s = store::open(&engine.paths)?;
    let bar = progress::bytes_bar("Loading", len, a.quiet);
    let r = progress::read_then(&bar, r, "Unpacking layers");
    let loaded = berth_engine::image_ops::load(engine, &s, r)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    for i in &loaded {
        if i.tags.is_empty() {
            writeln!(out, "Loaded image ID: {}", i.id)?;
        }
        for t in &i.tags {
            writeln!(out, "Loaded image: {}", t.familiar())?;
        }
    }
    Ok(0)
}

#[derive(Args)]
pub struct ImportArgs {
    /// A tar (gzip and zstd too) of a root filesystem, or - for stdin.
    file: PathBuf,
    /// REPOSITORY[:TAG] to give the image.
    reference: Option<String>,
    /// Apply a Dockerfile instruction to the image's config.
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// The history comment.
    #[arg(short, long)]
    message: Option<String>,
    /// Only --platform of this machine is possible.
    #[arg(long)]
    platform: Option<String>,
}

pub fn import(engine: &Engine, a: ImportArgs) -> Result<u8> {
    if let Some(p) = &a.platform {
        let want = berth_engine::pull::parse_platform(p)?;
        if !want.matches(&berth_registry::Platform::host()) {
            bail!(berth_engine::Error::NotSupported {
                flag: format!("import --platform {p} (only this machine's platform)")
            });
        }
    }
    let reference = a
        .reference
        .as_deref()
        .map(berth_image::Reference::parse)
        .transpose()
        .map_err(|e| berth_engine::Error::Image(e.into()))?;
    let source = a.file.display().to_string();
    let (r, len) = input(Some(&a.file))?;
    let s = store::open(&engine.paths)?;
    let bar = progress::bytes_bar("Importing", len, false);
    let r = progress::read_then(&bar, r, "Recording the image");
    let opts = ImportOptions {
        reference,
        changes: a.change,
        message: a.message,
        source,
    };
    let image = berth_engine::image_ops::import(engine, &s, r, &opts)
        .with_context(|| format!("importing {}", opts.source))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!("{}", image.id);
    Ok(0)
}
