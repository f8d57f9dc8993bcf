//! A request's query string: form-decoded, with docker's spellings of
//! booleans and its JSON `filters`.

use std::collections::{BTreeMap, HashMap};

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
