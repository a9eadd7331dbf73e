//! What would surprise at the first page load, said before it happens (by `check-config` and
//! at start): `web.root` missing or holding no page, a Godot export whose page is not
//! `index.html` (Godot names it after the project), or an export one folder down (`--root
//! ~/exports` for `~/exports/web/index.html`).

use crate::config::Config;
use crate::deploy::pages::Pages;

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
