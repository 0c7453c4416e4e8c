//! Image naming against the real `escapism` package from PyPI, which BinderHub uses.
//!
//! Thousands of random slugs (ASCII, punctuation, control characters, accents, CJK, emoji)
//! go through `tests/py/binderhub_naming.py` in the venv that `cargo xtask test` prepares
//! under `target/pyenv`; every escaped slug, image name and build name must be identical.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bindery_core::{escape, image};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const CASES: usize = 5000;

fn python() -> String {
    std::env::var("BINDERY_PYTHON").unwrap_or_else(|_| {
        panic!("BINDERY_PYTHON is not set: run the tests with `cargo xtask test`, which creates target/pyenv with escapism")
    })
}

fn slug_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._/-]{0,80}",
        "\\PC{0,60}",
        ".{0,300}",
        proptest::collection::vec(
            prop_oneof![
                Just('é'),
                Just('-'),
                Just('_'),
                Just('\u{1F600}'),
                Just('\n'),
                Just('a'),
                Just('中')
            ],
            0..40
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

#[test]
fn image_and_build_names_match_binderhub_with_real_escapism() {
    let mut runner = TestRunner::new(Config {
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..Config::default()
    });
    let strategy = (
        slug_strategy(),
        "[0-9a-f]{40}|[0-9]{1,9}(\\.v[0-9]{1,3})?",
        prop_oneof![
            Just(String::new()),
            Just("registry.example.org/binder/i-".to_string()),
            "[a-z0-9./-]{0,120}"
        ],
    );
    let cases: Vec<(String, String, String)> = (0..CASES)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generate a case")
                .current()
        })
        .collect();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/binderhub_naming.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut stdin = child.stdin.take().unwrap();
    let input: String = cases
        .iter()
        .map(|(slug, r, prefix)| format!("{}\n", json!({"slug": slug, "ref": r, "prefix": prefix})))
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let answers: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| {
            serde_json::from_str(&l.expect("read python output")).expect("python printed JSON")
        })
        .collect();
    writer.join().unwrap().expect("write cases to python");
    assert!(
        child.wait().expect("wait for python").success(),
        "the python side failed"
    );
    assert_eq!(answers.len(), cases.len());

    for ((slug, r, prefix), want) in cases.iter().zip(&answers) {
        assert_eq!(
            escape::escape_alnum(slug, '-'),
            want["escaped"],
            "escaping {slug:?}"
        );
        assert_eq!(
            image::image_name(prefix, slug, r),
            want["image"],
            "image name of {slug:?} {prefix:?}"
        );
        assert_eq!(
            image::build_name(slug, r),
            want["build"],
            "build name of {slug:?}"
        );
    }
}
