//! Timestamps of the steps of a start and an exit, for finding where the
//! time of `run` goes: with `BERTH_TIMING=FILE` in the environment, every
//! process of berth (the CLI and the monitors it starts, which inherit
//! it) appends `<monotonic ns> <pid> <step>` lines to FILE. Off, a step
//! costs one check of a cached flag.

use std::io::Write;
use std::sync::OnceLock;

fn file() -> Option<&'static std::path::Path> {
    static FILE: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| std::env::var_os("BERTH_TIMING").map(Into::into))
        .as_deref()
}

/// Whether steps are recorded: for a caller that would build the step's
/// text only to have it dropped.
pub fn on() -> bool {
    file().is_some()
}

/// Records that `step` is done now.
pub fn mark(step: &str) {
    let Some(path) = file() else { return };
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let ns = t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128;
    let line = format!("{ns} {} {step}\n", std::process::id());
    // One write of a whole line to an O_APPEND file: lines of processes
    // writing at once do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}
