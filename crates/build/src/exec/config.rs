//! The instructions that change only the image config (docker's runtime
//! `config` object): ENV, LABEL, EXPOSE, WORKDIR, USER, VOLUME,
//! STOPSIGNAL, HEALTHCHECK, SHELL, CMD, ENTRYPOINT, ONBUILD; and the
//! history text (`created_by`) of every step, in the classic builder's
//! form, which `--cache-from` compares.

use serde_json::{json, Map, Value};

use super::error::{BuildError, Result};
use crate::dockerfile::{valid_signal, Command, Healthcheck, Instruction, PortSpec, Protocol};

pub(crate) const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The stage's shell: SHELL's, or docker's default.
pub(crate) fn shell(rt: &Map<String, Value>) -> Vec<String> {
    strings(rt.get("Shell").unwrap_or(&Value::Null))
        .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
}

fn strings(v: &Value) -> Option<Vec<String>> {
    let a = v.as_array()?;
    let out: Vec<String> = a
        .iter()
        .filter_map(|s| s.as_str().map(String::from))
        .collect();
    (!out.is_empty()).then_some(out)
}

/// `Env` as (key, value) pairs, for a stage's substitution scope.
pub(crate) fn env_pairs(rt: &Map<String, Value>) -> Vec<(String, String)> {
    strings(&rt.get("Env").cloned().unwrap_or(Value::Null))
        .unwrap_or_default()
        .into_iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e, String::new()),
        })
        .collect()
}

fn argv(cmd: &Command, rt: &Map<String, Value>) -> Vec<String> {
    match cmd {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell(rt);
            v.push(s.clone());
            v
        }
    }
}

fn nanos(d: Option<std::time::Duration>) -> Option<Value> {
    d.map(|d| json!(d.as_nanos() as u64))
}

fn healthcheck(h: &Healthcheck) -> Value {
    match h {
        Healthcheck::None => json!({"Test": ["NONE"]}),
        Healthcheck::Check(hc) => {
            let test: Vec<String> = match &hc.command {
                Command::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.clone())
                    .collect(),
                Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            };
            let mut o = Map::new();
            o.insert("Test".into(), json!(test));
            for (k, v) in [
                ("Interval", nanos(hc.interval)),
                ("Timeout", nanos(hc.timeout)),
                ("StartPeriod", nanos(hc.start_period)),
                ("StartInterval", nanos(hc.start_interval)),
                ("Retries", hc.retries.map(|r| json!(r))),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            Value::Object(o)
        }
    }
}

/// `WORKDIR`: relative to the one before, cleaned.
pub(crate) fn join_workdir(current: &str, new: &str) -> String {
    let base = if new.starts_with('/') { "" } else { current };
    let mut parts: Vec<&str> = Vec::new();
    for p in base.split('/').chain(new.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Applies a config-only instruction to `rt`. `cmd_set`: whether this
/// stage set CMD already (ENTRYPOINT clears an inherited CMD only).
pub(crate) fn apply(rt: &mut Map<String, Value>, ins: &Instruction, cmd_set: bool) -> Result<()> {
    match ins {
        Instruction::Env(kvs) => {
            let mut env: Vec<String> =
                strings(&rt.get("Env").cloned().unwrap_or(Value::Null)).unwrap_or_default();
            for kv in kvs {
                if kv.key.is_empty() {
                    return Err(BuildError::Invalid("ENV names must not be empty".into()));
                }
                let entry = format!("{}={}", kv.key, kv.value);
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == kv.key)
                {
                    Some(slot) => *slot = entry,
                    None => env.push(entry),
                }
            }
            rt.insert("Env".into(), json!(env));
        }
        Instruction::Label(kvs) => {
            let labels = rt.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            for kv in kvs {
                if kv.key.is_empty() {
                    return Err(BuildError::Invalid("LABEL names must not be empty".into()));
                }
                labels[&kv.key] = json!(kv.value);
            }
        }
        Instruction::Expose(ports) => {
            let exposed = rt.entry("ExposedPorts").or_insert_with(|| json!({}));
            if !exposed.is_object() {
                *exposed = json!({});
            }
            for p in ports {
                let spec = PortSpec::parse(p)
                    .map_err(|why| BuildError::Invalid(format!("EXPOSE {p:?}: {why}")))?;
                let proto = match spec.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                    Protocol::Sctp => "sctp",
                };
                for port in spec.start..=spec.end {
                    exposed[format!("{port}/{proto}")] = json!({});
                }
            }
        }
        Instruction::Workdir(w) => {
            if w.is_empty() {
                return Err(BuildError::Invalid("WORKDIR cannot be empty".into()));
            }
            let current = rt.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
            let joined = join_workdir(current, w);
            rt.insert("WorkingDir".into(), json!(joined));
        }
        Instruction::User(u) => {
            rt.insert("User".into(), json!(u));
        }
        Instruction::Volume(vols) => {
            let volumes = rt.entry("Volumes").or_insert_with(|| json!({}));
            if !volumes.is_object() {
                *volumes = json!({});
            }
            for v in vols {
                if v.trim().is_empty() {
                    return Err(BuildError::Invalid(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                volumes[v.as_str()] = json!({});
            }
        }
        Instruction::StopSignal(s) => {
            if !valid_signal(s) {
                return Err(BuildError::Invalid(format!(
                    "STOPSIGNAL: invalid signal {s:?}"
                )));
            }
            rt.insert("StopSignal".into(), json!(s));
        }
        Instruction::Healthcheck(h) => {
            let v = healthcheck(h);
            rt.insert("Healthcheck".into(), v);
        }
        Instruction::Shell(s) => {
            rt.insert("Shell".into(), json!(s));
        }
        Instruction::Cmd(c) => {
            let v = argv(c, rt);
            rt.insert("Cmd".into(), json!(v));
        }
        Instruction::Entrypoint(c) => {
            let v = argv(c, rt);
            rt.insert("Entrypoint".into(), json!(v));
            if !cmd_set {
                rt.insert("Cmd".into(), Value::Null);
            }
        }
        Instruction::Onbuild(o) => {
            let list = rt.entry("OnBuild").or_insert_with(|| json!([]));
            match list.as_array_mut() {
                Some(a) => a.push(json!(o.source)),
                None => *list = json!([o.source]),
            }
        }
        Instruction::Arg(_) | Instruction::Maintainer(_) => {}
        Instruction::From(_) | Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) => {
            unreachable!("{} changes files, not only the config", ins.keyword())
        }
    }
    Ok(())
}

/// The history text of a config-only step (docker's `#(nop)` form).
pub(crate) fn nop(ins: &Instruction, rt: &Map<String, Value>) -> String {
    let kvs = |kvs: &[crate::dockerfile::KeyValue]| {
        kvs.iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text = match ins {
        Instruction::Env(v) | Instruction::Label(v) => kvs(v),
        Instruction::Arg(decls) => decls
            .iter()
            .map(|d| match &d.default {
                Some(v) => format!("{}={v}", d.name),
                None => d.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Instruction::Expose(p) => p.join(" "),
        Instruction::Volume(v) => format!("[{}]", v.join(" ")),
        Instruction::Workdir(s)
        | Instruction::User(s)
        | Instruction::StopSignal(s)
        | Instruction::Maintainer(s) => s.clone(),
        Instruction::Cmd(c) | Instruction::Entrypoint(c) => json!(argv(c, rt)).to_string(),
        Instruction::Shell(s) => json!(s).to_string(),
        Instruction::Healthcheck(h) => healthcheck(h).to_string(),
        Instruction::Onbuild(o) => o.source.clone(),
        _ => String::new(),
    };
    let sep = if matches!(ins, Instruction::Workdir(_)) {
        " "
    } else {
        "  "
    };
    format!("/bin/sh -c #(nop){sep}{} {text}", ins.keyword())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::{HealthCheck, KeyValue};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn config_changes_as_docker_makes_them() {
        let mut rt = Map::new();
        rt.insert("Env".into(), json!(["PATH=/bin", "A=1"]));
        rt.insert("Cmd".into(), json!(["sh"]));
        apply(
            &mut rt,
            &Instruction::Env(vec![kv("A", "2"), kv("B", "x y")]),
            false,
        )
        .unwrap();
        assert_eq!(rt["Env"], json!(["PATH=/bin", "A=2", "B=x y"]));
        apply(&mut rt, &Instruction::Workdir("/app".into()), false).unwrap();
        apply(&mut rt, &Instruction::Workdir("sub/../src".into()), false).unwrap();
        assert_eq!(rt["WorkingDir"], "/app/src");
        apply(
            &mut rt,
            &Instruction::Expose(vec!["80".into(), "53/udp".into(), "8000-8001".into()]),
            false,
        )
        .unwrap();
        assert_eq!(
            rt["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        apply(
            &mut rt,
            &Instruction::Shell(vec!["/bin/bash".into(), "-c".into()]),
            false,
        )
        .unwrap();
        apply(
            &mut rt,
            &Instruction::Entrypoint(Command::Shell("run it".into())),
            false,
        )
        .unwrap();
        assert_eq!(rt["Entrypoint"], json!(["/bin/bash", "-c", "run it"]));
        assert_eq!(rt["Cmd"], Value::Null, "an inherited CMD goes");
        apply(
            &mut rt,
            &Instruction::Cmd(Command::Exec(vec!["x".into()])),
            false,
        )
        .unwrap();
        apply(
            &mut rt,
            &Instruction::Entrypoint(Command::Exec(vec!["e".into()])),
            true,
        )
        .unwrap();
        assert_eq!(rt["Cmd"], json!(["x"]), "a CMD of this stage stays");
        assert!(apply(&mut rt, &Instruction::StopSignal("SIGNOPE".into()), false).is_err());
        apply(
            &mut rt,
            &Instruction::Healthcheck(Healthcheck::Check(HealthCheck {
                interval: Some(std::time::Duration::from_secs(5)),
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: Some(3),
                command: Command::Shell("true".into()),
            })),
            false,
        )
        .unwrap();
        assert_eq!(
            rt["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64, "Retries": 3})
        );
        assert_eq!(
            nop(&Instruction::Env(vec![kv("A", "1")]), &rt),
            "/bin/sh -c #(nop)  ENV A=1"
        );
    }
}
