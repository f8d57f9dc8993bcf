//! `--change` instructions (`docker import -c`, `docker commit -c`): the
//! Dockerfile subset that edits an image's config and adds no layer
//! (docker's list: HEALTHCHECK included).

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --change {change:?}: {reason}")]
pub struct ChangeError {
    pub change: String,
    pub reason: String,
}

/// Applies one instruction to the image config's `config` object.
pub fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<(), ChangeError> {
    let err = |reason: &str| ChangeError {
        change: change.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = change.trim();
    let (instr, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    let rest = rest.trim();
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), json!(exec_or_shell(rest)));
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), json!(exec_or_shell(rest)));
        }
        "ENV" => {
            let pairs = key_values(rest, true).map_err(|r| err(&r))?;
            let env = config
                .entry("Env")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| err("Env is not a list"))?;
            for (k, v) in pairs {
                let prefix = format!("{k}=");
                env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                env.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest, false).map_err(|r| err(&r))?;
            let labels = object(config, "Labels").ok_or_else(|| err("Labels is not a map"))?;
            for (k, v) in pairs {
                labels.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = words(rest).map_err(|r| err(&r))?;
            if ports.is_empty() {
                return Err(err("EXPOSE needs at least one port"));
            }
            let exposed =
                object(config, "ExposedPorts").ok_or_else(|| err("ExposedPorts is not a map"))?;
            for p in ports {
                let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let valid = |n: &str| n.parse::<u16>().is_ok();
                let range_ok = match num.split_once('-') {
                    Some((a, b)) => valid(a) && valid(b),
                    None => valid(num),
                };
                if !range_ok
                    || !matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp")
                {
                    return Err(err(&format!("invalid port {p:?}")));
                }
                exposed.insert(format!("{num}/{}", proto.to_ascii_lowercase()), json!({}));
            }
        }
        "VOLUME" => {
            let vols = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => v,
                Err(_) => words(rest).map_err(|r| err(&r))?,
            };
            if vols.is_empty() {
                return Err(err("VOLUME needs at least one path"));
            }
            let volumes = object(config, "Volumes").ok_or_else(|| err("Volumes is not a map"))?;
            for v in vols {
                volumes.insert(v, json!({}));
            }
        }
        "WORKDIR" => {
            if rest.is_empty() {
                return Err(err("WORKDIR needs a path"));
            }
            // Relative paths build on the previous WORKDIR, as in a
            // Dockerfile.
            let wd = if rest.starts_with('/') {
                rest.to_string()
            } else {
                let prev = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/");
                format!("{}/{rest}", prev.trim_end_matches('/'))
            };
            config.insert("WorkingDir".into(), json!(wd));
        }
        "USER" => {
            if rest.is_empty() {
                return Err(err("USER needs a user"));
            }
            config.insert("User".into(), json!(rest));
        }
        "ONBUILD" => {
            if rest.is_empty() {
                return Err(err("ONBUILD needs an instruction"));
            }
            let list = config.entry("OnBuild").or_insert_with(|| json!([]));
            list.as_array_mut()
                .ok_or_else(|| err("OnBuild is not a list"))?
                .push(json!(rest));
        }
        // docker accepts it in import and commit changes too.
        "HEALTHCHECK" => {
            let h = crate::healthcheck::parse_instruction(rest).map_err(|r| err(&r))?;
            config.insert(
                "Healthcheck".into(),
                serde_json::to_value(h).map_err(|e| err(&e.to_string()))?,
            );
        }
        "STOPSIGNAL" => {
            if rest.is_empty() {
                return Err(err("STOPSIGNAL needs a signal"));
            }
            config.insert("StopSignal".into(), json!(rest));
        }
        "" => return Err(err("empty instruction")),
        other => return Err(err(&format!("{other} is not supported with --change"))),
    }
    Ok(())
}

fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let v = config.entry(key).or_insert_with(|| json!({}));
    if v.is_null() {
        *v = json!({});
    }
    v.as_object_mut()
}

/// `["a","b"]` is the exec form; anything else runs through /bin/sh -c.
fn exec_or_shell(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.into()],
    }
}

/// Splits words honouring double and single quotes and backslashes.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"`, or with `legacy` the old `ENV key value with spaces`.
fn key_values(rest: &str, legacy: bool) -> Result<Vec<(String, String)>, String> {
    let ws = words(rest)?;
    if ws.is_empty() {
        return Err("needs key=value".into());
    }
    if legacy && !ws[0].contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or("needs a value")?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not key=value")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(changes: &[&str]) -> Value {
        let mut c = Map::new();
        for ch in changes {
            apply_change(&mut c, ch).unwrap_or_else(|e| panic!("{e}"));
        }
        Value::Object(c)
    }

    #[test]
    fn instructions_edit_the_config() {
        let c = run(&[
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /entry.sh --flag",
            "ENV A=1 B=\"two words\"",
            "ENV A=3",
            "ENV LEGACY some value",
            "LABEL org.a=b 'c d'=e",
            "EXPOSE 80 53/udp 8000-8010",
            "VOLUME [\"/data\"]",
            "VOLUME /a /b",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER 1000:1000",
            "onbuild RUN true",
            "HEALTHCHECK --interval=2s CMD [\"true\"]",
        ]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(
            c["Entrypoint"],
            json!(["/bin/sh", "-c", "/entry.sh --flag"])
        );
        assert_eq!(c["Env"], json!(["B=two words", "A=3", "LEGACY=some value"]));
        assert_eq!(c["Labels"], json!({"org.a": "b", "c d": "e"}));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000-8010/tcp": {}})
        );
        assert_eq!(c["Volumes"], json!({"/data": {}, "/a": {}, "/b": {}}));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD", "true"], "Interval": 2_000_000_000i64})
        );
    }

    #[test]
    fn bad_changes_are_refused_and_named() {
        for (change, why) in [
            ("RUN rm -rf /", "not supported"),
            ("FROM busybox", "not supported"),
            ("EXPOSE http", "invalid port"),
            ("EXPOSE 80/icmp", "invalid port"),
            ("ENV", "needs key=value"),
            ("LABEL novalue", "not key=value"),
            ("WORKDIR", "needs a path"),
            ("ENV A=\"open", "unterminated"),
            ("", "empty"),
            ("HEALTHCHECK CMD", "missing command"),
        ] {
            let e = apply_change(&mut Map::new(), change).unwrap_err();
            assert!(e.to_string().contains(why), "{change:?}: {e}");
            assert!(e.to_string().contains(&format!("{change:?}")), "{e}");
        }
    }
}
