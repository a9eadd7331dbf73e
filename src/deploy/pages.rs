//! What a folder offers a browser: an `index.html`, other pages (Godot names the exported page
//! after the project), or subfolders with an `index.html` (an export one folder down). Read by
//! the export check, the web root's warnings and the 404 of a folder without `index.html`.

use std::path::Path;

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
