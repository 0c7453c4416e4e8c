//! `ckan/<percent-encoded dataset URL>`: datasets of any CKAN portal, versioned by their
//! modification time (or by an activity id in the URL).

use super::bad_spec;
use crate::validate::{self, InputError};

/// A parsed CKAN spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CkanSpec {
    /// The spec text as given.
    pub raw: String,
    /// The decoded dataset URL.
    pub url: String,
    /// `<scheme>://<host>[:port]<prefix>`: the portal, with any path before `/dataset/`.
    pub portal: String,
    /// The dataset name.
    pub dataset: String,
    /// The activity id from `/history/<id>` or `?activity_id=`.
    pub activity_id: Option<String>,
}

impl CkanSpec {
    /// Parses the spec: decoded once, it must be an http(s) URL with `/dataset/<name>`.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let url = validate::percent_decode("CKAN URL", raw)?;
        let parsed = url::Url::parse(&url).map_err(|e| {
            bad_spec(format!(
                "CKAN spec {} is not a URL: {e}",
                validate::shown(&url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad_spec(format!(
                "CKAN URL {} must be http or https",
                validate::shown(&url)
            )));
        }
        let path = parsed.path();
        let (prefix, rest) = path.split_once("/dataset/").ok_or_else(|| {
            bad_spec(format!(
                "CKAN URL {} must name a dataset: <portal>/dataset/<name>",
                validate::shown(&url)
            ))
        })?;
        let mut segments = rest.split('/');
        let dataset = segments.next().unwrap_or_default().to_string();
        if dataset.is_empty()
            || dataset.len() > 100
            || !dataset
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return Err(bad_spec(format!(
                "CKAN dataset name {} must be letters, digits, '-' and '_'",
                validate::shown(&dataset)
            )));
        }
        let from_history = match (segments.next(), segments.next()) {
            (Some("history"), Some(id)) if !id.is_empty() => Some(id.to_string()),
            _ => None,
        };
        let activity_id = from_history.or_else(|| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == "activity_id")
                .map(|(_, v)| v.into_owned())
        });
        if let Some(a) = &activity_id
            && !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad_spec(format!(
                "CKAN activity id {} must be a UUID",
                validate::shown(a)
            )));
        }
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let portal = format!(
            "{}://{}{port}{prefix}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        );
        Ok(CkanSpec {
            raw: raw.to_string(),
            url,
            portal,
            dataset,
            activity_id,
        })
    }

    /// The dataset URL.
    pub fn repo_url(&self) -> String {
        self.url.clone()
    }

    /// `ckan-<dataset>`.
    pub fn build_slug(&self) -> String {
        format!("ckan-{}", self.dataset)
    }

    /// The dataset URL.
    pub fn resolved_spec(&self, _resolved_ref: &str) -> String {
        self.url.clone()
    }

    /// The dataset URL.
    pub fn ref_url(&self, _resolved_ref: &str) -> String {
        self.url.clone()
    }
}
