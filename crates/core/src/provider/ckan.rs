//! `ckan/<percent-encoded dataset URL>`: datasets of any CKAN portal, versioned by their
//! modification time (or by an activity id in the URL).

use serde_json::Value;

use super::{
    Answer, Cx, Fetch, Next, Provider, ProviderInfo, ProviderSettings, RepoEncoding, UiRoute,
    bad_spec, is_digits, parse_timestamp,
};
use crate::resolve::encode_all;
use crate::validate::{self, InputError};

/// CKAN's row in the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "ckan",
    display_name: "CKAN",
    menu_label: "CKAN dataset",
    repo_label: "CKAN dataset URL",
    example: "https://demo.ckan.org/dataset/sample-dataset-1",
    has_ref: false,
    repo_encoding: RepoEncoding::Percent,
    paste_host: None,
    ui_route: UiRoute::OneSegment,
    resolved_ref: "<dataset>.v<unix time>",
    checks_pinned_commits: false,
};

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
    pub fn parse(raw: &str, _settings: &ProviderSettings) -> Result<Self, InputError> {
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
}

impl Provider for CkanSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// The dataset URL.
    fn repo_url(&self) -> String {
        self.url.clone()
    }

    /// `ckan-<dataset>`.
    fn build_slug(&self, _resolved_ref: Option<&str>) -> Option<String> {
        Some(format!("ckan-{}", self.dataset))
    }

    /// The dataset URL.
    fn resolved_spec(&self, _resolved_ref: &str) -> String {
        self.url.clone()
    }

    /// The dataset URL.
    fn ref_url(&self, _resolved_ref: &str) -> String {
        self.url.clone()
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        resolved_ref
            .strip_prefix(&format!("{}.v", self.dataset))
            .is_some_and(is_digits)
    }

    /// The dataset (or the activity the link names) from the portal's action API.
    fn start(&self, _cx: &mut Cx<'_>) -> Next {
        let url = match &self.activity_id {
            Some(a) => format!(
                "{}/api/3/action/activity_data_show?id={}&object_type=package",
                self.portal,
                encode_all(a)
            ),
            None => format!(
                "{}/api/3/action/package_show?id={}",
                self.portal,
                encode_all(&self.dataset)
            ),
        };
        Next::Fetch(Fetch::json(url))
    }

    /// The dataset is versioned by its `metadata_modified` time.
    fn on_answer(&self, _cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        if answer.code() != 200 {
            return Next::NotFound;
        }
        let modified = serde_json::from_slice::<Value>(answer.body)
            .ok()
            .and_then(|doc| {
                doc.pointer("/result/metadata_modified")?
                    .as_str()
                    .and_then(parse_timestamp)
            });
        match modified {
            Some(epoch) => Next::resolved(format!("{}.v{epoch}", self.dataset)),
            None => Next::Failed("CKAN's answer has no metadata_modified".into()),
        }
    }
}
