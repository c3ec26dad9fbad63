//! Datasets: found, checksum-verified, parsed, and split once by a fixed data seed.
//!
//! The split never depends on the study seed: every trial of every study sees the
//! same train, validation and test rows, so trials are comparable and the test set
//! never feeds selection. Classification features are scaled to [0, 1] (images) or
//! standardized with the training split's statistics (tables). Text is split into
//! contiguous train/validation/test spans (80/10/10).
//!
//! Small datasets are embedded (digits, breast-cancer); large ones are found under
//! `$HPO_DATA_DIR` or where Debian's packages install them ([`files`]).

pub mod files;
mod parse;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};

use crate::Error;

/// The seed of every dataset split. Changing it changes every split: don't.
pub const DATA_SEED: u64 = 20_261_128;

/// The named datasets.
pub const DATASETS: [&str; 4] = ["digits", "breast-cancer", "fashion-mnist", "jargon"];

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Named(String),
    /// A CSV file with a header; `target` names the label column.
    Csv {
        path: PathBuf,
        target: String,
    },
    /// A UTF-8 text file (optionally .gz) for a character-level language model.
    Text {
        path: PathBuf,
    },
}

/// Rows of features with class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Row-major, `len() == n_rows * n_features`.
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    /// A teacher's logits for each row (row-major, one per class), for
    /// distillation (`[compress] teacher`); `None` without a teacher.
    pub teacher: Option<Vec<f32>>,
}

impl Split {
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// The first `n` rows.
    pub fn head(&self, n: usize, n_features: usize) -> Split {
        let n = n.min(self.n_rows());
        let per_row = |all: &Vec<f32>| all.len() / self.n_rows().max(1);
        Split {
            features: self.features[..n * n_features].to_vec(),
            labels: self.labels[..n].to_vec(),
            teacher: self.teacher.as_ref().map(|all| all[..n * per_row(all)].to_vec()),
        }
    }
}

/// Channels and side of square images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub channels: usize,
    pub size: usize,
}

/// A classification dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub name: String,
    pub n_features: usize,
    pub n_classes: usize,
    /// Set for image datasets (the CNN needs it; flips and shifts use it).
    pub image: Option<ImageShape>,
    pub train: Split,
    pub val: Split,
    pub test: Split,
}

/// A character-level text dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub name: String,
    /// The characters; token `i` is `vocab[i]`.
    pub vocab: Vec<char>,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub test: Vec<u32>,
}

/// A loaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum Dataset {
    Classification(Classification),
    Text(Text),
}

impl Dataset {
    pub fn name(&self) -> &str {
        match self {
            Dataset::Classification(it) => &it.name,
            Dataset::Text(it) => &it.name,
        }
    }
}

/// Loads a dataset.
pub fn load(source: &Source) -> Result<Dataset, Error> {
    match source {
        Source::Named(name) => match name.as_str() {
            "digits" => parse::digits().map(Dataset::Classification),
            "breast-cancer" => parse::breast_cancer().map(Dataset::Classification),
            "fashion-mnist" => parse::fashion_mnist().map(Dataset::Classification),
            "jargon" => parse::jargon().map(Dataset::Text),
            _ => Err(Error::UnknownDataset { name: name.clone(), known: DATASETS.join(", ") }),
        },
        Source::Csv { path, target } => parse::csv(path, target).map(Dataset::Classification),
        Source::Text { path } => parse::text_file(path).map(Dataset::Text),
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a file's SHA-256 against the published one.
pub fn verify_checksum(what: &str, bytes: &[u8], expected: &str) -> Result<(), Error> {
    let found = sha256_hex(bytes);
    if found != expected {
        return Err(Error::Checksum {
            what: what.to_owned(),
            expected: expected.to_owned(),
            found,
        });
    }
    Ok(())
}

/// The order a table of `n_rows` rows is split in: row `i` of the shuffled table
/// is row `split_order(n)[i]` of the file; the first 60% train, the next 20%
/// validate, the rest test. Public so that a twin in another tool (such as
/// scripts/digits_optuna.py, through `hpo-train`'s `split_order` example) can
/// train on the same rows.
pub fn split_order(n_rows: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n_rows).collect();
    order.shuffle(&mut StdRng::seed_from_u64(DATA_SEED));
    order
}

/// The sizes of the training and validation parts of `n_rows` rows (60% and 20%,
/// rounded down); the test part is the rest.
pub fn split_sizes(n_rows: usize) -> (usize, usize) {
    (n_rows * 60 / 100, n_rows * 20 / 100)
}

/// Puts rows in [`split_order`] and cuts them by [`split_sizes`].
pub(crate) fn split_rows(rows: Vec<(Vec<f32>, u32)>) -> (Split, Split, Split) {
    let mut slots: Vec<Option<(Vec<f32>, u32)>> = rows.into_iter().map(Some).collect();
    let rows: Vec<(Vec<f32>, u32)> = split_order(slots.len())
        .into_iter()
        .map(|i| slots[i].take().expect("split_order is a permutation"))
        .collect();
    let (n_train, n_val) = split_sizes(rows.len());
    (
        to_split(&rows[..n_train]),
        to_split(&rows[n_train..n_train + n_val]),
        to_split(&rows[n_train + n_val..]),
    )
}

pub(crate) fn to_split(rows: &[(Vec<f32>, u32)]) -> Split {
    Split {
        features: rows.iter().flat_map(|(x, _)| x.iter().copied()).collect(),
        labels: rows.iter().map(|(_, y)| *y).collect(),
        teacher: None,
    }
}

/// Standardizes every split with the training split's per-feature mean and std.
pub(crate) fn standardize(train: &mut Split, others: &mut [&mut Split], n_features: usize) {
    let n = train.n_rows().max(1) as f64;
    let mut mean = vec![0f64; n_features];
    let mut var = vec![0f64; n_features];
    for row in train.features.chunks(n_features) {
        for (j, v) in row.iter().enumerate() {
            mean[j] += *v as f64 / n;
        }
    }
    for row in train.features.chunks(n_features) {
        for (j, v) in row.iter().enumerate() {
            var[j] += (*v as f64 - mean[j]).powi(2) / n;
        }
    }
    let std: Vec<f64> = var.iter().map(|v| v.sqrt().max(1e-12)).collect();
    for split in std::iter::once(train).chain(others.iter_mut().map(|s| &mut **s)) {
        for row in split.features.chunks_mut(n_features) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((*v as f64 - mean[j]) / std[j]) as f32;
            }
        }
    }
}

/// Splits a token stream into contiguous 80/10/10 spans.
pub(crate) fn split_text(tokens: Vec<u32>) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let n = tokens.len();
    let (a, b) = (n * 8 / 10, n * 9 / 10);
    (tokens[..a].to_vec(), tokens[a..b].to_vec(), tokens[b..].to_vec())
}

/// Reads a file, gunzipping it when its name ends in `.gz`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|err| Error::Parse {
        what: path.display().to_string(),
        message: err.to_string(),
    })?;
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&bytes, &path.display().to_string())
    } else {
        Ok(bytes)
    }
}

pub(crate) fn gunzip(bytes: &[u8], what: &str) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).map_err(|err| Error::Parse {
        what: what.to_owned(),
        message: format!("not a valid gzip file: {err}"),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
