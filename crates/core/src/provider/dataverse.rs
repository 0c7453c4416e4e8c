//! `dataverse/<doi>`: datasets of any Dataverse installation, found through the DOI resolver.

use serde_json::Value;

use super::contract::{answered, doi_lookup};
use super::{
    Answer, Cx, Fetch, Next, Provider, ProviderInfo, ProviderSettings, RepoEncoding, UiRoute,
    is_digits, split_doi,
};
use crate::escape::escape_alnum;
use crate::resolve::encode_all;
use crate::validate::InputError;

/// Dataverse's row in the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "dataverse",
    display_name: "Dataverse",
    menu_label: "Dataverse DOI",
    repo_label: "Dataverse DOI",
    example: "10.7910/DVN/TJCLKP",
    has_ref: false,
    repo_encoding: RepoEncoding::AsTyped,
    paste_host: None,
    ui_route: UiRoute::Doi,
    resolved_ref: "<dataset id>.v<major>.<minor>",
    checks_pinned_commits: false,
};

/// Waiting for the DOI resolver, which names the installation.
const DOI: u8 = 0;
/// Waiting for the installation's dataset API.
const API: u8 = 1;

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
    pub fn parse(raw: &str, _settings: &ProviderSettings) -> Result<Self, InputError> {
        let (authority, identifier) = split_doi("dataverse", raw)?;
        Ok(DataverseSpec {
            raw: raw.to_string(),
            authority,
            identifier,
        })
    }
}

impl Provider for DataverseSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// The DOI.
    fn repo_url(&self) -> String {
        self.raw.clone()
    }

    /// `dataverse-` + the escaped, lower-cased identifier.
    fn build_slug(&self, _resolved_ref: Option<&str>) -> Option<String> {
        Some(format!(
            "dataverse-{}",
            escape_alnum(&self.identifier, '-').to_lowercase()
        ))
    }

    /// `<authority>/<identifier>`.
    fn resolved_spec(&self, _resolved_ref: &str) -> String {
        format!("{}/{}", self.authority, self.identifier)
    }

    /// The dataset's persistent URL, `https://doi.org/<doi>`.
    fn ref_url(&self, resolved_ref: &str) -> String {
        format!("https://doi.org/{}", self.resolved_spec(resolved_ref))
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        resolved_ref.split_once(".v").is_some_and(|(a, b)| {
            is_digits(a)
                && b.split_once('.')
                    .is_some_and(|(x, y)| is_digits(x) && is_digits(y))
        })
    }

    /// Asks the DOI resolver which installation holds the dataset.
    fn start(&self, cx: &mut Cx<'_>) -> Next {
        cx.progress.stage = DOI;
        doi_lookup(cx, &self.raw)
    }

    /// From the landing page's host, the installation's API names the latest version.
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        if cx.progress.stage == DOI {
            match answer.code() {
                200..=299 => {}
                404 => return Next::NotFound,
                _ => return answered(cx, answer),
            }
            let Ok(landing) = url::Url::parse(cx.url) else {
                return Next::Failed("the DOI resolved to an unusable URL".into());
            };
            let port = landing.port().map(|p| format!(":{p}")).unwrap_or_default();
            let api = format!(
                "{}://{}{port}/api/datasets/:persistentId?persistentId={}",
                landing.scheme(),
                landing.host_str().unwrap_or_default(),
                encode_all(&format!("doi:{}", self.raw))
            );
            cx.progress.stage = API;
            return Next::Fetch(Fetch::json(api));
        }
        match answer.code() {
            200 => {}
            404 => return Next::NotFound,
            _ => return answered(cx, answer),
        }
        let parsed = serde_json::from_slice::<Value>(answer.body)
            .ok()
            .and_then(|doc| {
                if doc.get("status").and_then(Value::as_str) != Some("OK") {
                    return None;
                }
                let data = doc.get("data")?;
                let version = data.get("latestVersion")?;
                Some(format!(
                    "{}.v{}.{}",
                    data.get("id")?.as_u64()?,
                    version.get("versionNumber")?.as_u64()?,
                    version.get("versionMinorNumber")?.as_u64()?
                ))
            });
        match parsed {
            Some(r) => Next::resolved(r),
            None => Next::Failed("Dataverse's answer has no dataset version".into()),
        }
    }
}
