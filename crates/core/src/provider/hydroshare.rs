//! `hydroshare/<anything holding a 32-hex resource id>`: HydroShare resources, versioned
//! by their modification time.

use serde_json::Value;

use super::{
    Answer, Cx, Fetch, Next, Provider, ProviderInfo, ProviderSettings, RepoEncoding, UiRoute,
    bad_spec, is_digits, parse_timestamp,
};
use crate::validate::{self, InputError};

/// HydroShare's row in the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "hydroshare",
    display_name: "Hydroshare",
    menu_label: "HydroShare",
    repo_label: "HydroShare resource id or URL",
    example: "https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7",
    has_ref: false,
    repo_encoding: RepoEncoding::Percent,
    paste_host: None,
    ui_route: UiRoute::OneSegment,
    resolved_ref: "<32-hex resource id>.v<unix time>",
    checks_pinned_commits: false,
};

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
}

impl Provider for HydroshareSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// `https://www.hydroshare.org/resource/<id>`.
    fn repo_url(&self) -> String {
        format!("{}/resource/{}", self.base, self.resource_id)
    }

    /// `hydroshare-<resource id>.v<unix time>`.
    fn build_slug(&self, resolved_ref: Option<&str>) -> Option<String> {
        resolved_ref.map(|r| format!("{}-{r}", INFO.prefix))
    }

    /// The resource URL.
    fn resolved_spec(&self, _resolved_ref: &str) -> String {
        self.repo_url()
    }

    /// The resource URL.
    fn ref_url(&self, _resolved_ref: &str) -> String {
        self.repo_url()
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        resolved_ref.split_once(".v").is_some_and(|(a, b)| {
            a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()) && is_digits(b)
        })
    }

    /// The resource's science metadata.
    fn start(&self, _cx: &mut Cx<'_>) -> Next {
        Next::Fetch(Fetch::json(format!(
            "{}/hsapi/resource/{}/scimeta/elements",
            self.base, self.resource_id
        )))
    }

    /// The resource is versioned by its modification date.
    fn on_answer(&self, _cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        match answer.code() {
            200 => {}
            404 => return Next::NotFound,
            code => return Next::Failed(format!("HydroShare answered {code}")),
        }
        let modified = serde_json::from_slice::<Value>(answer.body)
            .ok()
            .and_then(|doc| {
                doc.get("dates")?
                    .as_array()?
                    .iter()
                    .find(|d| d.get("type").and_then(Value::as_str) == Some("modified"))?
                    .get("start_date")?
                    .as_str()
                    .and_then(parse_timestamp)
            });
        match modified {
            Some(epoch) => Next::resolved(format!("{}.v{epoch}", self.resource_id)),
            None => Next::Failed("HydroShare's answer has no modification date".into()),
        }
    }
}
