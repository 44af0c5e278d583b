//! ARCHITECTURE.md stays true: every top-level module is in the codemap and depends only on what
//! its "May depend on" column allows (names after "never" are forbidden; comments are not
//! uses), every source file says
//! its job in a `//!` line, `anyhow` stays at the binary edge, and no test waits in real time
//! to make time pass or reads a duration.
//! its job in a `//!` line, `anyhow` stays at the binary edge, and test modules share fixtures
//! only through `support/`.

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

/// One row of the codemap's "May depend on" column.
#[derive(Debug, PartialEq)]
struct Deps {
    /// The modules named before any "never"; `None` for a module that wires everything
    /// (`serve`).
    allowed: Option<Vec<String>>,
    /// The modules named after "never" (`sim`: "never `adapters`").
    forbidden: Vec<String>,
}

/// The codemap's "May depend on" column, module by module, from ARCHITECTURE.md's text.
fn parse_codemap(arch: &str) -> Vec<(String, Deps)> {
    let name = regex::Regex::new(r"`([a-z_]+)(::[a-z_]+)*`").unwrap();
    let never_word = regex::Regex::new(r"\bnever\b").unwrap();
    let names = |text: &str| -> Vec<String> {
        name.captures_iter(text).map(|c| c[1].to_string()).collect()
    };
    arch.lines()
        .filter_map(|line| {
            let row = line.strip_prefix("| `")?;
            let (module, rest) = row.split_once("` | ")?;
            let deps = rest.trim_end_matches(" |").rsplit(" | ").next()?;
            // "never `x`" forbids `x`: it must not count as allowed for being backticked.
            let (may, never) = match never_word.find(deps) {
                Some(m) => (&deps[..m.start()], &deps[m.end()..]),
                None => (deps, ""),
            };
            let allowed = (!may.contains("everything it wires")).then(|| names(may));
            let forbidden = names(never);
            Some((module.to_string(), Deps { allowed, forbidden }))
        })
        .collect()
}

/// The top-level modules `code` names as `crate::x` and `deps` does not allow (`module` itself
/// aside, and only names in `modules`). Comment lines (`//`, `//!`, `///`) do not count: a doc
/// may mention what the code must not use.
fn disallowed_uses(code: &str, module: &str, modules: &[&str], deps: &Deps) -> Vec<String> {
    let used = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    let Some(allowed) = &deps.allowed else {
        return Vec::new();
    };
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| used.captures_iter(line).map(|c| c[1].to_string()))
        .filter(|dep| {
            dep != module
                && modules.contains(&dep.as_str())
                && (deps.forbidden.contains(dep) || !allowed.contains(dep))
        })
        .collect()
}

#[test]
fn the_codemap_parser_forbids_what_follows_never_and_skips_comments() {
    let arch = "| Module | Its one job | May depend on |\n\
                |---|---|---|\n\
                | `sim` | Simulators (`sim/<tool>.rs`) | axum, serde; never `adapters` |\n\
                | `gate` | The core | `domain`, `store` (its errors) |\n\
                | `serve` | Wiring | everything it wires |\n\
                | `domain` | Values | std |\n\
                | `store` | SQL | `domain` |\n\
                | `adapters` | Tools | `domain` |\n";
    let table = parse_codemap(arch);
    let row = |m: &str| &table.iter().find(|(n, _)| n == m).unwrap().1;
    assert_eq!(
        row("sim"),
        &Deps {
            allowed: Some(vec![]),
            forbidden: vec!["adapters".into()]
        }
    );
    assert_eq!(
        row("gate").allowed,
        Some(vec!["domain".into(), "store".into()])
    );
    assert_eq!(row("serve").allowed, None);

    let modules: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
    // A real use breaks the table; the same words in a comment do not.
    let code = "//! Never calls `crate::adapters`.\n\
                /// Unlike crate::store.\n\
                // crate::gate is wired in serve.\n\
                use crate::sim::faults;\n\
                use crate::adapters::Adapter;\n";
    assert_eq!(
        disallowed_uses(code, "sim", &modules, row("sim")),
        vec!["adapters".to_string()]
    );
    let code = "use crate::domain::Id;\nuse crate::store::Store;\nuse crate::adapters::A;\n";
    assert_eq!(
        disallowed_uses(code, "gate", &modules, row("gate")),
        vec!["adapters".to_string()]
    );
    assert!(disallowed_uses(code, "serve", &modules, row("serve")).is_empty());
}

#[test]
fn modules_depend_only_on_what_the_codemap_allows() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let table = parse_codemap(&arch);
    let modules: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
    assert!(
        modules.contains(&"gate") && modules.contains(&"api"),
        "{modules:?}"
    );
    let sim = &table.iter().find(|(m, _)| m == "sim").unwrap().1;
    assert_eq!(sim.forbidden, vec!["adapters".to_string()]);
    let mut wrong = Vec::new();
    for (module, deps) in &table {
        if deps.allowed.is_none() {
            continue;
        }
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
            for dep in disallowed_uses(code, module, &modules, deps) {
                wrong.push(format!("{} uses `crate::{dep}`", f.display()));
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

/// Test code that waits in real time, with why that is the point rather than a way to make
/// time pass: (file, what it calls, why). Everything else sets a manual clock, uses tokio's
/// paused time, or waits for an event.
const REAL_TIME_IN_TESTS: &[(&str, &str, &str)] = &[
    (
        "tests/it/support/poll.rs",
        "tokio::time::sleep",
        "`eventually` waits for a condition between looks; the condition, not the time, ends it",
    ),
    (
        "tests/it/support/orca.rs",
        "tokio::time::sleep",
        "the simulated Orca's own cadence between monitor calls, as Spinnaker's is",
    ),
    (
        "tests/it/support/orca.rs",
        ".elapsed()",
        "the simulated Orca gives up after its configured timeout, as Spinnaker does; no assertion",
    ),
    (
        "src/adapters/cache.rs",
        "tokio::time::sleep",
        "a call held in flight under paused time (`start_paused`): no real time passes",
    ),
];

/// Whether a non-comment line of test code waits in real time or reads a duration: a tokio or
/// thread sleep (a clock's own `sleep` is not one), or `.elapsed()`.
fn real_time_calls(line: &str) -> Vec<&'static str> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    if code.contains("time::sleep") || code.contains("time::{sleep") || code.contains(", sleep}") {
        found.push("tokio::time::sleep");
    }
    if code.contains("thread::sleep") {
        found.push("std::thread::sleep");
    }
    if code.contains(".elapsed()") {
        found.push(".elapsed()");
    }
    found
}

/// The test code of a source file: all of it under tests/ or in a test-only file (`tests.rs`,
/// `proptests.rs`, `test_*.rs`), else its inline `#[cfg(test)] mod … {` to the end (test
/// modules close their files).
fn test_code(rel: &str, text: &str) -> Option<String> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if rel.starts_with("tests/")
        || name == "tests.rs"
        || name == "proptests.rs"
        || name.starts_with("test_")
    {
        return Some(text.to_string());
    }
    let mut offset = 0;
    while let Some(at) = text[offset..].find("#[cfg(test)]") {
        let start = offset + at;
        let inline = text[start..]
            .lines()
            .skip(1)
            .map(str::trim)
            .find(|l| !l.starts_with("#["))
            .is_some_and(|l| l.starts_with("mod ") && l.ends_with('{'));
        if inline {
            return Some(text[start..].to_string());
        }
        offset = start + "#[cfg(test)]".len();
    }
    None
}

#[test]
fn no_test_sleeps_to_make_time_pass_or_reads_a_duration() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    let mut offences = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // This file names the calls it looks for.
        if rel == "tests/it/architecture.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let Some(code) = test_code(&rel, &text) else {
            continue;
        };
        for line in code.lines() {
            for call in real_time_calls(line) {
                let allowed = REAL_TIME_IN_TESTS
                    .iter()
                    .any(|(file, what, _)| *file == rel && (*what == call));
                if !allowed {
                    offences.push(format!("{rel}: {}", line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "test code waiting in real time or reading a duration: set a ManualClock, use \
         tokio's paused time or wait for an event (or, if real time is the point, add it with \
         the reason to REAL_TIME_IN_TESTS):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_real_time_detector_sees_sleeps_and_durations_but_not_a_clocks_sleep_or_comments() {
    assert_eq!(
        real_time_calls("tokio::time::sleep(d).await;"),
        ["tokio::time::sleep"]
    );
    assert_eq!(
        real_time_calls("std::thread::sleep(d);"),
        ["std::thread::sleep"]
    );
    assert_eq!(real_time_calls("assert!(t.elapsed() < d);"), [".elapsed()"]);
    assert!(real_time_calls("clock.sleep(d).await;").is_empty());
    assert!(real_time_calls("// no tokio::time::sleep here").is_empty());
    let inline = "fn a() { std::thread::sleep(d) }\n#[cfg(test)]\nmod t {\n}";
    assert_eq!(
        test_code("src/x.rs", inline),
        Some("#[cfg(test)]\nmod t {\n}".to_string())
    );
    // An out-of-line test module is its own file; the rest of this one is not test code.
    let declared = "#[cfg(test)]\nmod tests;\nfn a() { std::thread::sleep(d) }";
    assert_eq!(test_code("src/x.rs", declared), None);
    assert!(test_code("src/x/tests.rs", "").is_some());
}
/// The sibling test modules `code` (a file of this test binary) names through `crate::x` or,
/// from a top-level test module, `super::x`, including inside `{…}` groups. Comment lines do
/// not count.
fn sibling_imports(code: &str, siblings: &[String], top_level: bool) -> Vec<String> {
    let prefix = if top_level {
        r"\b(?:crate|super)::"
    } else {
        r"\bcrate::"
    };
    let single = regex::Regex::new(&format!(r"{prefix}([a-z_][a-z0-9_]*)")).unwrap();
    let group = regex::Regex::new(&format!(r"{prefix}\{{([^}}]*)")).unwrap();
    let head = regex::Regex::new(r"^\s*([a-z_][a-z0-9_]*)").unwrap();
    let mut named = Vec::new();
    for line in code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
    {
        named.extend(single.captures_iter(line).map(|c| c[1].to_string()));
        for g in group.captures_iter(line) {
            named.extend(
                g[1].split(',')
                    .filter_map(|part| head.captures(part).map(|c| c[1].to_string())),
            );
        }
    }
    named.retain(|m| siblings.contains(m));
    named
}

#[test]
fn the_sibling_import_finder_sees_paths_and_groups_and_skips_comments() {
    let siblings = vec!["http".to_string(), "grpc".to_string(), "cli".to_string()];
    let code = "//! Like `crate::http::good_check`, once.\n\
                use crate::support::fixtures::good_check;\n\
                use crate::{cli::portcullis, support::poll};\n\
                let c = super::grpc::grpc_check(\"k\");\n";
    assert_eq!(
        sibling_imports(code, &siblings, true),
        vec!["cli".to_string(), "grpc".to_string()]
    );
    // Below the top level, `super` is the parent module, not the crate.
    assert!(sibling_imports("use super::http::x;\n", &siblings, false).is_empty());
    assert_eq!(
        sibling_imports("use crate::http::x;\n", &siblings, false),
        vec!["http".to_string()]
    );
}

/// Fixtures shared between test modules live in `support/` once: a test module that imports
/// from a sibling ties the two together, so moving or deleting one test breaks the other.
#[test]
fn test_modules_import_fixtures_only_from_support() {
    let it = root().join("tests").join("it");
    let mut siblings: Vec<String> = std::fs::read_dir(&it)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .filter(|m| m != "main" && m != "support")
        .collect();
    siblings.sort();
    assert!(siblings.contains(&"http".to_string()), "{siblings:?}");
    let mut files = Vec::new();
    rust_files(&it, &mut files);
    let mut wrong = Vec::new();
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        // This file's string literals are sample code for the parser tests above.
        if name == "architecture" || name == "main" {
            continue;
        }
        let top_level = f.parent() == Some(it.as_path());
        let text = std::fs::read_to_string(&f).unwrap();
        for m in sibling_imports(&text, &siblings, top_level) {
            if m != name {
                wrong.push(format!("{} uses test module `{m}`", f.display()));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "test modules import from sibling test modules (move the fixture into tests/it/support/):\n{}",
        wrong.join("\n")
    );
}
