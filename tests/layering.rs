//! The module graph and the sans-IO line, read from `src/` as ARCHITECTURE.md describes them.
//! Each file is read without its comments, string literals and `#[cfg(test)]` modules; every
//! path it names through `crate::` or `super::` (`use` groups expanded) is resolved to a module
//! path. Then:
//!
//! - the top-level modules form no cycle, none names `service` (the stop signal flows down), and
//!   `config` names nothing;
//! - `signal` names nothing of `turn` (what they share is in `credentials`);
//! - `web` names only the relay's public face: what `turn` itself exports and
//!   `turn::addresses`, no other module of it;
//! - the protocol cores (the left column of ARCHITECTURE.md's sans-IO table) name no tokio, no
//!   socket, no clock (`Instant::now()`, `SystemTime::now()`) and no OS randomness
//!   (`getrandom`): time and a `random::Random` come in as inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The protocol cores, relative to `src/`; a folder (ending in `/`) is every file in it.
const CORES: &[&str] = &[
    "turn/server.rs",
    "turn/allocations.rs",
    "turn/auth.rs",
    "turn/policy.rs",
    "turn/grants.rs",
    "turn/lobbies.rs",
    "turn/wire.rs",
    "signal/hub/",
    "signal/codec.rs",
    "signal/ext.rs",
    "signal/lobby.rs",
    "signal/candidates.rs",
    "signal/failed_joins.rs",
    "rate_limit.rs",
    "cluster/placement.rs",
    "cluster/quick_play.rs",
    "web/safe_path.rs",
    "web/negotiate.rs",
    "web/mime.rs",
    "credentials/",
];

/// What a core may not name.
const IO: &[&str] = &[
    "tokio",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "Instant::now()",
    "SystemTime::now()",
    "getrandom",
];

struct SourceFile {
    /// Relative to `src/`.
    path: PathBuf,
    /// Its module path: `["signal", "hub"]` for `signal/hub.rs`, `["signal"]` for its `mod.rs`.
    module: Vec<String>,
    /// Its code without comments, literals and test modules.
    code: String,
}

fn sources() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap().to_path_buf();
            let mut module: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_str().unwrap().to_string())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            files.push(SourceFile {
                path: relative,
                module,
                code: without_tests(&code_only(&text)),
            });
        }
    }
    files
}

/// `text` with comments blanked and string and character literals emptied.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // A raw string: r"..." or r#"..."#.
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && (b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\')) {
            // A character literal ('x', '\n', '\''); lifetimes ('a) are left as they are.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `code` without the modules marked `#[cfg(test)]`.
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    while let Some(at) = out.find("#[cfg(test)]") {
        let rest = &out[at..];
        let end = match (rest.find('{'), rest.find(';')) {
            // `#[cfg(test)] mod tests;` (a file of its own: not read as a core either way).
            (_, Some(semi)) if rest[..semi].contains("mod ") && !rest[..semi].contains('{') => {
                at + semi + 1
            }
            (Some(open), _) => {
                let mut depth = 0;
                let mut end = out.len();
                for (j, c) in rest[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = at + open + j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            _ => out.len(),
        };
        out.replace_range(at..end, "");
    }
    out
}

/// Every module path `code` (of module `module`) names through `crate::` or `super::`, with
/// `use` groups expanded: `use crate::{a::b, c::{d, e}}` names `a::b`, `c::d` and `c::e`.
fn named_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (start, root) in [("crate::", 0usize), ("super::", 1)] {
        for (i, _) in code.match_indices(start) {
            // Not the tail of a longer identifier or path (`foo_crate::`, `a::super::`).
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut base: Vec<String> = match root {
                0 => Vec::new(),
                _ => module[..module.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = &code[i + start.len()..];
            // super::super::...
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            expand(&base, rest, &mut paths);
        }
    }
    paths
}

/// Reads one path (or group) at the start of `text` after `base`, adding what it names.
fn expand(base: &[String], text: &str, paths: &mut Vec<Vec<String>>) -> usize {
    let mut path = base.to_vec();
    let mut at = 0;
    loop {
        let rest = &text[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if let Some(group) = trimmed.strip_prefix('{') {
            at += 1;
            let mut offset = 0;
            loop {
                let inner = &group[offset..];
                let skipped = inner.len() - inner.trim_start().len();
                offset += skipped;
                if group[offset..].starts_with('}') {
                    offset += 1;
                    break;
                }
                offset += expand(&path, &group[offset..], paths);
                let after = &group[offset..];
                let skipped = after.len() - after.trim_start().len();
                offset += skipped;
                if group[offset..].starts_with(',') {
                    offset += 1;
                } else if group[offset..].starts_with('}') {
                    offset += 1;
                    break;
                } else if offset >= group.len() {
                    break;
                }
            }
            return at + offset;
        }
        let ident: String = trimmed
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        at += ident.len();
        if ident != "self" {
            path.push(ident);
        }
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            break;
        }
    }
    if !path.is_empty() {
        paths.push(path);
    }
    at
}

/// Top-level module → the top-level modules its files name.
fn graph(files: &[SourceFile]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(top) = f.module.first() else {
            continue;
        };
        let uses = graph.entry(top.clone()).or_default();
        for path in named_paths(&f.module, &f.code) {
            if let Some(first) = path.first()
                && first != top
            {
                uses.insert(first.clone());
            }
        }
    }
    graph
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = graph(&sources());
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    // The stop signal flows down: no service names the lifecycle module.
    for (m, uses) in &graph {
        assert!(
            !uses.contains("service") || m == "service",
            "{m} uses service"
        );
    }
    assert!(
        graph["config"].is_empty(),
        "config depends on nothing: {:?}",
        graph["config"]
    );
}

#[test]
fn signalling_names_nothing_of_the_relay_and_web_only_its_public_face() {
    let files = sources();
    let turn_modules: BTreeSet<String> = files
        .iter()
        .filter(|f| f.module.len() == 2 && f.module[0] == "turn")
        .map(|f| f.module[1].clone())
        .collect();
    assert!(turn_modules.contains("server"), "{turn_modules:?}");
    let mut broken = Vec::new();
    for f in &files {
        for path in named_paths(&f.module, &f.code) {
            let shown = path.join("::");
            match (f.module.first().map(String::as_str), path.first()) {
                (Some("signal"), Some(t)) if t == "turn" => {
                    broken.push(format!("{}: {shown}", f.path.display()));
                }
                (Some("web"), Some(t))
                    if t == "turn"
                        && path
                            .get(1)
                            .is_some_and(|m| turn_modules.contains(m) && m != "addresses") =>
                {
                    broken.push(format!("{}: {shown}", f.path.display()));
                }
                _ => {}
            }
        }
    }
    assert!(broken.is_empty(), "layering broken by: {broken:#?}");
}

#[test]
fn the_protocol_cores_do_no_io_and_read_no_clock() {
    let files = sources();
    let mut broken = Vec::new();
    for core in CORES {
        let in_core: Vec<&SourceFile> = match core.strip_suffix('/') {
            Some(folder) => files
                .iter()
                .filter(|f| f.path.starts_with(folder))
                .collect(),
            None => files.iter().filter(|f| f.path == Path::new(core)).collect(),
        };
        assert!(
            !in_core.is_empty(),
            "{core} is listed as a core but does not exist"
        );
        for f in in_core {
            for io in IO {
                if f.code.contains(io) {
                    broken.push(format!("{}: {io}", f.path.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "IO in a core: {broken:#?}");
}

/// The reader itself: what comments, strings and tests hide, and what `use` groups and
/// `super::` name.
#[test]
fn the_reader_sees_paths_in_code_only() {
    let text = r##"
        // use crate::turn::server; a comment names nothing
        /* crate::turn::relay /* nested */ */
        use crate::{config::Config, signal::{hub::Hub, ext}};
        use super::queue::{self, Input};
        let s = "crate::turn::wire";
        let r = r#"crate::turn::udp"#;
        let c = '"';
        let n = crate::turn::server::Server::new();
        #[cfg(test)]
        mod tests { use crate::turn::control; }
    "##;
    let module = ["signal".to_string(), "hub".to_string()];
    let named: BTreeSet<String> = named_paths(&module, &without_tests(&code_only(text)))
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    let expected: BTreeSet<String> = [
        "config::Config",
        "signal::hub::Hub",
        "signal::ext",
        "signal::queue",
        "signal::queue::Input",
        "turn::server::Server::new",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(named, expected);
}
