//! Listing a repository's tags (`GET /v2/<name>/tags/list`), following
//! the `Link` header a registry pages a long list with: what
//! `pull --all-tags` walks.

use std::io::Read;

use berth_image::reference::Reference;

use crate::auth::Scope;
use crate::client::{Client, Request};
use crate::error::{RegistryError, Result};

/// A page bigger than this is not a tag list.
const MAX_PAGE: u64 = 8 << 20;

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// Every tag of `repository`'s repository (its tag and digest are
    /// ignored), in the registry's order.
    pub fn tags(&self, repository: &Reference) -> Result<Vec<String>> {
        let target = self.target(repository.domain())?;
        let repo = repository.path();
        let scope = Scope::pull(repo);
        let mut url = format!("{}/v2/{repo}/tags/list", target.base);
        let mut out = Vec::new();
        // A registry that keeps sending Link headers is cut off rather
        // than followed forever.
        for _ in 0..1000 {
            let resp = self
                .send(&target, &scope, &Request::new("GET", url.clone()))
                .map_err(|e| match e {
                    RegistryError::Http { status: 404, .. } => RegistryError::RepositoryNotFound {
                        registry: target.host.clone(),
                        repository: repo.to_string(),
                    },
                    e => e,
                })?;
            let next = resp.header("Link").and_then(next_link);
            let mut body = Vec::new();
            resp.into_reader()
                .take(MAX_PAGE)
                .read_to_end(&mut body)
                .map_err(crate::error::io_err(format!("reading the tags of {repo}")))?;
            let page: Page =
                serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidManifest {
                    reference: repository.name(),
                    reason: format!("tag list: {e}"),
                })?;
            out.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = crate::client::absolute(&target, &n),
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}

/// The target of `<...>; rel="next"`.
fn next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_headers() {
        assert_eq!(
            super::next_link("</v2/a/tags/list?n=2&last=b>; rel=\"next\""),
            Some("/v2/a/tags/list?n=2&last=b".to_string())
        );
        assert_eq!(super::next_link("<x>; rel=\"prev\""), None);
    }
}
