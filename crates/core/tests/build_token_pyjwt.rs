//! Build tokens against PyJWT, which BinderHub mints and checks them with.
//!
//! Tokens minted here must verify in PyJWT, tokens PyJWT mints must verify here, and a
//! tampered, expired or foreign-link token must be refused by both. The venv that
//! `cargo xtask test` prepares under `target/pyenv` has `pyjwt`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use bindery_core::build_token::{BuildTokenError, Claims, mint, verify};
use serde_json::{Value, json};

const SECRET: &[u8] = b"a shared secret of 32 bytes long";

/// Reads `{"mint": [...], "verify": [...]}` and answers `{"minted": [...], "verified": [...]}`,
/// each verification "ok" or the PyJWT exception's class name.
const SCRIPT: &str = r#"
import json, sys, jwt
req = json.load(sys.stdin)
secret = bytes.fromhex(req["secret"])
minted = [jwt.encode(c, secret, algorithm="HS256") for c in req["mint"]]
verified = []
for case in req["verify"]:
    try:
        jwt.decode(case["token"], secret, audience=case["aud"], algorithms=["HS256"])
        verified.append("ok")
    except jwt.PyJWTError as e:
        verified.append(type(e).__name__)
json.dump({"minted": minted, "verified": verified}, sys.stdout)
"#;

fn python(request: &Value) -> Value {
    let python = std::env::var("BINDERY_PYTHON").unwrap_or_else(|_| {
        panic!("BINDERY_PYTHON is not set: run the tests with `cargo xtask test`, which creates target/pyenv with pyjwt")
    });
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn tamper(token: &str) -> String {
    // Flip one character of the signature.
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn tokens_agree_with_pyjwt_both_ways_and_both_refuse_the_same_bad_ones() {
    let now = now();
    let aud = "gl/group%2Fproject/main";
    let ours = mint(
        SECRET,
        &Claims {
            aud: aud.into(),
            origin: "binder.example:8000".into(),
            exp: now + 300,
        },
    );
    let expired = mint(
        SECRET,
        &Claims {
            aud: aud.into(),
            origin: "o".into(),
            exp: now - 10,
        },
    );
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    // Each case: the token, the audience asked for, what PyJWT says, what we say.
    let cases: Vec<(String, &str, &str, Result<(), BuildTokenError>)> = vec![
        (ours.clone(), aud, "ok", Ok(())),
        (
            tamper(&ours),
            aud,
            "InvalidSignatureError",
            Err(BuildTokenError::Signature),
        ),
        (
            expired,
            aud,
            "ExpiredSignatureError",
            Err(BuildTokenError::Expired),
        ),
        (
            ours.clone(),
            "gh/o/r/HEAD",
            "InvalidAudienceError",
            Err(BuildTokenError::Audience),
        ),
    ];
    let answer = python(&json!({
        "secret": hex,
        "mint": [
            {"aud": aud, "origin": "binder.example:8000", "exp": now + 300},
            {"aud": aud, "origin": "o", "exp": now - 10},
        ],
        "verify": cases.iter().map(|(t, a, _, _)| json!({"token": t, "aud": a})).collect::<Vec<_>>(),
    }));
    for ((token, aud, theirs, ours), verdict) in
        cases.iter().zip(answer["verified"].as_array().unwrap())
    {
        assert_eq!(verdict, theirs, "pyjwt on {token} for {aud}");
        assert_eq!(
            &verify(SECRET, token, aud, now).map(|_| ()),
            ours,
            "us on {token} for {aud}"
        );
    }
    let minted = answer["minted"].as_array().unwrap();
    let theirs = minted[0].as_str().unwrap();
    assert_eq!(
        verify(SECRET, theirs, aud, now),
        Ok(Some("binder.example:8000".into())),
        "a PyJWT token verifies here"
    );
    assert_eq!(
        verify(SECRET, &tamper(theirs), aud, now),
        Err(BuildTokenError::Signature)
    );
    assert_eq!(
        verify(b"another secret of 32 bytes long!", theirs, aud, now),
        Err(BuildTokenError::Signature)
    );
    assert_eq!(
        verify(SECRET, theirs, "gh/o/r/HEAD", now),
        Err(BuildTokenError::Audience)
    );
    assert_eq!(
        verify(SECRET, minted[1].as_str().unwrap(), aud, now),
        Err(BuildTokenError::Expired)
    );
}
