//! A request's query string: form-decoded, with docker's spellings of
//! booleans and its JSON `filters`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::error::ApiError;

#[derive(Debug, Default)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.entry(decode(k)).or_default().push(decode(v));
        }
        Query(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of a repeated parameter (`names=a&names=b`), empty
    /// ones left out.
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .get(k)
            .map(|v| v.iter().filter(|s| !s.is_empty()).cloned().collect())
            .unwrap_or_default()
    }

    /// docker's boolean parameters: present and not `0`/`false`/empty.
    pub fn flag(&self, k: &str) -> bool {
        self.get(k)
            .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"))
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    }

    /// docker's `since`/`until`: Unix seconds with an optional fraction
    /// (what its clients send; digits past nanoseconds are cut) or an RFC
    /// 3339 time. Absent or empty is none.
    pub fn time(&self, k: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(v) = self.get(k).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let bad = || {
            ApiError::bad_request(format!(
                "invalid {k} {v:?}: want seconds since the epoch or RFC 3339"
            ))
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        // Checked before padding and cutting: a cut inside a multi-byte
        // character would panic.
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let nanos: u32 = format!("{frac:0<9}")[..9].parse().map_err(|_| bad())?;
        DateTime::from_timestamp(secs, nanos)
            .map(Some)
            .ok_or_else(bad)
    }

    /// The `filters` of a prune of `what`, minus the keys in `own` (the
    /// caller's, returned beside): docker's label, label! and until.
    pub fn prune_filters(
        &self,
        what: &str,
        until_ok: bool,
        own: &[&str],
    ) -> Result<
        (
            berth_engine::filters::PruneFilters,
            BTreeMap<String, Vec<String>>,
        ),
        ApiError,
    > {
        let mut all = self.filters()?;
        let mine: BTreeMap<String, Vec<String>> =
            own.iter().filter_map(|k| all.remove_entry(*k)).collect();
        let pairs = all
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())));
        let f = berth_engine::filters::PruneFilters::parse(pairs, what, until_ok)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok((f, mine))
    }

    /// `filters` read by one of the engine's parsers of `(key, value)`
    /// pairs; what it refuses is the client's error.
    pub fn filters_with<T>(
        &self,
        parse: impl for<'a> FnOnce(Vec<(&'a str, &'a str)>) -> berth_engine::Result<T>,
    ) -> Result<T, ApiError> {
        let all = self.filters()?;
        let pairs = all
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
            .collect();
        parse(pairs).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// `filters={"key":["v1","v2"]}`; old clients send `{"key":{"v":true}}`.
    pub fn filters(&self) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        let bad = |why: String| ApiError::bad_request(format!("invalid filters {raw:?}: {why}"));
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| bad("not an object".into()))?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(String::from)
                            .ok_or_else(|| bad(format!("{k}: not a string")))
                    })
                    .collect::<Result<_, _>>()?,
                serde_json::Value::Object(o) => o
                    .iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .map(|(x, _)| x.clone())
                    .collect(),
                _ => return Err(bad(format!("{k}: not a list"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

/// A path segment: percent-decoded, `+` kept.
pub fn decode_path(s: &str) -> String {
    decode(&s.replace('+', "%2B"))
}

/// Percent-decoding with `+` as a space (form encoding, as Go's client
/// writes queries).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_seconds_or_rfc3339_and_refuse_the_rest() {
        let t = |v: &str| Query::parse(Some(&format!("since={v}"))).time("since");
        let at = t("1700000000.25").unwrap().unwrap();
        assert_eq!(
            (at.timestamp(), at.timestamp_subsec_nanos()),
            (1700000000, 250_000_000)
        );
        let at = t("1700000000.1234567891").unwrap().unwrap();
        assert_eq!(at.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(t("1700000000").unwrap().unwrap().timestamp(), 1700000000);
        assert_eq!(
            t("2023-11-14T22:13:20Z").unwrap().unwrap().timestamp(),
            1700000000
        );
        assert_eq!(t("").unwrap(), None);
        assert_eq!(Query::parse(None).time("since").unwrap(), None);
        // A fraction of multi-byte characters once panicked cutting it.
        for bad in [
            "1.%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
            "1.",
            "1.-5",
            "x",
            "1.5.5",
            "yesterday",
        ] {
            let e = t(bad).unwrap_err();
            assert!(
                e.message.contains("invalid since"),
                "{bad:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn prune_filters_take_docker_keys_and_refuse_the_rest() {
        // What `docker volume prune -a --filter label=app --filter label!=keep` sends.
        let q = Query::parse(Some(
            "filters=%7B%22all%22%3A%5B%22true%22%5D%2C%22label%22%3A%5B%22app%22%5D%2C%22label%21%22%3A%5B%22keep%22%5D%7D",
        ));
        let (f, own) = q.prune_filters("volume", true, &["all"]).unwrap();
        assert_eq!(f.labels, ["app"]);
        assert_eq!(f.not_labels, ["keep"]);
        assert_eq!(own["all"], ["true"]);
        let e = q.prune_filters("network", false, &[]).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("all"), "{}", e.message);
        let q = Query::parse(Some("filters=%7B%22until%22%3A%5B%2210m%22%5D%7D"));
        assert!(q
            .prune_filters("container", true, &[])
            .unwrap()
            .0
            .until
            .is_some());
        assert!(q.prune_filters("network", false, &[]).is_err());
    }

    #[test]
    fn queries_decode_as_go_encodes_them() {
        let q = Query::parse(Some("all=1&name=a%2Fb+c&stream=false&x&f=%7B%7D&bad=%zz"));
        assert!(q.flag("all"));
        assert!(!q.flag("stream"));
        assert!(!q.flag("x"));
        assert!(!q.flag("missing"));
        assert_eq!(q.get("name"), Some("a/b c"));
        assert_eq!(q.get("f"), Some("{}"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn filters_take_both_shapes() {
        let q = Query::parse(Some(&format!(
            "filters={}",
            "%7B%22status%22%3A%5B%22running%22%5D%2C%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D"
        )));
        let f = q.filters().unwrap();
        assert_eq!(f["status"], vec!["running"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(Query::parse(Some("filters=%5B1%5D")).filters().is_err());
    }
}
