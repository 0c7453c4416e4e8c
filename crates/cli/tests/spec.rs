//! `bindery spec` as a black box: its output keys, JSON shape and exit statuses.

use std::process::Command;

fn bindery(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bindery"))
        .args(args)
        .output()
        .expect("run bindery");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";

#[test]
fn json_output_has_exactly_the_documented_keys() {
    let (code, out, _) = bindery(&["spec", "gh/binder-examples/octave/HEAD", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4);
    for k in ["provider", "repo_url", "ref", "build_slug"] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }

    let (code, out, _) = bindery(&[
        "spec",
        "gh/binder-examples/octave/HEAD",
        "--ref",
        SHA,
        "--prefix",
        "r.example/b/",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v.as_object().map(|o| o.len()), Some(10));
    assert_eq!(
        v["image"],
        format!("r.example/b/binder-2dexamples-2doctave-03025a:{SHA}")
    );
    assert_eq!(
        v["build_name"],
        "build-binder-2dexamples-2doctave-03025a-147-e2"
    );
    assert_eq!(v["resolved_spec"], format!("binder-examples/octave/{SHA}"));
    assert_eq!(
        v["ref_url"],
        format!("https://github.com/binder-examples/octave/tree/{SHA}")
    );
    assert_eq!(v["binder_request"], "v2/gh/binder-examples/octave/HEAD");
    assert_eq!(
        v["binder_persistent_request"],
        format!("v2/gh/binder-examples/octave/{SHA}")
    );
}

#[test]
fn percent_encoded_specs_are_read_as_in_a_url() {
    let (code, out, _) = bindery(&[
        "spec",
        "gl/gitlab-org%2Fgitlab-foss/v10.0.6",
        "--ref",
        "b3344b7f17c335a817c5d7608c5e47fd7cabc023",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["repo_url"],
        "https://gitlab.com/gitlab-org/gitlab-foss.git"
    );
    assert_eq!(
        v["image"],
        "gitlab-5f-2dorg-2dgitlab-5f-2dfoss-a53a80:b3344b7f17c335a817c5d7608c5e47fd7cabc023"
    );
}

#[test]
fn text_output_lists_key_value_lines() {
    let (code, out, _) = bindery(&["spec", "zenodo/10.5281/zenodo.3242073", "--ref", "3242074"]);
    assert_eq!(code, 0);
    assert!(out.contains("build_slug: zenodo-3242074\n"), "{out}");
    assert!(
        out.contains("image: zenodo-2d3242074-b993d2:3242074\n"),
        "{out}"
    );
    assert!(out.contains("ref: (none"), "{out}");
}

#[test]
fn bad_specs_and_refs_exit_2_with_one_line() {
    for args in [
        vec!["spec", "gh/user/repo/--upload-pack=x"],
        vec!["spec", "nope/x/y"],
        vec!["spec", "gh/short"],
        vec!["spec", "gh/a/b/main", "--ref", "main"],
        vec!["spec", "gh/a/b/main", "--ref=-rf"],
    ] {
        let (code, out, err) = bindery(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("bindery: "), "{err}");
    }
}
