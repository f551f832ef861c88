//! Checks that the library's modules form layers: at every level of the module tree, the
//! sibling modules use each other without a cycle. A use from inside one sibling (any of its
//! descendants) to inside another counts as a use between the two siblings, so a module
//! cannot escape the rule by putting the use back in a submodule. A module and its own
//! ancestors are not siblings: a `mod.rs` declares and re-exports its children, and children
//! use what their parent declares.
//!
//! Uses are read from the source text: every `crate::…` and `super::…` path outside comments
//! and outside `#[cfg(test)]` code, resolved to the file of the longest module prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type ModPath = Vec<String>;

/// Source files by module path, without their test-only parts.
fn load(root: &Path) -> BTreeMap<ModPath, String> {
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<ModPath, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("source directory")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under the root");
            let mut parts: ModPath = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("source file");
            out.insert(parts, text);
        }
    }
}

/// The text without comments and without everything from the first `#[cfg(test)]` item on
/// that is a `mod tests` block; also the names of child modules declared test-only.
fn production_text(src: &str) -> (String, BTreeSet<String>) {
    let mut text = String::new();
    let mut test_children = BTreeSet::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        if t == "#[cfg(test)]" {
            let next = lines.peek().map(|l| l.trim()).unwrap_or("");
            if next.starts_with("mod tests") {
                break;
            }
            if let Some(name) = next.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                test_children.insert(name.trim().to_owned());
                lines.next();
                continue;
            }
        }
        text.push_str(line);
        text.push('\n');
    }
    (text, test_children)
}

/// Every `crate::`/`super::` path in `text`, as module paths relative to the crate root.
fn paths_used(me: &[String], text: &str) -> Vec<ModPath> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let word = ["crate::", "super::"]
            .into_iter()
            .find(|w| rest.starts_with(w.as_bytes()));
        let boundary = i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b'(');
        let Some(word) = word.filter(|_| boundary) else {
            i += 1;
            continue;
        };
        // The module this path starts from.
        let mut base: ModPath = if word == "crate::" {
            Vec::new()
        } else {
            let mut b = me.to_vec();
            b.pop();
            b
        };
        i += word.len();
        let mut segs = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let seg = &text[start..i];
            if seg == "super" && segs.is_empty() {
                base.pop();
            } else if !seg.is_empty() {
                segs.push(seg.to_owned());
            }
            if bytes[i..].starts_with(b"::") && !seg.is_empty() {
                i += 2;
                continue;
            }
            break;
        }
        let mut prefix = base.clone();
        prefix.extend(segs);
        if bytes[i..].starts_with(b"{") {
            let end = text[i..].find('}').map_or(text.len(), |e| i + e);
            for item in text[i + 1..end].split(',') {
                let item = item.trim().split([' ', '{']).next().unwrap_or("");
                let mut p = prefix.clone();
                p.extend(
                    item.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
                out.push(p);
            }
            i = end;
        }
        out.push(prefix);
    }
    out
}

/// The module file a path lands in: its longest prefix that is a module.
fn resolve<'a>(modules: &'a BTreeMap<ModPath, String>, path: &[String]) -> Option<&'a ModPath> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The use graph between sibling modules, test-only modules left out.
fn graph(files: &BTreeMap<ModPath, String>) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut texts = BTreeMap::new();
    let mut test_only: Vec<ModPath> = Vec::new();
    for (m, src) in files {
        let (text, children) = production_text(src);
        for c in children {
            let mut p = m.clone();
            p.push(c);
            test_only.push(p);
        }
        texts.insert(m.clone(), text);
    }
    let production: BTreeMap<ModPath, String> = texts
        .into_iter()
        .filter(|(m, _)| !test_only.iter().any(|t| m.starts_with(t)))
        .collect();
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (m, text) in &production {
        let mut to = BTreeSet::new();
        for p in paths_used(m, text) {
            if let Some(target) = resolve(&production, &p) {
                if !related(m, target) {
                    to.insert(target.clone());
                }
            }
        }
        for target in to {
            // The two children of the closest common ancestor that hold each end.
            let common = m.iter().zip(&target).take_while(|(a, b)| a == b).count();
            let (from, to) = (m[..=common].to_vec(), target[..=common].to_vec());
            edges.entry(to.clone()).or_default();
            edges.entry(from).or_default().insert(to);
        }
    }
    edges
}

/// Each cycle found, as the modules along it.
fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    // Depth-first search; a back edge to a module on the stack closes a cycle.
    fn visit(
        m: &ModPath,
        edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        stack: &mut Vec<ModPath>,
        done: &mut BTreeSet<ModPath>,
        found: &mut Vec<Vec<ModPath>>,
    ) {
        if let Some(at) = stack.iter().position(|s| s == m) {
            found.push(stack[at..].to_vec());
            return;
        }
        if done.contains(m) {
            return;
        }
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, stack, done, found);
        }
        stack.pop();
        done.insert(m.clone());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        visit(m, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn show(cycle: &[ModPath]) -> String {
    let mut names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
    names.push(names[0].clone());
    names.join(" -> ")
}

#[test]
fn the_library_has_no_module_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = load(&root);
    assert!(files.len() > 40, "read only {} modules", files.len());
    let edges = graph(&files);
    let found: Vec<String> = cycles(&edges).iter().map(|c| show(c)).collect();
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn a_cycle_between_siblings_or_across_the_tree_is_found() {
    let files = |list: &[(&str, &str)]| -> BTreeMap<ModPath, String> {
        list.iter()
            .map(|(m, src)| {
                let path = m.split("::").filter(|s| !s.is_empty()).map(str::to_owned);
                (path.collect(), (*src).to_owned())
            })
            .collect()
    };
    let siblings = files(&[
        ("", "mod node;"),
        ("node", "mod a;\nmod b;\npub use a::X;"),
        ("node::a", "use super::b::Y;\npub(super) struct X;"),
        ("node::b", "use super::{a::X, c};\npub struct Y;"),
    ]);
    let found = cycles(&graph(&siblings));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(show(&found[0]), "node::a -> node::b -> node::a");

    // A submodule's use counts as its parent's: node::snapshots uses node::state through
    // its taker while node::state uses node::snapshots' types.
    let nested = files(&[
        ("", "mod node;"),
        ("node", "mod state;\nmod snapshots;"),
        ("node::state", "use super::snapshots::Status;"),
        ("node::snapshots", "mod taker;\npub struct Status;"),
        ("node::snapshots::taker", "use super::super::state::Node;"),
    ]);
    let found = cycles(&graph(&nested));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        show(&found[0]),
        "node::snapshots -> node::state -> node::snapshots"
    );

    let across = files(&[
        ("", ""),
        ("log", "fn f() { crate::node::state::g() }"),
        ("node", ""),
        ("node::state", "use crate::log::Log;"),
    ]);
    assert_eq!(cycles(&graph(&across)).len(), 1);

    // Parent and child, comments, test code and pub(super) are no uses that count.
    let fine = files(&[
        ("", ""),
        ("node", "mod a;\n#[cfg(test)]\nmod fake;\npub use a::X;"),
        (
            "node::a",
            "// crate::node::fake\npub(super) struct X;\nuse super::Y;\n#[cfg(test)]\nmod tests {\n use crate::log::L;\n}",
        ),
        ("node::fake", "use crate::log::L;"),
        ("log", "use crate::node::a::X;"),
    ]);
    assert!(cycles(&graph(&fine)).is_empty());
}
