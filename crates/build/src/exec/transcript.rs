//! The classic builder's transcript ("Step 1/5 : FROM ...", " ---> Using
//! cache", " ---> <id>") from a build's events, as `berth build` prints
//! it and `berth serve`'s `/build` streams it. Stages that build side by
//! side are shown one after the other, in Dockerfile order: a later
//! stage's lines wait until the earlier ones are done.

use std::collections::{HashMap, HashSet};

use super::Event;

/// What the transcript hands its sink.
pub enum Line<'a> {
    /// Text of the transcript, in order.
    Text(&'a [u8]),
    /// A warning (docker prints these apart, on stderr).
    Warning(&'a str),
}

pub struct Transcript<'a> {
    sink: Box<dyn FnMut(Line<'_>) + Send + 'a>,
    order: Vec<usize>,
    live: usize,
    held: HashMap<usize, Vec<u8>>,
    done: HashSet<usize>,
}

impl<'a> Transcript<'a> {
    pub fn new(sink: impl FnMut(Line<'_>) + Send + 'a) -> Transcript<'a> {
        Transcript {
            sink: Box::new(sink),
            order: Vec::new(),
            live: 0,
            held: HashMap::new(),
            done: HashSet::new(),
        }
    }

    pub fn handle(&mut self, e: Event) {
        let (stage, text): (usize, Vec<u8>) = match e {
            Event::Stages(order) => {
                self.order = order;
                return;
            }
            Event::Warning(w) => {
                (self.sink)(Line::Warning(&w));
                return;
            }
            Event::StageDone { stage, .. } => {
                self.done.insert(stage);
                self.advance();
                return;
            }
            e => match stage_of(&e) {
                Some(stage) => (stage, classic(e)),
                None => return,
            },
        };
        if self.order.get(self.live) == Some(&stage) {
            (self.sink)(Line::Text(&text));
        } else {
            self.held.entry(stage).or_default().extend_from_slice(&text);
        }
    }

    fn advance(&mut self) {
        while let Some(s) = self.order.get(self.live) {
            if let Some(text) = self.held.remove(s) {
                (self.sink)(Line::Text(&text));
            }
            if !self.done.contains(s) {
                break;
            }
            self.live += 1;
        }
    }

    /// Sends whatever is still held (a failure stops the stages mid-way).
    pub fn finish(&mut self) {
        self.done.extend(self.order.iter().copied());
        self.advance();
    }
}

/// The stage an event is about, if any.
pub fn stage_of(e: &Event) -> Option<usize> {
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

/// Docker's classic builder's text for one event (none for the events
/// that only order the stages).
pub fn classic(e: Event) -> Vec<u8> {
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
