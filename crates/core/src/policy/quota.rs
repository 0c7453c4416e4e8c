//! Launch quotas: a total limit on running servers and a limit per repository.
//!
//! As in BinderHub, the per-repository count is keyed by image name without its tag, so
//! every ref of a repository shares one quota.

/// BinderHub's message when the whole deployment is full.
pub const TOTAL_QUOTA_MESSAGE: &str = "Too many users on this BinderHub! Try again soon.";

/// BinderHub's message when one repository has used its quota.
pub fn repo_quota_message(repo_url: &str) -> String {
    format!("Too many users running {repo_url}! Try again soon.")
}

/// `image` without its tag (and without a `@digest`): the part after the last `:` is a tag
/// only when it holds no `/`, so `localhost:5000/foo` keeps its port.
pub fn image_without_tag(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    }
}

/// How many servers run, and how many of them run a given image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaCount {
    /// All running servers.
    pub total: u32,
    /// Servers running the image being launched (any tag).
    pub matching: u32,
}

/// Counts `running_images` (one entry per running server: the image of its notebook
/// container) and those that are `image` under any tag.
pub fn count_running(running_images: &[&str], image: &str) -> QuotaCount {
    let wanted = image_without_tag(image);
    let matching = running_images
        .iter()
        .filter(|r| image_without_tag(r) == wanted)
        .count();
    QuotaCount {
        total: u32::try_from(running_images.len()).unwrap_or(u32::MAX),
        matching: u32::try_from(matching).unwrap_or(u32::MAX),
    }
}

/// Whether one more server may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Launch.
    Admit,
    /// The deployment runs `total_quota` servers already (a total quota of 0 is
    /// maintenance mode: nothing launches).
    TotalExceeded,
    /// The repository runs its quota of servers already.
    RepoExceeded {
        /// The repository's quota.
        quota: u32,
    },
}

impl QuotaDecision {
    /// The message for the user, or `None` for [`QuotaDecision::Admit`].
    pub fn message(&self, repo_url: &str) -> Option<String> {
        match self {
            Self::Admit => None,
            Self::TotalExceeded => Some(TOTAL_QUOTA_MESSAGE.to_owned()),
            Self::RepoExceeded { .. } => Some(repo_quota_message(repo_url)),
        }
    }

    /// BinderHub's status label for metrics and events (`pod_quota`, `repo_quota`).
    pub fn status(&self) -> Option<&'static str> {
        match self {
            Self::Admit => None,
            Self::TotalExceeded => Some("pod_quota"),
            Self::RepoExceeded { .. } => Some("repo_quota"),
        }
    }
}

/// Decides a launch: refused when `total >= total_quota` (`None` = unlimited, `Some(0)` =
/// maintenance) or when `matching >= repo_quota` (`None` or `Some(0)` = unlimited, as
/// BinderHub's `per_repo_quota = 0`). The total is checked first.
pub fn check_quota(
    count: QuotaCount,
    repo_quota: Option<u32>,
    total_quota: Option<u32>,
) -> QuotaDecision {
    if total_quota.is_some_and(|total| count.total >= total) {
        return QuotaDecision::TotalExceeded;
    }
    match repo_quota {
        Some(quota) if quota > 0 && count.matching >= quota => {
            QuotaDecision::RepoExceeded { quota }
        }
        _ => QuotaDecision::Admit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_without_tag_strips_only_tags() {
        let cases = [
            (
                "example.org/test/kubernetes_quota:1.2.3",
                "example.org/test/kubernetes_quota",
            ),
            (
                "example.org/test/kubernetes_quota",
                "example.org/test/kubernetes_quota",
            ),
            ("localhost:5000/foo", "localhost:5000/foo"),
            ("localhost:5000/foo:abc", "localhost:5000/foo"),
            ("foo@sha256:0123abcd", "foo"),
            ("reg:5000/foo:tag@sha256:0123", "reg:5000/foo"),
            ("", ""),
            (":", ""),
        ];
        for (image, want) in cases {
            assert_eq!(image_without_tag(image), want, "{image}");
        }
    }

    #[test]
    fn counts_running_servers_by_image_under_any_tag() {
        let running = [
            "example.org/test/kubernetes_quota:1.2.3",
            "example.org/test/kubernetes_quota:latest",
            "example.org/test/other:abc",
        ];
        let count = count_running(&running, "example.org/test/kubernetes_quota");
        assert_eq!(
            count,
            QuotaCount {
                total: 3,
                matching: 2
            }
        );
        assert_eq!(check_quota(count, Some(3), None), QuotaDecision::Admit);
        assert_eq!(
            count_running(&running, "example.org/test/kubernetes_quota:deadbeef").matching,
            2
        );
        assert_eq!(count_running(&[], "x"), QuotaCount::default());
    }

    #[test]
    fn quota_decisions() {
        let count = |total, matching| QuotaCount { total, matching };
        let cases = [
            (count(0, 0), None, None, QuotaDecision::Admit),
            (count(0, 0), None, Some(0), QuotaDecision::TotalExceeded),
            (count(9, 0), None, Some(10), QuotaDecision::Admit),
            (count(10, 0), None, Some(10), QuotaDecision::TotalExceeded),
            (
                count(10, 10),
                Some(5),
                Some(10),
                QuotaDecision::TotalExceeded,
            ),
            (count(5, 2), Some(3), None, QuotaDecision::Admit),
            (
                count(5, 3),
                Some(3),
                None,
                QuotaDecision::RepoExceeded { quota: 3 },
            ),
            (count(500, 500), Some(0), None, QuotaDecision::Admit),
            (count(500, 500), None, Some(1000), QuotaDecision::Admit),
        ];
        for (c, repo, total, want) in cases {
            assert_eq!(
                check_quota(c, repo, total),
                want,
                "{c:?} {repo:?} {total:?}"
            );
        }
    }

    #[test]
    fn messages_are_binderhubs() {
        assert_eq!(
            QuotaDecision::TotalExceeded.message("x").as_deref(),
            Some("Too many users on this BinderHub! Try again soon.")
        );
        assert_eq!(
            QuotaDecision::RepoExceeded { quota: 3 }
                .message("https://github.com/a/b")
                .as_deref(),
            Some("Too many users running https://github.com/a/b! Try again soon.")
        );
        assert_eq!(QuotaDecision::Admit.message("x"), None);
        assert_eq!(QuotaDecision::TotalExceeded.status(), Some("pod_quota"));
        assert_eq!(
            QuotaDecision::RepoExceeded { quota: 1 }.status(),
            Some("repo_quota")
        );
    }
}
