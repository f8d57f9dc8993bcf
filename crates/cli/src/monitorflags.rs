//! `run`/`create` flags for what the container's monitor does besides
//! running it: the health check (`--health-*`, `--no-healthcheck`) and
//! the log (`--log-driver`, `--log-opt`). Durations are Go's (`30s`,
//! `1m30s`), as docker's flags take them.

use anyhow::{bail, Result};
use berth_engine::health::Healthcheck;
use berth_engine::logfile::LogConfig;
use berth_engine::Error;
use clap::Args;

#[derive(Args, Debug, Default)]
pub struct MonitorFlags {
    /// Command to run to check health (run by /bin/sh -c).
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long)]
    health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long)]
    health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long, allow_hyphen_values = true)]
    health_retries: Option<i64>,
    /// Start period for the container to initialize before failures
    /// count (ms|s|m|h).
    #[arg(long)]
    health_start_period: Option<String>,
    /// Time between checks during the start period (ms|s|m|h).
    #[arg(long)]
    health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long)]
    no_healthcheck: bool,
    /// Logging driver for the container (json-file or none).
    #[arg(long)]
    log_driver: Option<String>,
    /// Log driver options (max-size=10m, max-file=3).
    #[arg(long)]
    log_opt: Vec<String>,
}

fn duration(flag: &str, v: &Option<String>) -> Result<i64> {
    let Some(v) = v else { return Ok(0) };
    let d = berth_engine::health::parse_duration(v).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "invalid argument {v:?} for --{flag}: a duration such as 30s, 1m30s or 500ms"
        ))
    })?;
    i64::try_from(d.as_nanos())
        .map_err(|_| Error::InvalidArgument(format!("--{flag} {v}: too long")).into())
}

impl MonitorFlags {
    /// The health check asked for: `None` leaves the image's as it is.
    pub fn healthcheck(&self) -> Result<Option<Healthcheck>> {
        let h = Healthcheck {
            test: match &self.health_cmd {
                Some(c) => vec!["CMD-SHELL".into(), c.clone()],
                None => Vec::new(),
            },
            interval: duration("health-interval", &self.health_interval)?,
            timeout: duration("health-timeout", &self.health_timeout)?,
            start_period: duration("health-start-period", &self.health_start_period)?,
            start_interval: duration("health-start-interval", &self.health_start_interval)?,
            retries: self.health_retries.unwrap_or(0),
        };
        let any = h != Healthcheck::default();
        if self.no_healthcheck {
            if any {
                bail!(Error::InvalidArgument(
                    "--no-healthcheck conflicts with --health-* options".into()
                ));
            }
            return Ok(Some(Healthcheck::none()));
        }
        if h.retries < 0 {
            bail!(Error::InvalidArgument(
                "--health-retries cannot be negative".into()
            ));
        }
        Ok(any.then_some(h))
    }

    pub fn log_config(&self) -> Result<LogConfig> {
        Ok(LogConfig::parse(self.log_driver.as_deref(), &self.log_opt)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut MonitorFlags)) -> MonitorFlags {
        let mut m = MonitorFlags::default();
        f(&mut m);
        m
    }

    #[test]
    fn health_flags_become_dockers_config() {
        assert_eq!(MonitorFlags::default().healthcheck().unwrap(), None);
        let h = flags(|m| {
            m.health_cmd = Some("test -e /ready".into());
            m.health_interval = Some("1m30s".into());
            m.health_retries = Some(2);
        })
        .healthcheck()
        .unwrap()
        .unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "test -e /ready"]);
        assert_eq!((h.interval, h.retries), (90_000_000_000, 2));
        let only_timing = flags(|m| m.health_timeout = Some("2s".into()))
            .healthcheck()
            .unwrap()
            .unwrap();
        assert!(only_timing.test.is_empty(), "the image's command stays");
        assert_eq!(
            flags(|m| m.no_healthcheck = true).healthcheck().unwrap(),
            Some(Healthcheck::none())
        );
        for (m, why) in [
            (
                flags(|m| {
                    m.no_healthcheck = true;
                    m.health_cmd = Some("true".into());
                }),
                "conflicts",
            ),
            (
                flags(|m| m.health_interval = Some("30".into())),
                "--health-interval",
            ),
            (flags(|m| m.health_retries = Some(-1)), "negative"),
        ] {
            let e = m.healthcheck().unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
