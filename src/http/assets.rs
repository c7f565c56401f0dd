//! The original's null-content bodies, byte for byte (COMPATIBILITY.md §5.5).

pub const GIF: &[u8] = include_bytes!("../../include-docs/assets/pixel.gif");
pub const PNG: &[u8] = include_bytes!("../../include-docs/assets/pixel.png");
pub const JPEG: &[u8] = include_bytes!("../../include-docs/assets/pixel.jpg");
pub const SWF: &[u8] = include_bytes!("../../include-docs/assets/pixel.swf");
/// 1×1 icon served for any `.ico` path.
pub const ICO: &[u8] = include_bytes!("../../include-docs/assets/pixel.ico");
/// 16×16 logo served for `/favicon.ico` (the stats page links it).
pub const FAVICON: &[u8] = include_bytes!("../../include-docs/assets/favicon.ico");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Asset {
    Gif,
    Png,
    Jpeg,
    Swf,
    Ico,
    Favicon,
}

impl Asset {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Asset::Gif => GIF,
            Asset::Png => PNG,
            Asset::Jpeg => JPEG,
            Asset::Swf => SWF,
            Asset::Ico => ICO,
            Asset::Favicon => FAVICON,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sizes_and_sha256_match_the_original() {
        let want = [
            (
                Asset::Gif,
                42,
                "c218f622d55a39ccaf93d21f98b6fa83fc0526f483178a01f6026fab44b42599",
            ),
            (
                Asset::Png,
                67,
                "ebf4f635a17d10d6eb46ba680b70142419aa3220f228001a036d311a22ee9d2a",
            ),
            (
                Asset::Jpeg,
                159,
                "1d9a10bde3e1c0b6e310b8f10bf27e495e534315ffd7d5364c92514c2a55939f",
            ),
            (
                Asset::Swf,
                25,
                "9bfc6cc4938638d1625a52d4df53e28164aad860106f47fc0eaeaf77f0e6afef",
            ),
            (
                Asset::Ico,
                70,
                "87c22c0682f41ce4c9e2434d0bc7c7f1a9318d3d3c5968d8f34bca838ab23077",
            ),
            (
                Asset::Favicon,
                598,
                "4a1f124c1e55c790131467ac4ba99859083f95ef9cfd7cfcdb9044271527edfb",
            ),
        ];
        for (asset, len, sha) in want {
            assert_eq!(asset.bytes().len(), len, "{asset:?}");
            assert_eq!(hex(&openssl::sha::sha256(asset.bytes())), sha, "{asset:?}");
        }
    }

    #[test]
    fn byte_exact_small_assets() {
        assert_eq!(
            hex(GIF),
            "4749463839610100010080000001010100000021f90401000000002c00000000\
             0100010000020144003b"
        );
        assert_eq!(
            hex(SWF),
            "4657530519000000300a00a000010100430200000040000000"
        );
        assert_eq!(&PNG[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&JPEG[..2], b"\xff\xd8");
        assert_eq!(&JPEG[JPEG.len() - 2..], b"\xff\xd9");
        assert_eq!(&ICO[..4], b"\x00\x00\x01\x00");
        assert_eq!(&FAVICON[..4], b"\x00\x00\x01\x00");
    }
}
