//! `bindery webhook-secret <provider>/<repo>`: the per-repository webhook secret an
//! operator hands to one repository owner instead of the shared one.
//!
//! The secret is derived by `bindery_core::webhook::RepoScope` from the configured
//! webhook secret, which is read where the edge reads it: the `SPIN_VARIABLE_*`
//! environment variable of `github_webhook_secret` (for `gh/...`) or
//! `gitlab_webhook_secret` (for `gl/...`), or another environment variable
//! (`--secret-env`), or standard input (`--stdin`). Never from an argument: the command
//! line of a running process is visible to every user of the machine.

use std::io::Read;

use anyhow::{Context, Result, bail};
use bindery_core::webhook::{PushProvider, RepoScope};
use bindery_edge::EdgeConfig;
use bindery_edge::config::{GITHUB_WEBHOOK_SECRET, GITLAB_WEBHOOK_SECRET};
use bindery_host::variables::env_name;
use clap::Args;

/// Arguments of `bindery webhook-secret`.
#[derive(Debug, Args)]
pub struct WebhookSecretArgs {
    /// The repository, as in launch links: `gh/<owner>/<name>` or `gl/<group>/<project>`
    /// (matched case-insensitively, as both providers do).
    #[arg(value_name = "PROVIDER/REPO")]
    pub repo: String,
    /// Read the configured secret from this environment variable instead of
    /// `SPIN_VARIABLE_GITHUB_WEBHOOK_SECRET` or `SPIN_VARIABLE_GITLAB_WEBHOOK_SECRET`.
    #[arg(long, value_name = "NAME", conflicts_with = "stdin")]
    pub secret_env: Option<String>,
    /// Read the configured secret from standard input.
    #[arg(long)]
    pub stdin: bool,
}

/// Prints the repository's secret.
pub fn run(args: &WebhookSecretArgs) -> Result<String> {
    derive(
        args,
        |name| std::env::var(name).ok(),
        std::io::stdin().lock(),
    )
}

/// The secret for `args.repo`, with the configured secret read from `env` or `stdin`.
fn derive(
    args: &WebhookSecretArgs,
    env: impl Fn(&str) -> Option<String>,
    mut stdin: impl Read,
) -> Result<String> {
    let scope = RepoScope::parse(&args.repo)?;
    let variable = match scope.provider() {
        PushProvider::GitHub => GITHUB_WEBHOOK_SECRET,
        PushProvider::GitLab => GITLAB_WEBHOOK_SECRET,
    };
    let (raw, source) = if args.stdin {
        let mut raw = String::new();
        stdin
            .read_to_string(&mut raw)
            .context("failed to read the webhook secret from standard input")?;
        (Some(raw), "standard input".to_owned())
    } else {
        let name = args
            .secret_env
            .clone()
            .unwrap_or_else(|| env_name(variable));
        (env(&name), name)
    };
    // The edge's own parsing of the variable (trimmed; empty is unset), so the secret
    // derived here is the one the edge derives.
    let cfg =
        EdgeConfig::from_source(|name| Ok((name == variable).then(|| raw.clone()).flatten()))?;
    let secret = match scope.provider() {
        PushProvider::GitHub => cfg.github_webhook_secret,
        PushProvider::GitLab => cfg.gitlab_webhook_secret,
    };
    let Some(secret) = secret else {
        bail!("no `{variable}` to derive from: {source} is unset or empty");
    };
    Ok(scope.secret(secret.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(repo: &str, secret_env: Option<&str>, stdin: bool) -> WebhookSecretArgs {
        WebhookSecretArgs {
            repo: repo.to_owned(),
            secret_env: secret_env.map(str::to_owned),
            stdin,
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "SPIN_VARIABLE_GITHUB_WEBHOOK_SECRET" => Some("hook-secret\n".to_owned()),
            "SPIN_VARIABLE_GITLAB_WEBHOOK_SECRET" => Some("gl-secret".to_owned()),
            "OTHER" => Some("hook-secret".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn the_cli_prints_what_the_core_derives_from_the_edges_secret() {
        let core =
            |repo: &str, secret: &str| RepoScope::parse(repo).unwrap().secret(secret.as_bytes());
        let cases = [
            (
                args("gh/Owner/Name", None, false),
                "",
                core("gh/owner/name", "hook-secret"),
            ),
            (
                args("gl/group/project", None, false),
                "",
                core("gl/group/project", "gl-secret"),
            ),
            (
                args("gh/o/r", Some("OTHER"), false),
                "",
                core("gh/o/r", "hook-secret"),
            ),
            (
                args("gh/o/r", None, true),
                "  hook-secret\n",
                core("gh/o/r", "hook-secret"),
            ),
        ];
        for (args, stdin, expected) in cases {
            let printed = derive(&args, env, stdin.as_bytes()).unwrap();
            assert_eq!(printed, expected, "{args:?}");
            assert_eq!(printed.len(), 64);
        }
        // The documented derivation, computed independently:
        // printf 'gh:owner/name' | openssl dgst -sha256 -hmac hook-secret
        assert_eq!(
            derive(&args("gh/owner/name", None, false), env, &b""[..]).unwrap(),
            "4d5e5aa6bf94f43e281ecbc3d2b04c384ab7f7a3647b1f567fc355fc525a42dc"
        );
    }

    #[test]
    fn a_missing_secret_or_a_bad_repository_is_an_error_naming_it() {
        let unset = derive(&args("gh/o/r", Some("NOPE"), false), env, &b""[..]);
        let message = unset.unwrap_err().to_string();
        assert!(
            message.contains("github_webhook_secret") && message.contains("NOPE"),
            "{message}"
        );
        let blank = derive(&args("gh/o/r", None, true), env, &b"  \n"[..]);
        assert!(blank.unwrap_err().to_string().contains("standard input"));
        let bad = derive(&args("bb/o/r", None, false), env, &b""[..]);
        assert!(bad.unwrap_err().to_string().contains("invalid repository"));
    }
}
