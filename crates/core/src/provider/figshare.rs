//! `figshare/<doi>`: Figshare articles, `10.6084/m9.figshare.<id>[.v<version>]`.
//! An unversioned DOI resolves to the newest version.

use super::{bad_spec, is_digits, split_doi};
use crate::validate::{self, InputError};

/// A parsed Figshare spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigshareSpec {
    /// The DOI as given.
    pub raw: String,
    /// The article id.
    pub article_id: String,
    /// The version named in the DOI, if any.
    pub version: Option<String>,
}

impl FigshareSpec {
    /// Parses the DOI and finds the article id and version in its suffix.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let (_, suffix) = split_doi("figshare", raw)?;
        let fields: Vec<&str> = suffix.split('.').collect();
        let bad = || {
            bad_spec(format!(
                "figshare spec must be a DOI like 10.6084/m9.figshare.9782777[.v1], not {}",
                validate::shown(raw)
            ))
        };
        if fields.len() < 3 {
            return Err(bad());
        }
        let at = fields
            .iter()
            .position(|f| *f == "figshare")
            .ok_or_else(bad)?;
        let article_id = fields
            .get(at + 1)
            .filter(|f| is_digits(f))
            .ok_or_else(bad)?
            .to_string();
        let version = match fields.get(at + 2) {
            None => None,
            Some(v) => Some(
                v.strip_prefix('v')
                    .filter(|n| is_digits(n))
                    .ok_or_else(bad)?
                    .to_string(),
            ),
        };
        if fields.len() > at + 3 {
            return Err(bad());
        }
        Ok(FigshareSpec {
            raw: raw.to_string(),
            article_id,
            version,
        })
    }

    /// The DOI.
    pub fn repo_url(&self) -> String {
        self.raw.clone()
    }

    /// The text before `figshare`, then `figshare.<id>.v<version>`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        let before = self.raw.split("figshare").next().unwrap_or_default();
        format!("{before}figshare.{resolved_ref}")
    }

    /// `https://doi.org/<resolved spec>`.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        format!("https://doi.org/{}", self.resolved_spec(resolved_ref))
    }
}
