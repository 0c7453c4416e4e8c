//! Escaping compatible with the `escapism` Python package, which BinderHub uses to turn
//! build slugs into image names.
//!
//! Every character outside the safe set is replaced, one UTF-8 byte at a time, by the
//! escape character followed by the byte in upper-case hexadecimal *without* zero padding
//! (`\n` becomes `-A`, `é` becomes `-C3-A9`). The escape character itself is never safe.
//! Image names of existing registries depend on this being bit-identical.

/// Escapes `input`, keeping ASCII letters and digits and escaping everything else with `escape_char`.
pub fn escape_alnum(input: &str, escape_char: char) -> String {
    escape(input, |c| c.is_ascii_alphanumeric(), escape_char)
}

/// Escapes `input`, keeping the characters for which `safe` is true.
///
/// The escape character is escaped even when `safe` accepts it, as escapism does without
/// `allow_collisions`.
pub fn escape(input: &str, safe: impl Fn(char) -> bool, escape_char: char) -> String {
    let mut out = String::with_capacity(input.len());
    let mut buf = [0u8; 4];
    for c in input.chars() {
        if c != escape_char && safe(c) {
            out.push(c);
            continue;
        }
        for byte in c.encode_utf8(&mut buf).bytes() {
            out.push(escape_char);
            // Upper-case hex without a leading zero, as escapism writes it.
            const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
            if byte >= 0x10 {
                out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            }
            out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_escapism() {
        let cases = [
            ("binder-examples-octave", "binder-2Dexamples-2Doctave"),
            ("Org_Name-Repo.Name", "Org-5FName-2DRepo-2EName"),
            ("user-répo", "user-2Dr-C3-A9po"),
            ("a\nb", "a-Ab"),
            ("ssh://git@x", "ssh-3A-2F-2Fgit-40x"),
            ("", ""),
            ("😀", "-F0-9F-98-80"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_alnum(input, '-'), expected, "{input:?}");
        }
    }

    #[test]
    fn the_escape_character_is_never_safe() {
        assert_eq!(escape("a_b", |_| true, '_'), "a_5Fb");
    }
}
