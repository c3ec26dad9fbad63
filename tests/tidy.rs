//! The rules ARCHITECTURE.md states ("Invariants"), checked on the source tree:
//! what each crate may depend on, no clock, file system or process in hpo-core,
//! SQL only in hpo-store, `unsafe` only in hpo-kernels (every other crate forbids
//! it) and each block with a `// SAFETY:` comment, a `//!` doc at the top of every
//! module, printing only in the binary; and every file the code map names exists.
//! Each failure names the file and line that breaks a rule, and the rule.

use std::path::{Path, PathBuf};

use crate::util::repo;

/// Every `.rs` file under `dir` (relative to the repository), recursively, in a
/// stable order.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join(dir), &mut out);
    out
}

/// `path` relative to the repository, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap_or(path).display().to_string()
}

/// The lines of `path` that are code outside a trailing `#[cfg(test)] mod tests`
/// block, with their numbers; comments are kept (rules that read code skip them).
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (idx, line) in lines.iter().enumerate() {
        let next = lines.get(idx + 1).map_or("", |l| l.trim());
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod tests") && next.ends_with('{') {
            break;
        }
        out.push((idx + 1, (*line).to_owned()));
    }
    out
}

fn is_comment(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("//")
}

/// `file:line: code` for each line of code (comments skipped, and a trailing test
/// module) under `crates/` and `tests/` that `matches`, in the files (named
/// relative to the repository) that `skip` does not skip.
fn code_where(skip: impl Fn(&str) -> bool, matches: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for path in ["crates", "tests"].iter().flat_map(|dir| rust_files(dir)) {
        let name = shown(&path);
        if skip(&name) {
            continue;
        }
        for (number, line) in code_lines(&path) {
            let code = line.trim();
            if matches(code) && !is_comment(code) {
                found.push(format!("{name}:{number}: {code}"));
            }
        }
    }
    found
}

#[track_caller]
fn assert_none(problems: Vec<String>, rule: &str) {
    assert!(problems.is_empty(), "{rule}:\n  {}", problems.join("\n  "));
}

/// The names of the `[dependencies]` and `[build-dependencies]` of a manifest.
fn dependencies(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(manifest)).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| doc.get(*section).and_then(toml::Value::as_table))
        .flat_map(|table| table.keys().cloned())
        .collect()
}

#[test]
fn each_crate_depends_only_on_what_its_layer_allows() {
    const HPO: [&str; 7] = [
        "hpo-core",
        "hpo-kernels",
        "hpo-store",
        "hpo-train",
        "hpo-command",
        "hpo-report",
        "hpo-server",
    ];
    // IO, databases, GPU, HTTP, plotting, terminals, async.
    const IO: [&str; 16] = [
        "rusqlite",
        "postgres",
        "candle-core",
        "candle-nn",
        "gemm",
        "plotters",
        "axum",
        "tokio",
        "tower-http",
        "ureq",
        "tungstenite",
        "nix",
        "ctrlc",
        "indicatif",
        "tracing-subscriber",
        "prometheus-client",
    ];
    // (manifest, the hpo crates it may use, the other crates it may not use)
    let rules: [(&str, &[&str], &[&str]); 7] = [
        ("crates/core/Cargo.toml", &[], &IO),
        (
            // The kernels know candle and the GPU, nothing of studies.
            "crates/kernels/Cargo.toml",
            &[],
            &["rusqlite", "postgres", "plotters", "axum", "tokio", "ureq", "tracing"],
        ),
        (
            "crates/store/Cargo.toml",
            &["hpo-core"],
            &["candle-core", "candle-nn", "plotters", "axum", "tokio", "ureq"],
        ),
        (
            // The matrix product and the allocator only through hpo-kernels.
            "crates/train/Cargo.toml",
            &["hpo-core", "hpo-kernels"],
            &[
                "rusqlite",
                "postgres",
                "plotters",
                "axum",
                "tokio",
                "ureq",
                "gemm",
                "libmimalloc-sys",
            ],
        ),
        (
            "crates/command/Cargo.toml",
            &["hpo-core"],
            &["rusqlite", "postgres", "candle-core", "candle-nn", "plotters", "axum", "tokio"],
        ),
        (
            "crates/report/Cargo.toml",
            &["hpo-core"],
            &["rusqlite", "postgres", "candle-core", "candle-nn", "axum", "tokio", "ureq"],
        ),
        (
            // hpo-command only for where a command trial's folder (its logs) is.
            "crates/server/Cargo.toml",
            &["hpo-core", "hpo-store", "hpo-report", "hpo-command"],
            &["candle-core", "candle-nn", "plotters"],
        ),
    ];
    let mut problems = Vec::new();
    for (manifest, hpo_allowed, forbidden) in rules {
        for dependency in dependencies(manifest) {
            let hpo = HPO.contains(&dependency.as_str());
            if (hpo && !hpo_allowed.contains(&dependency.as_str()))
                || forbidden.contains(&dependency.as_str())
            {
                problems.push(format!("{manifest}: depends on {dependency}"));
            }
        }
    }
    // hpo-server is the only async crate.
    for manifest in [
        "Cargo.toml",
        "crates/core/Cargo.toml",
        "crates/store/Cargo.toml",
        "crates/train/Cargo.toml",
        "crates/command/Cargo.toml",
        "crates/report/Cargo.toml",
    ] {
        for dependency in dependencies(manifest) {
            if ["tokio", "axum", "tower-http"].contains(&dependency.as_str()) {
                problems.push(format!(
                    "{manifest}: depends on {dependency} (only hpo-server is async)"
                ));
            }
        }
    }
    assert_none(problems, "a crate depends on what ARCHITECTURE.md's invariants 1, 3 and 6 forbid");
}

#[test]
fn hpo_core_reads_no_clock_and_touches_no_file_or_process() {
    const FORBIDDEN: [&str; 8] = [
        "Instant",
        "SystemTime",
        "std::fs",
        "std::process",
        "std::env",
        "std::net",
        "thread::sleep",
        "File::",
    ];
    let mut problems = Vec::new();
    for path in rust_files("crates/core/src") {
        // Unit tests may time and sleep; the library may not.
        if path.file_name().is_some_and(|name| name == "tests.rs") {
            continue;
        }
        for (number, line) in code_lines(&path) {
            if is_comment(&line) {
                continue;
            }
            if let Some(word) = FORBIDDEN.iter().find(|word| line.contains(*word)) {
                problems.push(format!("{}:{number}: `{word}`: {}", shown(&path), line.trim()));
            }
        }
    }
    assert_none(
        problems,
        "hpo-core reads a clock, a file, the environment or a process (invariant 1: they come through `run::Host`, `Storage::now` or the caller)",
    );
}

#[test]
fn sql_is_written_only_in_hpo_store() {
    const SQL: [&str; 7] = [
        "\"SELECT ",
        "\"INSERT INTO",
        "\"CREATE TABLE",
        "\"CREATE INDEX",
        "\"DELETE FROM",
        "\"DROP TABLE",
        "\"ALTER TABLE",
    ];
    // Tests that break a database on purpose, or administer the PostgreSQL
    // server (roles, cut connections), and count rows the way an outsider would.
    const ALLOWED: [&str; 3] = ["tests/faults.rs", "tests/postgres.rs", "tests/tidy.rs"];
    let problems = code_where(
        |name| name.starts_with("crates/store/") || ALLOWED.contains(&name),
        |code| SQL.iter().any(|word| code.contains(word)),
    );
    assert_none(problems, "SQL outside hpo-store (invariant 2)");
}

#[test]
fn unsafe_code_is_only_in_hpo_kernels() {
    const UNSAFE: [&str; 4] = ["unsafe {", "unsafe fn", "unsafe impl", "allow(unsafe_code)"];
    let problems = code_where(
        |name| name.starts_with("crates/kernels/") || name == "tests/tidy.rs",
        |code| UNSAFE.iter().any(|word| code.contains(word)),
    );
    assert_none(problems, "unsafe code outside crates/kernels (invariant 9)");
}

#[test]
fn every_crate_but_hpo_kernels_forbids_unsafe_code() {
    let mut problems = Vec::new();
    let roots = std::fs::read_dir(repo().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| !dir.ends_with("kernels"))
        .map(|dir| if dir.ends_with("cli") { dir.join("main.rs") } else { dir.join("src/lib.rs") });
    for root in roots {
        let text = std::fs::read_to_string(&root).unwrap();
        if !text.lines().any(|line| line.trim() == "#![forbid(unsafe_code)]") {
            problems.push(format!("{}:1: no #![forbid(unsafe_code)]", shown(&root)));
        }
    }
    assert_none(problems, "a crate root without `#![forbid(unsafe_code)]` (invariant 9)");
}

#[test]
fn every_unsafe_block_says_why_it_is_sound() {
    let mut problems = Vec::new();
    for path in ["crates", "tests"].iter().flat_map(|dir| rust_files(dir)) {
        let name = shown(&path);
        if name == "tests/tidy.rs" {
            continue;
        }
        let lines = code_lines(&path);
        for (at, (number, line)) in lines.iter().enumerate() {
            let code = line.trim();
            let unsafe_code = code.contains("unsafe {") || code.contains("unsafe impl");
            if !unsafe_code || is_comment(code) {
                continue;
            }
            let said = lines[at.saturating_sub(6)..=at].iter().any(|(_, l)| l.contains("SAFETY:"));
            if !said {
                problems.push(format!("{name}:{number}: {code}"));
            }
        }
    }
    assert_none(problems, "an unsafe block without a `// SAFETY:` comment just above it");
}

#[test]
fn every_module_starts_with_its_doc() {
    let mut problems = Vec::new();
    for path in ["crates", "tests"].iter().flat_map(|dir| rust_files(dir)) {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().find(|line| !line.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            problems.push(format!("{}:1: {first}", shown(&path)));
        }
    }
    assert_none(problems, "a module without a `//!` doc on its first line");
}

#[test]
fn only_the_binary_prints_or_exits() {
    const PRINTS: [&str; 6] =
        ["println!", "eprintln!", "print!(", "eprint!(", "dbg!(", "process::exit"];
    let mut problems = Vec::new();
    for dir in [
        "crates/core",
        "crates/store",
        "crates/kernels/src",
        "crates/train/src",
        "crates/command",
        "crates/report",
        "crates/server",
    ] {
        for path in rust_files(dir) {
            let name = shown(&path);
            // Unit tests may print what they measured.
            if path.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            for (number, line) in code_lines(&path) {
                if PRINTS.iter().any(|word| line.contains(word)) && !is_comment(&line) {
                    problems.push(format!("{name}:{number}: {}", line.trim()));
                }
            }
        }
    }
    assert_none(
        problems,
        "a library prints or exits (invariant 4: libraries return values and log through `tracing`)",
    );
}

/// Every file and folder the code map of ARCHITECTURE.md names (`spec/`,
/// `shape.rs`, `crates/kernels/cuda/fused.cu`, ...) is in the repository, so a
/// reader following it finds each one.
#[test]
fn every_file_the_code_map_names_exists() {
    const KINDS: [&str; 10] =
        [".rs", ".js", ".sh", ".py", ".toml", ".md", ".cu", ".css", ".sql", ".jsonl"];
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = shown(&path);
            if name == "target" || name.starts_with('.') || name.ends_with("node_modules") {
                continue;
            }
            if path.is_dir() {
                out.push(format!("{name}/"));
                walk(&path, out);
            } else {
                out.push(name);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo(), &mut files);
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let (before, after) = text.split_once("## Code map").expect("a code map");
    let map = after.split("\n## ").next().unwrap();
    let first_line = before.lines().count();
    let mut named = 0;
    let mut problems = Vec::new();
    for (number, line) in map.lines().enumerate() {
        for name in line.split('`').skip(1).step_by(2) {
            let is_file = KINDS.iter().any(|kind| name.ends_with(kind)) || name.ends_with('/');
            if !is_file || name.contains(char::is_whitespace) {
                continue;
            }
            named += 1;
            let suffix = format!("/{name}");
            if !files.iter().any(|file| file == name || file.ends_with(&suffix)) {
                problems.push(format!("ARCHITECTURE.md:{}: `{name}`", first_line + number + 1));
            }
        }
    }
    assert!(named > 100, "the code map names {named} files; is it still there?");
    assert_none(problems, "a file the code map names is not in the repository");
}
