//! GitLab webhook events (`X-Gitlab-Event`): push and tag push, everything else ignored.

use super::{
    PushEvent, PushProvider, RepoFields, WebhookError, check_commit, check_size, event_label,
    optional_str, parse_object, push_event, required_str, split_ref,
};

/// The `X-Gitlab-Event` values that may carry a push (`System Hook` for instance-wide
/// hooks, which send the same push payload).
const PUSH_HEADERS: [&str; 3] = ["Push Hook", "Tag Push Hook", "System Hook"];

/// Most nested groups GitLab allows (20 levels of subgroups) plus the project.
const MAX_PATH_SEGMENTS: usize = 21;

/// A GitLab delivery, after the token has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitlabEvent {
    /// A push to a branch or tag.
    Push(PushEvent),
    /// Any other event or `object_kind`.
    Ignored {
        /// The event or kind name, sanitised for logs.
        event: String,
    },
}

/// Parses a GitLab delivery given its `X-Gitlab-Event` header (`Push Hook`,
/// `Tag Push Hook`, ...) and body. The body's `object_kind` (`push`, `tag_push`) decides;
/// other headers are [`GitlabEvent::Ignored`] without reading the body beyond its size.
pub fn parse_gitlab(event_header: &str, body: &[u8]) -> Result<GitlabEvent, WebhookError> {
    let event = event_header.trim();
    if !PUSH_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(event)) {
        check_size(body)?;
        return Ok(GitlabEvent::Ignored {
            event: event_label(event),
        });
    }
    let object = parse_object(body)?;
    let kind = required_str(&object, "object_kind")?;
    if kind != "push" && kind != "tag_push" {
        return Ok(GitlabEvent::Ignored {
            event: event_label(kind),
        });
    }
    let (branch, tag) = split_ref(required_str(&object, "ref")?)?;
    if kind == "tag_push" && tag.is_none() {
        return Err(WebhookError::InvalidField {
            field: "ref",
            reason: "a tag push must name `refs/tags/...`".to_owned(),
        });
    }
    // `checkout_sha` is null when the ref was deleted; `after` is then all zeros.
    let commit = match optional_str(&object, "checkout_sha")? {
        Some(sha) => check_commit("checkout_sha", sha)?,
        None => check_commit("after", required_str(&object, "after")?)?,
    };
    let fields = RepoFields {
        path: "project.path_with_namespace",
        web_url: "project.web_url",
        default_branch: "project.default_branch",
    };
    let event = push_event(
        PushProvider::GitLab,
        &object,
        &fields,
        check_project_path,
        (branch, tag),
        commit,
    )?;
    Ok(GitlabEvent::Push(event))
}

/// `group/[subgroup/...]project`: 2 to 21 segments of `[A-Za-z0-9._-]`, none empty, none
/// starting with `-` (GitLab refuses those too), none `.` or `..`.
fn check_project_path(path: &str) -> Result<(), WebhookError> {
    let segments: Vec<&str> = path.split('/').collect();
    let ok = (2..=MAX_PATH_SEGMENTS).contains(&segments.len())
        && path.len() <= 1024
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 255
                && !s.starts_with('-')
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::InvalidField {
            field: "project.path_with_namespace",
            reason: format!("{} is not `group/project`", crate::validate::shown(path)),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SHA: &str = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    fn push_body(kind: &str, git_ref: &str, after: &str, checkout_sha: Option<&str>) -> Value {
        json!({
            "object_kind": kind,
            "event_name": kind,
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": after,
            "ref": git_ref,
            "ref_protected": true,
            "checkout_sha": checkout_sha,
            "user_id": 4,
            "user_username": "jsmith",
            "project_id": 15,
            "project": {
                "id": 15,
                "name": "Diaspora",
                "web_url": "https://gitlab.example.com/mike/sub/diaspora",
                "git_http_url": "https://gitlab.example.com/mike/sub/diaspora.git",
                "namespace": "Mike",
                "path_with_namespace": "mike/sub/diaspora",
                "default_branch": "master"
            },
            "commits": [],
            "total_commits_count": 0,
            "repository": {"name": "Diaspora", "homepage": "https://gitlab.example.com/mike/sub/diaspora"}
        })
    }

    fn parse(header: &str, body: &Value) -> Result<GitlabEvent, WebhookError> {
        parse_gitlab(header, &serde_json::to_vec(body).unwrap())
    }

    fn push(header: &str, body: &Value) -> PushEvent {
        match parse(header, body) {
            Ok(GitlabEvent::Push(event)) => event,
            other => panic!("expected a push, got {other:?}"),
        }
    }

    #[test]
    fn a_branch_push_is_parsed() {
        let event = push(
            "Push Hook",
            &push_body("push", "refs/heads/master", SHA, Some(SHA)),
        );
        assert_eq!(
            event,
            PushEvent {
                provider: PushProvider::GitLab,
                repo: "mike/sub/diaspora".into(),
                repo_url: "https://gitlab.example.com/mike/sub/diaspora".into(),
                branch: Some("master".into()),
                tag: None,
                commit: Some(SHA.into()),
                default_branch: Some("master".into()),
                deleted: false,
            }
        );
        assert!(event.is_default_branch());
    }

    #[test]
    fn checkout_sha_is_preferred_and_after_is_the_fallback() {
        let other = "95790bf891e76fee5e1747ab589903a6a1f80f22";
        assert_eq!(
            push(
                "Push Hook",
                &push_body("push", "refs/heads/x", other, Some(SHA))
            )
            .commit
            .as_deref(),
            Some(SHA)
        );
        assert_eq!(
            push("Push Hook", &push_body("push", "refs/heads/x", SHA, None))
                .commit
                .as_deref(),
            Some(SHA)
        );
    }

    #[test]
    fn a_tag_push_is_parsed() {
        let event = push(
            "Tag Push Hook",
            &push_body("tag_push", "refs/tags/v1.0.0", SHA, Some(SHA)),
        );
        assert_eq!(
            (event.branch, event.tag.as_deref(), event.commit.as_deref()),
            (None, Some("v1.0.0"), Some(SHA))
        );
        let err = parse(
            "Tag Push Hook",
            &push_body("tag_push", "refs/heads/main", SHA, Some(SHA)),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            WebhookError::InvalidField { field: "ref", .. }
        ));
    }

    #[test]
    fn a_deleted_branch_has_no_commit() {
        let event = push(
            "Push Hook",
            &push_body("push", "refs/heads/old", ZERO, None),
        );
        assert_eq!((event.commit, event.deleted), (None, true));
    }

    #[test]
    fn system_hooks_carry_pushes_too() {
        assert!(matches!(
            parse(
                "System Hook",
                &push_body("push", "refs/heads/x", SHA, Some(SHA))
            ),
            Ok(GitlabEvent::Push(_))
        ));
    }

    #[test]
    fn other_events_are_ignored() {
        assert_eq!(
            parse_gitlab("Merge Request Hook", b"garbage"),
            Ok(GitlabEvent::Ignored {
                event: "Merge Request Hook".into()
            })
        );
        assert_eq!(
            parse("System Hook", &json!({"object_kind": "repository_update"})),
            Ok(GitlabEvent::Ignored {
                event: "repository_update".into()
            })
        );
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let mut body = push_body("push", "refs/heads/x", SHA, Some(SHA));
        body["project"]
            .as_object_mut()
            .unwrap()
            .remove("path_with_namespace");
        assert_eq!(
            parse("Push Hook", &body),
            Err(WebhookError::MissingField {
                field: "project.path_with_namespace"
            })
        );
        let mut body = push_body("push", "refs/heads/x", SHA, None);
        body.as_object_mut().unwrap().remove("after");
        assert_eq!(
            parse("Push Hook", &body),
            Err(WebhookError::MissingField { field: "after" })
        );
        assert_eq!(
            parse("Push Hook", &json!({})),
            Err(WebhookError::MissingField {
                field: "object_kind"
            })
        );
        for path in [
            "mike",
            "mike/",
            "/mike/x",
            "mike//x",
            "-mike/x",
            "mike/../x",
            "mike/x y",
            "mike/x%2Fy",
        ] {
            let mut body = push_body("push", "refs/heads/x", SHA, Some(SHA));
            body["project"]["path_with_namespace"] = json!(path);
            assert!(
                matches!(
                    parse("Push Hook", &body),
                    Err(WebhookError::InvalidField {
                        field: "project.path_with_namespace",
                        ..
                    })
                ),
                "{path}"
            );
        }
        let mut body = push_body("push", "refs/heads/x", SHA, Some("not-a-sha"));
        assert!(matches!(
            parse("Push Hook", &body),
            Err(WebhookError::InvalidField {
                field: "checkout_sha",
                ..
            })
        ));
        body["checkout_sha"] = json!(SHA);
        body["ref"] = json!("refs/heads/..");
        assert!(matches!(
            parse("Push Hook", &body),
            Err(WebhookError::InvalidField { field: "ref", .. })
        ));
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        for body in [&b""[..], b"{", b"[1]", b"null", &[0xc3, 0x28]] {
            assert!(parse_gitlab("Push Hook", body).is_err());
        }
    }
}
