//! Tokens: who may read and who may write.
//!
//! A tokens file has one `TOKEN ROLE` per line (`ROLE` is `read` or `write`; a
//! write token reads too); blank lines and `#` comments are skipped. A request
//! carries its token as `Authorization: Bearer TOKEN`. Tokens are compared in
//! constant time and never logged, and a file that anyone on the machine can read
//! is refused.

use std::path::Path;

use axum::http::{HeaderMap, StatusCode, header};

use crate::error::ApiError;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The read endpoints.
    Read,
    /// Every endpoint.
    Write,
}

/// The tokens a server accepts.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Role)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        write!(f, "Tokens({} entries)", self.entries.len())
    }
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Anyone on the machine can read it.
    #[error(
        "the tokens file {path} can be read by anyone on this machine (mode {mode:o}); make it private: chmod 600 {path}"
    )]
    WorldReadable {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `TOKEN ROLE`.
    #[error("{path}:{line}: expected `TOKEN ROLE` with ROLE `read` or `write`, found {found}")]
    BadLine {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What the line holds instead (the token itself is never shown).
        found: String,
    },
    /// No token in the file.
    #[error("the tokens file {path} holds no token; add a line `TOKEN write`")]
    Empty {
        /// The file.
        path: String,
    },
}

impl Tokens {
    /// Reads a tokens file, refusing one anyone may read.
    pub fn from_file(path: &Path) -> Result<Tokens, TokensError> {
        let shown = path.display().to_string();
        let read = |source| TokensError::Read { path: shown.clone(), source };
        let metadata = std::fs::metadata(path).map_err(read)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                return Err(TokensError::WorldReadable { path: shown, mode });
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
        let text = std::fs::read_to_string(path).map_err(read)?;
        Tokens::parse(&text, &shown)
    }

    /// Parses a tokens file's text; `path` is for messages.
    pub fn parse(text: &str, path: &str) -> Result<Tokens, TokensError> {
        let mut entries = Vec::new();
        for (idx, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let role = match fields.as_slice() {
                [_, "read"] => Role::Read,
                [_, "write"] => Role::Write,
                [_] => {
                    return Err(TokensError::BadLine {
                        path: path.to_owned(),
                        line: idx + 1,
                        found: "a token without a role".into(),
                    });
                }
                [_, role] => {
                    return Err(TokensError::BadLine {
                        path: path.to_owned(),
                        line: idx + 1,
                        found: format!("the role `{role}`"),
                    });
                }
                _ => {
                    return Err(TokensError::BadLine {
                        path: path.to_owned(),
                        line: idx + 1,
                        found: format!("{} words", fields.len()),
                    });
                }
            };
            entries.push((fields[0].as_bytes().to_vec(), role));
        }
        if entries.is_empty() {
            return Err(TokensError::Empty { path: path.to_owned() });
        }
        Ok(Tokens { entries })
    }

    /// The role of the request's bearer token, if it carries a known one. Every
    /// known token is compared, each in constant time, so the time taken says
    /// nothing about which matched or how much of one did.
    fn role_of(&self, headers: &HeaderMap) -> Option<Role> {
        let given = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let given = given.strip_prefix("Bearer ")?.trim().as_bytes();
        let mut found = None;
        for (token, role) in &self.entries {
            if constant_time_eq(token, given) {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

/// Whether `a` equals `b`, taking the same time for every `b` of `a`'s length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who may do what on a server.
#[derive(Debug, Clone)]
pub struct Access {
    /// The tokens; `None` on a loopback-only server without a tokens file, where
    /// every local request may do everything.
    pub tokens: Option<Tokens>,
    /// Whether the read endpoints need no token.
    pub public_read: bool,
}

impl Access {
    /// Lets a request that needs `role` through, or says why not: 401 without a
    /// known token, 403 with a read token on a write endpoint.
    pub fn check(&self, headers: &HeaderMap, role: Role) -> Result<(), ApiError> {
        let Some(tokens) = &self.tokens else { return Ok(()) };
        if role == Role::Read && self.public_read {
            return Ok(());
        }
        match tokens.role_of(headers) {
            Some(have) if have >= role => Ok(()),
            Some(_) => Err(ApiError {
                status: StatusCode::FORBIDDEN,
                error: "forbidden",
                detail: "this token may only read; this endpoint writes and needs a write token"
                    .into(),
            }),
            None => Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                error: "unauthorized",
                detail: if headers.contains_key(header::AUTHORIZATION) {
                    "the token is not one this server accepts".into()
                } else {
                    "this endpoint needs a token: send `Authorization: Bearer TOKEN`".into()
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_names_its_bad_line_without_showing_a_token() {
        let ok = Tokens::parse("# team\nabc write\n\ndef read\n", "t").unwrap();
        assert_eq!(ok.entries.len(), 2);
        let err = Tokens::parse("abc write\nsecret admin\n", "t").unwrap_err().to_string();
        assert_eq!(
            err,
            "t:2: expected `TOKEN ROLE` with ROLE `read` or `write`, found the role `admin`"
        );
        assert!(!err.contains("secret"));
        let err = Tokens::parse("secret\n", "t").unwrap_err().to_string();
        assert!(err.contains("a token without a role") && !err.contains("secret"), "{err}");
        assert!(Tokens::parse("# nothing\n", "t").is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
