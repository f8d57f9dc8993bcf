//! `load`, `save`, `import` and `commit` of an image of several MB draw
//! progress on a terminal (a pty from `script`, the raw bytes read back)
//! and, on pipes, print nothing but docker's result lines.

mod common;

use std::process::{Command, Output};

use common::Berth;

/// Runs berth with `args` on a pty: what it wrote there, and its status.
fn on_pty(b: &Berth, args: &[&str]) -> (String, std::process::ExitStatus) {
    let mut line = format!(
        "{} --root {} --runroot {}",
        common::bin().display(),
        b.root.display(),
        b.runroot.display()
    );
    for a in args {
        // The arguments here are paths and names without quotes.
        line.push_str(&format!(" '{a}'"));
    }
    let o = Command::new("script")
        .args(["-q", "-e", "-f", "-c", &line, "/dev/null"])
        .env("BERTH_CONFIG", &b.net.config)
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (String::from_utf8_lossy(&o.stdout).into_owned(), o.status)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts a bar labelled `label` counting bytes was drawn. Which count
/// it showed depends on when its ticks fell: a fast save may be drawn only
/// at 0 B before it is cleared.
fn drew(pty: &str, label: &str) {
    let bar = pty
        .split(['\r', '\n'])
        .find(|l| l.contains(label) && (l.contains(" B") || l.contains("iB")));
    assert!(bar.is_some(), "no {label} bar in {pty:?}");
}

#[test]
fn image_commands_draw_progress_on_a_terminal_only() {
    if !berth_testutil::require_root("image_commands_draw_progress_on_a_terminal_only") {
        return;
    }
    let b = Berth::with_image();
    // A container with ~8 MB of changes, committed (over a pipe) to make
    // an image of that size for the other commands.
    b.sh(
        "work",
        "dd if=/dev/urandom of=/big bs=1M count=8 2>/dev/null",
    );

    // commit: a bar on the pty, then the id.
    let (pty, status) = on_pty(&b, &["commit", "work", "big:1"]);
    assert!(status.success(), "{pty}");
    drew(&pty, "Committing");
    assert!(
        pty.trim_end()
            .ends_with(b.ok(&["images", "-q", "--no-trunc", "big:1"]).trim()),
        "{pty:?}"
    );
    // On pipes: the id alone.
    let o = b.run(&["commit", "work", "big:2"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.starts_with("sha256:") && out.len() == 72 && out.ends_with('\n'),
        "{out:?}"
    );
    assert_eq!(err, "");

    // save -o: a bar on the pty; nothing at all on pipes.
    let archive = b.dir.path().join("big.tar");
    let a = archive.to_str().unwrap();
    let (pty, status) = on_pty(&b, &["save", "-o", a, "big:1"]);
    assert!(status.success(), "{pty}");
    drew(&pty, "Saving");
    let o = b.run(&["save", "-o", a, "big:1"]);
    assert!(o.status.success());
    assert_eq!(text(&o), (String::new(), String::new()));
    // To a piped stdout: the archive and nothing else.
    let o = b.run(&["save", "big:1"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&archive).unwrap());
    assert_eq!(text(&o).1, "");

    // load: a bar on the pty, then docker's line; on pipes the line alone.
    b.ok(&["rmi", "big:1", "big:2"]);
    let (pty, status) = on_pty(&b, &["load", "-i", a]);
    assert!(status.success(), "{pty}");
    drew(&pty, "Loading");
    assert!(pty.contains("Loaded image: big:1"), "{pty:?}");
    b.ok(&["rmi", "big:1"]);
    let o = b.run(&["load", "-i", a]);
    assert!(o.status.success());
    assert_eq!(text(&o), ("Loaded image: big:1\n".into(), String::new()));
    // -q: no bar even on a terminal.
    b.ok(&["rmi", "big:1"]);
    let (pty, status) = on_pty(&b, &["load", "-q", "-i", a]);
    assert!(status.success(), "{pty}");
    assert_eq!(pty.trim(), "Loaded image: big:1");

    // import: a bar on the pty, the id; on pipes the id alone.
    let fs = b.dir.path().join("fs.tar");
    b.ok(&["export", "-o", fs.to_str().unwrap(), "work"]);
    let (pty, status) = on_pty(&b, &["import", fs.to_str().unwrap(), "imp:1"]);
    assert!(status.success(), "{pty}");
    drew(&pty, "Importing");
    let o = b.run(&["import", fs.to_str().unwrap(), "imp:2"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("sha256:") && out.len() == 72, "{out:?}");
    assert_eq!(err, "");
}
