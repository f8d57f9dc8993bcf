//! What `berth build` shows while it builds, by `--progress`:
//!
//! - plain: docker's classic builder lines on stdout ("Step 1/5 : FROM
//!   ...", " ---> Using cache", " ---> <id>", "Successfully built"),
//!   every step's output as it comes;
//! - tty: BuildKit's look on stderr: one line per step (" => [2/5] RUN
//!   make"), its output below it (" => => # ..."), then its time, or
//!   CACHED; a step that printed nothing has its line redrawn with the
//!   time instead; at the end the total time, the steps done and the image;
//! - quiet (`-q`): nothing but the image id on stdout; everything is
//!   kept and shown on stderr only if the build fails.
//!
//! `auto` (the default) is tty on a terminal, plain otherwise. Stages that
//! build side by side are shown one after the other, in Dockerfile order:
//! a later stage's lines wait until the earlier ones are done.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_build::exec::{Built, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Tty,
    Quiet,
}

impl Style {
    /// `--progress` (and `-q`) as a style.
    pub fn parse(progress: Option<&str>, quiet: bool) -> Result<Style> {
        let style = match progress {
            None | Some("auto") => {
                if std::io::stderr().is_terminal() {
                    Style::Tty
                } else {
                    Style::Plain
                }
            }
            Some("plain") => Style::Plain,
            Some("tty") => Style::Tty,
            Some("quiet") => Style::Quiet,
            Some(other) => {
                bail!("invalid argument {other:?} for \"--progress\" flag: expected auto, plain, tty or quiet")
            }
        };
        Ok(if quiet { Style::Quiet } else { style })
    }
}

/// The step a stage is at, for the tty style.
struct Running {
    label: String,
    started: Instant,
    cached: bool,
    /// Output came since the step's line: it cannot be redrawn.
    printed: bool,
    /// Output after the last newline, shown when the line ends.
    partial: Vec<u8>,
}

pub struct Printer {
    style: Style,
    order: Vec<usize>,
    /// Index in `order` of the stage shown live.
    live: usize,
    held: HashMap<usize, Vec<u8>>,
    done: HashSet<usize>,
    /// With `-q`: everything, shown only if the build fails.
    log: Vec<u8>,
    running: HashMap<usize, Running>,
    /// Tty: warnings wait for the end, so they never split a step's lines.
    warnings: Vec<String>,
    started: Instant,
    steps_done: usize,
    total: usize,
    width: usize,
}

impl Printer {
    pub fn new(style: Style) -> Printer {
        let width = rustix::termios::tcgetwinsize(std::io::stderr())
            .ok()
            .map(|w| usize::from(w.ws_col))
            .filter(|&w| w >= 40)
            .unwrap_or(80);
        Printer {
            style,
            order: Vec::new(),
            live: 0,
            held: HashMap::new(),
            done: HashSet::new(),
            log: Vec::new(),
            running: HashMap::new(),
            warnings: Vec::new(),
            started: Instant::now(),
            steps_done: 0,
            total: 0,
            width,
        }
    }

    pub fn handle(&mut self, e: Event) {
        match e {
            Event::Stages(order) => self.order = order,
            Event::Warning(w) => match self.style {
                Style::Tty => self.warnings.push(w),
                _ => eprintln!("[Warning] {w}"),
            },
            Event::StageDone { stage, failed } => {
                if self.style == Style::Tty {
                    let text = self.finish_step(stage, failed);
                    self.show(stage, text);
                }
                self.done.insert(stage);
                self.advance();
            }
            e => {
                let Some(stage) = stage_of(&e) else { return };
                let text = match self.style {
                    Style::Tty => self.tty(stage, e),
                    Style::Plain | Style::Quiet => classic(e),
                };
                self.show(stage, text);
            }
        }
    }

    fn show(&mut self, stage: usize, text: Vec<u8>) {
        if text.is_empty() {
            return;
        }
        if self.style == Style::Quiet {
            self.log.extend_from_slice(&text);
        } else if self.order.get(self.live) == Some(&stage) {
            self.write(&text);
        } else {
            self.held.entry(stage).or_default().extend_from_slice(&text);
        }
    }

    fn write(&self, text: &[u8]) {
        // A closed pipe must not fail a build that worked.
        let _ = match self.style {
            Style::Tty => {
                let mut err = std::io::stderr().lock();
                err.write_all(text).and_then(|_| err.flush())
            }
            _ => {
                let mut out = std::io::stdout().lock();
                out.write_all(text).and_then(|_| out.flush())
            }
        };
    }

    /// Moves past finished stages, showing what the next one said so far.
    fn advance(&mut self) {
        while let Some(s) = self.order.get(self.live) {
            if let Some(text) = self.held.remove(s) {
                if self.style != Style::Quiet {
                    self.write(&text);
                }
            }
            if !self.done.contains(s) {
                break;
            }
            self.live += 1;
        }
    }

    /// The tty style's text for one event of `stage`.
    fn tty(&mut self, stage: usize, e: Event) -> Vec<u8> {
        match e {
            Event::Step {
                number,
                total,
                text,
                ..
            } => {
                let mut out = self.finish_step(stage, false);
                self.total = total;
                let label = format!("[{number}/{total}] {}", one_line(&text));
                out.extend_from_slice(self.line(" => ", &label, "").as_bytes());
                self.running.insert(
                    stage,
                    Running {
                        label,
                        started: Instant::now(),
                        cached: false,
                        printed: false,
                        partial: Vec::new(),
                    },
                );
                out
            }
            Event::UsingCache { .. } => {
                if let Some(r) = self.running.get_mut(&stage) {
                    r.cached = true;
                }
                Vec::new()
            }
            Event::Output { data, .. } => {
                let Some(r) = self.running.get_mut(&stage) else {
                    return Vec::new();
                };
                r.partial.extend_from_slice(&data);
                let mut out = Vec::new();
                while let Some(nl) = r.partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = r.partial.drain(..=nl).collect();
                    out.extend_from_slice(b" => => # ");
                    out.extend_from_slice(&line);
                    r.printed = true;
                }
                out
            }
            Event::Pulling { image, .. } => self.note(stage, &format!("pulling {image}")),
            Event::Triggers { count, .. } => self.note(
                stage,
                &format!(
                    "executing {count} build trigger{}",
                    if count == 1 { "" } else { "s" }
                ),
            ),
            _ => Vec::new(),
        }
    }

    /// A line under the running step.
    fn note(&mut self, stage: usize, text: &str) -> Vec<u8> {
        if let Some(r) = self.running.get_mut(&stage) {
            r.printed = true;
        }
        self.line(" => => ", text, "").into_bytes()
    }

    /// Ends the step `stage` is at: its time (or CACHED, or ERROR when it
    /// `failed`), on its own line redrawn when nothing came between.
    fn finish_step(&mut self, stage: usize, failed: bool) -> Vec<u8> {
        let Some(mut r) = self.running.remove(&stage) else {
            return Vec::new();
        };
        if !failed {
            self.steps_done += 1;
        }
        let mut out = Vec::new();
        if !r.partial.is_empty() {
            r.partial.push(b'\n');
            out.extend_from_slice(b" => => # ");
            out.append(&mut r.partial);
            r.printed = true;
        }
        let time = seconds(r.started.elapsed());
        let (prefix, label) = if failed {
            (" => ERROR ", r.label.as_str())
        } else if r.cached {
            (" => CACHED ", r.label.as_str())
        } else {
            (" => ", r.label.as_str())
        };
        if r.printed {
            let done = if failed {
                label.to_string()
            } else {
                format!("{label} DONE")
            };
            out.extend_from_slice(self.line(prefix, &done, &time).as_bytes());
        } else {
            // Up one line, cleared, and written again with its time.
            out.extend_from_slice(b"\x1b[1A\r\x1b[2K");
            out.extend_from_slice(self.line(prefix, label, &time).as_bytes());
        }
        out
    }

    /// `prefix label ... right`, cut to the terminal's width.
    fn line(&self, prefix: &str, label: &str, right: &str) -> String {
        let room = self
            .width
            .saturating_sub(prefix.chars().count() + right.chars().count() + 1);
        let mut label: String = label.chars().take(room).collect();
        if !right.is_empty() {
            let pad = room.saturating_sub(label.chars().count());
            label.push_str(&" ".repeat(pad + 1));
        }
        format!("{prefix}{label}{right}\n")
    }

    /// The end of a build that worked: what docker prints for it.
    pub fn succeeded(&mut self, built: &Built) {
        self.settle();
        let id = built.image.id.to_string();
        match self.style {
            Style::Quiet => println!("{id}"),
            Style::Plain => {
                println!("Successfully built {}", &built.image.id.hex()[..12]);
                for t in &built.tags {
                    println!("Successfully tagged {}", t.familiar());
                }
            }
            Style::Tty => {
                let mut text = self.summary("FINISHED");
                // Whole, however narrow the terminal: these get copied.
                text.push_str(&format!(" => writing image {id}\n"));
                for t in &built.tags {
                    text.push_str(&format!(" => naming to {t}\n"));
                }
                self.write(text.as_bytes());
                self.flush_warnings();
            }
        }
    }

    /// The end of a build that failed, before its error is printed.
    pub fn failed(&mut self) {
        self.settle();
        match self.style {
            Style::Quiet => {
                let _ = std::io::stderr().write_all(&self.log);
            }
            Style::Plain => {}
            Style::Tty => {
                let text = self.summary("FAILED");
                self.write(text.as_bytes());
                self.flush_warnings();
            }
        }
    }

    /// Shows whatever is still held (a failure stops the stages mid-way).
    fn settle(&mut self) {
        let order = self.order.clone();
        for s in order {
            if self.style == Style::Tty {
                let text = self.finish_step(s, false);
                self.show(s, text);
            }
            self.done.insert(s);
        }
        self.advance();
    }

    fn summary(&self, how: &str) -> String {
        format!(
            "[+] Building {} ({}/{}) {how}\n",
            seconds(self.started.elapsed()),
            self.steps_done,
            self.total
        )
    }

    fn flush_warnings(&mut self) {
        for w in self.warnings.drain(..) {
            eprintln!("[Warning] {w}");
        }
    }
}

fn stage_of(e: &Event) -> Option<usize> {
    match e {
        Event::Step { stage, .. }
        | Event::Triggers { stage, .. }
        | Event::Pulling { stage, .. }
        | Event::UsingCache { stage }
        | Event::Running { stage, .. }
        | Event::Output { stage, .. }
        | Event::Removed { stage, .. }
        | Event::Image { stage, .. }
        | Event::StageDone { stage, .. } => Some(*stage),
        Event::Stages(_) | Event::Warning(_) => None,
    }
}

/// Docker's classic builder's text for one event.
fn classic(e: Event) -> Vec<u8> {
    match e {
        Event::Step {
            number,
            total,
            text,
            ..
        } => format!("Step {number}/{total} : {text}\n").into_bytes(),
        Event::Triggers { count, .. } => format!(
            "# Executing {count} build trigger{}\n",
            if count == 1 { "" } else { "s" }
        )
        .into_bytes(),
        Event::Pulling { image, .. } => format!("Pulling {image}\n").into_bytes(),
        Event::UsingCache { .. } => b" ---> Using cache\n".to_vec(),
        Event::Running { container, .. } => format!(" ---> Running in {container}\n").into_bytes(),
        Event::Output { data, .. } => data,
        Event::Removed { container, .. } => {
            format!("Removing intermediate container {container}\n").into_bytes()
        }
        Event::Image { id, .. } => format!(" ---> {}\n", &id.hex()[..12]).into_bytes(),
        Event::Stages(_) | Event::Warning(_) | Event::StageDone { .. } => Vec::new(),
    }
}

/// A step's text on one line (a heredoc's body would break the layout).
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().to_string();
    if lines.next().is_some() {
        first + " ..."
    } else {
        first
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(stage: usize, number: usize, text: &str) -> Event {
        Event::Step {
            stage,
            number,
            total: 3,
            text: text.into(),
        }
    }

    #[test]
    fn tty_redraws_a_silent_step_and_keeps_output_under_its_line() {
        let mut p = Printer::new(Style::Tty);
        p.order = vec![0];
        let mut out = Vec::new();
        out.extend(p.tty(0, step(0, 1, "FROM bb")));
        out.extend(p.tty(0, step(0, 2, "COPY a /a")));
        out.extend(p.tty(0, Event::UsingCache { stage: 0 }));
        out.extend(p.tty(0, step(0, 3, "RUN make")));
        out.extend(p.tty(
            0,
            Event::Output {
                stage: 0,
                stderr: false,
                data: b"cc -o x\npart".to_vec(),
            },
        ));
        out.extend(p.finish_step(0, false));
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(" => [1/3] FROM bb"), "{text}");
        assert!(
            lines[1].starts_with("\x1b[1A\r\x1b[2K => [1/3] FROM bb"),
            "{text}"
        );
        assert!(lines[1].ends_with('s'), "the time: {text}");
        assert!(
            lines[3].starts_with("\x1b[1A\r\x1b[2K => CACHED [2/3] COPY a /a"),
            "{text}"
        );
        assert_eq!(lines[5], " => => # cc -o x");
        assert_eq!(lines[6], " => => # part", "a last partial line ends");
        assert!(lines[7].starts_with(" => [3/3] RUN make DONE"), "{text}");
        assert_eq!(p.steps_done, 3);
        assert!(lines.iter().all(|l| l.chars().count() <= 80 + 12), "{text}");
    }

    #[test]
    fn progress_values() {
        assert_eq!(Style::parse(Some("plain"), false).unwrap(), Style::Plain);
        assert_eq!(Style::parse(Some("tty"), false).unwrap(), Style::Tty);
        assert_eq!(Style::parse(Some("tty"), true).unwrap(), Style::Quiet);
        assert_eq!(Style::parse(Some("quiet"), false).unwrap(), Style::Quiet);
        let e = Style::parse(Some("fancy"), false).unwrap_err().to_string();
        assert!(e.contains("\"fancy\"") && e.contains("--progress"), "{e}");
    }
}
