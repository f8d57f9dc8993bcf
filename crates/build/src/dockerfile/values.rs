//! Typed values inside instructions: port specs, signals, Go durations,
//! file modes. Checked at parse time when the text has no `$` (a variable
//! can only be checked after substitution, by the caller).

/// The protocol of an EXPOSEd port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// `80`, `80/udp`, `8000-8010/tcp`: what EXPOSE accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpec {
    pub start: u16,
    pub end: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// Parses one EXPOSE word. The error is the problem, for a message.
    pub fn parse(text: &str) -> Result<PortSpec, &'static str> {
        let (ports, proto) = match text.split_once('/') {
            Some((p, proto)) => (p, proto),
            None => (text, "tcp"),
        };
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err("invalid protocol"),
        };
        let port = |s: &str| -> Result<u16, &'static str> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid port");
            }
            s.parse().map_err(|_| "port out of range")
        };
        let (start, end) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(ports)?;
                (p, p)
            }
        };
        if end < start {
            return Err("invalid port range");
        }
        Ok(PortSpec {
            start,
            end,
            protocol,
        })
    }
}

/// Signal names docker's `signal.ParseSignal` knows on Linux.
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "UNUSED",
];

/// Whether STOPSIGNAL would accept `text`: a number 1-64, a name with or
/// without `SIG` (any case), or `RTMIN+n` / `RTMAX-n`.
pub fn valid_signal(text: &str) -> bool {
    if let Ok(n) = text.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) || name == "RTMIN" || name == "RTMAX" {
        return true;
    }
    let rt = |prefix: &str, sep: char| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(sep))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=15).contains(&n))
    };
    rt("RTMIN", '+') || rt("RTMAX", '-')
}

/// Go durations (`90s`, `1m30s`): the image crate owns them, since
/// HEALTHCHECK in `--change` and the run flags take them too.
pub use berth_image::healthcheck::parse_duration;

/// `--chmod` values: octal (`755`, `0644`) or symbolic (`u+x,g-w`).
pub fn valid_chmod(text: &str) -> bool {
    if !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return true;
    }
    !text.is_empty()
        && text.split(',').all(|clause| {
            let who_end = clause
                .find(|c: char| !"ugoa".contains(c))
                .unwrap_or(clause.len());
            let ops = &clause[who_end..];
            !ops.is_empty()
                && ops.starts_with(['+', '-', '='])
                && ops.chars().all(|c| "+-=rwxXst".contains(c))
        })
}

/// Octal permission bits for a mount `mode=`.
pub(crate) fn valid_octal(text: &str) -> bool {
    !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

/// tmpfs `size=`: bytes with an optional k/m/g (docker's RAMInBytes).
pub(crate) fn valid_size(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let body = lower.trim_end_matches(['b']);
    let body = body.trim_end_matches(['k', 'm', 'g', 't', 'p']);
    !body.is_empty() && body.parse::<f64>().is_ok_and(|v| v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let ok: &[(&str, (u16, u16, Protocol))] = &[
            ("80", (80, 80, Protocol::Tcp)),
            ("80/tcp", (80, 80, Protocol::Tcp)),
            ("53/UDP", (53, 53, Protocol::Udp)),
            ("9/sctp", (9, 9, Protocol::Sctp)),
            ("8000-8010", (8000, 8010, Protocol::Tcp)),
            ("7000-7001/udp", (7000, 7001, Protocol::Udp)),
        ];
        for (text, (s, e, p)) in ok {
            assert_eq!(
                PortSpec::parse(text),
                Ok(PortSpec {
                    start: *s,
                    end: *e,
                    protocol: *p
                }),
                "{text}"
            );
        }
        let bad: &[(&str, &str)] = &[
            ("abc", "invalid port"),
            ("80/xyz", "invalid protocol"),
            ("70000", "port out of range"),
            ("90-80", "invalid port range"),
            ("-80", "invalid port"),
            ("", "invalid port"),
            ("+80", "invalid port"),
        ];
        for (text, want) in bad {
            assert_eq!(PortSpec::parse(text), Err(*want), "{text}");
        }
    }

    #[test]
    fn signals() {
        for ok in [
            "SIGTERM",
            "TERM",
            "sigkill",
            "9",
            "64",
            "SIGRTMIN+3",
            "RTMAX-1",
            "SIGWINCH",
        ] {
            assert!(valid_signal(ok), "{ok}");
        }
        for bad in ["0", "65", "SIGFOO", "", "RTMIN+99", "-9"] {
            assert!(!valid_signal(bad), "{bad}");
        }
    }

    #[test]
    fn chmods() {
        for ok in ["755", "0644", "u+x", "g-w,o=r", "a+rwX"] {
            assert!(valid_chmod(ok), "{ok}");
        }
        for bad in ["", "800", "77777", "u", "u+q", "x+r"] {
            assert!(!valid_chmod(bad), "{bad}");
        }
    }
}
