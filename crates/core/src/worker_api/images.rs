//! `GET /api/v1/images?image=<image>`: whether the worker finds an image where its builds
//! put it. An edge configured without a registry (`use_registry = false`, BinderHub's
//! setting of that name: images stay in the build engine of a single machine) asks this
//! instead of a registry; the worker asks its registry when it has one, else its engine.
//!
//! The name reaches a container engine's command line, so the worker takes only a name of
//! the shape [`crate::image::image_name`] gives under its own prefix: the prefix, then the
//! escaped slug's characters, one `:` and a tag of Docker's tag characters.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::image::MAX_REPOSITORY_LEN;
use crate::validate::shown;

/// The path of the image lookup.
pub const IMAGES_PATH: &str = "/api/v1/images";

/// The longest tag Docker accepts.
pub const MAX_TAG_LEN: usize = 128;

/// The answer of `GET /api/v1/images?image=<image>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageAnswer {
    /// The image asked about.
    pub image: String,
    /// Whether the worker's registry (or, without one, its build engine) has it.
    pub present: bool,
}

/// Why the worker refuses to look an image up (it answers 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageQueryError {
    /// The name does not start with the worker's image prefix.
    #[error("image {image} is not under this worker's image prefix {prefix}")]
    OtherPrefix {
        /// The name, escaped.
        image: String,
        /// The worker's prefix.
        prefix: String,
    },
    /// The name is not `<prefix><slug>:<tag>` with a slug and tag of image-name characters.
    #[error(
        "image {image} is not an image name Bindery gives: <prefix><slug>:<tag>, the slug of \
         lower-case letters, digits, '.', '-' (at most {MAX_REPOSITORY_LEN} characters in \
         all before the ':'), the tag of letters, digits, '_', '.', '-' (at most {MAX_TAG_LEN})"
    )]
    Shape {
        /// The name, escaped.
        image: String,
    },
}

/// Checks that `image` is a name [`crate::image::image_name`] could give under `prefix`,
/// before it reaches a registry or an engine's command line.
pub fn validate_image_query(prefix: &str, image: &str) -> Result<(), ImageQueryError> {
    let shape = || ImageQueryError::Shape {
        image: shown(image),
    };
    let Some(rest) = image.strip_prefix(prefix) else {
        return Err(ImageQueryError::OtherPrefix {
            image: shown(image),
            prefix: shown(prefix),
        });
    };
    let (slug, tag) = rest.split_once(':').ok_or_else(shape)?;
    let slug_ok = !slug.is_empty()
        && prefix.len() + slug.len() <= MAX_REPOSITORY_LEN
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let tag_ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if slug_ok && tag_ok {
        Ok(())
    } else {
        Err(shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::image_name;

    const PREFIX: &str = "localhost/binder-";
    const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";

    #[test]
    fn the_names_bindery_gives_pass_and_anything_else_is_refused() {
        for slug in [
            "binder-examples-requirements",
            "a",
            "grp/sub/project",
            &"x".repeat(400),
        ] {
            let name = image_name(PREFIX, slug, SHA);
            assert_eq!(validate_image_query(PREFIX, &name), Ok(()), "{name}");
        }
        let good = image_name(PREFIX, "o-r", SHA);
        assert!(matches!(
            validate_image_query("127.0.0.1:5000/binder-", &good),
            Err(ImageQueryError::OtherPrefix { .. })
        ));
        for bad in [
            format!("{PREFIX}o-r"),
            format!("{PREFIX}:{SHA}"),
            format!("{PREFIX}o-r:"),
            format!("{PREFIX}o-r:-x"),
            format!("{PREFIX}o-r:.x"),
            format!("{PREFIX}O-R:{SHA}"),
            format!("{PREFIX}o r:{SHA}"),
            format!("{PREFIX}o/r:{SHA}"),
            format!("{PREFIX}o-r:{SHA}:x"),
            format!("{PREFIX}o-r:{SHA}\n"),
            format!("{PREFIX}o-r:{}", "a".repeat(MAX_TAG_LEN + 1)),
            format!("{PREFIX}{}:{SHA}", "a".repeat(MAX_REPOSITORY_LEN)),
        ] {
            let err = validate_image_query(PREFIX, &bad).expect_err(&bad);
            assert!(matches!(err, ImageQueryError::Shape { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains('\n'), "escaped: {err}");
        }
    }
}
