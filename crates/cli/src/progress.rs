//! Progress as docker shows it. On a terminal: one bar per layer for pull
//! and push ("a3ed95caeb02: Downloading [=====>   ] 1.2MB/3.4MB") with a
//! total below them, and a byte bar on stderr for load, save, import,
//! export and commit. Not on a terminal: pull and push print one plain
//! line per change of a layer's state, never per byte; the others print
//! nothing but their result. `-q` prints nothing either way.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use berth_image::Digest;
use berth_registry::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// Which stream progress goes to: docker's pull and push use stdout;
/// `run` pulling a missing image uses stderr, keeping stdout the
/// container's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }

    pub fn line(self, s: &str) {
        // A closed pipe must not turn a finished pull into a failure.
        let _ = match self {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "{s}"),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{s}"),
        };
    }

    fn target(self) -> ProgressDrawTarget {
        match self {
            Stream::Stdout => ProgressDrawTarget::stdout(),
            Stream::Stderr => ProgressDrawTarget::stderr(),
        }
    }
}

/// Whether layers go up or down: it picks docker's words.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

enum Mode {
    Quiet,
    /// The last state printed per layer, so each change prints once.
    Plain(Mutex<HashMap<Digest, &'static str>>),
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<Digest, ProgressBar>>,
        /// The sum over layers, below theirs, once a size is known.
        total: Mutex<Total>,
    },
}

/// Bytes moved and to move, per layer and over all of them.
#[derive(Default)]
struct Total {
    bar: Option<ProgressBar>,
    /// Per layer: (done, size).
    layers: HashMap<Digest, (u64, u64)>,
}

impl Total {
    fn update(
        &mut self,
        multi: &MultiProgress,
        layer: &Digest,
        done: Option<u64>,
        size: Option<u64>,
    ) {
        let entry = self.layers.entry(layer.clone()).or_default();
        if let Some(size) = size {
            entry.1 = size;
        }
        match done {
            Some(d) => entry.0 = d,
            // Finished (or there already): all of it.
            None => entry.0 = entry.1,
        }
        let (done, size) = self
            .layers
            .values()
            .fold((0, 0), |(d, s), (ld, ls)| (d + ld, s + ls));
        if size == 0 {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = multi.add(ProgressBar::new(size));
            b.set_style(
                ProgressStyle::with_template("{prefix}: [{bar:50}] {bytes}/{total_bytes}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix("Total");
            b
        });
        bar.set_length(size);
        bar.set_position(done);
    }
}

/// Renders a pull's or push's [`Event`]s.
pub struct Transfer {
    mode: Mode,
    /// Blobs docker does not show (an image's config on push).
    hidden: Mutex<std::collections::HashSet<Digest>>,
    stream: Stream,
    direction: Direction,
    /// The bars are done and the cursor is below them.
    finished: AtomicBool,
}

fn short(d: &Digest) -> &str {
    &d.hex()[..12.min(d.hex().len())]
}

impl Transfer {
    pub fn new(quiet: bool, stream: Stream, direction: Direction) -> Transfer {
        let mode = if quiet {
            Mode::Quiet
        } else if stream.is_terminal() {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(stream.target()),
                bars: Mutex::new(HashMap::new()),
                total: Mutex::default(),
            }
        } else {
            Mode::Plain(Mutex::new(HashMap::new()))
        };
        Transfer {
            mode,
            hidden: Mutex::default(),
            stream,
            direction,
            finished: AtomicBool::new(false),
        }
    }

    /// Leaves `blob` out of the display.
    pub fn hide(&self, blob: Digest) {
        self.hidden
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(blob);
    }

    /// The progress sink to hand to the registry client.
    pub fn sink(&self) -> impl Fn(Event) + Send + Sync + '_ {
        move |e| self.event(e)
    }

    fn event(&self, e: Event) {
        if let Mode::Bars { multi, total, .. } = &self.mode {
            self.count(multi, total, &e);
        }
        let pull = self.direction == Direction::Pull;
        let (layer, state, bytes): (Vec<Digest>, &'static str, Option<(u64, u64)>) = match e {
            Event::Resolving { .. } => return,
            Event::Resolved { layers, .. } => (
                layers.into_iter().map(|(d, _)| d).collect(),
                if pull {
                    "Pulling fs layer"
                } else {
                    "Preparing"
                },
                None,
            ),
            Event::Waiting { layer } => (vec![layer], "Waiting", None),
            Event::Downloading { layer, done, total } => {
                (vec![layer], "Downloading", Some((done, total)))
            }
            Event::Uploading { layer, done, total } => {
                (vec![layer], "Pushing", Some((done, total)))
            }
            Event::Verifying { layer } => (vec![layer], "Verifying Checksum", None),
            Event::Extracting { layer } => (vec![layer], "Extracting", None),
            Event::Done { layer } => (
                vec![layer],
                if pull { "Pull complete" } else { "Pushed" },
                None,
            ),
            Event::Exists { layer } => (
                vec![layer],
                if pull {
                    "Already exists"
                } else {
                    "Layer already exists"
                },
                None,
            ),
            Event::Retrying { layer, .. } => (vec![layer], "Retrying", None),
        };
        let layer: Vec<Digest> = {
            let hidden = self.hidden.lock().unwrap_or_else(|p| p.into_inner());
            layer.into_iter().filter(|l| !hidden.contains(l)).collect()
        };
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain(last) => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                for l in layer {
                    // Bytes flowing are not a change worth a line; docker's
                    // "Download complete" is the step from bytes to unpacking.
                    let shown = match state {
                        "Downloading" | "Pushing" => continue,
                        "Extracting" if last.get(&l) != Some(&"Already exists") => {
                            "Download complete"
                        }
                        "Extracting" => continue,
                        s => s,
                    };
                    if !last.contains_key(&l) && !pull && shown != "Preparing" {
                        self.stream.line(&format!("{}: Preparing", short(&l)));
                    }
                    if last.get(&l) == Some(&shown) {
                        continue;
                    }
                    // A layer already there stays "Already exists".
                    if last.get(&l) == Some(&"Already exists") {
                        continue;
                    }
                    self.stream.line(&format!("{}: {shown}", short(&l)));
                    last.insert(l, shown);
                }
            }
            Mode::Bars { multi, bars, total } => {
                // Layers above the total.
                let below = total.lock().unwrap_or_else(|p| p.into_inner()).bar.clone();
                let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
                for l in layer {
                    let bar = bars.entry(l.clone()).or_insert_with(|| {
                        let b = match &below {
                            Some(t) => multi.insert_before(t, ProgressBar::new(0)),
                            None => multi.add(ProgressBar::new(0)),
                        };
                        b.set_style(plain_style());
                        b.set_prefix(short(&l).to_string());
                        b
                    });
                    match bytes {
                        Some((done, total)) => {
                            if bar.length() != Some(total) {
                                bar.set_style(bytes_style());
                                bar.set_length(total);
                            }
                            bar.set_position(done);
                        }
                        None => bar.set_style(plain_style()),
                    }
                    bar.set_message(state);
                    if matches!(
                        state,
                        "Pull complete" | "Pushed" | "Already exists" | "Layer already exists"
                    ) {
                        bar.finish();
                    }
                }
            }
        }
    }

    /// Feeds the total bar: sizes as they become known, bytes as they
    /// move, whole layers as they finish.
    fn count(&self, multi: &MultiProgress, total: &Mutex<Total>, e: &Event) {
        let hidden = |l: &Digest| {
            self.hidden
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(l)
        };
        let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Resolved { layers, .. } => {
                for (l, size) in layers {
                    t.update(multi, l, Some(0), Some(*size));
                }
            }
            Event::Downloading { layer, done, total } | Event::Uploading { layer, done, total }
                if !hidden(layer) =>
            {
                t.update(multi, layer, Some(*done), Some(*total));
            }
            Event::Done { layer } | Event::Exists { layer } if !hidden(layer) => {
                t.update(multi, layer, None, None);
            }
            _ => {}
        }
    }

    /// Leaves the bars drawn as they ended, and the cursor below them:
    /// lines from now on follow the bars.
    pub fn finish(&self) {
        if let Mode::Bars { bars, total, .. } = &self.mode {
            let total = total.lock().unwrap_or_else(|p| p.into_inner());
            let all = bars.lock().unwrap_or_else(|p| p.into_inner());
            for b in all.values().chain(total.bar.as_ref()) {
                if !b.is_finished() {
                    b.abandon();
                }
            }
            if !all.is_empty() && !self.finished.swap(true, Ordering::SeqCst) {
                // indicatif leaves the cursor at the end of the last bar.
                self.stream.line("");
            }
        }
    }

    /// A status line ("Digest: ...") unless quiet: above the bars while
    /// they are drawn, below them once finished.
    pub fn line(&self, s: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bars { multi, .. } if !self.finished.load(Ordering::SeqCst) => {
                let _ = multi.println(s);
            }
            _ => self.stream.line(s),
        }
    }
}

fn plain_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").expect("static template")
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg} [{bar:50}] {bytes}/{total_bytes}")
        .expect("static template")
        .progress_chars("=> ")
}

/// A byte bar on stderr for a stream of known or unknown length, or
/// `None` when stderr is not a terminal or `quiet`: load, save, import,
/// export and commit draw nothing then, and print only their result.
/// However the work ends (an error too), the bar is cleared.
pub fn bytes_bar(label: &str, total: Option<u64>, quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
        .with_finish(ProgressFinish::AndClear);
    bar.set_style(match total {
        Some(_) => known_style(),
        None => unknown_style(),
    });
    bar.set_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

fn known_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:50}] {bytes}/{total_bytes}")
        .expect("static template")
        .progress_chars("=> ")
}

fn unknown_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec})")
        .expect("static template")
}

/// `r` through `bar`; once `r` is read to its end, the bar turns into a
/// spinner saying `then`: the work that follows the reading (a load
/// unpacking its layers) shows as going on, not as a full bar standing
/// still.
pub fn read_then<'a>(
    bar: &Option<ProgressBar>,
    r: Box<dyn Read + 'a>,
    then: &'static str,
) -> Box<dyn Read + 'a> {
    match bar {
        Some(b) => Box::new(ReadThen {
            inner: b.wrap_read(r),
            bar: b.clone(),
            then: Some(then),
        }),
        None => r,
    }
}

struct ReadThen<R> {
    inner: R,
    bar: ProgressBar,
    then: Option<&'static str>,
}

impl<R: Read> Read for ReadThen<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(then) = self.then.take() {
                self.bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .expect("static template"),
                );
                self.bar.set_message(then);
            }
        }
        Ok(n)
    }
}
