//! The Content-Type of an export file, from its name (GODOT.md: `.wasm` must be
//! `application/wasm` for streaming compilation).

use std::path::Path;

/// The Content-Type for a file name.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "pck" => "application/octet-stream",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn godot_export_types() {
        assert_eq!(content_type(Path::new("game.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("game.pck")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(Path::new("game.JS")),
            "text/javascript; charset=utf-8"
        );
    }
}
