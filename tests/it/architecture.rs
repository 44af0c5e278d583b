//! ARCHITECTURE.md stays true: every top-level module is in the codemap and depends only on what
//! its "May depend on" column allows, every source file says
//! its job in a `//!` line, and `anyhow` stays at the binary edge.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        assert!(
            first.starts_with("//!"),
            "{} does not start with a `//!` module doc",
            f.display()
        );
    }
}

#[test]
fn every_top_level_module_is_in_the_codemap() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for entry in std::fs::read_dir(root().join("src")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            if name == "lib" || name == "main" {
                continue;
            }
            assert!(
                arch.contains(&format!("`{name}`")),
                "module `{name}` is missing from ARCHITECTURE.md"
            );
        }
    }
}

#[test]
fn anyhow_stays_at_the_binary_edge() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for f in files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "src/main.rs" || rel.starts_with("src/cli") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("anyhow"),
            "{rel} uses anyhow; use a thiserror enum"
        );
    }
}

#[test]
fn only_the_store_runs_sql() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for f in files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("src/store") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("sqlx::"),
            "{rel} uses sqlx; SQL belongs in `store`"
        );
    }
}

/// The codemap's "May depend on" column, module by module; `None` for a module that wires
/// everything (`serve`).
fn allowed_dependencies() -> Vec<(String, Option<Vec<String>>)> {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let name = regex::Regex::new(r"`([a-z_]+)(::[a-z_]+)*`").unwrap();
    arch.lines()
        .filter_map(|line| {
            let row = line.strip_prefix("| `")?;
            let (module, rest) = row.split_once("` | ")?;
            let deps = rest.trim_end_matches(" |").rsplit(" | ").next()?;
            let allowed = (!deps.contains("everything it wires"))
                .then(|| name.captures_iter(deps).map(|c| c[1].to_string()).collect());
            Some((module.to_string(), allowed))
        })
        .collect()
}

#[test]
fn modules_depend_only_on_what_the_codemap_allows() {
    let table = allowed_dependencies();
    let modules: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
    assert!(
        modules.contains(&"gate") && modules.contains(&"api"),
        "{modules:?}"
    );
    let used = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    let mut wrong = Vec::new();
    for (module, allowed) in &table {
        let Some(allowed) = allowed else { continue };
        let mut files = Vec::new();
        let file = root().join("src").join(format!("{module}.rs"));
        if file.exists() {
            files.push(file);
        }
        let dir = root().join("src").join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // Test modules sit at the end of a file; what they use is not a dependency.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for c in used.captures_iter(code) {
                let dep = &c[1];
                if dep != module && modules.contains(&dep) && !allowed.iter().any(|a| a == dep) {
                    wrong.push(format!("{} uses `crate::{dep}`", f.display()));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "dependencies the codemap's \"May depend on\" column does not allow (fix the code, or the \
         table if the dependency is right):\n{}",
        wrong.join("\n")
    );
}
