//! Turning a config problem into a message a person can act on: `file:line:col`, the key path,
//! what was expected, and for a misspelt key the known key it most resembles.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `file:line:col`, when the problem sits at a place in a file.
    pub location: Option<String>,
    /// Dotted key path such as `turn.secrets[0]`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn unlocated(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            location: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The text of one config file, kept to place errors in it.
pub(crate) struct Source<'a> {
    text: &'a str,
    file: &'a str,
    /// The span-carrying parse, present when the text is valid TOML.
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str, file: &'a str) -> Self {
        Source {
            text,
            file,
            doc: toml_edit::ImDocument::parse(text).ok(),
        }
    }

    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(toml::Deserializer::new(self.text)).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            let (key, message) = describe(&key, inner.message());
            let message = redact_secret(&key, message);
            ConfigError {
                location: inner.span().map(|s| self.position(s.start)),
                key,
                message,
            }
        })
    }

    /// An error about the value at `key` (dotted, with `[i]` for array items), placed at that
    /// value in the file; at the closest enclosing key that is written, when it is not.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: self.span_of(key).map(|s| self.position(s.start)),
            key: key.into(),
            message: message.into(),
        }
    }

    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut item: &toml_edit::Item = doc.as_item();
        let mut best = None;
        for part in key.split('.') {
            let (name, index) = match part.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            item = match item.get(name) {
                Some(i) => i,
                None => break,
            };
            best = item.span().or(best);
            if let Some(i) = index {
                match item.get(i) {
                    Some(it) => {
                        item = it;
                        best = item.span().or(best);
                    }
                    None => break,
                }
            }
        }
        best
    }

    fn position(&self, offset: usize) -> String {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        format!("{}:{line}:{column}", self.file)
    }
}

/// Keys whose values are secrets: an error about them must not repeat the value (serde's
/// "invalid type: string \"…\"" would print it to the journal, at every reload).
fn redact_secret(key: &str, message: String) -> String {
    if key == "turn.secrets" || key.starts_with("turn.secrets[") {
        "turn.secrets takes a list of strings, like secrets = [\"a-long-random-secret\"] \
         (the value is not shown)"
            .into()
    } else if key == "turn.users" || key.starts_with("turn.users.") {
        "turn.users takes names with string passwords, like alice = \"a-password\" \
         (the value is not shown)"
            .into()
    } else {
        message
    }
}

/// Rewrites serde's wording into the config's: keys and sections instead of fields, plus a
/// suggestion for a misspelt key.
fn describe(path: &str, message: &str) -> (String, String) {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        let one_line: Vec<&str> = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return (path.to_string(), one_line.join("; "));
    };
    let (unknown, rest) = rest.split_once('`').unwrap_or((rest, ""));
    let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    // The path already ends with the unknown key; the section is what comes before it.
    let full_key = path.to_string();
    let path = path
        .strip_suffix(unknown)
        .map(|p| p.trim_end_matches('.'))
        .unwrap_or(path);
    let suggestion = closest(unknown, &known);
    let message = match (path.is_empty(), suggestion) {
        (true, Some(s)) => format!("unknown section [{unknown}], did you mean [{s}]?"),
        (true, None) => format!(
            "unknown section [{unknown}]; the sections are {}",
            list(&known, "[", "]")
        ),
        (false, Some(s)) => format!("unknown key `{unknown}` in [{path}], did you mean `{s}`?"),
        (false, None) => format!(
            "unknown key `{unknown}` in [{path}]; the keys are {}",
            list(&known, "`", "`")
        ),
    };
    (full_key, message)
}

fn list(items: &[&str], open: &str, close: &str) -> String {
    items
        .iter()
        .map(|i| format!("{open}{i}{close}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The known key a typo most likely meant, if any is close enough to be a typo.
fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(typo, k), *k))
        .filter(|&(d, k)| d <= 2.max(k.len() / 3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key_only_when_it_is_near() {
        assert_eq!(
            closest("lisen", &["listen", "tls_listen", "root"]),
            Some("listen")
        );
        assert_eq!(
            closest("max_peer", &["max_peers", "max_lobbies"]),
            Some("max_peers")
        );
        assert_eq!(closest("banana", &["listen", "root"]), None);
    }

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let s = Source::new("a = 1\n[web]\nlisten = []\n", "f.toml");
        assert_eq!(s.position(0), "f.toml:1:1");
        assert_eq!(s.position(12), "f.toml:3:1");
        assert_eq!(s.position(15), "f.toml:3:4");
    }
}
