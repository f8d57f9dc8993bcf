//! docker's health check of an image or container (`Config.Healthcheck`):
//! its JSON shape, the Go durations its options are written in, and the
//! `HEALTHCHECK` instruction of `--change`. The Dockerfile parser, the
//! engine and the run flags all read and write this one shape.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// docker's `HealthConfig`: `Test` is `["CMD", args...]`,
/// `["CMD-SHELL", command]` or `["NONE"]`; an empty `Test` inherits the
/// image's. Durations are nanoseconds, 0 meaning "the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// docker's shortest duration for any of the options.
pub const MINIMUM: Duration = Duration::from_millis(1);

impl Healthcheck {
    /// `HEALTHCHECK NONE` / `--no-healthcheck`.
    pub fn none() -> Healthcheck {
        Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        }
    }

    /// What the daemon refuses, in its words.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v != 0 && v < MINIMUM.as_nanos() as i64 {
                return Err(format!(
                    "{name} in Healthcheck cannot be less than {}",
                    format_duration(MINIMUM)
                ));
            }
        }
        if self.retries < 0 {
            return Err("Retries in Healthcheck cannot be negative".into());
        }
        match self.test.first().map(String::as_str) {
            None | Some("NONE") | Some("CMD") | Some("CMD-SHELL") => {}
            Some(other) => {
                return Err(format!(
                    "unknown Healthcheck type {other:?} (use CMD, CMD-SHELL or NONE)"
                ))
            }
        }
        if matches!(
            self.test.first().map(String::as_str),
            Some("CMD" | "CMD-SHELL")
        ) && self.test.len() < 2
        {
            return Err("Healthcheck has no command".into());
        }
        Ok(())
    }

    /// The user's options over the image's, as docker merges them: each
    /// unset (empty or zero) field is the image's.
    pub fn over(&self, image: &Healthcheck) -> Healthcheck {
        let pick = |mine: i64, theirs: i64| if mine == 0 { theirs } else { mine };
        Healthcheck {
            test: if self.test.is_empty() {
                image.test.clone()
            } else {
                self.test.clone()
            },
            interval: pick(self.interval, image.interval),
            timeout: pick(self.timeout, image.timeout),
            start_period: pick(self.start_period, image.start_period),
            start_interval: pick(self.start_interval, image.start_interval),
            retries: pick(self.retries, image.retries),
        }
    }

    /// The command a probe runs; `None` when there is no check to run
    /// (no test, `NONE`).
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, [cmd, ..])) if kind == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
            }
            _ => None,
        }
    }
}

/// Parses the arguments of `HEALTHCHECK` as `--change` gives them:
/// `[--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D]
/// [--retries=N] CMD command...` or `NONE`.
pub fn parse_instruction(rest: &str) -> Result<Healthcheck, String> {
    let mut h = Healthcheck::default();
    let mut rest = rest.trim_start();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (word, after) = flag.split_at(end);
        rest = after.trim_start();
        let (name, value) = word
            .split_once('=')
            .ok_or_else(|| format!("flag --{word} needs a value (--{word}=VALUE)"))?;
        let duration = || -> Result<i64, String> {
            let d = parse_duration(value)
                .ok_or_else(|| format!("--{name}: invalid duration {value:?} (like 30s)"))?;
            if !d.is_zero() && d < MINIMUM {
                return Err(format!(
                    "--{name}: {value:?} cannot be less than {}",
                    format_duration(MINIMUM)
                ));
            }
            Ok(d.as_nanos() as i64)
        };
        match name {
            "interval" => h.interval = duration()?,
            "timeout" => h.timeout = duration()?,
            "start-period" => h.start_period = duration()?,
            "start-interval" => h.start_interval = duration()?,
            "retries" => {
                h.retries = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("--retries must be a whole number >= 0: {value:?}"))?
            }
            other => return Err(format!("unknown flag --{other} for HEALTHCHECK")),
        }
    }
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (kind, args) = rest.split_at(end);
    let args = args.trim();
    match kind.to_ascii_uppercase().as_str() {
        "NONE" if args.is_empty() => Ok(Healthcheck::none()),
        "NONE" => Err("HEALTHCHECK NONE takes no arguments".into()),
        "CMD" => {
            let test = match serde_json::from_str::<Vec<String>>(args) {
                Ok(v) if v.is_empty() => return Err("missing command after HEALTHCHECK CMD".into()),
                Ok(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
                Err(_) if args.is_empty() => {
                    return Err("missing command after HEALTHCHECK CMD".into())
                }
                Err(_) => vec!["CMD-SHELL".into(), args.to_string()],
            };
            h.test = test;
            Ok(h)
        }
        "" => Err("HEALTHCHECK needs CMD or NONE".into()),
        other => Err(format!(
            "unknown type {other:?} in HEALTHCHECK (use CMD or NONE)"
        )),
    }
}

/// Parses a Go `time.ParseDuration` string without a sign (`90s`,
/// `1m30s`, `1.5h`, `250ms`, `0`), which is what HEALTHCHECK flags take.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() || frac.contains('.') {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut nanos = whole.checked_mul(scale)?;
        // Fractions beyond nanosecond precision are dropped, as Go does.
        let mut unit_scale = scale;
        for d in frac.bytes().take(20) {
            unit_scale /= 10;
            nanos = nanos.checked_add(u128::from(d - b'0') * unit_scale)?;
        }
        total = total.checked_add(nanos)?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    // Go durations are int64 nanoseconds; larger ones do not parse there.
    if total > i64::MAX as u128 {
        return None;
    }
    Some(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// A duration as Go prints one (`30s`, `1m0s`, `1.5s`, `200ms`): docker's
/// messages quote them so.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    // `whole.fraction` of `n` in units of `unit` (a power of ten), with
    // trailing zeros dropped.
    let frac = |n: u128, unit: u128| -> String {
        let (whole, rem) = (n / unit, n % unit);
        if rem == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rem:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", frac(n, 1_000)),
        n if n < 1_000_000_000 => format!("{}ms", frac(n, 1_000_000)),
        n => {
            let secs = n / 1_000_000_000;
            let (h, m) = (secs / 3600, secs % 3600 / 60);
            let s = frac(n % 60_000_000_000, 1_000_000_000);
            if h > 0 {
                format!("{h}h{m}m{s}s")
            } else if m > 0 {
                format!("{m}m{s}s")
            } else {
                format!("{s}s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("10us", Duration::from_micros(10)),
            ("5ns", Duration::from_nanos(5)),
            (".5s", Duration::from_millis(500)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Some(*want), "{text}");
        }
        for bad in ["", "30", "s", "1x", "-1s", "1..5s", "99999999999h", "."] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_formats() {
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(200), "200ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
        ] {
            assert_eq!(format_duration(d), want);
        }
    }

    #[test]
    fn instructions_parse_as_docker_does() {
        let h = parse_instruction("--interval=5s --retries=2 CMD [\"true\", \"x\"]").unwrap();
        assert_eq!(h.test, ["CMD", "true", "x"]);
        assert_eq!((h.interval, h.retries), (5_000_000_000, 2));
        let h = parse_instruction("--timeout=1m30s CMD test -e /ready || exit 1").unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "test -e /ready || exit 1"]);
        assert_eq!(h.timeout, 90_000_000_000);
        assert_eq!(parse_instruction("none").unwrap(), Healthcheck::none());
        for (bad, why) in [
            ("CMD", "missing command"),
            ("CMD []", "missing command"),
            ("NONE x", "no arguments"),
            ("RUN x", "unknown type"),
            ("--interval=10ns CMD x", "less than 1ms"),
            ("--interval=soon CMD x", "invalid duration"),
            ("--retries=-1 CMD x", "whole number"),
            ("--bogus=1 CMD x", "unknown flag"),
            ("--interval CMD x", "needs a value"),
            ("", "CMD or NONE"),
        ] {
            let e = parse_instruction(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_users_options_go_over_the_images() {
        let image = parse_instruction("--interval=5s --retries=4 CMD true").unwrap();
        let mine = Healthcheck {
            interval: 1_000_000_000,
            ..Default::default()
        };
        let h = mine.over(&image);
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries), (1_000_000_000, 4));
        assert_eq!(Healthcheck::none().over(&image).command(), None);
        assert_eq!(
            h.command().unwrap(),
            ["/bin/sh", "-c", "true"].map(String::from)
        );
    }

    #[test]
    fn the_daemons_limits_hold() {
        let ok = parse_instruction("--interval=1ms CMD true").unwrap();
        assert!(ok.validate().is_ok());
        let short = Healthcheck {
            timeout: 10,
            ..ok.clone()
        };
        assert!(short.validate().unwrap_err().contains("Timeout"));
        let neg = Healthcheck {
            retries: -1,
            ..ok.clone()
        };
        assert!(neg.validate().unwrap_err().contains("Retries"));
        let odd = Healthcheck {
            test: vec!["RUN".into()],
            ..ok
        };
        assert!(odd.validate().is_err());
        let json =
            serde_json::to_value(parse_instruction("--retries=3 CMD true").unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Test": ["CMD-SHELL", "true"], "Retries": 3})
        );
    }
}
