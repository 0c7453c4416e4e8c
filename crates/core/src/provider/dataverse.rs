//! `dataverse/<doi>`: datasets of any Dataverse installation, found through the DOI resolver.

use super::split_doi;
use crate::escape::escape_alnum;
use crate::validate::InputError;

/// A parsed Dataverse spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataverseSpec {
    /// The DOI as given.
    pub raw: String,
    /// The DOI prefix (`10.7910`).
    pub authority: String,
    /// The DOI suffix (`DVN/TJCLKP`).
    pub identifier: String,
}

impl DataverseSpec {
    /// Parses the DOI.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let (authority, identifier) = split_doi("dataverse", raw)?;
        Ok(DataverseSpec {
            raw: raw.to_string(),
            authority,
            identifier,
        })
    }

    /// The DOI.
    pub fn repo_url(&self) -> String {
        self.raw.clone()
    }

    /// `dataverse-` + the escaped, lower-cased identifier.
    pub fn build_slug(&self) -> String {
        format!(
            "dataverse-{}",
            escape_alnum(&self.identifier, '-').to_lowercase()
        )
    }

    /// `<authority>/<identifier>`.
    pub fn resolved_spec(&self, _resolved_ref: &str) -> String {
        format!("{}/{}", self.authority, self.identifier)
    }

    /// The dataset's persistent URL, `https://doi.org/<doi>`.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        format!("https://doi.org/{}", self.resolved_spec(resolved_ref))
    }
}
