//! What would surprise at the first page load, said before it happens (by `check-config` and
//! at start): `web.root` missing, or holding a Godot export whose page is not `index.html`
//! (Godot names it after the project).

use crate::config::Config;

pub fn root_warnings(config: &Config) -> Vec<String> {
    let root = &config.web.root;
    let Ok(entries) = std::fs::read_dir(root) else {
        return vec![format!(
            "web.root {} is not a readable folder: / shows rallypoint's welcome page and \
             everything else is 404 until it is",
            root.display()
        )];
    };
    let pages: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".html"))
        .collect();
    if pages.is_empty() || pages.iter().any(|p| p == "index.html") {
        return Vec::new();
    }
    vec![format!(
        "web.root {} has no index.html, so / is 404; Godot names the page after the project \
         ({}): rename it to index.html, or link to it",
        root.display(),
        pages.join(", ")
    )]
}
