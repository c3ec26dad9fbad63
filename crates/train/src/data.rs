//! Datasets: loaded, checksum-verified, and split once by a fixed data seed.
//!
//! The split does not depend on the study seed: every trial of every study sees the
//! same train, validation and test rows, so trials are comparable and the test set
//! is never touched by selection. Features are scaled to [0, 1].

use flate2::read::GzDecoder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};
use std::io::Read;

use crate::Error;

/// The digits file, embedded: it is small (57 KB) and CC BY 4.0 (see data/digits/PROVENANCE.md).
const DIGITS_GZ: &[u8] = include_bytes!("../data/digits/digits.csv.gz");
const DIGITS_SHA256: &str = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";

/// The seed of every dataset split. Changing it changes every split: don't.
pub const DATA_SEED: u64 = 20_261_128;

/// Rows of features with integer class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Row-major, `len() == n_rows * n_features`.
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Split {
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }
}

/// A classification dataset split into train, validation and test.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub n_features: usize,
    pub n_classes: usize,
    pub train: Split,
    pub val: Split,
    pub test: Split,
}

/// The datasets this version knows.
pub const DATASETS: [&str; 1] = ["digits"];

/// Loads a dataset by name.
pub fn load(name: &str) -> Result<Dataset, Error> {
    match name {
        "digits" => load_digits(),
        _ => Err(Error::UnknownDataset { name: name.to_owned(), known: DATASETS.join(", ") }),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
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

/// UCI digits: 1,797 8x8 images, 10 classes; split 60/20/20.
pub fn load_digits() -> Result<Dataset, Error> {
    verify_checksum("digits.csv.gz", DIGITS_GZ, DIGITS_SHA256)?;
    let mut text = String::new();
    GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|err| Error::Parse { what: "digits.csv.gz".into(), message: err.to_string() })?;
    let mut rows: Vec<(Vec<f32>, u32)> = Vec::with_capacity(1797);
    for (idx, line) in text.lines().enumerate() {
        let values: Vec<u32> =
            line.split(',').map(|v| v.trim().parse::<u32>()).collect::<Result<_, _>>().map_err(
                |err| Error::Parse {
                    what: format!("digits.csv.gz line {}", idx + 1),
                    message: err.to_string(),
                },
            )?;
        if values.len() != 65 || values[64] > 9 {
            return Err(Error::Parse {
                what: format!("digits.csv.gz line {}", idx + 1),
                message: format!(
                    "expected 64 pixels and a label 0..9, got {} values",
                    values.len()
                ),
            });
        }
        rows.push((values[..64].iter().map(|v| *v as f32 / 16.0).collect(), values[64]));
    }
    Ok(split("digits", rows, 64, 10))
}

/// Shuffles by `DATA_SEED` and cuts 60/20/20.
fn split(
    name: &str,
    mut rows: Vec<(Vec<f32>, u32)>,
    n_features: usize,
    n_classes: usize,
) -> Dataset {
    rows.shuffle(&mut StdRng::seed_from_u64(DATA_SEED));
    let n = rows.len();
    let n_train = n * 60 / 100;
    let n_val = n * 20 / 100;
    let to_split = |rows: &[(Vec<f32>, u32)]| Split {
        features: rows.iter().flat_map(|(x, _)| x.iter().copied()).collect(),
        labels: rows.iter().map(|(_, y)| *y).collect(),
    };
    Dataset {
        name: name.to_owned(),
        n_features,
        n_classes,
        train: to_split(&rows[..n_train]),
        val: to_split(&rows[n_train..n_train + n_val]),
        test: to_split(&rows[n_train + n_val..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_load_verified_and_split_60_20_20_without_overlap() {
        let data = load_digits().unwrap();
        assert_eq!((data.train.n_rows(), data.val.n_rows(), data.test.n_rows()), (1078, 359, 360));
        assert_eq!(data.train.features.len(), 1078 * 64);
        assert!(data.train.features.iter().all(|v| (0.0..=1.0).contains(v)));
        // Every class appears in every split.
        for split in [&data.train, &data.val, &data.test] {
            for class in 0..10 {
                assert!(split.labels.contains(&class));
            }
        }
        // The split is fixed: loading again gives the same rows.
        assert_eq!(load_digits().unwrap(), data);
        let row = |s: &Split, i: usize| s.features[i * 64..(i + 1) * 64].to_vec();
        let train: std::collections::HashSet<Vec<u32>> = (0..data.train.n_rows())
            .map(|i| row(&data.train, i).iter().map(|v| v.to_bits()).collect())
            .collect();
        let overlap = (0..data.test.n_rows())
            .filter(|i| {
                train.contains(&row(&data.test, *i).iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            })
            .count();
        // The UCI file has a few duplicate images; far fewer than a leak would make.
        assert!(overlap < 5, "{overlap} test rows also in train");
    }

    #[test]
    fn a_wrong_checksum_is_refused_with_both_hashes() {
        let err = verify_checksum("x.gz", b"not the file", DIGITS_SHA256).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x.gz is corrupt: its SHA-256 is "), "{text}");
        assert!(text.contains(DIGITS_SHA256), "{text}");
    }

    #[test]
    fn unknown_dataset_names_the_known_ones() {
        assert_eq!(
            load("mnist").unwrap_err().to_string(),
            "unknown dataset `mnist`; available: digits"
        );
    }
}
