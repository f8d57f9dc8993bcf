//! `pull`, `push`, `login`, `logout`, and `run`/`create --pull`.
//!
//! Passwords come from stdin (`--password-stdin`) or a terminal prompt
//! that does not echo; never from the command line.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Result};
use berth_engine::pull::{self as reg, Need, PullPolicy};
use berth_engine::{images as store, Engine};
use berth_registry::Credentials;
use clap::Args;

use crate::progress::{Direction, Stream, Transfer};

#[derive(Args)]
pub struct PullArgs {
    /// Pull every tag of the repository.
    #[arg(short, long)]
    all_tags: bool,
    /// Only print the reference pulled.
    #[arg(short, long)]
    quiet: bool,
    /// os/arch[/variant] to pick from a multi-platform image.
    #[arg(long)]
    platform: Option<String>,
    /// Accepted for docker's sake: signatures are not checked.
    #[arg(long, hide = true)]
    disable_content_trust: bool,
    /// NAME[:TAG|@DIGEST]
    image: String,
}

/// Pulls one reference, printing docker's lines around the progress.
fn pull_one(
    engine: &Engine,
    name: &str,
    platform: Option<&str>,
    quiet: bool,
    stream: Stream,
) -> Result<berth_image::Reference> {
    let s = store::open(&engine.paths)?;
    let client = reg::client()?;
    let reference =
        berth_image::Reference::parse(name).map_err(|e| berth_engine::Error::Image(e.into()))?;
    let before = s.image(&reference.to_string()).ok().map(|i| i.id);
    let t = Transfer::new(quiet, stream, Direction::Pull);
    if berth_image::Reference::parse_named(name)
        .is_ok_and(|r| r.tag().is_none() && r.digest().is_none())
    {
        t.line("Using default tag: latest");
    }
    let what = reference
        .digest()
        .map(|d| d.to_string())
        .or_else(|| reference.tag().map(String::from))
        .unwrap_or_default();
    t.line(&format!("{what}: Pulling from {}", reference.path()));
    let sink = t.sink();
    let result = reg::pull(engine, &client, &s, name, platform, &sink);
    t.finish();
    let (reference, pulled) = result?;
    t.line(&format!("Digest: {}", pulled.digest));
    let status = if before.as_ref() == Some(&pulled.image.id) {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    t.line(&format!("Status: {status} {}", reference.familiar()));
    Ok(reference)
}

pub fn pull(engine: &Engine, a: PullArgs) -> Result<u8> {
    if a.all_tags {
        let (repo, tags) = reg::repository_tags(&reg::client()?, &a.image)?;
        for t in &tags {
            let name = format!("{}:{t}", repo.name());
            pull_one(
                engine,
                &name,
                a.platform.as_deref(),
                a.quiet,
                Stream::Stdout,
            )?;
        }
        println!("{}", repo.name());
        return Ok(0);
    }
    let r = pull_one(
        engine,
        &a.image,
        a.platform.as_deref(),
        a.quiet,
        Stream::Stdout,
    )?;
    println!("{r}");
    Ok(0)
}

#[derive(Args)]
pub struct PushArgs {
    /// Print only the reference pushed.
    #[arg(short, long)]
    quiet: bool,
    /// Push every tag of the repository.
    #[arg(short, long)]
    all_tags: bool,
    #[arg(long, hide = true)]
    disable_content_trust: bool,
    /// NAME[:TAG]
    image: String,
}

pub fn push(engine: &Engine, a: PushArgs) -> Result<u8> {
    let s = store::open(&engine.paths)?;
    let client = reg::client()?;
    let named = berth_image::Reference::parse_named(&a.image)
        .map_err(|e| berth_engine::Error::Image(e.into()))?;
    // --all-tags: every local tag of the repository, in order.
    let names: Vec<String> = if a.all_tags {
        if named.tag().is_some() {
            bail!(berth_engine::Error::InvalidArgument(
                "tag can't be used with --all-tags/-a".into()
            ));
        }
        let mut v: Vec<String> = s
            .images()
            .map_err(berth_engine::Error::from)?
            .iter()
            .flat_map(|i| i.tags.iter())
            .filter(|t| t.name() == named.name())
            .map(|t| t.to_string())
            .collect();
        v.sort();
        if v.is_empty() {
            bail!(berth_engine::Error::NoSuchImage(named.familiar_name()));
        }
        v
    } else {
        vec![a.image.clone()]
    };
    Transfer::new(a.quiet, Stream::Stdout, Direction::Push).line(&format!(
        "The push refers to repository [{}]",
        named.name().trim_start_matches("docker.io/")
    ));
    for name in names {
        // Bars per tag: its digest line follows its layers, as docker's.
        let t = Transfer::new(a.quiet, Stream::Stdout, Direction::Push);
        if let Ok(i) = s.image(&name) {
            t.hide(i.id);
        }
        let sink = t.sink();
        let result = reg::push(engine, &client, &s, &name, &sink);
        t.finish();
        let (reference, image, digest) = result?;
        let size = berth_image::content::read_blob(s.content(), &image.manifest)
            .map(|b| b.len())
            .unwrap_or(0);
        t.line(&format!(
            "{}: digest: {digest} size: {size}",
            reference.tag().unwrap_or("latest")
        ));
        if a.quiet {
            println!("{}", reference.familiar());
        }
    }
    Ok(0)
}

#[derive(Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    username: Option<String>,
    /// Refused: a password on the command line ends up in shell history
    /// and `ps`; use --password-stdin.
    #[arg(short, long, hide = true)]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// The registry (Docker Hub when omitted).
    server: Option<String>,
}

pub fn login(a: LoginArgs) -> Result<u8> {
    if a.password.is_some() {
        bail!(berth_engine::Error::InvalidArgument(
            "--password is not accepted on the command line: use --password-stdin".into()
        ));
    }
    let server = a.server.as_deref().unwrap_or("docker.io");
    let tty = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if a.password_stdin => bail!(berth_engine::Error::InvalidArgument(
            "must provide --username with --password-stdin".into()
        )),
        None if tty => {
            eprint!("Username: ");
            std::io::stderr().flush()?;
            let mut u = String::new();
            std::io::stdin().read_line(&mut u)?;
            u.trim().to_string()
        }
        None => bail!("cannot perform an interactive login from a non TTY device"),
    };
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if tty {
        eprint!("Password: ");
        std::io::stderr().flush()?;
        // Echo off while typing: the password never reaches the screen.
        let p = console::Term::stderr().read_secure_line()?;
        eprintln!();
        p
    } else {
        bail!("cannot perform an interactive login from a non TTY device: use --password-stdin");
    };
    if username.is_empty() || password.is_empty() {
        bail!(berth_engine::Error::InvalidArgument(
            "username and password are required".into()
        ));
    }
    let client = reg::client()?;
    reg::login(&client, server, &Credentials { username, password })?;
    println!("Login Succeeded");
    Ok(0)
}

#[derive(Args)]
pub struct LogoutArgs {
    server: Option<String>,
}

pub fn logout(a: LogoutArgs) -> Result<u8> {
    let server = a.server.as_deref().unwrap_or("docker.io");
    let shown = berth_registry::normalize_registry(server);
    if reg::logout(server)? {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(0)
}

/// `run`/`create`'s `--pull` and `--platform`.
#[derive(Args, Debug, Default, Clone)]
pub struct PullFlags {
    /// Pull the image before creating: missing, always or never.
    #[arg(long = "pull", default_value = "missing")]
    pub pull: String,
    /// os/arch[/variant] to pull.
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull without the progress (the notice that it pulls stays off too).
    #[arg(short, long)]
    pub quiet: bool,
    /// Skip image verification: berth does none (docker's default).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_content_trust: Option<bool>,
}

/// Pulls the image `run`/`create` need, as docker does: a notice on
/// stderr, the progress on stderr too, so stdout stays the container's
/// (or its id).
pub fn ensure_image(engine: &Engine, flags: &PullFlags, image: &str) -> Result<()> {
    let policy = PullPolicy::parse(&flags.pull)?;
    if flags.disable_content_trust == Some(false) {
        bail!(berth_engine::Error::NotSupported {
            flag: "--disable-content-trust=false (image signatures)".into()
        });
    }
    // The engine's own store: `run` and `create` use it next.
    let s = engine.store()?;
    let Need::Pull(reference) = reg::needs_pull(&s, image, policy)? else {
        if let Some(p) = &flags.platform {
            berth_engine::pull::check_platform(&s, image, p)?;
        }
        return Ok(());
    };
    drop(s);
    if policy == PullPolicy::Missing && !flags.quiet {
        eprintln!("Unable to find image '{}' locally", reference.familiar());
    }
    pull_one(
        engine,
        image,
        flags.platform.as_deref(),
        flags.quiet,
        Stream::Stderr,
    )?;
    if let Some(p) = &flags.platform {
        let s = engine.store()?;
        berth_engine::pull::check_platform(&s, image, p)?;
    }
    Ok(())
}
