//! The build context and the Dockerfile, as `docker build` finds them: a
//! directory (the Dockerfile in it, or at `-f PATH` anywhere, or `-f -`
//! on stdin), or `-` on stdin, which is either a tar of the context
//! (optionally compressed; the Dockerfile inside it) or a Dockerfile
//! alone, with an empty context. `.dockerignore` is read from the
//! context's top, or from `<Dockerfile>.dockerignore` beside the
//! Dockerfile when that exists (BuildKit's per-Dockerfile ignore file).

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use berth_image::layer::{ApplyOptions, Ownership, Whiteouts};

use super::error::{io_err, BuildError, Result};
use super::resolve::{resolve, Escape};
use crate::dockerignore::DockerIgnore;

/// The files a build may read.
pub struct Context {
    root: PathBuf,
    /// The unpacked tar of a context from stdin, removed with it.
    _tmp: Option<tempfile::TempDir>,
    ignore: DockerIgnore,
}

impl Context {
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ignore(&self) -> &DockerIgnore {
        &self.ignore
    }
}

/// What `docker build` was given: the context and the Dockerfile's text.
pub struct Input {
    pub context: Context,
    /// The Dockerfile's name in messages (`Dockerfile`, the `-f` path).
    pub dockerfile: String,
    pub text: String,
}

const DEFAULT_NAME: &str = "Dockerfile";

/// Reads the context (`path`, or `-` for `stdin`) and the Dockerfile
/// (`file`: `-f`; `-` is stdin). A tar context is unpacked under
/// `scratch`.
pub fn load(path: &str, file: Option<&str>, stdin: &mut dyn Read, scratch: &Path) -> Result<Input> {
    if path.contains("://") || path.starts_with("git@") {
        return Err(BuildError::Unsupported(format!(
            "a remote build context ({path})"
        )));
    }
    if path == "-" {
        if file == Some("-") {
            return Err(BuildError::Invalid(
                "invalid argument: can't use stdin for both build context and dockerfile".into(),
            ));
        }
        let mut bytes = Vec::new();
        stdin
            .read_to_end(&mut bytes)
            .map_err(io_err("reading the build context from stdin"))?;
        std::fs::create_dir_all(scratch)
            .map_err(io_err(format!("creating {}", scratch.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(scratch)
            .map_err(io_err(format!(
                "creating a directory in {}",
                scratch.display()
            )))?;
        if !is_tar(&bytes) {
            // A Dockerfile alone: the context is empty.
            let text = String::from_utf8(bytes).map_err(|_| {
                BuildError::Invalid("the Dockerfile on stdin is not UTF-8 text".into())
            })?;
            return Ok(Input {
                context: Context {
                    root: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                    ignore: DockerIgnore::default(),
                },
                dockerfile: DEFAULT_NAME.into(),
                text,
            });
        }
        let opts = ApplyOptions {
            whiteouts: Whiteouts::Apply,
            ownership: Ownership::Ignore,
        };
        berth_image::layer::apply(Cursor::new(&bytes), tmp.path(), &opts)
            .map_err(|e| BuildError::Invalid(format!("the build context on stdin: {e}")))?;
        let root = tmp.path().to_path_buf();
        let name = file.unwrap_or(DEFAULT_NAME);
        let inside = resolve(&root, name.as_bytes(), Escape::Refuse)
            .map_err(|_| BuildError::OutsideContext(name.to_string()))?;
        let text = read_dockerfile(&root.join(inside), name)?;
        let ignore = read_ignore(&root, None)?;
        return Ok(Input {
            context: Context {
                root,
                _tmp: Some(tmp),
                ignore,
            },
            dockerfile: name.to_string(),
            text,
        });
    }
    let root = PathBuf::from(path);
    if !root.is_dir() {
        return Err(BuildError::Invalid(format!(
            "unable to prepare context: path {path:?} not found or not a directory"
        )));
    }
    let (text, name, beside) = match file {
        Some("-") => {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(io_err("reading the Dockerfile from stdin"))?;
            (text, DEFAULT_NAME.to_string(), None)
        }
        Some(f) => (
            read_dockerfile(Path::new(f), f)?,
            f.to_string(),
            Some(PathBuf::from(f)),
        ),
        None => {
            let p = root.join(DEFAULT_NAME);
            (
                read_dockerfile(&p, DEFAULT_NAME)?,
                DEFAULT_NAME.to_string(),
                Some(p),
            )
        }
    };
    let ignore = read_ignore(&root, beside.as_deref())?;
    Ok(Input {
        context: Context {
            root,
            _tmp: None,
            ignore,
        },
        dockerfile: name,
        text,
    })
}

fn read_dockerfile(path: &Path, name: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            BuildError::Invalid(format!("cannot locate specified Dockerfile: {name}"))
        }
        _ => io_err(format!("reading {}", path.display()))(e),
    })?;
    String::from_utf8(bytes).map_err(|_| BuildError::Invalid(format!("{name} is not UTF-8 text")))
}

fn read_ignore(root: &Path, dockerfile: Option<&Path>) -> Result<DockerIgnore> {
    let beside = dockerfile.map(|d| {
        let mut s = d.as_os_str().to_os_string();
        s.push(".dockerignore");
        (PathBuf::from(&s), s.to_string_lossy().into_owned())
    });
    let top = (root.join(".dockerignore"), ".dockerignore".to_string());
    for (p, name) in beside.iter().chain(std::iter::once(&top)) {
        match std::fs::read_to_string(p) {
            Ok(text) => {
                return DockerIgnore::parse(&text).map_err(|error| BuildError::Ignore {
                    file: name.clone(),
                    error,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("reading {}", p.display()))(e)),
        }
    }
    Ok(DockerIgnore::default())
}

fn is_tar(bytes: &[u8]) -> bool {
    holds_tar(Cursor::new(bytes))
}

/// Whether `input` (maybe gzip or zstd compressed) holds a tar: the
/// `ustar` magic of its first header.
pub(crate) fn holds_tar(input: impl Read) -> bool {
    let Ok(mut r) = berth_image::layer::decompress(input) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n == 512 && &head[257..262] == b"ustar"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_is_a_tar_context_or_a_dockerfile() {
        let scratch = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        for (name, body) in [
            ("Dockerfile", "FROM a\n"),
            ("app/x", "x"),
            (".dockerignore", "app\n"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let input = load("-", None, &mut &bytes[..], scratch.path()).unwrap();
        assert_eq!(input.text, "FROM a\n");
        assert!(input.context.root().join("app/x").exists());
        assert!(input.context.ignore().matches("app/x"));

        let input = load("-", None, &mut &b"FROM b\n"[..], scratch.path()).unwrap();
        assert_eq!(input.text, "FROM b\n");
        assert_eq!(std::fs::read_dir(input.context.root()).unwrap().count(), 0);

        assert!(load("-", Some("-"), &mut &b""[..], scratch.path()).is_err());
        let e = load(
            "-",
            Some("../../etc/passwd"),
            &mut &bytes[..],
            scratch.path(),
        );
        assert!(
            matches!(e, Err(BuildError::OutsideContext(_))),
            "{:?}",
            e.err()
        );
    }

    #[test]
    fn a_dockerfile_beside_its_own_ignore_file() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join(".dockerignore"), "a\n").unwrap();
        let df = t.path().join("app.Dockerfile");
        std::fs::write(&df, "FROM x\n").unwrap();
        let load_it = || {
            load(
                ctx.to_str().unwrap(),
                Some(df.to_str().unwrap()),
                &mut &b""[..],
                t.path(),
            )
            .unwrap()
        };
        assert!(load_it().context.ignore().matches("a"));
        std::fs::write(t.path().join("app.Dockerfile.dockerignore"), "b\n").unwrap();
        let i = load_it();
        assert!(i.context.ignore().matches("b") && !i.context.ignore().matches("a"));
        let e = load(ctx.to_str().unwrap(), None, &mut &b""[..], t.path())
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("cannot locate specified Dockerfile"),
            "{e}"
        );
    }
}
