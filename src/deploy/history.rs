//! Which releases were live, in order: `<web.root>.releases/.history`, one id per line, the
//! live one last. A deploy (or a rollback to a named release) adds the release it puts live; a
//! plain rollback takes the live one off and goes to the one live before it, so deploying A,
//! B, rolling back twice and deploying D leaves `… D`, and the next rollback goes back to what
//! was live before D, not to whatever sorts before it.
//!
//! A releases folder deployed by an earlier version has no history: rollback then goes to the
//! release sorting before the live one, as it used to.

use std::io;
use std::path::{Path, PathBuf};

const FILE: &str = ".history";

/// Entries kept at most (the oldest are forgotten).
const KEEP: usize = 100;

/// The history in the releases folder `releases`, oldest first.
pub fn read(releases: &Path) -> Vec<String> {
    std::fs::read_to_string(file(releases))
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Writes `history` (the newest [`KEEP`]) in one step: a new file renamed over the old.
pub fn write(releases: &Path, history: &[String]) -> io::Result<()> {
    let from = history.len().saturating_sub(KEEP);
    let mut text = history[from..].join("\n");
    text.push('\n');
    let new = releases.join(".history.new");
    std::fs::write(&new, text)?;
    std::fs::rename(&new, file(releases))
}

fn file(releases: &Path) -> PathBuf {
    releases.join(FILE)
}

/// `history` with `id` gone live: added last (after `previous`, the one live until now, if
/// the history did not know it).
pub fn went_live(mut history: Vec<String>, previous: Option<&str>, id: &str) -> Vec<String> {
    if let Some(previous) = previous
        && history.last().map(String::as_str) != Some(previous)
    {
        history.push(previous.to_string());
    }
    history.push(id.to_string());
    history
}

/// Where a plain rollback from `live` goes: the release live before it that still exists,
/// and the history once it is live (the entries after it dropped). `None`: the history knows
/// no such release.
pub fn back(
    mut history: Vec<String>,
    live: &str,
    exists: impl Fn(&str) -> bool,
) -> Option<(String, Vec<String>)> {
    // The live one, however often it was put live last.
    while history.last().map(String::as_str) == Some(live) {
        history.pop();
    }
    while let Some(last) = history.last() {
        if last != live && exists(last) {
            return Some((last.clone(), history));
        }
        history.pop();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rollback_goes_to_what_was_live_before() {
        // The first folder (0000), A and B deployed, two rollbacks, then D.
        let h = went_live(vec![], Some("0000"), "A");
        let h = went_live(h, Some("A"), "B");
        assert_eq!(h, ids(&["0000", "A", "B"]));
        let (to, h) = back(h, "B", |_| true).unwrap();
        assert_eq!(to, "A");
        let (to, h) = back(h, "A", |_| true).unwrap();
        assert_eq!(to, "0000");
        let h = went_live(h, Some("0000"), "D");
        assert_eq!(h, ids(&["0000", "D"]));
        let (to, h) = back(h, "D", |_| true).unwrap();
        assert_eq!(to, "0000", "not B, which merely sorts before D");
        assert_eq!(back(h, "0000", |_| true), None);
    }

    #[test]
    fn removed_releases_and_repeats_are_skipped() {
        let h = ids(&["A", "B", "C", "B", "D", "D"]);
        let (to, h) = back(h, "D", |id| id != "B").unwrap();
        assert_eq!(to, "C");
        assert_eq!(h, ids(&["A", "B", "C"]));
        // A rollback to a named release is a release gone live.
        let h = went_live(h, Some("C"), "A");
        assert_eq!(back(h, "A", |_| true).unwrap().0, "C");
    }

    #[test]
    fn the_history_is_kept_short_and_survives_a_reread() {
        let dir = std::env::temp_dir().join(format!("rp-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let long: Vec<String> = (0..KEEP + 5).map(|i| format!("{i:04}")).collect();
        write(&dir, &long).unwrap();
        let read_back = read(&dir);
        assert_eq!(read_back.len(), KEEP);
        assert_eq!(read_back.last(), long.last());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
