//! docker's words for a container's state: `paused` from the freezer,
//! and the `Up 2 minutes` / `Exited (0) 3 seconds ago` of `ps` (the CLI
//! prints them, the API sends them).

use chrono::{DateTime, Utc};

use crate::container::Engine;
use crate::db::{Container, State};

/// A container's docker state, `paused` included (the freezer's).
pub fn docker_state(engine: &Engine, c: &Container) -> &'static str {
    if c.state == State::Running && engine.is_paused(&c.id) {
        "paused"
    } else {
        c.state.as_str()
    }
}

/// `ps`'s STATUS, without the `(Paused)` of a frozen container.
pub fn status(c: &Container) -> String {
    match c.state {
        State::Created => "Created".into(),
        State::Running => format!(
            "Up {}",
            human_duration(Utc::now() - c.started.unwrap_or(c.created))
        ),
        State::Exited => match c.finished {
            Some(f) => format!("Exited ({}) {}", c.exit_code.unwrap_or(0), ago(f)),
            None => format!("Exited ({})", c.exit_code.unwrap_or(0)),
        },
        State::Removing => "Removal In Progress".into(),
    }
}

/// docker's `units.HumanDuration`.
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    let mins = d.num_minutes();
    let hours = (d.num_seconds() as f64 / 3600.0 + 0.5) as i64;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if mins == 1 {
        "About a minute".into()
    } else if mins < 60 {
        format!("{mins} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

pub fn ago(t: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(Utc::now() - t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_docker() {
        let s = |n| human_duration(chrono::Duration::seconds(n));
        assert_eq!(s(0), "Less than a second");
        assert_eq!(s(1), "1 second");
        assert_eq!(s(45), "45 seconds");
        assert_eq!(s(70), "About a minute");
        assert_eq!(s(600), "10 minutes");
        assert_eq!(s(3600), "About an hour");
        assert_eq!(s(5 * 3600), "5 hours");
        assert_eq!(s(3 * 86400), "3 days");
    }
}
