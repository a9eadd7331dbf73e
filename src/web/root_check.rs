//! What would surprise at the first page load, said before it happens (by `check-config` and
//! at start) and in the 404 of a folder without `index.html`: `web.root` missing or holding no
//! page, a Godot export whose page is not `index.html` (Godot names it after the project), or
//! an export one folder down (`--root ~/exports` for `~/exports/web/index.html`).

use std::path::Path;

use crate::config::Config;

/// Entries of a folder looked into, at most, for an `index.html` one level down.
const SUBFOLDERS_LOOKED_INTO: usize = 32;
/// Names listed, at most, of each kind.
const NAMES_LISTED: usize = 5;

/// What a folder offers a browser.
#[derive(Debug, PartialEq, Eq)]
pub struct Pages {
    /// It has an `index.html`.
    pub index: bool,
    /// Its other pages (`.html` files), sorted, the first few.
    pub others: Vec<String>,
    /// Its subfolders with an `index.html`, sorted, the first few.
    pub below: Vec<String>,
}

impl Pages {
    /// The pages of `dir`, hidden names left out.
    pub fn of(dir: &Path) -> std::io::Result<Pages> {
        let mut index = false;
        let mut others = Vec::new();
        let mut below = Vec::new();
        let mut looked_into = 0;
        for name in std::fs::read_dir(dir)?.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
            if name.starts_with('.') {
                continue;
            }
            if name == "index.html" {
                index = true;
            } else if name.ends_with(".html") {
                others.push(name);
            } else if looked_into < SUBFOLDERS_LOOKED_INTO {
                looked_into += 1;
                if dir.join(&name).join("index.html").is_file() {
                    below.push(name);
                }
            }
        }
        for names in [&mut others, &mut below] {
            names.sort();
            names.truncate(NAMES_LISTED);
        }
        Ok(Pages {
            index,
            others,
            below,
        })
    }
}

pub fn root_warnings(config: &Config) -> Vec<String> {
    let root = &config.web.root;
    let Ok(pages) = Pages::of(root) else {
        return vec![format!(
            "web.root {} is not a readable folder: / shows rallypoint's welcome page and \
             everything else is 404 until it is",
            root.display()
        )];
    };
    let warning = if pages.index {
        return Vec::new();
    } else if !pages.others.is_empty() {
        format!(
            "web.root {} has no index.html, so / is 404; Godot names the page after the project \
             ({}): rename it to index.html, or link to it",
            root.display(),
            pages.others.join(", ")
        )
    } else if let Some(first) = pages.below.first() {
        format!(
            "web.root {} has no index.html, so / is 404; the export is one folder down ({}): \
             set web.root to {}, or link players to /{first}/",
            root.display(),
            pages
                .below
                .iter()
                .map(|f| format!("{f}/index.html"))
                .collect::<Vec<_>>()
                .join(", "),
            root.join(first).display()
        )
    } else {
        format!(
            "web.root {} holds no page, so / is 404: export the game into it, or put it live \
             with `rallypoint deploy EXPORT_FOLDER`",
            root.display()
        )
    };
    vec![warning]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pages_here_and_exports_one_folder_down() {
        let dir = std::env::temp_dir().join(format!("rallypoint-pages-{}", std::process::id()));
        for sub in ["web", "other", ".hidden", "assets"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for file in [
            "web/index.html",
            "other/index.html",
            ".hidden/index.html",
            "Game.html",
        ] {
            std::fs::write(dir.join(file), "<html>").unwrap();
        }
        std::fs::write(dir.join("assets/logo.png"), "png").unwrap();
        let pages = Pages::of(&dir).unwrap();
        assert_eq!(
            pages,
            Pages {
                index: false,
                others: vec!["Game.html".into()],
                below: vec!["other".into(), "web".into()],
            }
        );
        std::fs::write(dir.join("index.html"), "<html>").unwrap();
        assert!(Pages::of(&dir).unwrap().index);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
