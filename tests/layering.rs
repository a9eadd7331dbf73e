//! The module graph stays a graph without cycles: reads `src/` and checks which top-level
//! modules each one names through `crate::`, as ARCHITECTURE.md describes them. (A cycle, such
//! as services reaching back into `service` for the stop signal, makes a reader hold everything
//! in mind at once.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
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
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs").to_string();
            if module == "main" || module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let uses = graph.entry(module.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let name: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name != module && !name.is_empty() {
                    uses.insert(name);
                }
            }
            // `use crate::{a, b}` names several at once.
            for (i, _) in text.match_indices("crate::{") {
                let list = &text[i + 8..i + 8 + text[i + 8..].find('}').unwrap()];
                for name in list
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap())
                {
                    if name != module && !name.is_empty() && name != "self" {
                        uses.insert(name.to_string());
                    }
                }
            }
        }
    }
    for uses in graph.values_mut() {
        uses.remove("");
    }
    graph
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = graph();
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
