//! BinderHub's favicons (`/favicon.ico`, `/favicon_building.ico`, `/favicon_success.ico`,
//! `/favicon_fail.ico`): a loading page switches between them as a launch goes, and pages
//! that copied BinderHub's switch them by these paths.
//!
//! Each is a 16×16 icon in the ICO format, drawn here (a disc in the state's colour on a
//! transparent ground) rather than shipped as a binary: one 32-bit BGRA bitmap, bottom row
//! first, with an all-zero AND mask since the alpha channel says what is transparent.

/// Which icon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Favicon {
    /// `/favicon.ico`: Binder's blue.
    Default,
    /// `/favicon_building.ico`: orange.
    Building,
    /// `/favicon_success.ico`: green.
    Success,
    /// `/favicon_fail.ico`: red.
    Fail,
}

/// The side of the icon, in pixels.
pub const SIZE: u32 = 16;

impl Favicon {
    /// The icon served at `path`, if it is one of BinderHub's favicon paths.
    pub fn from_path(path: &str) -> Option<Favicon> {
        match path {
            "/favicon.ico" => Some(Favicon::Default),
            "/favicon_building.ico" => Some(Favicon::Building),
            "/favicon_success.ico" => Some(Favicon::Success),
            "/favicon_fail.ico" => Some(Favicon::Fail),
            _ => None,
        }
    }

    /// The disc's colour, as `[red, green, blue]`.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Favicon::Default => [0x57, 0x9a, 0xca],
            Favicon::Building => [0xf5, 0xa2, 0x52],
            Favicon::Success => [0x44, 0xcc, 0x11],
            Favicon::Fail => [0xe0, 0x5d, 0x44],
        }
    }

    /// The icon file.
    pub fn ico(self) -> Vec<u8> {
        let pixels = (SIZE * SIZE * 4) as usize;
        let mask = (SIZE * 4) as usize; // 16 bits per row, rows padded to 32 bits
        let image = 40 + pixels + mask;
        let mut out = Vec::with_capacity(6 + 16 + image);
        // ICONDIR: reserved, type 1 (icon), one image.
        for v in [0u16, 1, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        // ICONDIRENTRY: 16×16, no palette, 1 plane, 32 bits, size, offset.
        out.extend_from_slice(&[SIZE as u8, SIZE as u8, 0, 0]);
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&32u16.to_le_bytes());
        out.extend_from_slice(&(image as u32).to_le_bytes());
        out.extend_from_slice(&22u32.to_le_bytes());
        // BITMAPINFOHEADER: the height counts the image and its mask.
        out.extend_from_slice(&40u32.to_le_bytes());
        out.extend_from_slice(&SIZE.to_le_bytes());
        out.extend_from_slice(&(SIZE * 2).to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&32u16.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // no compression
        out.extend_from_slice(&((pixels + mask) as u32).to_le_bytes());
        out.extend_from_slice(&[0; 16]); // resolution and palette counts
        let [r, g, b] = self.rgb();
        let centre = (SIZE as f32 - 1.0) / 2.0;
        let radius = SIZE as f32 / 2.0 - 0.5;
        for y in 0..SIZE {
            for x in 0..SIZE {
                let (dx, dy) = (x as f32 - centre, y as f32 - centre);
                let inside = dx * dx + dy * dy <= radius * radius;
                let alpha = if inside { 0xff } else { 0 };
                out.extend_from_slice(&[b, g, r, alpha]);
            }
        }
        out.resize(out.len() + mask, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    #[test]
    fn each_icon_is_a_16_pixel_ico_with_a_disc_of_its_colour() {
        for (path, icon) in [
            ("/favicon.ico", Favicon::Default),
            ("/favicon_building.ico", Favicon::Building),
            ("/favicon_success.ico", Favicon::Success),
            ("/favicon_fail.ico", Favicon::Fail),
        ] {
            assert_eq!(Favicon::from_path(path), Some(icon));
            let ico = icon.ico();
            assert_eq!(
                &ico[..6],
                &[0, 0, 1, 0, 1, 0],
                "an icon directory of one image"
            );
            assert_eq!((ico[6], ico[7]), (16, 16));
            assert_eq!(u16_at(&ico, 12), 32, "32 bits per pixel");
            let (size, offset) = (u32_at(&ico, 14) as usize, u32_at(&ico, 18) as usize);
            assert_eq!(offset, 22);
            assert_eq!(offset + size, ico.len());
            assert_eq!(u32_at(&ico, 22), 40, "a BITMAPINFOHEADER");
            assert_eq!((u32_at(&ico, 26), u32_at(&ico, 30)), (16, 32));
            let pixel = |x: usize, y: usize| {
                let at = 22 + 40 + (y * 16 + x) * 4;
                [ico[at + 2], ico[at + 1], ico[at], ico[at + 3]]
            };
            let [r, g, b] = icon.rgb();
            assert_eq!(
                pixel(8, 8),
                [r, g, b, 0xff],
                "{path}: the centre is the colour"
            );
            assert_eq!(pixel(0, 0)[3], 0, "{path}: a corner is transparent");
        }
        assert_eq!(Favicon::from_path("/favicon.png"), None);
        assert_ne!(Favicon::Success.ico(), Favicon::Fail.ico());
    }
}
