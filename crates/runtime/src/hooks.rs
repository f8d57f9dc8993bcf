//! OCI hooks: each is run with the container's state JSON on stdin, its own
//! args and env, and killed when its timeout passes.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Runs `hooks` in order; the first failure stops the rest.
pub fn run_all(hooks: &[Hook], state: &str, stage: &str) -> Result<()> {
    for h in hooks {
        run(h, state).map_err(|reason| Error::Hook {
            path: h.path().clone(),
            reason: format!("{stage}: {reason}"),
        })?;
    }
    Ok(())
}

fn run(h: &Hook, state: &str) -> std::result::Result<(), String> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut nap = Duration::from_micros(200);
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!(
                    "{status}{}",
                    if err.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", err.trim())
                    }
                ));
            }
            None => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", h.timeout().unwrap_or(0)));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_env() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {} && echo \"$X\" >> {}"],"env":["X=hello"]}}"#,
            out.display(),
            out.display()
        ));
        run_all(&[h], r#"{"id":"c1"}"#, "poststart").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c1\"}hello\n"
        );
    }

    #[test]
    fn failing_and_slow_hooks_are_errors() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo boom >&2; exit 3"]}"#);
        let e = run_all(&[h], "{}", "prestart").unwrap_err().to_string();
        assert!(e.contains("boom") && e.contains("prestart"), "{e}");
        let h = hook(r#"{"path":"/bin/sleep","args":["sleep","5"],"timeout":1}"#);
        let t0 = Instant::now();
        let e = run_all(&[h], "{}", "poststop").unwrap_err().to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(4));
    }
}
