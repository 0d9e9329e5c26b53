//! The dashboard's stylesheet and script, embedded in the binary and served
//! under names that carry a hash of their content
//! (`/ui/static/dashboard.<hash>.css`), so they can be cached for a year.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    stem: &'static str,
    ext: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
    path: OnceLock<String>,
}

impl Asset {
    const fn new(
        stem: &'static str,
        ext: &'static str,
        content_type: &'static str,
        body: &'static str,
    ) -> Asset {
        Asset {
            stem,
            ext,
            content_type,
            body,
            path: OnceLock::new(),
        }
    }

    /// `/ui/static/<stem>.<8 hex of sha256>.<ext>`.
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| {
            let h = hex::encode(&Sha256::digest(self.body.as_bytes())[..4]);
            format!("/ui/static/{}.{h}.{}", self.stem, self.ext)
        })
    }
}

pub static CSS: Asset = Asset::new(
    "dashboard",
    "css",
    "text/css; charset=utf-8",
    include_str!("static/dashboard.css"),
);
pub static JS: Asset = Asset::new(
    "dashboard",
    "js",
    "text/javascript; charset=utf-8",
    include_str!("static/dashboard.js"),
);

/// The asset served at `file` (the last path segment), if any.
pub fn find(file: &str) -> Option<&'static Asset> {
    [&CSS, &JS]
        .into_iter()
        .find(|a| a.path().rsplit('/').next() == Some(file))
}
