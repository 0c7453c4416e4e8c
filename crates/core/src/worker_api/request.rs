//! Building and checking the requests of the worker API.
//!
//! The edge builds a [`LaunchRequest`] with [`LaunchRequest::new`]; the worker checks
//! every request with `validate` before acting on it: the edge is trusted with the bearer
//! token, but whatever holds the token must still not be able to make the worker build
//! an image under a name that is not the spec's, or hand a hostile string to git or
//! repo2docker.

use std::net::IpAddr;

use thiserror::Error;

use super::{BuildRequest, LaunchRequest};
use crate::provider::{ProviderId, ProviderSettings, Spec};
use crate::resolve::Resolved;
use crate::validate::{self, InputError};
use crate::{image, launch};

/// Why the worker refuses a launch or build request. The worker answers 400 with this
/// text after `invalid launch request: ` or `invalid build request: `.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The provider, spec, resolved ref, repository URL or launch path is refused.
    #[error(transparent)]
    Input(#[from] InputError),
    /// No build slug.
    #[error("build_slug is empty")]
    EmptyBuildSlug,
    /// The image is not the one the spec's slug and resolved ref name under the prefix.
    #[error(
        "image {image} is not the image of this build slug and resolved ref under this worker's prefix (expected {expected})"
    )]
    WrongImage {
        /// The image asked for, escaped.
        image: String,
        /// The image expected, escaped.
        expected: String,
    },
    /// `repo_url` is not the repository URL the provider derives from the spec: whatever
    /// holds the token must not build another repository under the spec's image name.
    #[error("repo_url {repo_url} is not the repository of this spec (expected {expected})")]
    WrongRepoUrl {
        /// The repository URL asked for, escaped.
        repo_url: String,
        /// The repository URL of the spec, escaped.
        expected: String,
    },
    /// `build_slug` is not the slug the provider derives from the spec and resolved ref.
    #[error("build_slug {build_slug} is not the build slug of this spec (expected {expected})")]
    WrongBuildSlug {
        /// The slug asked for, escaped.
        build_slug: String,
        /// The slug of the spec, escaped (empty when the provider gives none).
        expected: String,
    },
    /// A free-text field is longer than a URL may be.
    #[error("{what} is too long")]
    TooLong {
        /// The field.
        what: &'static str,
    },
    /// A free-text field holds a control character.
    #[error("{what} contains a control character")]
    ControlChar {
        /// The field.
        what: &'static str,
    },
    /// `binder_request` or `binder_persistent_request` names another provider.
    #[error("binder_request and binder_persistent_request must start with {want}")]
    OtherProvider {
        /// The prefix both must start with: `v2/<provider>/`.
        want: String,
    },
    /// A `build_only` request names a path to open on a server it does not start.
    #[error("launch_path must be empty when build_only is set: no server is started")]
    BuildOnlyLaunchPath,
    /// `client_ip` is set and is no IP address.
    #[error("client_ip {shown} is not an IP address")]
    ClientIp {
        /// The value, escaped.
        shown: String,
    },
}

impl LaunchRequest {
    /// The launch of `image` (named from `resolved` under the edge's prefix, `present` in
    /// the registry or not) for `spec`, asked by `client` through the Binder whose public
    /// base URL is `launch_host`.
    pub fn new(
        spec: &Spec,
        resolved: &Resolved,
        image: String,
        image_present: bool,
        launch_host: String,
        client: Option<IpAddr>,
    ) -> Self {
        let provider = spec.provider();
        Self {
            provider: provider.as_str().to_string(),
            spec: spec.raw().to_string(),
            repo_url: spec.repo_url(),
            resolved_ref: resolved.resolved_ref.clone(),
            resolved_spec: resolved.resolved_spec.clone(),
            image,
            image_present,
            build_slug: resolved.build_slug.clone(),
            ref_url: resolved.ref_url.clone(),
            launch_host,
            binder_request: launch::binder_request(provider, spec.raw()),
            binder_persistent_request: launch::binder_persistent_request(
                provider,
                &resolved.resolved_spec,
            ),
            // The loading page opens the path itself once the server is ready.
            launch_path: String::new(),
            client_ip: client.map(|ip| ip.to_string()).unwrap_or_default(),
            build_only: false,
        }
    }

    /// Checks the request for a worker whose image prefix is `prefix` and whose provider
    /// settings (`hydroshare_base`) are the edge's.
    pub fn validate(&self, prefix: &str, providers: &ProviderSettings) -> Result<(), RequestError> {
        let provider = Common {
            provider: &self.provider,
            spec: &self.spec,
            repo_url: &self.repo_url,
            resolved_ref: &self.resolved_ref,
            build_slug: &self.build_slug,
            image_name: &self.image,
        }
        .validate(prefix, providers)?;
        check_text("ref_url", &self.ref_url)?;
        check_text("launch_host", &self.launch_host)?;
        check_text("binder_request", &self.binder_request)?;
        check_text("binder_persistent_request", &self.binder_persistent_request)?;
        let want = format!("v2/{provider}/");
        if !self.binder_request.starts_with(&want)
            || !self.binder_persistent_request.starts_with(&want)
        {
            return Err(RequestError::OtherProvider { want });
        }
        validate::validate_launch_path("launch_path", &self.launch_path)?;
        if self.build_only && !self.launch_path.is_empty() {
            return Err(RequestError::BuildOnlyLaunchPath);
        }
        if !self.client_ip.is_empty() && self.client_ip.parse::<IpAddr>().is_err() {
            return Err(RequestError::ClientIp {
                shown: validate::shown(&self.client_ip),
            });
        }
        Ok(())
    }
}

impl BuildRequest {
    /// Checks the request for a worker whose image prefix is `prefix` and whose provider
    /// settings are the edge's.
    pub fn validate(&self, prefix: &str, providers: &ProviderSettings) -> Result<(), RequestError> {
        Common {
            provider: &self.provider,
            spec: &self.spec,
            repo_url: &self.repo_url,
            resolved_ref: &self.resolved_ref,
            build_slug: &self.build_slug,
            image_name: &self.image,
        }
        .validate(prefix, providers)
        .map(drop)
    }
}

/// What both requests share. [`Common::validate`] checks provider, spec, resolved ref,
/// repo URL and image name, and that the repo URL and the build slug are the ones the spec gives (the image name
/// derives from the slug, so a request that could name another repository could build it
/// under a popular image's name).
struct Common<'a> {
    provider: &'a str,
    spec: &'a str,
    repo_url: &'a str,
    resolved_ref: &'a str,
    build_slug: &'a str,
    image_name: &'a str,
}

impl Common<'_> {
    fn validate(
        self,
        prefix: &str,
        providers: &ProviderSettings,
    ) -> Result<ProviderId, RequestError> {
        let Common {
            provider,
            spec,
            repo_url,
            resolved_ref,
            build_slug,
            image_name,
        } = self;
        let provider = ProviderId::parse(provider)?;
        // Of the settings the edge changes, only `hydroshare_base` is in repository URLs, so
        // the worker's settings must carry the edge's for the URLs to match.
        let parsed = Spec::parse(provider, spec, providers)?;
        parsed.validate_resolved_ref(resolved_ref)?;
        validate::validate_repo_url("repo_url", repo_url)?;
        if build_slug.is_empty() {
            return Err(RequestError::EmptyBuildSlug);
        }
        let expected = image::image_name(prefix, build_slug, resolved_ref);
        if image_name != expected {
            return Err(RequestError::WrongImage {
                image: validate::shown(image_name),
                expected: validate::shown(&expected),
            });
        }
        let expected_slug = parsed.build_slug(Some(resolved_ref)).unwrap_or_default();
        if build_slug != expected_slug {
            return Err(RequestError::WrongBuildSlug {
                build_slug: validate::shown(build_slug),
                expected: validate::shown(&expected_slug),
            });
        }
        let expected_url = parsed.repo_url();
        if repo_url != expected_url {
            return Err(RequestError::WrongRepoUrl {
                repo_url: validate::shown(repo_url),
                expected: validate::shown(&expected_url),
            });
        }
        Ok(provider)
    }
}

fn check_text(what: &'static str, value: &str) -> Result<(), RequestError> {
    if value.len() > validate::MAX_URL_LEN {
        return Err(RequestError::TooLong { what });
    }
    if value.chars().any(char::is_control) {
        return Err(RequestError::ControlChar { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "127.0.0.1:5000/binder-";
    const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";

    fn launch() -> LaunchRequest {
        let spec =
            Spec::parse(ProviderId::GitHub, "o/r/main", &ProviderSettings::default()).unwrap();
        let resolved = Resolved {
            resolved_ref: SHA.into(),
            resolved_spec: format!("o/r/{SHA}"),
            ref_url: format!("https://github.com/o/r/tree/{SHA}"),
            build_slug: "o-r".into(),
            etag: None,
            fell_back_to_head: false,
        };
        let image = image::image_name(PREFIX, &resolved.build_slug, SHA);
        LaunchRequest::new(
            &spec,
            &resolved,
            image,
            false,
            "https://binder.example.org/".into(),
            Some("192.0.2.7".parse().unwrap()),
        )
    }

    #[test]
    fn a_built_launch_request_carries_binderhubs_strings_and_validates() {
        let l = launch();
        assert_eq!(l.provider, "gh");
        assert_eq!(l.repo_url, "https://github.com/o/r");
        assert_eq!(l.binder_request, "v2/gh/o/r/main");
        assert_eq!(l.binder_persistent_request, format!("v2/gh/o/r/{SHA}"));
        assert_eq!(l.client_ip, "192.0.2.7");
        assert_eq!(l.launch_path, "");
        assert_eq!(l.validate(PREFIX, &ProviderSettings::default()), Ok(()));
    }

    #[test]
    fn hostile_or_inconsistent_launch_requests_are_refused_with_their_reason() {
        type Change = fn(&mut LaunchRequest);
        let cases: [(Change, &str); 9] = [
            (|l| l.provider = "nope".into(), "nope"),
            (|l| l.build_slug.clear(), "build_slug is empty"),
            (
                |l| l.image = format!("elsewhere/x:{SHA}"),
                "is not the image of",
            ),
            (
                |l| l.ref_url = "a\nb".into(),
                "ref_url contains a control character",
            ),
            (
                |l| l.launch_host = "x".repeat(3000),
                "launch_host is too long",
            ),
            (
                |l| l.binder_request = "v2/gl/o/r/main".into(),
                "must start with v2/gh/",
            ),
            (
                |l| l.client_ip = "not-an-ip".into(),
                "client_ip \"not-an-ip\" is not",
            ),
            // A token holder builds another repository under this spec's image name.
            (
                |l| l.repo_url = "https://github.com/evil/r".into(),
                "repo_url \"https://github.com/evil/r\" is not the repository of this spec",
            ),
            // ... or names the slug of a popular image while the spec names its own.
            (
                |l| {
                    l.build_slug = "popular-image".into();
                    l.image = image::image_name(PREFIX, "popular-image", SHA);
                },
                "build_slug \"popular-image\" is not the build slug of this spec",
            ),
        ];
        for (change, expected) in cases {
            let mut l = launch();
            change(&mut l);
            let err = l
                .validate(PREFIX, &ProviderSettings::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
        let mut l = launch();
        l.launch_path = "../../etc".into();
        assert!(matches!(
            l.validate(PREFIX, &ProviderSettings::default()),
            Err(RequestError::Input(_))
        ));
    }

    #[test]
    fn hydroshare_requests_check_against_the_edges_hydroshare_base() {
        let id = "142c59757ed54de1816777828c9716e7";
        let version = format!("{id}.v1700000000");
        let own = ProviderSettings {
            hydroshare_base: "http://127.0.0.1:9/hs".into(),
            ..ProviderSettings::default()
        };
        let spec = Spec::parse(ProviderId::Hydroshare, id, &own).unwrap();
        let slug = spec.build_slug(Some(&version)).unwrap();
        let build = BuildRequest {
            provider: "hydroshare".into(),
            spec: id.into(),
            repo_url: format!("http://127.0.0.1:9/hs/resource/{id}"),
            resolved_ref: version.clone(),
            image: image::image_name(PREFIX, &slug, &version),
            build_slug: slug,
        };
        assert_eq!(build.validate(PREFIX, &own), Ok(()));
        // A worker left on the public HydroShare refuses the edge's resource URL.
        assert!(matches!(
            build.validate(PREFIX, &ProviderSettings::default()),
            Err(RequestError::WrongRepoUrl { .. })
        ));
    }

    #[test]
    fn a_build_only_request_validates_and_names_no_path_to_open() {
        let mut l = launch();
        l.build_only = true;
        assert_eq!(l.validate(PREFIX, &ProviderSettings::default()), Ok(()));
        l.launch_path = "lab/tree/x.ipynb".into();
        assert_eq!(
            l.validate(PREFIX, &ProviderSettings::default()),
            Err(RequestError::BuildOnlyLaunchPath)
        );
        // An edge that knows nothing of the flag sends none: a launch.
        let mut json = serde_json::to_value(launch()).unwrap();
        json.as_object_mut().unwrap().remove("build_only");
        let old: LaunchRequest = serde_json::from_value(json).unwrap();
        assert!(!old.build_only);
    }

    #[test]
    fn build_requests_share_the_image_check() {
        let l = launch();
        let build = BuildRequest {
            provider: l.provider.clone(),
            spec: l.spec.clone(),
            repo_url: l.repo_url.clone(),
            resolved_ref: l.resolved_ref.clone(),
            image: l.image.clone(),
            build_slug: l.build_slug.clone(),
        };
        assert_eq!(build.validate(PREFIX, &ProviderSettings::default()), Ok(()));
        assert!(matches!(
            build.validate("other:5000/p-", &ProviderSettings::default()),
            Err(RequestError::WrongImage { .. })
        ));
    }
}
