//! Turning a config problem into a message a person can act on: `file:line:col`, the key path,
//! what was expected, and for a misspelt key the known key it most resembles.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;

/// Problems reported from one file at most: a file this broken is read again after the fix.
const MAX_ERRORS: usize = 32;

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

    /// Deserializes, finding every problem rather than the first: after each, the key-value
    /// it is about is blanked out (spaces of the same length, so every later position is still
    /// the file's) and the rest read again. The value comes back when all that is left reads
    /// (with defaults where keys were blanked), for checks of its own.
    pub fn deserialize_all<T: DeserializeOwned>(&self) -> (Option<T>, Vec<ConfigError>) {
        let mut text = self.text.to_string();
        let mut errors: Vec<ConfigError> = Vec::new();
        while errors.len() < MAX_ERRORS {
            let source = Source::new(&text, self.file);
            let error = match source.deserialize() {
                Ok(value) => return (Some(value), errors),
                Err(e) => e,
            };
            let blank = source.entry_span(&error.key);
            errors.push(error);
            match blank {
                Some(range) if !text[range.clone()].trim().is_empty() => {
                    let blanked: String = text[range.clone()]
                        .chars()
                        .map(|c| if c == '\n' { '\n' } else { ' ' })
                        .collect();
                    // Same bytes as long as the blanked text was ASCII; else positions after
                    // it shift by a little, which is better than stopping.
                    text.replace_range(range, &blanked);
                }
                // A syntax error, or nothing left to take out: what follows cannot be read.
                _ => break,
            }
        }
        (None, errors)
    }

    /// Where the entry at `key` is written, from its key to the end of its value: a whole
    /// `[section]` (its header to the next one) for a section; the key-value holding it for a
    /// key inside a list or an inline table.
    fn entry_span(&self, key: &str) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut table = doc.as_table() as &dyn toml_edit::TableLike;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (name, indexed) = match part.split_once('[') {
                Some((name, _)) => (name, true),
                None => (*part, false),
            };
            let (k, item) = table.get_key_value(name)?;
            let last = indexed || i + 1 == parts.len();
            match item {
                toml_edit::Item::Table(t) if !last => table = t,
                toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) if !last => table = t,
                toml_edit::Item::Table(_) => return self.section_span(k.span()?.start),
                _ => return Some(k.span()?.start..item.span()?.end),
            }
        }
        None
    }

    /// A `[section]` whose name starts at `offset`: from its line to the next section's.
    fn section_span(&self, offset: usize) -> Option<Range<usize>> {
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let mut end = self.text.len();
        let mut at = self.text[offset..].find('\n').map(|i| offset + i + 1);
        while let Some(line) = at.filter(|&a| a < self.text.len()) {
            if self.text[line..]
                .trim_start_matches([' ', '\t'])
                .starts_with('[')
            {
                end = line;
                break;
            }
            at = self.text[line..].find('\n').map(|i| line + i + 1);
        }
        Some(start..end)
    }

    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(toml::Deserializer::new(self.text)).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            let (key, message) = describe(&key, inner.message());
            let written = inner.span().map(|s| &self.text[s.start.min(s.end)..s.end]);
            let line = inner.span().map(|s| self.line_at(s.start)).unwrap_or("");
            let message = plain_words(&key, &message, written, line);
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

    /// The whole line holding `offset`.
    fn line_at(&self, offset: usize) -> &'a str {
        let offset = offset.min(self.text.len());
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        &self.text[start..end]
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
    } else if key == "admin.tokens" || key.starts_with("admin.tokens[") {
        "admin.tokens takes a list of strings, like tokens = [\"a-long-random-token\"] \
         (the value is not shown)"
            .into()
    } else if key == "cluster.sentinel_password" || key == "cluster.master_password" {
        format!("{key} takes a string (the value is not shown)")
    } else if key == "turn.users" || key.starts_with("turn.users.") {
        "turn.users takes names with string passwords, like alice = \"a-password\" \
         (the value is not shown)"
            .into()
    } else {
        message
    }
}

/// Serde's and TOML's type jargon ("expected u32", "expected a sequence", "invalid socket
/// address syntax", "expected newline") in words about the key, with the fix. `written` is the
/// value as it stands in the file, `line` its line.
fn plain_words(key: &str, message: &str, written: Option<&str>, line: &str) -> String {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let value = written.map(|w| w.trim().trim_matches(['"', '\'']));
    let whole_number = [
        "expected u8",
        "expected u16",
        "expected u32",
        "expected u64",
    ]
    .iter()
    .any(|t| message.ends_with(t) || message.ends_with(&t.replace("expected ", "expected a ")));
    if whole_number && message.starts_with("invalid type: string") {
        let n = value.filter(|v| v.parse::<u64>().is_ok()).unwrap_or("10");
        return format!("takes a whole number, without quotes: {leaf} = {n}");
    }
    if whole_number {
        return format!(
            "takes a whole number from 0 up{}",
            value.map(|v| format!(", not {v}")).unwrap_or_default()
        );
    }
    if message.ends_with("expected a boolean") {
        return format!("takes true or false, without quotes: {leaf} = true");
    }
    if message.ends_with("expected a sequence") {
        let item = value.map_or("…".to_string(), |v| format!("\"{v}\""));
        return format!("takes a list in brackets: {leaf} = [{item}]");
    }
    if message.ends_with("expected a string") && message.starts_with("invalid type") {
        let example = if ["timeout", "grace", "interval", "delay", "ttl", "lifetime"]
            .iter()
            .any(|w| leaf.contains(w))
        {
            "\"10s\" (a number and a unit: ms, s, m, h)"
        } else if ["size", "cache", "bytes", "data"]
            .iter()
            .any(|w| leaf.contains(w))
        {
            "\"64KiB\" (a number and a unit: KiB, MiB, GiB)"
        } else {
            "\"…\""
        };
        return format!("takes a value in quotes, like {leaf} = {example}");
    }
    if message == "invalid socket address syntax" {
        let v = value.unwrap_or("");
        // "::1:3478": an IPv6 address and a port, written without the brackets.
        let bare_v6_port = v.contains("::")
            && !v.starts_with('[')
            && v.rsplit(':')
                .next()
                .is_some_and(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_digit()));
        let why = if bare_v6_port {
            let (ip, port) = v.rsplit_once(':').unwrap_or((v, "3478"));
            format!("an IPv6 address takes brackets before its port: \"[{ip}]:{port}\"")
        } else if v.parse::<std::net::IpAddr>().is_ok() {
            format!("{v} has no port: write \"{}\"", with_port(v, key))
        } else if v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && v.rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            format!(
                "{v} is a name; listeners take IP addresses: \"0.0.0.0:{}\" for every IPv4 \
                 address, \"127.0.0.1:{}\" for this machine only",
                port_of(v),
                port_of(v)
            )
        } else {
            format!("{v} is not an IP address and port, like \"0.0.0.0:3478\" or \"[::]:3478\"")
        };
        return why;
    }
    if (message.starts_with("expected newline") || message.starts_with("invalid string"))
        && let Some((name, text)) = line.split_once('=')
    {
        let text = text.trim();
        if text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && !["true", "false"].contains(&text)
        {
            return format!("a text value needs quotes: {} = \"{text}\"", name.trim());
        }
    }
    message.to_string()
}

/// `ip` with the usual port of the listener `key` names (IPv6 in brackets).
fn with_port(ip: &str, key: &str) -> String {
    let port = match key.split('[').next().unwrap_or(key) {
        "turn.tls_listen" => 5349,
        "web.tls_listen" => 443,
        "web.listen" => 80,
        _ => 3478,
    };
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The port in `name:port`.
fn port_of(v: &str) -> &str {
    v.rsplit_once(':').map_or("", |(_, p)| p)
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
