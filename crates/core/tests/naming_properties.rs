//! Properties of image and build names over arbitrary slugs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use bindery_core::image::{build_name, image_name};
use proptest::prelude::*;

const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn image_names_are_at_most_255_characters_before_the_tag(slug in ".{0,400}", prefix in "[a-z0-9./:-]{0,120}") {
        let name = image_name(&prefix, &slug, SHA);
        let (repo, tag) = name.rsplit_once(':').unwrap();
        prop_assert!(repo.chars().count() <= 255, "{} chars", repo.chars().count());
        prop_assert_eq!(tag, SHA);
        prop_assert!(!name.contains('_'));
        prop_assert_eq!(name.to_lowercase(), name.clone());
    }

    #[test]
    fn build_names_are_dns_labels(slug in ".{0,400}", git_ref in "[0-9a-f]{40}|[a-zA-Z0-9._-]{1,60}") {
        let name = build_name(&slug, &git_ref);
        prop_assert!(name.len() <= 63);
        prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{}", name);
        prop_assert!(name.as_bytes()[0].is_ascii_alphanumeric());
        prop_assert!(name.as_bytes()[name.len() - 1].is_ascii_alphanumeric());
    }

    #[test]
    fn the_same_slug_always_yields_the_same_names(slug in ".{0,200}") {
        prop_assert_eq!(image_name("p/", &slug, SHA), image_name("p/", &slug, SHA));
        prop_assert_eq!(build_name(&slug, SHA), build_name(&slug, SHA));
    }

    #[test]
    fn different_raw_slugs_give_different_image_names(a in ".{0,300}", b in ".{0,300}") {
        prop_assume!(a != b);
        prop_assert_ne!(image_name("r.example/x/", &a, SHA), image_name("r.example/x/", &b, SHA));
    }

    #[test]
    fn slugs_differing_only_in_case_still_differ(slug in "[a-z]{1,30}") {
        prop_assert_ne!(image_name("", &slug, SHA), image_name("", &slug.to_uppercase(), SHA));
    }
}
