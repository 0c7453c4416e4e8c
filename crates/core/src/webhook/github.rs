//! GitHub webhook events (`X-GitHub-Event`): `ping`, `push`, everything else ignored.

use super::{
    PushEvent, PushProvider, RepoFields, WebhookError, check_commit, check_size, event_label,
    parse_object, push_event, required_str, split_ref,
};

/// A GitHub delivery, after the signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubEvent {
    /// Sent when the webhook is created: answer 200 and do nothing.
    Ping {
        /// GitHub's zen line, if any.
        zen: Option<String>,
    },
    /// A push to a branch or tag.
    Push(PushEvent),
    /// Any other event (the webhook was set up with more events than needed).
    Ignored {
        /// The event name, sanitised for logs.
        event: String,
    },
}

/// Parses a GitHub delivery given its `X-GitHub-Event` header and body. Other events are
/// [`GithubEvent::Ignored`] without reading the body beyond its size.
pub fn parse_github(event_header: &str, body: &[u8]) -> Result<GithubEvent, WebhookError> {
    let event = event_header.trim();
    if event.eq_ignore_ascii_case("ping") {
        let object = parse_object(body)?;
        let zen = object
            .get("zen")
            .and_then(|z| z.as_str())
            .map(|z| z.chars().take(200).collect());
        return Ok(GithubEvent::Ping { zen });
    }
    if !event.eq_ignore_ascii_case("push") {
        check_size(body)?;
        return Ok(GithubEvent::Ignored {
            event: event_label(event),
        });
    }
    let object = parse_object(body)?;
    let (branch, tag) = split_ref(required_str(&object, "ref")?)?;
    let deleted_flag = match object.get("deleted") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => {
            return Err(WebhookError::InvalidField {
                field: "deleted",
                reason: "expected a boolean".to_owned(),
            });
        }
    };
    let commit = check_commit("after", required_str(&object, "after")?)?;
    if deleted_flag && commit.is_some() {
        return Err(WebhookError::InvalidField {
            field: "after",
            reason: "a deleted ref must point to the all-zero commit".to_owned(),
        });
    }
    let fields = RepoFields {
        path: "repository.full_name",
        web_url: "repository.html_url",
        default_branch: "repository.default_branch",
    };
    let event = push_event(
        PushProvider::GitHub,
        &object,
        &fields,
        check_full_name,
        (branch, tag),
        commit,
    )?;
    Ok(GithubEvent::Push(event))
}

/// `owner/name`: an owner of 1–39 `[A-Za-z0-9_-]` and a name of 1–100 `[A-Za-z0-9._-]`
/// other than `.` and `..`.
fn check_full_name(full_name: &str) -> Result<(), WebhookError> {
    let ok = full_name.split_once('/').is_some_and(|(owner, name)| {
        (1..=39).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            && (1..=100).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            && name != "."
            && name != ".."
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::InvalidField {
            field: "repository.full_name",
            reason: format!("{} is not `owner/name`", crate::validate::shown(full_name)),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";

    fn push_body(git_ref: &str, after: &str, deleted: bool) -> Value {
        json!({
            "ref": git_ref,
            "before": "0000000000000000000000000000000000000000",
            "after": after,
            "created": false,
            "deleted": deleted,
            "forced": false,
            "base_ref": null,
            "compare": "https://github.com/binder-examples/octave/compare/abc...def",
            "commits": [],
            "head_commit": null,
            "repository": {
                "id": 95185935,
                "node_id": "MDEwOlJlcG9zaXRvcnk5NTE4NTkzNQ==",
                "name": "octave",
                "full_name": "binder-examples/octave",
                "private": false,
                "owner": {"name": "binder-examples", "login": "binder-examples"},
                "html_url": "https://github.com/binder-examples/octave",
                "default_branch": "main",
                "master_branch": "main"
            },
            "pusher": {"name": "someone", "email": "someone@example.org"},
            "sender": {"login": "someone", "id": 1}
        })
    }

    fn parse(event: &str, body: &Value) -> Result<GithubEvent, WebhookError> {
        parse_github(event, &serde_json::to_vec(body).unwrap())
    }

    fn push(body: &Value) -> PushEvent {
        match parse("push", body) {
            Ok(GithubEvent::Push(event)) => event,
            other => panic!("expected a push, got {other:?}"),
        }
    }

    #[test]
    fn a_branch_push_is_parsed() {
        let event = push(&push_body("refs/heads/main", SHA, false));
        assert_eq!(
            event,
            PushEvent {
                provider: PushProvider::GitHub,
                repo: "binder-examples/octave".into(),
                repo_url: "https://github.com/binder-examples/octave".into(),
                branch: Some("main".into()),
                tag: None,
                commit: Some(SHA.into()),
                default_branch: Some("main".into()),
                deleted: false,
            }
        );
        assert!(event.is_default_branch());
        let event = push(&push_body("refs/heads/feature/new-env", SHA, false));
        assert_eq!(event.branch.as_deref(), Some("feature/new-env"));
        assert!(!event.is_default_branch());
    }

    #[test]
    fn a_tag_push_is_parsed() {
        let event = push(&push_body("refs/tags/v1.0.0", SHA, false));
        assert_eq!((event.branch, event.tag.as_deref()), (None, Some("v1.0.0")));
    }

    #[test]
    fn a_deleted_branch_has_no_commit() {
        let event = push(&push_body(
            "refs/heads/old",
            "0000000000000000000000000000000000000000",
            true,
        ));
        assert_eq!((event.commit, event.deleted), (None, true));
        let mut body = push_body("refs/heads/old", SHA, true);
        assert!(matches!(
            parse("push", &body),
            Err(WebhookError::InvalidField { field: "after", .. })
        ));
        body["deleted"] = json!("yes");
        assert!(matches!(
            parse("push", &body),
            Err(WebhookError::InvalidField {
                field: "deleted",
                ..
            })
        ));
    }

    #[test]
    fn ping_and_other_events() {
        assert_eq!(
            parse("ping", &json!({"zen": "Design for failure.", "hook_id": 1})),
            Ok(GithubEvent::Ping {
                zen: Some("Design for failure.".into())
            })
        );
        assert_eq!(
            parse("ping", &json!({})),
            Ok(GithubEvent::Ping { zen: None })
        );
        assert_eq!(
            parse_github("issues", b"not even json"),
            Ok(GithubEvent::Ignored {
                event: "issues".into()
            })
        );
        assert_eq!(
            parse_github("pull_request", b"{}"),
            Ok(GithubEvent::Ignored {
                event: "pull_request".into()
            })
        );
        assert_eq!(
            parse_github(
                " Push ",
                &serde_json::to_vec(&push_body("refs/heads/main", SHA, false)).unwrap()
            )
            .map(|e| matches!(e, GithubEvent::Push(_))),
            Ok(true)
        );
    }

    #[test]
    fn missing_fields_are_named() {
        for (path, field) in [
            (&["ref"][..], "ref"),
            (&["after"][..], "after"),
            (&["repository", "full_name"][..], "repository.full_name"),
            (&["repository", "html_url"][..], "repository.html_url"),
            (&["repository"][..], "repository.full_name"),
        ] {
            let mut body = push_body("refs/heads/main", SHA, false);
            let (last, parents) = path.split_last().unwrap();
            let mut target = &mut body;
            for p in parents {
                target = &mut target[*p];
            }
            target.as_object_mut().unwrap().remove(*last);
            let err = parse("push", &body).unwrap_err();
            assert_eq!(err, WebhookError::MissingField { field });
            assert_eq!(err.to_string(), format!("push event has no `{field}`"));
        }
        let mut body = push_body("refs/heads/main", SHA, false);
        body["repository"]
            .as_object_mut()
            .unwrap()
            .remove("default_branch");
        assert_eq!(push(&body).default_branch, None);
    }

    #[test]
    fn hostile_values_are_refused() {
        let cases: &[(&str, Value, &str)] = &[
            ("ref", json!("refs/heads/--upload-pack=evil"), "ref"),
            ("ref", json!("refs/heads/a..b"), "ref"),
            ("ref", json!("refs/heads/a b"), "ref"),
            ("ref", json!("refs/heads/a\nb"), "ref"),
            ("ref", json!("refs/pull/1/head"), "ref"),
            ("ref", json!("main"), "ref"),
            ("ref", json!(42), "ref"),
            (
                "after",
                json!("1479E0252B2E648BB755EE913292B79495931717"),
                "after",
            ),
            ("after", json!("1479e02"), "after"),
        ];
        for (key, value, field) in cases {
            let mut body = push_body("refs/heads/main", SHA, false);
            body[*key] = value.clone();
            let err = parse("push", &body).unwrap_err();
            assert!(
                matches!(&err, WebhookError::InvalidField { field: f, .. } if f == field),
                "{value}: {err:?}"
            );
        }
        let repo_cases: &[(&str, Value, &str)] = &[
            ("full_name", json!("no-slash"), "repository.full_name"),
            ("full_name", json!("a/b/c"), "repository.full_name"),
            ("full_name", json!("a/.."), "repository.full_name"),
            ("full_name", json!("a b/c"), "repository.full_name"),
            (
                "html_url",
                json!("javascript:alert(1)"),
                "repository.html_url",
            ),
            (
                "html_url",
                json!("https://user:pw@github.com/a/b"),
                "repository.html_url",
            ),
            ("default_branch", json!("-x"), "repository.default_branch"),
            (
                "default_branch",
                json!(["main"]),
                "repository.default_branch",
            ),
        ];
        for (key, value, field) in repo_cases {
            let mut body = push_body("refs/heads/main", SHA, false);
            body["repository"][*key] = value.clone();
            let err = parse("push", &body).unwrap_err();
            assert!(
                matches!(&err, WebhookError::InvalidField { field: f, .. } if f == field),
                "{value}: {err:?}"
            );
        }
        let mut body = push_body("refs/heads/main", SHA, false);
        body["repository"]["full_name"] = json!("binder-examples/.github");
        assert_eq!(push(&body).repo, "binder-examples/.github");
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            b"\"push\"",
            &[0xff, 0x00],
            b"{\"ref\": \"refs/heads/main\"}",
        ] {
            assert!(parse_github("push", body).is_err());
        }
        let deep = "[".repeat(10_000);
        assert!(matches!(
            parse_github("push", deep.as_bytes()),
            Err(WebhookError::InvalidJson { .. })
        ));
        let huge = vec![b' '; super::super::MAX_BODY_BYTES + 1];
        assert!(matches!(
            parse_github("push", &huge),
            Err(WebhookError::BodyTooLarge { .. })
        ));
        assert!(matches!(
            parse_github("issues", &huge),
            Err(WebhookError::BodyTooLarge { .. })
        ));
    }
}
