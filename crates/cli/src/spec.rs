//! `bindery spec`: the operator's inspector of links, and the stable interface for
//! black-box checks. Everything printed is derived offline by `bindery-core`.

use anyhow::Result;
use bindery_core::provider::{ProviderSettings, Spec};
use bindery_core::{image, launch};
use clap::Args;
use serde_json::Value;

/// Arguments of `bindery spec`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// `<provider>/<spec>` as it appears in a URL, e.g. `gh/binder-examples/requirements/HEAD`
    /// or `gl/group%2Fproject/main` (percent-encoded where BinderHub's is).
    pub spec: String,
    /// A resolved ref (commit id or record version): adds the image, build name and the
    /// pinned request to the output.
    #[arg(long = "ref", value_name = "RESOLVED_REF")]
    pub resolved_ref: Option<String>,
    /// The image prefix (registry host and repository path), e.g. `registry.example.org/binder/i-`.
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub prefix: String,
    /// Print one JSON object instead of `key: value` lines.
    #[arg(long)]
    pub json: bool,
}

/// Derives everything about the spec and renders it.
pub fn run(args: &SpecArgs) -> Result<String> {
    let fields = derive(args)?;
    Ok(if args.json {
        render_json(&fields)
    } else {
        render_text(&fields)
    })
}

type Fields = Vec<(&'static str, Option<String>)>;

fn derive(args: &SpecArgs) -> Result<Fields> {
    let spec = Spec::parse_path(&args.spec, &ProviderSettings::default())?;
    if args.prefix.len() > 200
        || args
            .prefix
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        anyhow::bail!(
            "image prefix must be at most 200 characters without whitespace or control characters"
        );
    }
    let provider = spec.provider();
    let mut fields: Fields = vec![
        ("provider", Some(provider.as_str().to_string())),
        ("repo_url", Some(spec.repo_url())),
        ("ref", spec.unresolved_ref().map(String::from)),
        ("build_slug", spec.build_slug(args.resolved_ref.as_deref())),
    ];
    let Some(resolved_ref) = &args.resolved_ref else {
        return Ok(fields);
    };
    spec.validate_resolved_ref(resolved_ref)?;
    let slug = spec
        .build_slug(Some(resolved_ref))
        .ok_or_else(|| anyhow::anyhow!("no build slug for {}", args.spec))?;
    let resolved_spec = spec.resolved_spec(resolved_ref);
    fields.extend([
        (
            "image",
            Some(image::image_name(&args.prefix, &slug, resolved_ref)),
        ),
        ("build_name", Some(image::build_name(&slug, resolved_ref))),
        ("resolved_spec", Some(resolved_spec.clone())),
        ("ref_url", Some(spec.ref_url(resolved_ref))),
        (
            "binder_request",
            Some(launch::binder_request(provider, spec.raw())),
        ),
        (
            "binder_persistent_request",
            Some(launch::binder_persistent_request(provider, &resolved_spec)),
        ),
    ]);
    Ok(fields)
}

fn render_json(fields: &Fields) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let value = v.clone().map_or(Value::Null, Value::String);
            format!("{}:{value}", Value::String((*k).to_string()))
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

fn render_text(fields: &Fields) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let missing = if *k == "ref" {
                "(none: this provider's links carry no ref)"
            } else {
                "(depends on the resolved ref: pass --ref)"
            };
            format!("{k}: {}", v.as_deref().unwrap_or(missing))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
