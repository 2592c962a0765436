//! The tree keeps its layers (docs/architecture.md): arrows point down
//! only, and no source file grows past 800 lines.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn src(layer: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(layer)
}

/// Every `crate::<module>` a layer's files name, with where.
fn imports_of(layer: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let dir = src(layer);
    let files = if dir.is_dir() {
        rust_files(&dir)
    } else {
        vec![src(&format!("{layer}.rs"))]
    };
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push((module, format!("{}:{}", file.display(), n + 1)));
            }
        }
    }
    found
}

fn assert_layer_uses_only(layer: &str, allowed: &[&str]) {
    let bad: Vec<String> = imports_of(layer)
        .into_iter()
        .filter(|(m, _)| m != layer && !allowed.contains(&m.as_str()))
        .map(|(m, at)| format!("{at}: crate::{m}"))
        .collect();
    assert!(
        bad.is_empty(),
        "{layer} may use only {allowed:?}, but names:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_core_uses_nothing_but_its_own_types_and_the_config() {
    assert_layer_uses_only("core", &["config"]);
}

#[test]
fn the_simulator_imports_nothing_from_the_rest() {
    assert_layer_uses_only("sim", &[]);
}

#[test]
fn peers_and_store_do_not_reach_up() {
    // `signals` is a leaf: the process-wide stop flag a long read checks.
    assert_layer_uses_only("peers", &["core", "config", "signals"]);
    assert_layer_uses_only("store", &["core", "config"]);
    assert_layer_uses_only("config", &["core"]);
}

#[test]
fn the_tick_never_reaches_the_commands_or_their_rendering() {
    assert_layer_uses_only("tick", &["core", "config", "peers", "store", "signals"]);
}

#[test]
fn no_source_file_is_over_800_lines() {
    let long: Vec<String> = rust_files(&src(""))
        .into_iter()
        .filter(|p| {
            // Unit-test files are exempt: they grow with the rows they cover.
            let name = p.file_name().unwrap().to_str().unwrap();
            name != "tests.rs" && !p.components().any(|c| c.as_os_str() == "tests")
        })
        .filter_map(|p| {
            let n = std::fs::read_to_string(&p).unwrap().lines().count();
            (n > 800).then(|| format!("{} ({n} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "over 800 lines:\n{}", long.join("\n"));
}
