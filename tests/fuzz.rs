//! Seeded mutations of the example studies, run as a user would run them: hpo exits 0,
//! 1 or 2 (never a panic, an abort or a hang), and every exit 2 names the study file's
//! line and column.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::util::{Dir, OutputAsync, repo, text};

/// How many mutated files the test runs, and the seed that makes them.
const MUTATIONS: usize = 300;
const SEED: u64 = 0x5eed_2026;

/// A running trial gets this long before the test presses Ctrl-C; after that the run
/// must end within [`STOP_WITHIN`].
const RUN_FOR: Duration = Duration::from_secs(4);
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// Values a hostile or careless user writes: out-of-range counts, huge and odd
/// numbers, other types, empty and malformed strings and tables.
const VALUES: &[&str] = &[
    "-1",
    "0",
    "1",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "1e308",
    "-1e308",
    "1e-320",
    "inf",
    "-inf",
    "nan",
    "0.5",
    "true",
    "\"\"",
    "\"x\"",
    "\"0\"",
    "\"0s\"",
    "\"99999999999h\"",
    "\"auto\"",
    "\"cuda\"",
    "\"cuda:99\"",
    "[]",
    "[1]",
    "[1, \"a\"]",
    "[0, 9223372036854775807]",
    "[1e308, -1e308]",
    "{}",
    "{ a = 1 }",
    "{ float = [1, 0] }",
    "{ int = [0, 9223372036854775807] }",
    "{ choice = [] }",
    "1979-05-27",
    "1979-05-27T07:32:00Z",
];

/// A small seeded generator (xorshift64*), so each failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One mutation of `text`: a value replaced, a line dropped, doubled or moved, a byte
/// changed (not always into UTF-8), or the file cut short.
fn mutate(text: &str, rng: &mut Rng) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let assignments: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(" = ") && !lines[i].starts_with('#'))
        .collect();
    match rng.below(6) {
        0 | 1 if !assignments.is_empty() => {
            let at = assignments[rng.below(assignments.len())];
            let key = lines[at].split(" = ").next().unwrap_or_default().to_owned();
            lines[at] = format!("{key} = {}", VALUES[rng.below(VALUES.len())]);
        }
        2 if !assignments.is_empty() => {
            // Inside a parameter's table: replace one number or string.
            let at = assignments[rng.below(assignments.len())];
            let line = &lines[at];
            let cuts: Vec<usize> =
                line.match_indices(['[', ',', '=']).map(|(i, _)| i + 1).collect();
            let from = cuts[rng.below(cuts.len())];
            let to = line[from..].find([',', ']', '}']).map_or(line.len(), |i| from + i);
            lines[at] =
                format!("{} {}{}", &line[..from], VALUES[rng.below(VALUES.len())], &line[to..]);
        }
        3 => {
            let at = rng.below(lines.len());
            if rng.below(2) == 0 {
                lines.remove(at);
            } else {
                let line = lines[at].clone();
                lines.insert(rng.below(lines.len()), line);
            }
        }
        4 => {
            let mut bytes = lines.join("\n").into_bytes();
            let at = rng.below(bytes.len());
            bytes[at] = [b'"', b'[', b']', b'{', b'=', b'\n', 0xff, 0xc3, 0][rng.below(9)];
            return bytes;
        }
        _ => {
            let joined = lines.join("\n");
            let mut cut = rng.below(joined.len());
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            return joined.as_bytes()[..cut].to_vec();
        }
    }
    (lines.join("\n") + "\n").into_bytes()
}

/// Waits for `child` up to `limit`; `None` when it is still running.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Some(position)` when `stderr` names `file` with a line and column (`file:L:C:`).
fn file_line_col(stderr: &str, file: &str) -> Option<(usize, usize)> {
    let rest = &stderr[stderr.find(&format!("{file}:"))? + file.len() + 1..];
    let mut parts = rest.splitn(3, ':');
    let line = parts.next()?.parse().ok()?;
    let column = parts.next()?.parse().ok()?;
    Some((line, column))
}

#[test]
fn mutated_example_studies_exit_0_1_or_2_and_every_2_names_line_and_column() {
    let mut studies: Vec<(String, String)> = std::fs::read_dir(repo().join("studies"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    studies.sort();
    let dir = Dir::new();
    let mut rng = Rng(SEED);
    let mut exits = [0usize; 4];
    for number in 0..MUTATIONS {
        let (study, original) = &studies[number % studies.len()];
        let file = format!("m{number}.toml");
        let bytes = mutate(original, &mut rng);
        std::fs::write(dir.path().join(&file), &bytes).unwrap();
        let db = format!("m{number}.sqlite");
        let mut child = dir.hpo(&["run", &file, "--db", &db, "--trials", "2"]).output_async();
        let replay =
            || format!("mutation {number} of {study}:\n{}", String::from_utf8_lossy(&bytes));
        let mut interrupted = false;
        let status = match wait_for(&mut child, RUN_FOR) {
            Some(status) => status,
            None => {
                interrupted = true;
                Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
                match wait_for(&mut child, STOP_WITHIN) {
                    Some(status) => status,
                    None => {
                        child.kill().unwrap();
                        panic!("hpo did not stop within {STOP_WITHIN:?} of Ctrl-C: {}", replay());
                    }
                }
            }
        };
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        // Ctrl-C before hpo set up its handler (while it reads a dataset) ends it by
        // the signal itself, as it ends any program.
        let by_ctrl_c = interrupted && status.signal() == Some(2);
        let code = status.code();
        assert!(
            matches!(code, Some(0..=2)) || (interrupted && code == Some(130)) || by_ctrl_c,
            "exit {status} ({code:?}); stderr:\n{stderr}\n{}",
            replay()
        );
        assert!(!stderr.contains("panicked"), "a panic:\n{stderr}\n{}", replay());
        if code == Some(2) {
            assert!(
                file_line_col(&stderr, &file).is_some(),
                "exit 2 without {file}:LINE:COL:\n{stderr}\n{}",
                replay()
            );
        }
        exits[if interrupted { 3 } else { code.map_or(3, |it| (it as usize).min(3)) }] += 1;
    }
    // The mutations reach both the parser and real trainings.
    assert!(
        exits[2] > MUTATIONS / 4 && exits[0] + exits[3] > MUTATIONS / 20,
        "exits 0, 1, 2 and interrupted: {exits:?}"
    );
}
