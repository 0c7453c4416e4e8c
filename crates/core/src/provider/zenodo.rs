//! `zenodo/<doi>`: Zenodo records. The DOI resolver redirects a concept DOI to the newest
//! version's record; the record id is the resolved ref.

use super::{bad_spec, is_digits, split_doi};
use crate::validate::InputError;

/// A parsed Zenodo spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZenodoSpec {
    /// The DOI as given.
    pub raw: String,
}

impl ZenodoSpec {
    /// Parses the DOI.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        split_doi("zenodo", raw)?;
        Ok(ZenodoSpec {
            raw: raw.to_string(),
        })
    }

    /// The DOI: repo2docker resolves DOIs itself.
    pub fn repo_url(&self) -> String {
        self.raw.clone()
    }

    /// The text before `zenodo`, then `zenodo.<record id>`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        let before = self.raw.split("zenodo").next().unwrap_or_default();
        format!("{before}zenodo.{resolved_ref}")
    }

    /// `https://doi.org/<resolved spec>`.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        format!("https://doi.org/{}", self.resolved_spec(resolved_ref))
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
