//! Is a folder a whole Godot web export? `index.html`, every file its pages reference, the
//! engine's `.js` and `.wasm` and the game's `.pck` named by the page's `GODOT_CONFIG`, with the
//! sizes it lists (a `.wasm` from another export has another size). Each problem is a sentence
//! saying what to fix.

use std::path::Path;

use super::pages::Pages;

/// What a page references that must be in the folder: `src="..."` and `href="..."` values that
/// are relative paths (not URLs, fragments, `data:` or absolute paths, which the export does not
/// carry).
fn local_references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let value = &html[at + attribute.len()..];
            let Some(end) = value.find('"') else { continue };
            let value = value[..end].split(['?', '#']).next().unwrap_or("");
            let external = value.is_empty()
                || value.starts_with('/')
                || value.contains(':')
                || value.contains("${");
            if !external {
                found.push(value.to_string());
            }
        }
    }
    found
}

/// The string value of `"key":"..."` in a page's `GODOT_CONFIG`.
fn config_string<'a>(html: &'a str, key: &str) -> Option<&'a str> {
    let at = html.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let value = &html[at..];
    Some(&value[..value.find('"')?])
}

/// `"fileSizes":{"index.pck":123,"index.wasm":456}` from a page's `GODOT_CONFIG`.
fn file_sizes(html: &str) -> Vec<(String, u64)> {
    let Some(at) = html.find("\"fileSizes\":{") else {
        return Vec::new();
    };
    let body = &html[at + 13..];
    let Some(end) = body.find('}') else {
        return Vec::new();
    };
    body[..end]
        .split(',')
        .filter_map(|entry| {
            let (name, size) = entry.split_once(':')?;
            Some((
                name.trim().trim_matches('"').to_string(),
                size.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// Why a symbolic link in an export is not deployed.
pub fn link_refused(path: &Path) -> String {
    let target = std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    format!(
        "{}{target} is a symbolic link: deploy copies no links, so that nothing outside the export \
         is published; put the file itself in the export",
        path.display()
    )
}

/// The symbolic links under `dir`, at any depth (links are not followed).
fn links(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_symlink() => found.push(entry.path()),
                Ok(kind) if kind.is_dir() && stack.len() < 1024 => stack.push(entry.path()),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

/// Every problem with `dir` as an export to serve; empty when it is whole.
pub fn problems(dir: &Path) -> Vec<String> {
    if dir.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        return vec![format!(
            "{} is a symbolic link: name the folder itself ({}), so that what is deployed cannot \
             change under the link while it is copied",
            dir.display(),
            dir.canonicalize()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|e| e.to_string())
        )];
    }
    let mut problems: Vec<String> = links(dir).iter().map(|l| link_refused(l)).collect();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return vec![format!("cannot read {}: {e}", dir.display())],
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let pages: Vec<&String> = names.iter().filter(|n| n.ends_with(".html")).collect();
    // The folder above the export: the one thing to say is where the export is.
    if let Ok(Pages {
        index: false,
        others,
        below,
    }) = Pages::of(dir)
        && others.is_empty()
        && let Some(first) = below.first()
    {
        return vec![format!(
            "no index.html here; the export is one folder down: name {} instead",
            dir.join(first).display()
        )];
    }
    if !names.iter().any(|n| n == "index.html") {
        problems.push(match pages.first() {
            Some(page) => format!(
                "no index.html: Godot names the page after the project; rename {page} to \
                 index.html (or set the export's file name to index.html)"
            ),
            None => "no index.html: export the project for the Web into this folder".into(),
        });
    }
    for kind in [".wasm", ".pck"] {
        if !names.iter().any(|n| n.ends_with(kind)) {
            problems.push(format!(
                "no {kind} file: this is not a whole Godot web export (export again, all files)"
            ));
        }
    }
    for page in pages {
        let path = dir.join(page);
        let html = match std::fs::read_to_string(&path) {
            Ok(html) => html,
            Err(e) => {
                problems.push(format!("cannot read {page}: {e}"));
                continue;
            }
        };
        let mut wanted: Vec<String> = local_references(&html);
        if let Some(executable) = config_string(&html, "executable") {
            wanted.push(format!("{executable}.js"));
            wanted.push(format!("{executable}.wasm"));
            match config_string(&html, "mainPack") {
                Some(pack) => wanted.push(pack.to_string()),
                None => wanted.push(format!("{executable}.pck")),
            }
        }
        wanted.sort();
        wanted.dedup();
        for file in &wanted {
            if !dir.join(file).is_file() {
                problems.push(format!("{page} loads {file}, which is not in the export"));
            }
        }
        for (file, size) in file_sizes(&html) {
            match std::fs::metadata(dir.join(&file)) {
                Ok(m) if m.len() != size => problems.push(format!(
                    "{file} is {} bytes but {page} expects {size}: it comes from another export \
                     (export again, all files together)",
                    m.len()
                )),
                Ok(_) => {}
                Err(_) if wanted.contains(&file) => {} // said above
                Err(_) => problems.push(format!("{page} lists {file}, which is not in the export")),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_relative_paths_only() {
        let html = r##"<script src="index.js"></script><link href="index.icon.png?v=1">
            <a href="https://godotengine.org">x</a><img src="data:image/png;base64,AA">
            <link href="/favicon.ico"><a href="#top"></a><script src="${x}.js"></script>"##;
        assert_eq!(local_references(html), ["index.js", "index.icon.png"]);
    }

    #[test]
    fn godot_config_names_the_engine_and_sizes() {
        let html = r#"const GODOT_CONFIG = {"args":[],"executable":"MyGame","fileSizes":{"MyGame.pck":1200,"MyGame.wasm":35000000},"focusCanvas":true};"#;
        assert_eq!(config_string(html, "executable"), Some("MyGame"));
        assert_eq!(config_string(html, "mainPack"), None);
        assert_eq!(
            file_sizes(html),
            [
                ("MyGame.pck".to_string(), 1200),
                ("MyGame.wasm".to_string(), 35_000_000)
            ]
        );
    }
}
