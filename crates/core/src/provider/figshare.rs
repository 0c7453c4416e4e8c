//! `figshare/<doi>`: Figshare articles, `10.6084/m9.figshare.<id>[.v<version>]`.
//! An unversioned DOI resolves to the newest version.

use serde_json::Value;

use super::contract::{answered, doi_lookup, trim};
use super::{
    Answer, Cx, Fetch, Next, Provider, ProviderInfo, ProviderSettings, RepoEncoding, UiRoute,
    bad_spec, is_digits, split_doi,
};
use crate::validate::{self, InputError};

/// Figshare's row in the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "figshare",
    display_name: "Figshare",
    menu_label: "Figshare DOI",
    repo_label: "Figshare DOI",
    example: "10.6084/m9.figshare.9782777.v1",
    has_ref: false,
    repo_encoding: RepoEncoding::AsTyped,
    paste_host: None,
    ui_route: UiRoute::Doi,
    resolved_ref: "<article id>.v<version>",
    checks_pinned_commits: false,
};

/// Waiting for the DOI resolver.
const DOI: u8 = 0;
/// Waiting for the article's version list.
const VERSIONS: u8 = 1;

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
    pub fn parse(raw: &str, _settings: &ProviderSettings) -> Result<Self, InputError> {
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
}

impl Provider for FigshareSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// The DOI.
    fn repo_url(&self) -> String {
        self.raw.clone()
    }

    /// `figshare-<article id>.v<version>`.
    fn build_slug(&self, resolved_ref: Option<&str>) -> Option<String> {
        resolved_ref.map(|r| format!("{}-{r}", INFO.prefix))
    }

    /// The text before `figshare`, then `figshare.<id>.v<version>`.
    fn resolved_spec(&self, resolved_ref: &str) -> String {
        let before = self.raw.split("figshare").next().unwrap_or_default();
        format!("{before}figshare.{resolved_ref}")
    }

    /// `https://doi.org/<resolved spec>`.
    fn ref_url(&self, resolved_ref: &str) -> String {
        format!("https://doi.org/{}", self.resolved_spec(resolved_ref))
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        resolved_ref
            .split_once(".v")
            .is_some_and(|(a, b)| is_digits(a) && is_digits(b))
    }

    /// Asks the DOI resolver whether the article exists.
    fn start(&self, cx: &mut Cx<'_>) -> Next {
        cx.progress.stage = DOI;
        doi_lookup(cx, &self.raw)
    }

    /// A versioned DOI resolves to itself; otherwise the newest of the article's versions.
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        if cx.progress.stage == DOI {
            match answer.code() {
                200..=299 => {}
                404 => return Next::NotFound,
                _ => return answered(cx, answer),
            }
            return match &self.version {
                Some(v) => Next::resolved(format!("{}.v{v}", self.article_id)),
                None => {
                    cx.progress.stage = VERSIONS;
                    Next::Fetch(Fetch::json(format!(
                        "{}/articles/{}/versions",
                        trim(&cx.settings.figshare_api),
                        self.article_id
                    )))
                }
            };
        }
        match answer.code() {
            200 => {}
            404 => return Next::NotFound,
            code => return Next::Failed(format!("Figshare answered {code}")),
        }
        let newest = serde_json::from_slice::<Value>(answer.body)
            .ok()
            .and_then(|doc| {
                doc.as_array()?
                    .iter()
                    .filter_map(|v| v.get("version").and_then(Value::as_u64))
                    .max()
            });
        match newest {
            Some(v) => Next::resolved(format!("{}.v{v}", self.article_id)),
            None => Next::Failed("Figshare lists no versions for this article".into()),
        }
    }
}
