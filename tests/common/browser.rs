//! Headless Chromium: what a page renders to.

use std::path::Path;
use std::process::Command;

use super::{in_ns, require_tools, run};

/// What headless Chromium (Debian's package) made of a page.
pub struct Rendered {
    /// The DOM after rendering (`--dump-dom`).
    pub dom: String,
    /// A PNG screenshot, `WIDTH` x `HEIGHT`.
    pub png: Vec<u8>,
}

impl Rendered {
    pub const WIDTH: u32 = 1000;
    pub const HEIGHT: u32 = 1100;

    /// Whether the rightmost `columns` of the screenshot are all the
    /// background (the top-left pixel's colour): nothing ran off the page.
    pub fn right_edge_is_clear(&self, columns: u32) -> bool {
        let decoder = png::Decoder::new(std::io::Cursor::new(&self.png));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("a frame");
        let px = info.color_type.samples();
        let at = |x: u32, y: u32| {
            let i = (y as usize * info.line_size) + x as usize * px;
            &buf[i..i + px]
        };
        let background = at(0, 0).to_vec();
        (info.width - columns..info.width)
            .all(|x| (0..info.height).all(|y| at(x, y) == background.as_slice()))
    }

    /// The PNG's width and height, from its IHDR chunk.
    pub fn png_size(&self) -> (u32, u32) {
        assert_eq!(&self.png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let be = |i: usize| u32::from_be_bytes(self.png[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }
}

/// Opens `url` in headless Chromium inside namespace `ns`, with a profile
/// in `dir`: the DOM it rendered and a screenshot.
pub fn chromium(ns: &str, url: &str, dir: &Path) -> Rendered {
    require_tools(&["chromium"]);
    let profile = dir.join("chromium-profile");
    let shot = dir.join("landing.png");
    let base = |cmd: &mut Command| {
        cmd.args([
            "timeout",
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    };
    let mut dump = in_ns(ns);
    base(&mut dump);
    let dom = run(dump.args(["--dump-dom", url]));
    let mut screenshot = in_ns(ns);
    base(&mut screenshot);
    run(screenshot
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!(
            "--window-size={},{}",
            Rendered::WIDTH,
            Rendered::HEIGHT
        ))
        .arg(url));
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    Rendered { dom, png }
}
