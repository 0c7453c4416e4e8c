//! `zenodo/<doi>`: Zenodo records. The DOI resolver redirects a concept DOI to the newest
//! version's record; the record id is the resolved ref.

use super::contract::{answered, doi_lookup};
use super::{
    Answer, Cx, Next, Provider, ProviderInfo, ProviderSettings, RepoEncoding, UiRoute, bad_spec,
    is_digits, split_doi,
};
use crate::validate::InputError;

/// Zenodo's row in the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "zenodo",
    display_name: "Zenodo",
    menu_label: "Zenodo DOI",
    repo_label: "Zenodo DOI",
    example: "10.5281/zenodo.3242074",
    has_ref: false,
    repo_encoding: RepoEncoding::AsTyped,
    paste_host: None,
    ui_route: UiRoute::Doi,
    resolved_ref: "a Zenodo record id (digits)",
    checks_pinned_commits: false,
};

/// A parsed Zenodo spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZenodoSpec {
    /// The DOI as given.
    pub raw: String,
}

impl ZenodoSpec {
    /// Parses the DOI.
    pub fn parse(raw: &str, _settings: &ProviderSettings) -> Result<Self, InputError> {
        split_doi("zenodo", raw)?;
        Ok(ZenodoSpec {
            raw: raw.to_string(),
        })
    }

    /// The record id from the URL the DOI resolves to: its last path segment.
    pub fn record_id_from_url(url: &str) -> Result<String, InputError> {
        let path = url.split(['?', '#']).next().unwrap_or_default();
        let id = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if is_digits(id) {
            Ok(id.to_string())
        } else {
            Err(bad_spec(format!(
                "the DOI resolved to {url}, which is not a Zenodo record"
            )))
        }
    }
}

impl Provider for ZenodoSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// The DOI: repo2docker resolves DOIs itself.
    fn repo_url(&self) -> String {
        self.raw.clone()
    }

    /// `zenodo-<record id>`.
    fn build_slug(&self, resolved_ref: Option<&str>) -> Option<String> {
        resolved_ref.map(|r| format!("{}-{r}", INFO.prefix))
    }

    /// The text before `zenodo`, then `zenodo.<record id>`.
    fn resolved_spec(&self, resolved_ref: &str) -> String {
        let before = self.raw.split("zenodo").next().unwrap_or_default();
        format!("{before}zenodo.{resolved_ref}")
    }

    /// `https://doi.org/<resolved spec>`.
    fn ref_url(&self, resolved_ref: &str) -> String {
        format!("https://doi.org/{}", self.resolved_spec(resolved_ref))
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        is_digits(resolved_ref)
    }

    /// Asks the DOI resolver, which redirects a concept DOI to the newest record.
    fn start(&self, cx: &mut Cx<'_>) -> Next {
        doi_lookup(cx, &self.raw)
    }

    /// The record id is the last segment of the URL the DOI led to.
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        match answer.code() {
            200..=299 => match ZenodoSpec::record_id_from_url(cx.url) {
                Ok(id) => Next::resolved(id),
                Err(e) => Next::Failed(e.to_string()),
            },
            404 => Next::NotFound,
            _ => answered(cx, answer),
        }
    }
}
