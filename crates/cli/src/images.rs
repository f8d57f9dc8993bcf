//! The image commands: `images`/`image ls`, `image inspect`, `history`,
//! `tag`, `rmi`/`image rm`, `image prune`, `system df`, `system check`;
//! and the command enum that gathers every image and registry verb
//! (the others live in `archive`, `containerfs` and `registry`).

use std::collections::HashSet;
use std::io::{BufRead, Write};

use anyhow::{bail, Result};
use berth_engine::image_ops::{self, HistoryEntry};
use berth_engine::{images as store, Engine};
use berth_image::store::Removed;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::containers::each;
use crate::template::Format;
use crate::{archive, containerfs, format, registry, Exit};

/// The image and registry verbs, flattened into `berth`'s own commands.
#[derive(Subcommand)]
pub enum ImageCmd {
    /// Make an image from a root filesystem tarball (`-` for stdin).
    Import(archive::ImportArgs),
    /// List images.
    Images(ImagesArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Save images to a tar archive (stdout unless -o).
    Save(archive::SaveArgs),
    /// Load images from a tar archive (stdin unless -i).
    Load(archive::LoadArgs),
    /// Export a container's filesystem as a tar archive.
    Export(containerfs::ExportArgs),
    /// Create a new image from a container's changes.
    Commit(containerfs::CommitArgs),
    /// Inspect changes to files on a container's filesystem.
    Diff(containerfs::DiffArgs),
    /// Download an image from a registry.
    Pull(registry::PullArgs),
    /// Upload an image to a registry.
    Push(registry::PushArgs),
    /// Log in to a registry.
    Login(registry::LoginArgs),
    /// Log out from a registry.
    Logout(registry::LogoutArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageSub),
    /// Manage berth: disk usage, store consistency.
    #[command(subcommand)]
    System(SystemSub),
    /// Show berth's version, as client and as server.
    Version(crate::sysinfo::FormatArgs),
    /// Show what berth runs and holds (as `system info`).
    Info(crate::sysinfo::FormatArgs),
}

#[derive(Subcommand)]
pub enum ImageSub {
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Show images' details as JSON.
    Inspect(InspectArgs),
    History(HistoryArgs),
    Tag(TagArgs),
    /// Remove images.
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    Import(archive::ImportArgs),
    Save(archive::SaveArgs),
    Load(archive::LoadArgs),
    Pull(registry::PullArgs),
    Push(registry::PushArgs),
}

#[derive(Subcommand)]
pub enum SystemSub {
    /// Show disk usage.
    Df(DfArgs),
    /// Verify the image store (exit 1 if it has problems).
    Check(CheckArgs),
    /// Show the engine's events (as `events`).
    Events(crate::events::EventsArgs),
    /// Remove stopped containers, unused networks, dangling images and
    /// the build cache (and with --volumes, unused anonymous volumes).
    Prune(SystemPruneArgs),
    /// Start the containers whose restart policy says so, as after a
    /// machine's start (run it from the boot; `serve` does it too).
    Boot,
    /// Show what berth runs and holds.
    Info(crate::sysinfo::FormatArgs),
}

/// Runs one image command; every one follows docker's plain exit codes,
/// so its error can be flattened to one line without losing the code.
pub fn run(engine: &Engine, cmd: ImageCmd) -> Result<u8> {
    dispatch(engine, cmd).map_err(|e| {
        if e.is::<Exit>() {
            e
        } else {
            anyhow::Error::msg(one_line(&e))
        }
    })
}

/// The error's chain as one line, each cause once: several of the lower
/// crates' errors already repeat their source in their own message.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for c in e.chain() {
        let s = c.to_string();
        if msg.contains(&s) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&s);
    }
    msg
}

fn dispatch(engine: &Engine, cmd: ImageCmd) -> Result<u8> {
    match cmd {
        ImageCmd::Import(a) => archive::import(engine, a),
        ImageCmd::Images(a) | ImageCmd::Image(ImageSub::Ls(a)) => images(engine, a),
        ImageCmd::Rmi(a) | ImageCmd::Image(ImageSub::Rm(a)) => rmi(engine, a),
        ImageCmd::History(a) | ImageCmd::Image(ImageSub::History(a)) => history(engine, a),
        ImageCmd::Tag(a) | ImageCmd::Image(ImageSub::Tag(a)) => tag(engine, a),
        ImageCmd::Save(a) | ImageCmd::Image(ImageSub::Save(a)) => archive::save(engine, a),
        ImageCmd::Load(a) | ImageCmd::Image(ImageSub::Load(a)) => archive::load(engine, a),
        ImageCmd::Image(ImageSub::Import(a)) => archive::import(engine, a),
        ImageCmd::Export(a) => containerfs::export(engine, a),
        ImageCmd::Commit(a) => containerfs::commit(engine, a),
        ImageCmd::Diff(a) => containerfs::diff(engine, a),
        ImageCmd::Pull(a) | ImageCmd::Image(ImageSub::Pull(a)) => registry::pull(engine, a),
        ImageCmd::Push(a) | ImageCmd::Image(ImageSub::Push(a)) => registry::push(engine, a),
        ImageCmd::Login(a) => registry::login(a),
        ImageCmd::Logout(a) => registry::logout(a),
        ImageCmd::Image(ImageSub::Inspect(a)) => inspect(engine, a),
        ImageCmd::Image(ImageSub::Prune(a)) => prune(engine, a),
        ImageCmd::System(SystemSub::Df(a)) => df(engine, a),
        ImageCmd::System(SystemSub::Check(a)) => check(engine, a),
        ImageCmd::System(SystemSub::Events(a)) => crate::events::events(engine, a),
        ImageCmd::System(SystemSub::Prune(a)) => system_prune(engine, a),
        ImageCmd::System(SystemSub::Boot) => crate::manage::boot(engine),
        ImageCmd::System(SystemSub::Info(a)) | ImageCmd::Info(a) => crate::sysinfo::info(engine, a),
        ImageCmd::Version(a) => crate::sysinfo::version(a),
    }
}

fn short_id(id: &berth_image::Digest) -> String {
    id.hex()[..12].to_string()
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images of builds).
    #[arg(short, long)]
    all: bool,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// dangling=true|false, reference=PATTERN, label=KEY[=VALUE].
    #[arg(short, long)]
    filter: Vec<String>,
    /// table, json, or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Only images of this repository (a pattern, like reference=).
    repository: Option<String>,
}

/// One `images` row: docker's fields for `--format`.
fn image_row(
    i: &store::StoredImage,
    tag: Option<&berth_image::Reference>,
    a: &ImagesArgs,
) -> Value {
    let id = if a.no_trunc {
        i.id.to_string()
    } else {
        short_id(&i.id)
    };
    let size = format::human_size(i.size);
    json!({
        "Containers": "N/A",
        "CreatedAt": i.created.format("%Y-%m-%d %H:%M:%S %z UTC").to_string(),
        "CreatedSince": format::ago(i.created),
        "Digest": if tag.is_some() { i.manifest.to_string() } else { "<none>".into() },
        "ID": id,
        "Repository": tag.map_or("<none>".into(), |t| t.familiar_name()),
        "SharedSize": "N/A",
        "Size": size,
        "Tag": tag.and_then(|t| t.tag()).unwrap_or("<none>"),
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
}

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

pub fn images(engine: &Engine, a: ImagesArgs) -> Result<u8> {
    let mut filters =
        berth_engine::filters::ImageFilters::parse(berth_engine::filters::flag_pairs(&a.filter)?)?;
    if let Some(r) = &a.repository {
        filters.references.push(r.clone());
    }
    let s = store::open(&engine.paths)?;
    filters.resolve(|name| Ok(berth_engine::images::find(&s, name)?.created))?;
    let list = s.images().map_err(berth_engine::Error::from)?;
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    // A build's untagged step images, as docker hides them without -a.
    let intermediate = if a.all {
        HashSet::new()
    } else {
        berth_build::exec::intermediate_images(&engine.paths.db())?
    };
    for i in &list {
        if i.tags.is_empty() && intermediate.contains(i.id.as_str()) {
            continue;
        }
        let cfg = if filters.wants_labels() {
            s.config(i).map_err(berth_engine::Error::from)?
        } else {
            Value::Null
        };
        if !filters.matches(i.created, !i.tags.is_empty(), || &cfg["config"]["Labels"]) {
            continue;
        }
        let tags: Vec<Option<&berth_image::Reference>> = if i.tags.is_empty() {
            vec![None]
        } else {
            i.tags.iter().map(Some).collect()
        };
        for t in tags {
            if !filters.references.is_empty() {
                let Some(t) = t else { continue };
                if !filters.names(&t.familiar_name(), t.tag().unwrap_or("")) {
                    continue;
                }
            }
            if a.quiet {
                // -q lists each image once, however many tags it has.
                if seen.insert(i.id.clone()) {
                    rows.push(image_row(i, t, &a));
                }
            } else {
                rows.push(image_row(i, t, &a));
            }
        }
    }
    let default = if a.quiet {
        "{{.ID}}"
    } else if a.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let fmt = match (a.quiet, a.format.as_deref()) {
        (true, None) => Format::parse(Some(default), default)?,
        (_, f) => Format::parse(f, default)?,
    };
    write!(
        std::io::stdout().lock(),
        "{}",
        fmt.render(&rows, IMAGE_HEADERS)?
    )?;
    Ok(0)
}

#[derive(Args)]
pub struct InspectArgs {
    /// A Go template instead of JSON.
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    let parents = berth_build::exec::lineage(&engine.paths.db())?;
    let find =
        |name: &str| store::find(&s, name).and_then(|i| image_ops::inspect(&s, &i, &parents));
    match format::inspect(&a.images, a.format.as_deref(), find)? {
        0 => Ok(0),
        n => Err(Exit(n).into()),
    }
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Sizes and dates in human-readable form.
    #[arg(short = 'H', long, default_value = "true", action = clap::ArgAction::Set)]
    human: bool,
    #[arg(long)]
    no_trunc: bool,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    format: Option<String>,
    image: String,
}

pub fn history(engine: &Engine, a: HistoryArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    let image = store::find(&s, &a.image)?;
    let parents = berth_build::exec::lineage(&engine.paths.db())?;
    let entries = image_ops::history(&s, &image, &parents)?;
    let row = |h: &HistoryEntry| {
        let id = match &h.id {
            Some(d) if a.no_trunc => d.to_string(),
            Some(d) => short_id(d),
            None => "<missing>".into(),
        };
        let mut by = h.created_by.replace('\t', " ");
        if !a.no_trunc && by.chars().count() > 45 {
            by = format!("{}…", by.chars().take(44).collect::<String>());
        }
        let created_at = h.created.map_or(String::new(), |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
        json!({
            "ID": id,
            "CreatedSince": match h.created {
                Some(t) if a.human => format::ago(t),
                _ => created_at.clone(),
            },
            "CreatedAt": created_at,
            "CreatedBy": by,
            "Size": if a.human { format::human_size(h.size) } else { h.size.to_string() },
            "Comment": h.comment,
        })
    };
    let rows: Vec<Value> = entries.iter().map(row).collect();
    let default = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    let fmt = if a.quiet {
        Format::parse(Some("{{.ID}}"), default)?
    } else {
        Format::parse(a.format.as_deref(), default)?
    };
    let headers = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    write!(std::io::stdout().lock(), "{}", fmt.render(&rows, &headers)?)?;
    Ok(0)
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

pub fn tag(engine: &Engine, a: TagArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    image_ops::tag(engine, &s, &a.source, &a.target)?;
    Ok(0)
}

#[derive(Args)]
pub struct RmiArgs {
    /// Remove even if containers use it or several references name it.
    #[arg(short, long)]
    force: bool,
    /// Keep untagged parents: what berth's rmi always does (a build's
    /// intermediate images are its cache and go with `image prune`).
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

fn print_removed(out: &mut impl Write, removed: &[Removed], lower: bool) -> Result<()> {
    for r in removed {
        match (r, lower) {
            (Removed::Untagged(t, _), false) => writeln!(out, "Untagged: {}", t.familiar())?,
            (Removed::Deleted(d), false) => writeln!(out, "Deleted: {d}")?,
            (Removed::Untagged(t, _), true) => writeln!(out, "untagged: {}", t.familiar())?,
            (Removed::Deleted(d), true) => writeln!(out, "deleted: {d}")?,
        }
    }
    Ok(())
}

pub fn rmi(engine: &Engine, a: RmiArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    each(&a.images, |name| {
        let removed = image_ops::remove(engine, &s, name, a.force)?;
        print_removed(&mut std::io::stdout().lock(), &removed, false)
    })
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
    /// label=K[=V], label!=K[=V], until=TIME.
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct SystemPruneArgs {
    /// Remove every image no container uses, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Remove unused anonymous volumes too.
    #[arg(long)]
    volumes: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
    /// label=K[=V], label!=K[=V], until=TIME.
    #[arg(long)]
    filter: Vec<String>,
}

/// `system prune`: each kind's prune in docker's order, one report.
/// Networks keep no creation time: with an `until` filter they are left
/// alone, and the report says so.
pub fn system_prune(engine: &Engine, a: SystemPruneArgs) -> Result<u8> {
    let filters = berth_engine::filters::PruneFilters::parse_flags(&a.filter, "system", true)?;
    let mut warning = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
    );
    if a.volumes {
        warning.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    warning.push_str(if a.all {
        "  - all images without at least one container associated to them\n"
    } else {
        "  - all dangling images\n"
    });
    warning.push_str(if a.all {
        "  - all build cache\n"
    } else {
        "  - all dangling build cache\n"
    });
    if !a.force && !confirm(&warning)? {
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let (containers, mut bytes) = engine.prune(&filters)?;
    if !containers.is_empty() {
        writeln!(out, "Deleted Containers:\n{}\n", containers.join("\n"))?;
    }
    if filters.until.is_some() {
        writeln!(out, "Networks not pruned: berth does not record when networks are made, and an until filter was given\n")?;
    } else {
        let nets = engine.network_prune(&filters)?;
        if !nets.networks.is_empty() {
            writeln!(out, "Deleted Networks:\n{}\n", nets.networks.join("\n"))?;
        }
    }
    if a.volumes {
        let vols = engine.volume_prune(false, &filters)?;
        if !vols.is_empty() {
            writeln!(out, "Deleted Volumes:\n{}\n", vols.join("\n"))?;
        }
    }
    // The engine's store: container prune and the build cache's use it.
    let s = engine.store()?;
    let parents = berth_build::exec::lineage(&engine.paths.db())?;
    let (images, b) = image_ops::prune(engine, &s, a.all, &filters, &parents)?;
    bytes += b;
    if !images.is_empty() {
        writeln!(out, "Deleted Images:")?;
        print_removed(&mut out, &images, true)?;
        writeln!(out)?;
    }
    let (cache, b) = berth_build::exec::prune_cache(engine, &filters, a.all)?;
    bytes += b;
    if !cache.is_empty() {
        writeln!(out, "Deleted build cache objects:\n{}\n", cache.join("\n"))?;
    }
    writeln!(out, "Total reclaimed space: {}", format::human_size(bytes))?;
    Ok(0)
}

/// docker's y/N prompt; anything but y or yes (or end of input) is no.
pub(crate) fn confirm(warning: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        // No answer at all: end the prompt's line before leaving.
        writeln!(out)?;
    }
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

pub fn prune(engine: &Engine, a: PruneArgs) -> Result<u8> {
    let filters = berth_engine::filters::PruneFilters::parse_flags(&a.filter, "image", true)?;
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning)? {
        return Ok(0);
    }
    let s = store::open(&engine.paths)?;
    let parents = berth_build::exec::lineage(&engine.paths.db())?;
    let (removed, bytes) = image_ops::prune(engine, &s, a.all, &filters, &parents)?;
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        writeln!(out, "Deleted Images:")?;
        print_removed(&mut out, &removed, true)?;
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", format::human_size(bytes))?;
    Ok(0)
}

#[derive(Args)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    verbose: bool,
    #[arg(long)]
    format: Option<String>,
}

fn percent(part: u64, whole: u64) -> String {
    format!("{}%", (part * 100).checked_div(whole).unwrap_or(0))
}

pub fn df(engine: &Engine, a: DfArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    let d = image_ops::df(engine, &s)?;
    let active_images = d.image_containers.iter().filter(|(_, n)| *n > 0).count();
    let ctr_size: u64 = d.containers.iter().map(|c| c.size).sum();
    let ctr_reclaim: u64 = d
        .containers
        .iter()
        .filter(|c| c.container.state != berth_engine::State::Running)
        .map(|c| c.size)
        .sum();
    let running = d
        .containers
        .iter()
        .filter(|c| c.container.state == berth_engine::State::Running)
        .count();
    let volumes = engine.volume_usage()?;
    let vol_size: u64 = volumes.iter().map(|u| u.size).sum();
    // docker: a volume no container uses is reclaimable.
    let vol_reclaim: u64 = volumes
        .iter()
        .filter(|u| u.containers == 0)
        .map(|u| u.size)
        .sum();
    let vol_active = volumes.iter().filter(|u| u.containers > 0).count();
    let mut out = std::io::stdout().lock();
    if !a.verbose {
        let rows = vec![
            json!({"Type": "Images", "TotalCount": d.images.images.len().to_string(), "Active": active_images.to_string(),
                   "Size": format::human_size(d.images.layers_size),
                   "Reclaimable": format!("{} ({})", format::human_size(d.images.reclaimable), percent(d.images.reclaimable, d.images.layers_size))}),
            json!({"Type": "Containers", "TotalCount": d.containers.len().to_string(), "Active": running.to_string(),
                   "Size": format::human_size(ctr_size),
                   "Reclaimable": format!("{} ({})", format::human_size(ctr_reclaim), percent(ctr_reclaim, ctr_size))}),
            json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": vol_active.to_string(),
                   "Size": format::human_size(vol_size),
                   "Reclaimable": format!("{} ({})", format::human_size(vol_reclaim), percent(vol_reclaim, vol_size))}),
            json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        ];
        let default = "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
        let fmt = Format::parse(a.format.as_deref(), default)?;
        let headers = [
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ];
        write!(out, "{}", fmt.render(&rows, &headers)?)?;
        return Ok(0);
    }
    if a.format.is_some() {
        bail!(berth_engine::Error::NotSupported {
            flag: "system df -v --format".into()
        });
    }
    let list = s.images().map_err(berth_engine::Error::from)?;
    let mut lines = vec![
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"
            .to_string(),
    ];
    for u in &d.images.images {
        let n = d.containers_of(&u.id);
        let created = list
            .iter()
            .find(|i| i.id == u.id)
            .map_or(String::new(), |i| format::ago(i.created));
        let tags: Vec<(String, String)> = if u.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            u.tags
                .iter()
                .map(|t| (t.familiar_name(), t.tag().unwrap_or("<none>").to_string()))
                .collect()
        };
        for (repo, tag) in tags {
            lines.push(format!(
                "{repo}\t{tag}\t{}\t{created}\t{}\t{}\t{}\t{n}",
                short_id(&u.id),
                format::human_size(u.size),
                format::human_size(u.shared_size),
                format::human_size(u.unique_size)
            ));
        }
    }
    writeln!(out, "Images space usage:\n")?;
    write!(out, "{}", crate::template::tabwrite(&lines))?;
    let mut lines = vec![
        "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES".to_string(),
    ];
    for c in &d.containers {
        let ct = &c.container;
        let local_volumes = ct
            .config
            .host_config
            .mounts
            .iter()
            .filter(|m| m.kind == "volume")
            .count();
        lines.push(format!(
            "{}\t{}\t{}\t{local_volumes}\t{}\t{}\t{}\t{}",
            &ct.id[..12],
            ct.image,
            format::command(&berth_engine::spec::args(&ct.config)),
            format::human_size(c.size),
            format::ago(ct.created),
            ct.state,
            ct.name
        ));
    }
    writeln!(out, "\nContainers space usage:\n")?;
    write!(out, "{}", crate::template::tabwrite(&lines))?;
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    let mut lines = vec!["VOLUME NAME\tLINKS\tSIZE".to_string()];
    for u in &volumes {
        lines.push(format!(
            "{}\t{}\t{}",
            u.volume.name,
            u.containers,
            format::human_size(u.size)
        ));
    }
    write!(out, "{}", crate::template::tabwrite(&lines))?;
    writeln!(out, "\nBuild cache usage: 0B\n")?;
    write!(
        out,
        "{}",
        crate::template::tabwrite(&[
            "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED".to_string()
        ])
    )?;
    Ok(0)
}

#[derive(Args)]
pub struct CheckArgs {
    /// Also list garbage that gc would take back.
    #[arg(short, long)]
    verbose: bool,
}

pub fn check(engine: &Engine, a: CheckArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    let r = image_ops::check(&s)?;
    let mut out = std::io::stdout().lock();
    for p in &r.problems {
        writeln!(out, "{p}")?;
    }
    if a.verbose {
        for b in &r.unreferenced_blobs {
            writeln!(out, "unreferenced blob {b} (gc will remove it)")?;
        }
        for k in &r.unreferenced_snapshots {
            writeln!(out, "unreferenced snapshot {k:?} (gc will remove it)")?;
        }
    }
    if !r.is_consistent() {
        eprintln!("berth: the image store has {} problem(s)", r.problems.len());
        return Err(Exit(1).into());
    }
    Ok(0)
}
