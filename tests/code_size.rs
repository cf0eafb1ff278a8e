//! The codebase's size limit (issue 13): no library function over 100 lines, so each reads on
//! one screen. Every non-test function and method of the library crates is measured from its
//! signature to its closing brace, doc comments and attributes not counted; tests (`#[test]`
//! functions and `#[cfg(test)]` modules) are not library code and are not measured.

use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The longest a library function may be, in lines.
const MAX_LINES: usize = 100;

/// Collects `(name, first line, lines)` of every function outside tests.
struct Functions {
    found: Vec<(String, usize, usize)>,
}

/// `true` for `#[test]`, `#[tokio::test]` and `#[cfg(test)]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        path.segments.last().is_some_and(|s| s.ident == "test")
            || (path.is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

impl Functions {
    /// Records a function whose signature starts at `sig` and whose body is `block`.
    fn measure(&mut self, sig: &syn::Signature, block: &syn::Block) {
        use syn::spanned::Spanned;
        let (first, last) = (sig.span().start().line, block.span().end().line);
        self.found
            .push((sig.ident.to_string(), first, last + 1 - first));
    }
}

impl<'a> Visit<'a> for Functions {
    fn visit_item_fn(&mut self, f: &'a syn::ItemFn) {
        if !is_test(&f.attrs) {
            self.measure(&f.sig, &f.block);
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            self.measure(&f.sig, &f.block);
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_trait_item_fn(&mut self, f: &'a syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.measure(&f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }

    fn visit_item_mod(&mut self, m: &'a syn::ItemMod) {
        if !is_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_library_function_is_over_100_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src",
        "agent-core/src",
        "strategies/src",
        "connectors/src",
        "models/src",
    ] {
        sources(&root.join(dir), &mut files);
    }
    let (mut measured, mut over) = (0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let parsed = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
        let mut functions = Functions { found: Vec::new() };
        functions.visit_file(&parsed);
        measured += functions.found.len();
        for (name, line, lines) in functions.found {
            if lines > MAX_LINES {
                over.push(format!("{}:{line} {name}: {lines} lines", file.display()));
            }
        }
    }
    // The walk found the crates' functions: a broken walk would pass with nothing measured.
    assert!(measured > 1_000, "only {measured} functions measured");
    assert!(
        over.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        over.join("\n")
    );
}
