//! The architecture, kept by a test. Each crate's modules sit in layers, written once in
//! [`LAYERS`] (docs/architecture.md draws them): a module may import modules of its own layer and
//! of layers below, never above, and no modules import each other, directly or around a cycle.
//!
//! A module is a file. Its imports are the `crate::`, `super::` and `self::` paths in its `use`
//! items and its code (tests under `#[cfg(test)]` left out), each followed through the
//! re-exports of the modules it passes (`use super::P2P` in `node/outbound.rs` is an import of
//! `node::p2p`, which `node/mod.rs` re-exports). A module using its own submodules, or items of a
//! module it is inside, is the ordinary shape of a Rust module tree and not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syn::visit::Visit;

/// Per crate (its source folder), its top-level modules by layer, bottom layer first.
const LAYERS: &[(&str, &[&[&str]])] = &[
    (
        "servicer-runtime/src",
        &[
            &["error", "metrics", "config", "slots", "memory"],
            &["model"],
            &["wire"],
            &["serve"],
            &["transport"],
            &["node"],
            &["stub"],
        ],
    ),
    ("servicer-macros/src", &[&["model"], &["parse", "emit"]]),
    (
        "dht/src",
        &[
            &[
                "time",
                "error",
                "addrs",
                "traverse",
                "blacklist",
                "hivemind_proto",
            ],
            &["id", "validation"],
            &["value", "storage", "routing", "limits", "crypto", "stats"],
            &["messages", "schema", "metrics"],
            &["protocol"],
            &["hivemind_wire"],
            &["wires"],
            &["node", "testing"],
            &["handle"],
        ],
    ),
    ("src", &[]),
    (
        "src/bin/p2p-dht",
        &[
            &["error"],
            &["args"],
            &["logging", "http"],
            &["run_node", "client"],
        ],
    ),
];

#[test]
fn every_crate_keeps_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for (src, layers) in LAYERS {
        let files = read_crate(&root.join(src));
        assert!(!files.is_empty(), "no sources under {src}");
        for problem in check(&files, layers) {
            problems.push(format!("{src}: {problem}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the layers are broken:\n{}",
        problems.join("\n")
    );
}

/// The checker itself fails on an import from a layer above and on modules importing each
/// other, followed through re-exports.
#[test]
fn the_checker_sees_upward_imports_and_cycles() {
    let files = BTreeMap::from([
        ("".to_string(), "mod low; mod high; mod tree;".to_string()),
        ("low".to_string(), "use crate::high::Thing;".to_string()),
        ("high".to_string(), "pub struct Thing;".to_string()),
        (
            "tree".to_string(),
            "mod a; mod b; pub use a::A;".to_string(),
        ),
        (
            "tree::a".to_string(),
            "use super::b::B; pub struct A;".to_string(),
        ),
        (
            "tree::b".to_string(),
            "pub struct B; fn f() -> super::A { super::A }".to_string(),
        ),
    ]);
    let problems = check(&files, &[&["low", "tree"], &["high"]]);
    assert_eq!(
        problems,
        vec![
            "`low` (layer 0) imports `high` (layer 1), a layer above it".to_string(),
            "modules import each other: tree::a, tree::b".to_string(),
        ]
    );
    let clean = BTreeMap::from([
        ("".to_string(), "mod low; mod high;".to_string()),
        ("low".to_string(), "pub struct Thing;".to_string()),
        (
            "high".to_string(),
            "use crate::low::Thing; #[cfg(test)] mod tests { use crate::high; }".to_string(),
        ),
    ]);
    assert!(check(&clean, &[&["low"], &["high"]]).is_empty());
}

/// Every `.rs` file under `src`, by module path (`""` for the crate root).
fn read_crate(src: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                // A folder of binaries holds crates of their own, with their own entries.
                if path.file_name().is_some_and(|n| n == "bin") {
                    continue;
                }
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path
                    .strip_prefix(src)
                    .expect("under src")
                    .with_extension("");
                let mut segments: Vec<String> = relative
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    segments.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    segments.pop();
                }
                let source = std::fs::read_to_string(&path).expect("read a source file");
                files.insert(segments.join("::"), source);
            }
        }
    }
    files
}

/// What is wrong with the imports of a crate whose files are `files` (by module path), against
/// `layers` (top-level modules, bottom layer first).
fn check(files: &BTreeMap<String, String>, layers: &[&[&str]]) -> Vec<String> {
    let modules: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    let parsed: BTreeMap<&str, Parsed> = files
        .iter()
        .map(|(module, source)| {
            let file = syn::parse_file(source)
                .unwrap_or_else(|e| panic!("module `{module}` does not parse: {e}"));
            (module.as_str(), Parsed::of(&file))
        })
        .collect();
    let resolver = Resolver {
        modules: &modules,
        parsed: &parsed,
    };
    let mut problems = Vec::new();
    let layer_of = |module: &str| {
        let top = module.split("::").next().unwrap_or_default();
        layers.iter().position(|layer| layer.contains(&top))
    };
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (&module, found) in &parsed {
        if module.is_empty() {
            continue;
        }
        let Some(layer) = layer_of(module) else {
            problems.push(format!("`{module}` is in no layer: add it to LAYERS"));
            continue;
        };
        for path in &found.paths {
            let Some(target) = resolver.resolve(module, path, 0) else {
                continue;
            };
            if target.is_empty() || target == module || related(module, &target) {
                continue;
            }
            match layer_of(&target) {
                Some(above) if above > layer => problems.push(format!(
                    "`{module}` (layer {layer}) imports `{target}` (layer {above}), a layer above it"
                )),
                _ => {}
            }
            edges.entry(module).or_default().insert(target);
        }
    }
    problems.sort();
    problems.dedup();
    for cycle in cycles(&edges) {
        problems.push(format!("modules import each other: {}", cycle.join(", ")));
    }
    problems
}

/// Whether one module is inside the other.
fn related(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| inner.starts_with(&format!("{outer}::"));
    inside(a, b) || inside(b, a)
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<&str, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<&'a str, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on_stack: BTreeSet<String>,
        found: Vec<Vec<String>>,
    }
    fn visit(state: &mut State<'_>, node: &str) {
        let next = state.index.len();
        state.index.insert(node.to_string(), next);
        state.low.insert(node.to_string(), next);
        state.stack.push(node.to_string());
        state.on_stack.insert(node.to_string());
        let targets: Vec<String> = state
            .edges
            .get(node)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        for target in targets {
            if !state.index.contains_key(&target) {
                visit(state, &target);
                let low = state.low[&target].min(state.low[node]);
                state.low.insert(node.to_string(), low);
            } else if state.on_stack.contains(&target) {
                let low = state.index[&target].min(state.low[node]);
                state.low.insert(node.to_string(), low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(&top);
                let done = top == node;
                component.push(top);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(*node) {
            visit(&mut state, node);
        }
    }
    state.found.sort();
    state.found
}

/// What one file says about modules: the paths it uses, the names its `use` items bind, and
/// the submodules it declares.
#[derive(Default)]
struct Parsed {
    paths: Vec<Vec<String>>,
    bindings: BTreeMap<String, Vec<String>>,
}

impl Parsed {
    fn of(file: &syn::File) -> Parsed {
        let mut parsed = Parsed::default();
        parsed.visit_file(file);
        parsed
    }
}

impl<'ast> Visit<'ast> for Parsed {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test_only(item) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut uses = Vec::new();
        flatten(&item.tree, Vec::new(), &mut uses);
        for (path, bound) in uses {
            if let Some(name) = bound {
                self.bindings.insert(name, path.clone());
            }
            self.paths.push(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 && matches!(segments[0].as_str(), "crate" | "super" | "self") {
            self.paths.push(segments);
        }
        syn::visit::visit_path(self, path);
    }
}

/// Whether an item only exists in tests (`#[cfg(test)]`).
fn is_test_only(item: &syn::Item) -> bool {
    let attrs = match item {
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        _ => return false,
    };
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

/// The paths of a `use` tree, each with the name it binds (none for a glob).
fn flatten(tree: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let with = |name: &syn::Ident| {
        let mut path = prefix.clone();
        if name != "self" {
            path.push(name.to_string());
        }
        path
    };
    match tree {
        syn::UseTree::Path(p) => flatten(&p.tree, with(&p.ident), out),
        syn::UseTree::Name(n) => {
            let bound = if n.ident == "self" {
                prefix.last().cloned()
            } else {
                Some(n.ident.to_string())
            };
            out.push((with(&n.ident), bound));
        }
        syn::UseTree::Rename(r) => out.push((with(&r.ident), Some(r.rename.to_string()))),
        syn::UseTree::Glob(_) => out.push((prefix, None)),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                flatten(tree, prefix.clone(), out);
            }
        }
    }
}

/// Follows paths to the module that defines what they name.
struct Resolver<'a> {
    modules: &'a BTreeSet<&'a str>,
    parsed: &'a BTreeMap<&'a str, Parsed>,
}

impl Resolver<'_> {
    /// The module that `path`, written in module `from`, names or names an item of; `None` for a
    /// path into another crate.
    fn resolve(&self, from: &str, path: &[String], depth: usize) -> Option<String> {
        if depth > 16 {
            return None;
        }
        let (mut module, rest) = match path.first().map(String::as_str) {
            Some("crate") => (String::new(), &path[1..]),
            Some("self") => (from.to_string(), &path[1..]),
            Some("super") => {
                let mut module = from.to_string();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    module = parent(&module);
                    rest = &rest[1..];
                }
                (module, rest)
            }
            // A relative path starts at a submodule of `from`, or leaves the crate.
            Some(first) if self.modules.contains(child(from, first).as_str()) => {
                (from.to_string(), path)
            }
            _ => return None,
        };
        for segment in rest {
            let inner = child(&module, segment);
            if self.modules.contains(inner.as_str()) {
                module = inner;
                continue;
            }
            let binding = self.parsed.get(module.as_str())?.bindings.get(segment);
            return match binding {
                Some(target) => self.resolve(&module, target, depth + 1).or(Some(module)),
                None => Some(module),
            };
        }
        Some(module)
    }
}

fn child(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}::{name}")
    }
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map(|(parent, _)| parent.to_string())
        .unwrap_or_default()
}
