//! Builds berth-init (crates/init) as a static binary and puts it next to
//! berth-monitor, where the engine looks for it. It is bound into
//! containers of any image, which need not have a C library: cargo cannot
//! give one package crt-static, so it is built here by a nested cargo with
//! its own target directory (no lock shared with the outer build).
//! A failure is a warning, not an error: only `--init` needs the binary,
//! and it then fails clearly naming it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    // A position-dependent executable: its pointers are fixed at link
    // time, so the loader relocates almost nothing at each start and no
    // monitor dirties a private copy of them (~0.3 MiB of .data.rel.ro).
    println!("cargo:rustc-link-arg-bins=-no-pie");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let init = manifest.join("../init");
    println!("cargo:rerun-if-changed={}", init.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        init.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../sys/src").display()
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let target = std::env::var("TARGET").unwrap_or_default();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tdir = out.join("init-target");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&init)
        .args(["build", "--release", "--offline", "--target", &target])
        .arg("--target-dir")
        .arg(&tdir)
        .arg("--config")
        .arg(format!(
            "target.{target}.rustflags=[\"-Ctarget-feature=+crt-static\"]"
        ));
    // The outer build's settings are not the init's (clippy's wrapper,
    // the outer rustflags, the jobserver's target dir).
    for k in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "CLIPPY_ARGS",
    ] {
        cmd.env_remove(k);
    }
    let built = tdir.join(&target).join("release").join("berth-init");
    match cmd.status() {
        Ok(s) if s.success() => {}
        other => {
            println!("cargo:warning=building berth-init failed ({other:?}): --init will not work");
            return;
        }
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    if let Some(profile_dir) = out.ancestors().nth(3) {
        let dest = profile_dir.join("berth-init");
        let tmp = profile_dir.join(".berth-init.tmp");
        if let Err(e) = std::fs::copy(&built, &tmp).and_then(|_| std::fs::rename(&tmp, &dest)) {
            println!(
                "cargo:warning=copying berth-init to {}: {e}",
                dest.display()
            );
        }
    }
}
