//! Who may launch what, and how many: BinderHub's operator policy as plain functions.
//!
//! mybinder.org runs on donated capacity and is a target for abuse (crypto-mining), so
//! BinderHub grew several independent brakes, all kept here with BinderHub's semantics
//! and messages because operators port their configuration as it is:
//!
//! - [`SpecPolicy`]: ban and allow lists, high-quota specs and per-repo configuration,
//!   regexes matched like Python's `re.match` with `IGNORECASE` (§1.5, §1.6);
//! - [`check_quota`]: the total and per-repository limits on running servers (§1.5);
//! - [`BanNetworks`]: client IP bans by CIDR (§1.6);
//! - [`RateLimiter`]: the fixed-window per-IP limit on `/build` calls (§1.7);
//! - [`parse_byte_spec`]: memory sizes written `2G`, `512M`, `1.5T`.
//!
//! Nothing here reads a clock; time arrives as `now` in unix seconds.

mod bytes;
mod network;
mod quota;
mod rate;
mod spec;

use thiserror::Error;

pub use bytes::parse_byte_spec;
pub use network::{BanNetworks, client_address, ip_banned_message, ip_in_networks};
pub use quota::{
    QuotaCount, QuotaDecision, TOTAL_QUOTA_MESSAGE, check_quota, count_running, image_without_tag,
    repo_quota_message,
};
pub use rate::{RateLimitState, RateLimiter, RateWindow, count_request, rate_limit_message};
pub use spec::{
    SpecList, SpecPatterns, SpecPolicy, SpecPolicyConfig, banned_message, quota_from_repo_config,
    repo_config_from_value,
};

/// A policy setting that cannot be used; the message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// A pattern of one of the [`SpecList`]s that does not compile.
    #[error(
        "failed to compile `{}` pattern {pattern}: {reason} \
         (patterns use Rust regex syntax: no look-around or backreferences)",
        list.setting()
    )]
    InvalidPattern {
        /// The setting the pattern comes from.
        list: SpecList,
        /// The pattern, truncated and escaped.
        pattern: String,
        /// The compiler's explanation.
        reason: String,
    },
    /// A `spec_config` that is not a list of `{"pattern": <string>, "config": <object>}`.
    #[error("invalid `spec_config`{}: {reason}", index.map(|i| format!(" entry {i}")).unwrap_or_default())]
    InvalidSpecConfig {
        /// The position of the bad entry, when the list itself is fine.
        index: Option<usize>,
        /// What is wrong.
        reason: &'static str,
    },
    /// A repo config whose `quota` is not a non-negative integer.
    #[error("invalid repo config `quota`: expected a non-negative integer below 2^32 or null")]
    InvalidQuota,
    /// A `ban_networks` entry that is not an IP address or CIDR network.
    #[error("invalid ban network {cidr}: {reason}")]
    InvalidNetwork {
        /// The entry, truncated and escaped.
        cidr: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A memory size that is not bytes or a number with a K/M/G/T suffix.
    #[error("invalid byte size {input}: {reason}")]
    InvalidByteSpec {
        /// The input, truncated and escaped.
        input: String,
        /// What is wrong.
        reason: &'static str,
    },
}
