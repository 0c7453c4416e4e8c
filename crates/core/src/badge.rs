//! Badges as SVG, in the flat style READMEs already show for mybinder.org.
//!
//! The edge answers `/badge.svg`, `/badge_logo.svg` and the live `/status/…svg` itself,
//! without a font or a renderer, so text is measured with a built-in table of Verdana
//! 11px advance widths. The shapes follow the shields.io flat look (a grey label box and
//! a coloured message box, 20px high, 3px rounded corners, text with a 1px shadow) so a
//! Bindery badge sits comfortably next to other badges. Label and message may come from
//! users, so they are XML-escaped and colours are checked against a strict syntax.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The colour of the launch badge's message box (mybinder.org's blue).
pub const BINDER_BLUE: &str = "#579ACA";

/// The label box colour.
const LABEL_COLOR: &str = "#555";
/// The colour used when a requested one is not acceptable.
const FALLBACK_COLOR: &str = "#9f9f9f";
/// Space left and right of each text, in px.
const PADDING: u64 = 5;
/// Room taken by the logo (its width plus the gap before the label text), in px.
const LOGO_ROOM: u64 = 14 + 3;

/// Colour names accepted by [`badge`], with shields.io's values.
const NAMED_COLORS: [(&str, &str); 12] = [
    ("brightgreen", "#4c1"),
    ("green", "#97ca00"),
    ("yellowgreen", "#a4a61d"),
    ("yellow", "#dfb317"),
    ("orange", "#fe7d37"),
    ("red", "#e05d44"),
    ("blue", "#007ec6"),
    ("grey", "#555"),
    ("gray", "#555"),
    ("lightgrey", "#9f9f9f"),
    ("lightgray", "#9f9f9f"),
    ("binder", BINDER_BLUE),
];

/// Advance widths of Verdana at 11px for `' '..='~'`, in tenths of a pixel.
const WIDTHS: [u8; 95] = [
    39, 43, 51, 98, 73, 117, 86, 30, 49, 49, 73, 98, 39, 45, 39, 49, // ' ' to '/'
    70, 70, 70, 70, 70, 70, 70, 70, 70, 70, // '0' to '9'
    49, 49, 98, 98, 98, 60, 120, // ':' to '@'
    75, 76, 77, 85, 70, 63, 85, 83, 46, 51, 76, 63, 93, // 'A' to 'M'
    83, 87, 66, 87, 77, 75, 68, 81, 75, 109, 75, 68, 75, // 'N' to 'Z'
    49, 49, 49, 98, 70, 70, // '[' to '`'
    66, 68, 58, 68, 66, 39, 68, 70, 30, 38, 64, 30, 107, // 'a' to 'm'
    70, 67, 68, 68, 47, 57, 43, 70, 64, 90, 64, 64, 58, // 'n' to 'z'
    70, 49, 70, 98, // '{' to '~'
];
/// The width given to characters outside the table, in tenths of a pixel.
const AVERAGE_WIDTH: u64 = 70;

/// What the live badge says about a repository's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildStatus {
    /// The image exists: a launch starts right away.
    Ready,
    /// A build is running or queued.
    Building,
    /// No image and no build.
    NotBuilt,
    /// The last build failed.
    Failed,
}

impl BuildStatus {
    /// The badge text.
    pub fn label(self) -> &'static str {
        match self {
            BuildStatus::Ready => "ready",
            BuildStatus::Building => "building",
            BuildStatus::NotBuilt => "not built",
            BuildStatus::Failed => "failed",
        }
    }

    /// The message box colour.
    pub fn color(self) -> &'static str {
        match self {
            BuildStatus::Ready => "#4c1",
            BuildStatus::Building => "#dfb317",
            BuildStatus::NotBuilt => "#9f9f9f",
            BuildStatus::Failed => "#e05d44",
        }
    }
}

/// The "launch | binder" badge that links to a launch.
pub fn launch_badge() -> String {
    render("launch", "binder", BINDER_BLUE, false)
}

/// The "launch | binder" badge with the logo before "launch".
pub fn launch_badge_logo() -> String {
    render("launch", "binder", BINDER_BLUE, true)
}

/// The live badge for a repository: "binder | <status>".
pub fn status_badge(status: BuildStatus) -> String {
    render("binder", status.label(), status.color(), false)
}

/// A flat badge with any label, message and colour.
///
/// `color` is `#` with 3 or 6 hex digits, or one of `brightgreen`, `green`,
/// `yellowgreen`, `yellow`, `orange`, `red`, `blue`, `grey`, `lightgrey`, `binder`;
/// anything else gives light grey.
pub fn badge(label: &str, message: &str, color: &str) -> String {
    render(label, message, resolve_color(color), false)
}

/// A strong ETag for a badge: the first 16 hex digits of its SHA-256, quoted.
pub fn etag(svg: &str) -> String {
    etag_of_bytes(svg.as_bytes())
}

/// The strong ETag of any body: a quoted hash prefix, as [`etag`].
pub fn etag_of_bytes(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", crate::hex::lower(&digest[..8]))
}

fn resolve_color(color: &str) -> &str {
    let hex = color.strip_prefix('#').is_some_and(|digits| {
        matches!(digits.len(), 3 | 6) && digits.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if hex {
        return color;
    }
    NAMED_COLORS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(color))
        .map_or(FALLBACK_COLOR, |&(_, value)| value)
}

/// The rendered width of `text` in Verdana 11px, in whole pixels (rounded up).
fn text_width(text: &str) -> u64 {
    let tenths = text.chars().fold(0u64, |sum, c| {
        let width = u32::from(c)
            .checked_sub(u32::from(' '))
            .and_then(|i| WIDTHS.get(usize::try_from(i).ok()?))
            .map_or(AVERAGE_WIDTH, |&w| u64::from(w));
        sum.saturating_add(width)
    });
    tenths.div_ceil(10)
}

fn render(label: &str, message: &str, color: &str, logo: bool) -> String {
    let label_text = text_width(label);
    let message_text = text_width(message);
    let logo_room = if logo { LOGO_ROOM } else { 0 };
    let label_width = (label_text + 2 * PADDING).saturating_add(logo_room);
    let message_width = message_text.saturating_add(2 * PADDING);
    let width = label_width.saturating_add(message_width);
    // Centres in half pixels, so odd widths need no floating point.
    let label_centre = half(2 * (PADDING + logo_room) + label_text);
    let message_centre = half(label_width.saturating_mul(2).saturating_add(message_width));
    let label = escape_xml(label);
    let message = escape_xml(message);

    let mut svg = String::with_capacity(1200 + 4 * (label.len() + message.len()));
    let _ = write!(
        svg,
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{l}: {m}">"#,
            "<title>{l}: {m}</title>",
            r##"<linearGradient id="shine" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##,
            r##"<clipPath id="round"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>"##,
            r#"<g clip-path="url(#round)"><rect width="{lw}" height="20" fill="{lc}"/>"#,
            r#"<rect x="{lw}" width="{mw}" height="20" fill="{c}"/><rect width="{w}" height="20" fill="url(#shine)"/></g>"#,
        ),
        w = width,
        lw = label_width,
        mw = message_width,
        lc = LABEL_COLOR,
        c = color,
        l = label,
        m = message,
    );
    if logo {
        svg.push_str(concat!(
            r#"<g fill="none" stroke-width="1.6" aria-hidden="true">"#,
            r##"<circle cx="9" cy="7.2" r="2.6" stroke="#F5A252"/>"##,
            r##"<circle cx="15" cy="7.2" r="2.6" stroke="#579ACA"/>"##,
            r##"<circle cx="12" cy="12.8" r="2.6" stroke="#E66581"/></g>"##,
        ));
    }
    svg.push_str(r##"<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">"##);
    push_text(&mut svg, &label_centre, label_text, &label);
    push_text(&mut svg, &message_centre, message_text, &message);
    svg.push_str("</g></svg>");
    svg
}

/// One text with its shadow; `textLength` makes other fonts take the measured width.
fn push_text(svg: &mut String, x: &str, width: u64, text: &str) {
    let length = if width > 0 {
        format!(r#" textLength="{width}""#)
    } else {
        String::new()
    };
    let _ = write!(
        svg,
        concat!(
            r##"<text x="{x}" y="15" fill="#010101" fill-opacity=".3" aria-hidden="true"{len}>{t}</text>"##,
            r#"<text x="{x}" y="14"{len}>{t}</text>"#,
        ),
        x = x,
        len = length,
        t = text,
    );
}

/// Formats a length given in half pixels.
fn half(halves: u64) -> String {
    if halves.is_multiple_of(2) {
        (halves / 2).to_string()
    } else {
        format!("{}.5", halves / 2)
    }
}

/// Escapes text for XML and HTML content and attributes; characters XML cannot carry
/// become U+FFFD. Badges and the edge's HTML pages both use it.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks what a renderer needs: one root, matched tags, quoted attributes, no raw
    /// `<` or `&` in text.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches('"').count() % 2, 0, "unbalanced quotes: {svg}");
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert!(!text.contains('>'), "stray > in {text:?}");
            for (at, _) in text.match_indices('&') {
                let entity = &text[at..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "raw & in {text:?}"
                );
            }
            let end = rest[start..]
                .find('>')
                .map(|e| start + e)
                .expect("unclosed tag");
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "< inside tag {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or_default();
                open.push(name);
            }
            rest = &rest[end + 1..];
            if open.is_empty() {
                assert!(rest.is_empty(), "content after the root: {rest:?}");
            }
        }
        assert!(open.is_empty(), "unclosed {open:?}");
    }

    fn svg_width(svg: &str) -> u64 {
        let after = svg.split_once(" width=\"").unwrap().1;
        after.split_once('"').unwrap().0.parse().unwrap()
    }

    #[test]
    fn every_fixed_badge_is_well_formed_and_says_what_it_should() {
        let cases = [
            (launch_badge(), ["launch", "binder"]),
            (launch_badge_logo(), ["launch", "binder"]),
            (status_badge(BuildStatus::Ready), ["binder", "ready"]),
            (status_badge(BuildStatus::Building), ["binder", "building"]),
            (status_badge(BuildStatus::NotBuilt), ["binder", "not built"]),
            (status_badge(BuildStatus::Failed), ["binder", "failed"]),
        ];
        for (svg, texts) in cases {
            assert_well_formed(&svg);
            for text in texts {
                assert!(svg.contains(&format!(">{text}</text>")), "{text} in {svg}");
            }
            let title = format!("<title>{}: {}</title>", texts[0], texts[1]);
            assert!(svg.contains(&title), "{svg}");
            assert!(svg.contains(&format!("aria-label=\"{}: {}\"", texts[0], texts[1])));
            assert!(
                svg.contains("role=\"img\"")
                    && svg.contains("height=\"20\"")
                    && svg.contains("rx=\"3\"")
            );
        }
    }

    #[test]
    fn the_launch_badges_use_binder_blue_and_only_one_has_the_logo() {
        assert!(launch_badge().contains("fill=\"#579ACA\""));
        assert!(launch_badge_logo().contains("fill=\"#579ACA\""));
        assert!(!launch_badge().contains("<circle"));
        assert_eq!(launch_badge_logo().matches("<circle").count(), 3);
        assert_eq!(
            svg_width(&launch_badge_logo()),
            svg_width(&launch_badge()) + LOGO_ROOM
        );
    }

    #[test]
    fn each_status_gives_its_own_colour_badge_and_etag() {
        let all = [
            BuildStatus::Ready,
            BuildStatus::Building,
            BuildStatus::NotBuilt,
            BuildStatus::Failed,
        ];
        let colors = ["#4c1", "#dfb317", "#9f9f9f", "#e05d44"];
        for (status, color) in all.iter().zip(colors) {
            assert_eq!(status.color(), color);
            assert!(status_badge(*status).contains(&format!("fill=\"{color}\"")));
        }
        let mut tags: Vec<String> = all.iter().map(|s| etag(&status_badge(*s))).collect();
        let mut svgs: Vec<String> = all.iter().map(|s| status_badge(*s)).collect();
        tags.sort();
        tags.dedup();
        svgs.sort();
        svgs.dedup();
        assert_eq!((tags.len(), svgs.len()), (4, 4));
    }

    #[test]
    fn hostile_text_is_escaped() {
        let svg = badge("<script>alert('x')</script>", "a\"b&c>\u{0}\u{1b}", "red");
        assert_well_formed(&svg);
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt;"));
        assert!(svg.contains("a&quot;b&amp;c&gt;\u{FFFD}\u{FFFD}"));
        assert!(!svg.contains('\u{0}'));
    }

    #[test]
    fn colours_are_accepted_only_in_strict_forms() {
        let cases = [
            ("#abc", "#abc"),
            ("#A1B2C3", "#A1B2C3"),
            ("red", "#e05d44"),
            ("BrightGreen", "#4c1"),
            ("binder", BINDER_BLUE),
            ("#abcd", FALLBACK_COLOR),
            ("#ggg", FALLBACK_COLOR),
            ("abc", FALLBACK_COLOR),
            ("", FALLBACK_COLOR),
            ("#", FALLBACK_COLOR),
            ("red\" onload=\"x", FALLBACK_COLOR),
            ("url(#shine)", FALLBACK_COLOR),
            ("#ééé", FALLBACK_COLOR),
        ];
        for (color, want) in cases {
            assert_eq!(resolve_color(color), want, "{color:?}");
            assert!(
                badge("a", "b", color).contains(&format!("fill=\"{want}\"")),
                "{color:?}"
            );
        }
    }

    #[test]
    fn text_widths_follow_the_verdana_table() {
        let cases = [
            ("", 0),
            ("i", 3),
            ("l.", 7),
            ("m", 11),
            ("W", 11),
            ("launch", 37),
            ("binder", 35),
            ("é", 7),
            ("\u{1F600}", 7),
        ];
        for (text, want) in cases {
            assert_eq!(text_width(text), want, "{text:?}");
        }
    }

    #[test]
    fn the_badge_grows_with_its_text() {
        let mut last = 0;
        for n in 0..20 {
            let width = svg_width(&badge("binder", &"x".repeat(n), "blue"));
            assert!(width > last || n == 0, "{n}: {width} <= {last}");
            last = width;
        }
        assert!(svg_width(&badge("wwww", "b", "red")) > svg_width(&badge("iiii", "b", "red")));
    }

    #[test]
    fn odd_widths_centre_text_on_half_pixels() {
        assert_eq!(half(7), "3.5");
        assert_eq!(half(8), "4");
        let svg = badge("i", "", "red");
        assert_well_formed(&svg);
        assert!(svg.contains("x=\"6.5\""), "{svg}");
    }

    #[test]
    fn etags_are_quoted_stable_and_content_dependent() {
        let tag = etag(&launch_badge());
        assert_eq!(tag, etag(&launch_badge()));
        assert_eq!(tag.len(), 18);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert!(
            tag[1..17]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(tag, etag(&launch_badge_logo()));
        // SHA-256("") begins e3b0c44298fc1c14.
        assert_eq!(etag(""), "\"e3b0c44298fc1c14\"");
    }
}
