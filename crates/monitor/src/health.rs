//! The container's health check, run from the monitor's poll loop: no
//! thread and no timer of its own, only a deadline the loop's poll waits
//! for and, while a probe runs, its helper's pidfd and output pipe.
//!
//! A probe is an exec into the container by a `berth-monitor probe`
//! child, as `berth exec` does it (the monitor itself never enters the
//! container: it forks the container's init on restarts). The helper
//! reports the process's exit code, or why it could not start, on a
//! status pipe; its output goes to a pipe we read up to docker's limit.

use std::fs::File;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_engine::health::{self, Healthcheck, ProbeResult, Schedule};
use berth_engine::protocol::{self, Event};
use berth_engine::Engine;
use chrono::{DateTime, Utc};
use rustix::process::{Pid, Signal};

/// How long a killed probe's helper has to exit before its whole
/// process group is killed.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// One running probe.
struct Probe {
    child: Child,
    pidfd: OwnedFd,
    output: File,
    status: File,
    buf: Vec<u8>,
    truncated: bool,
    start: DateTime<Utc>,
    /// The probe's timeout, then (once killed) the kill's grace.
    deadline: Instant,
    timed_out: bool,
}

/// The check of one run of the container.
pub struct Checker<'a> {
    engine: &'a Engine,
    id: String,
    command: Vec<String>,
    schedule: Schedule,
    started: DateTime<Utc>,
    started_at: Instant,
    status: String,
    next: Instant,
    /// The probe's process, written once per run.
    process: Option<PathBuf>,
    probe: Option<Probe>,
}

impl<'a> Checker<'a> {
    /// The check of a container that just started; `None` without one
    /// (no HEALTHCHECK, or NONE).
    pub fn new(engine: &'a Engine, id: &str, check: Option<&Healthcheck>) -> Option<Checker<'a>> {
        let check = check?;
        let command = check.command()?;
        if let Err(e) = engine.health_starting(id) {
            eprintln!("berth-monitor: recording the health of {id}: {e}");
        }
        let schedule = Schedule::of(check);
        let now = Instant::now();
        Some(Checker {
            engine,
            id: id.to_string(),
            command,
            schedule,
            started: Utc::now(),
            started_at: now,
            status: health::STARTING.into(),
            next: now + schedule.next_wait(Duration::ZERO, health::STARTING),
            process: None,
            probe: None,
        })
    }

    /// How long the loop may sleep before [`Checker::service`] is due.
    pub fn timeout(&self) -> Duration {
        let due = self.probe.as_ref().map_or(self.next, |p| p.deadline);
        due.saturating_duration_since(Instant::now())
    }

    /// What the loop polls besides its own fds: the running probe's
    /// helper (its exit) and output.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        match &self.probe {
            Some(p) => vec![p.pidfd.as_fd(), p.output.as_fd()],
            None => Vec::new(),
        }
    }

    /// Called at each wake of the loop: reads the probe's output, ends a
    /// probe that finished or timed out, starts one that is due.
    pub fn service(&mut self) {
        let now = Instant::now();
        if let Some(p) = self.probe.as_mut() {
            p.read_output();
            match p.child.try_wait() {
                Ok(Some(st)) => {
                    let p = self.probe.take().expect("a running probe");
                    let r = p.finish(st, &self.schedule);
                    self.record(r);
                }
                Ok(None) if now >= p.deadline => p.kill(),
                Ok(None) => {}
                Err(e) => {
                    eprintln!("berth-monitor: waiting for a probe of {}: {e}", self.id);
                    p.kill();
                }
            }
            return;
        }
        if now >= self.next {
            self.start_probe();
        }
    }

    fn start_probe(&mut self) {
        // docker runs no probes while a container is paused: its exec
        // would freeze with it.
        if self.engine.is_paused(&self.id) {
            self.next = Instant::now() + self.wait();
            return;
        }
        let start = Utc::now();
        match self.spawn() {
            Ok(p) => self.probe = Some(p),
            Err(msg) => self.record(ProbeResult {
                start,
                end: Utc::now(),
                exit_code: -1,
                output: msg,
            }),
        }
    }

    fn spawn(&mut self) -> Result<Probe, String> {
        let process = match &self.process {
            Some(p) => p.clone(),
            None => {
                let p = self
                    .engine
                    .probe_file(&self.id, self.command.clone())
                    .map_err(|e| e.to_string())?;
                self.process = Some(p.clone());
                p
            }
        };
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| format!("creating a pipe: {e}"))
        };
        let (out_r, out_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        let out_w2 = rustix::io::fcntl_dupfd_cloexec(&out_w, 3).map_err(|e| e.to_string())?;
        for fd in [&out_r, &status_r] {
            rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK).map_err(|e| e.to_string())?;
        }
        let mut cmd =
            berth_engine::monitor::command(&self.engine.paths).map_err(|e| e.to_string())?;
        cmd.arg("probe")
            .arg(&self.id)
            .arg(&process)
            .stdin(Stdio::from(status_w))
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(out_w2))
            // Its own group, so a timed-out probe's leftovers can be
            // killed together.
            .process_group(0);
        let start = Utc::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting the health check: {e}"))?;
        // The write ends must close here, or the pipes never end.
        drop(cmd);
        let pidfd = Pid::from_raw(child.id() as i32)
            .ok_or("bad pid".to_string())
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                    .map_err(|e| format!("pidfd_open: {e}"))
            });
        let pidfd = match pidfd {
            Ok(fd) => fd,
            Err(e) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Probe {
            child,
            pidfd,
            output: File::from(out_r),
            status: File::from(status_r),
            buf: Vec::new(),
            truncated: false,
            start,
            deadline: Instant::now() + self.schedule.timeout,
            timed_out: false,
        })
    }

    fn wait(&self) -> Duration {
        self.schedule
            .next_wait(self.started_at.elapsed(), &self.status)
    }

    fn record(&mut self, r: ProbeResult) {
        match self
            .engine
            .record_probe(&self.id, r, &self.schedule, self.started)
        {
            Ok(status) => self.status = status,
            Err(e) => eprintln!("berth-monitor: recording a probe of {}: {e}", self.id),
        }
        // Idle until the next probe: no database connection kept.
        self.engine.release();
        // docker counts the interval from the end of a probe.
        self.next = Instant::now() + self.wait();
    }

    /// The container stopped: a running probe is killed, and the checks
    /// end unhealthy, as docker's do.
    pub fn stop(mut self) {
        if let Some(mut p) = self.probe.take() {
            kill_group(&p.child);
            let _ = p.child.wait();
        }
        if let Some(f) = self.process.take() {
            let _ = std::fs::remove_file(f);
        }
        if let Err(e) = self.engine.health_stopped(&self.id) {
            eprintln!("berth-monitor: recording the health of {}: {e}", self.id);
        }
    }
}

fn kill_group(child: &Child) {
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

impl Probe {
    /// Reads what the probe wrote, keeping docker's first 4096 bytes.
    fn read_output(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.output.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    let room = health::MAX_OUTPUT.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                    self.truncated |= n > room;
                }
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Past the timeout: the probe's process is killed (its helper then
    /// reaps it and exits); past the grace too, the whole group.
    fn kill(&mut self) {
        if self.timed_out {
            kill_group(&self.child);
            self.deadline = Instant::now() + KILL_GRACE;
            return;
        }
        self.timed_out = true;
        self.deadline = Instant::now() + KILL_GRACE;
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let mut killed = false;
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
        {
            if let Some(c) = Pid::from_raw(c) {
                killed |= rustix::process::kill_process(c, Signal::KILL).is_ok();
            }
        }
        if !killed {
            // Still setting the exec up: killing the helper ends that.
            kill_group(&self.child);
        }
    }

    fn finish(mut self, st: std::process::ExitStatus, s: &Schedule) -> ProbeResult {
        self.read_output();
        let mut line = String::new();
        let _ = self.status.read_to_string(&mut line);
        let end = Utc::now();
        let (exit_code, output) = if self.timed_out {
            // Whatever the probe left behind in its group goes too.
            kill_group(&self.child);
            (
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    health::format_duration(s.timeout)
                ),
            )
        } else {
            match protocol::parse(&line) {
                Some(Event::Exited(code)) => (
                    i64::from(code),
                    health::output_text(&self.buf, self.truncated),
                ),
                // The exec itself failed: docker reports its error.
                Some(Event::Failed(_, msg)) => (-1, msg),
                _ => (
                    -1,
                    format!(
                        "the health check's helper exited with {st}: {}",
                        health::output_text(&self.buf, self.truncated)
                    ),
                ),
            }
        };
        ProbeResult {
            start: self.start,
            end,
            exit_code,
            output,
        }
    }
}

/// `berth-monitor probe ID PROCESS_JSON`: one probe. stdin is the status
/// pipe (the process gets /dev/null instead), stdout and stderr the
/// output pipe. Reports the process's exit code or why it did not start.
pub fn probe(engine: &Engine, id: &str, process: &Path) -> i32 {
    let status = rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3);
    let null = File::open("/dev/null");
    let (mut status, null) = match (status, null) {
        (Ok(s), Ok(n)) => (File::from(s), n),
        (Err(e), _) => {
            eprintln!("berth-monitor: probe: no status pipe: {e}");
            return 125;
        }
        (_, Err(e)) => {
            eprintln!("berth-monitor: probe: /dev/null: {e}");
            return 125;
        }
    };
    if let Err(e) = rustix::stdio::dup2_stdin(&null) {
        eprintln!("berth-monitor: probe: {e}");
        return 125;
    }
    let result = crate::exec::read_process(process).map_err(|e| {
        berth_engine::Error::InvalidArgument(format!("reading {}: {e}", process.display()))
    });
    let result = result.and_then(|p| {
        engine
            .runtime()
            .exec(id, &p, &berth_runtime::ExecOptions::default())
            .map_err(crate::exec::classify)
    });
    let (code, line) = match result {
        Ok(code) => (code, protocol::exited(code)),
        Err(e) => {
            let code = crate::exec::code_of(&e);
            (code, protocol::failed(code, &e.to_string()))
        }
    };
    let _ = status.write_all(line.as_bytes());
    code
}
