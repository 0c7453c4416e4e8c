//! `hydroshare/<anything holding a 32-hex resource id>`: HydroShare resources, versioned
//! by their modification time.

use super::{ProviderSettings, bad_spec};
use crate::validate::{self, InputError};

/// A parsed HydroShare spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HydroshareSpec {
    /// The spec text as given.
    pub raw: String,
    /// The 32-hex resource id.
    pub resource_id: String,
    /// HydroShare's base URL.
    pub base: String,
}

/// The first run of 32 lower-case hex digits in `text`.
fn find_resource_id(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if !(b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
            start = i + 1;
        } else if i + 1 - start == 32 {
            return text.get(start..=i);
        }
    }
    None
}

impl HydroshareSpec {
    /// Parses the spec: a resource URL, a DOI `10.4211/hs.<id>`, or anything holding the id.
    pub fn parse(raw: &str, settings: &ProviderSettings) -> Result<Self, InputError> {
        let decoded = validate::percent_decode("hydroshare spec", raw)?;
        let resource_id = find_resource_id(&decoded).ok_or_else(|| {
            bad_spec(format!(
                "hydroshare spec {} holds no 32-hex resource id (e.g. https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7)",
                validate::shown(raw)
            ))
        })?;
        Ok(HydroshareSpec {
            raw: raw.to_string(),
            resource_id: resource_id.to_string(),
            base: settings.hydroshare_base.trim_end_matches('/').to_string(),
        })
    }

    /// `https://www.hydroshare.org/resource/<id>`.
    pub fn repo_url(&self) -> String {
        format!("{}/resource/{}", self.base, self.resource_id)
    }

    /// The resource URL.
    pub fn resolved_spec(&self, _resolved_ref: &str) -> String {
        self.repo_url()
    }

    /// The resource URL.
    pub fn ref_url(&self, _resolved_ref: &str) -> String {
        self.repo_url()
    }
}
