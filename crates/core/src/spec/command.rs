//! `[objective] kind = "command"`: any program run once per trial. This module
//! holds its validated settings and the placeholders of its command line
//! (`{lr}`, `{trial_dir}`, `{dropout:0}`); hpo-command runs it.

use std::time::Duration;

use crate::space::SearchSpace;

/// `[objective] kind = "command"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    /// The program and its arguments, placeholders unfilled.
    pub command: Vec<String>,
    /// Devices to share the trials among (`devices`, `trials_per_device`; hpo-command
    /// reads `cuda:N` as: the trial's program sees that GPU alone, through
    /// `CUDA_VISIBLE_DEVICES`).
    pub devices: super::Devices,
    /// The folder it runs in, as written (relative to the study file's folder);
    /// the study file's folder when unset.
    pub cwd: Option<String>,
    /// Variables added to its environment (values may hold placeholders).
    pub env: Vec<(String, String)>,
    /// The longest one trial may run: then it is stopped and fails.
    pub timeout: Option<Duration>,
    /// Where its metrics come from.
    pub metrics: MetricsSource,
    /// How long a trial's processes get between SIGTERM and SIGKILL when it stops.
    pub grace: Duration,
}

/// How a program writes its metrics, a step per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// `{"step": 3, "val_loss": 0.31, "train_loss": 0.2}`.
    Json,
    /// `step=3 val_loss=0.31 train_loss=0.2` (Katib's format; `step` optional).
    KeyValue,
}

/// Where a program's metrics are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsSource {
    /// Lines of its standard output (other lines are kept in its log).
    Stdout(MetricsFormat),
    /// A file it appends to (placeholders allowed in the path).
    File {
        /// The file, as written.
        path: String,
        /// Its lines' format.
        format: MetricsFormat,
    },
}

/// Names every command may use besides the parameters.
pub const BUILTINS: [&str; 4] = ["trial", "trial_dir", "seed", "study"];

/// One piece of a template: text, or a placeholder with an optional default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (`{{` and `}}` already made single).
    Text(String),
    /// `{name}` or `{name:default}`.
    Slot {
        /// The parameter or built-in name.
        name: String,
        /// What to write when the parameter is inactive.
        default: Option<String>,
    },
}

/// Splits `text` into text and placeholders; an error names what is malformed.
pub fn pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => {
                            return Err(format!(
                                "`{text}` opens a placeholder that does not close; write `{{name}}`, or `{{{{` for a brace"
                            ));
                        }
                    }
                }
                let (name, default) = match inner.split_once(':') {
                    Some((name, default)) => (name.trim(), Some(default.to_owned())),
                    None => (inner.trim(), None),
                };
                if name.is_empty() {
                    return Err(format!("`{text}` has an empty placeholder `{{{inner}}}`"));
                }
                if !literal.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut literal)));
                }
                out.push(Piece::Slot { name: name.to_owned(), default });
            }
            '}' => {
                return Err(format!(
                    "`{text}` has a `}}` that closes no placeholder; write `}}}}` for a brace"
                ));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        out.push(Piece::Text(literal));
    }
    Ok(out)
}

/// Checks that every placeholder of `text` names a parameter of `space` or a
/// built-in, and that a conditional parameter has a default.
pub fn check_template(text: &str, space: &SearchSpace) -> Result<(), String> {
    for piece in pieces(text)? {
        let Piece::Slot { name, default } = piece else { continue };
        if BUILTINS.contains(&name.as_str()) {
            continue;
        }
        match space.get(&name) {
            None => {
                let mut known: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
                known.extend(BUILTINS);
                return Err(format!(
                    "`{{{name}}}` names no parameter; use one of {}",
                    known.join(", ")
                ));
            }
            Some(param) if param.condition.is_some() && default.is_none() => {
                return Err(format!(
                    "`{name}` is conditional, so a trial may lack it: give `{{{name}}}` a default, e.g. `{{{name}:0}}`"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `text` with its placeholders filled by `value` (`None`: the parameter is
/// inactive, and its default is written).
pub fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces(text)? {
        match piece {
            Piece::Text(it) => out.push_str(&it),
            Piece::Slot { name, default } => match value(&name).or(default) {
                Some(it) => out.push_str(&it),
                None => {
                    return Err(format!("`{{{name}}}` has no value in this trial and no default"));
                }
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_escapes_and_defaults() {
        let value = |name: &str| match name {
            "lr" => Some("0.01".to_owned()),
            "trial" => Some("7".to_owned()),
            _ => None,
        };
        assert_eq!(fill("--lr={lr}", value).unwrap(), "--lr=0.01");
        assert_eq!(fill("{trial}/{{x}}", value).unwrap(), "7/{x}");
        assert_eq!(fill("{dropout:0.0}", value).unwrap(), "0.0");
        assert!(fill("{dropout}", value).unwrap_err().contains("no default"));
        assert!(pieces("{lr").unwrap_err().contains("does not close"));
        assert!(pieces("a}b").unwrap_err().contains("closes no placeholder"));
        assert!(pieces("{}").unwrap_err().contains("empty placeholder"));
    }
}
