//! `berth-monitor exec`: a process in a running container, with the
//! caller's stdio; exits with its code (or docker's 126/127/125).

use std::path::Path;

use berth_engine::{Engine, Error, ErrorKind};
use oci_spec::runtime::Process;

pub fn run(engine: &Engine, id: &str, process: &Path) -> i32 {
    let p: Process = match std::fs::read(process)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: exec in {id}: reading {}: {e}", process.display());
            return 125;
        }
    };
    match engine
        .runtime()
        .exec(id, &p, &berth_runtime::ExecOptions::default())
    {
        Ok(code) => code,
        Err(e) => {
            let e = match e {
                berth_runtime::Error::Init(msg) => Error::from_start_failure(msg),
                e => Error::from(e),
            };
            eprintln!("berth: exec in {id}: {e}");
            match e.kind() {
                ErrorKind::CommandNotFound => 127,
                ErrorKind::CannotInvoke => 126,
                _ => 125,
            }
        }
    }
}
