//! Memory sizes as operators write them (`2T`, `123G`, `1.5G`, `1073741824`).
//!
//! Same reading as JupyterHub's `ByteSpecification`, which BinderHub's settings use:
//! 1024-based K/M/G/T suffixes (upper case only: `m` is "milli" to Kubernetes), a decimal
//! mantissa allowed with a suffix, the product truncated to whole bytes.

use super::PolicyError;

/// Parses a byte size: a plain integer is bytes; a decimal number followed by `K`, `M`,
/// `G` or `T` is multiplied by 1024, 1024², 1024³ or 1024⁴ and truncated. Negative, empty,
/// non-finite and overflowing values are errors.
pub fn parse_byte_spec(s: &str) -> Result<u64, PolicyError> {
    let invalid = |reason| PolicyError::InvalidByteSpec {
        input: crate::validate::shown(s),
        reason,
    };
    let text = s.trim();
    if text.is_empty() {
        return Err(invalid("it is empty"));
    }
    if text.starts_with('-') {
        return Err(invalid("it must not be negative"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| invalid("it is larger than 2^64 - 1 bytes"));
    }
    let (mantissa, multiplier) = match text.char_indices().next_back() {
        Some((at, 'K')) => (&text[..at], 1u64 << 10),
        Some((at, 'M')) => (&text[..at], 1 << 20),
        Some((at, 'G')) => (&text[..at], 1 << 30),
        Some((at, 'T')) => (&text[..at], 1 << 40),
        _ => {
            return Err(invalid(
                "expected a number of bytes, or a number followed by K, M, G or T (1024-based)",
            ));
        }
    };
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
    let dots = mantissa.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || digits + dots != mantissa.len() || dots > 1 {
        return Err(invalid("expected a decimal number before the unit"));
    }
    let overflow = || invalid("it is larger than 2^64 - 1 bytes");
    if dots == 0 {
        let n: u64 = mantissa.parse().map_err(|_| overflow())?;
        return n.checked_mul(multiplier).ok_or_else(overflow);
    }
    let value: f64 = mantissa
        .parse()
        .map_err(|_| invalid("expected a decimal number before the unit"))?;
    #[allow(clippy::cast_precision_loss)] // the multipliers are powers of two: exact in f64
    let bytes = value * multiplier as f64;
    // 2^64 as f64; anything at or above it does not fit.
    if !bytes.is_finite() || bytes >= 18_446_744_073_709_551_616.0 {
        return Err(overflow());
    }
    // In range and non-negative: the cast truncates like Python's int().
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_1024_based() {
        let cases = [
            ("2T", 2_199_023_255_552),
            ("123G", 132_070_244_352),
            ("1K", 1024),
            ("512M", 536_870_912),
            ("1.5G", 1_610_612_736),
            ("0.5K", 512),
            ("1.K", 1024),
            ("0", 0),
            ("1073741824", 1_073_741_824),
            (" 2G ", 2_147_483_648),
            (".5K", 512),
            ("0.0001K", 0),
            ("16777215T", 18_446_742_974_197_923_840),
            ("18446744073709551615", u64::MAX),
        ];
        for (input, want) in cases {
            assert_eq!(parse_byte_spec(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn invalid_sizes_are_errors() {
        for bad in [
            "",
            " ",
            "-1",
            "-1G",
            "G",
            "1.2.3G",
            "1g",
            "1Gi",
            "1 G",
            "NaNG",
            "infG",
            "1e3G",
            "+1G",
            "abc",
            "18446744073709551616",
            "16777216T",
            "99999999999999999999T",
            "1.0e400T",
            "1é",
            "é",
        ] {
            assert!(
                matches!(
                    parse_byte_spec(bad),
                    Err(PolicyError::InvalidByteSpec { .. })
                ),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(input in ".{0,40}", cidr in "[0-9a-f:./]{0,45}") {
            let _ = parse_byte_spec(&input);
            let _ = super::super::ip_in_networks(std::net::IpAddr::from([1, 2, 3, 4]), &[cidr.as_str()]);
            let _ = super::super::SpecPolicy::new(std::slice::from_ref(&input), &[], &[], serde_json::Value::Null);
        }

        #[test]
        fn whole_units_are_exact(n in 0u64..(1 << 24), unit in 0usize..4) {
            let (suffix, shift) = [("K", 10), ("M", 20), ("G", 30), ("T", 40)][unit];
            proptest::prop_assert_eq!(parse_byte_spec(&format!("{n}{suffix}")), Ok(n << shift));
        }
    }
}
