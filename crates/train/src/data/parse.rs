//! Parsers of each dataset's file format.

use std::collections::BTreeMap;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::files::{FASHION_MNIST, JARGON};
use super::{
    Classification, DATA_SEED, ImageShape, Split, Text, gunzip, split_rows, split_text, standardize,
};
use crate::Error;

const DIGITS_GZ: &[u8] = include_bytes!("../../data/digits/digits.csv.gz");
const DIGITS_SHA256: &str = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";
const BREAST_CANCER_GZ: &[u8] = include_bytes!("../../data/breast-cancer/breast_cancer.csv.gz");
const BREAST_CANCER_SHA256: &str =
    "f77cd02db86b8f736d4aab442e9de4d817fa0d8ec52d185ea23518a223571e97";

fn parse_error(what: &str, line: usize, message: impl Into<String>) -> Error {
    Error::Parse { what: format!("{what} line {line}"), message: message.into() }
}

/// UCI digits: 1,797 8x8 images (values 0..16, scaled to [0, 1]), 10 classes.
pub fn digits() -> Result<Classification, Error> {
    super::verify_checksum("digits.csv.gz", DIGITS_GZ, DIGITS_SHA256)?;
    let text = String::from_utf8_lossy(&gunzip(DIGITS_GZ, "digits.csv.gz")?).into_owned();
    let mut rows = Vec::with_capacity(1797);
    for (idx, line) in text.lines().enumerate() {
        let values: Vec<u32> = line
            .split(',')
            .map(|v| v.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|err| parse_error("digits.csv.gz", idx + 1, err.to_string()))?;
        if values.len() != 65 || values[64] > 9 {
            return Err(parse_error(
                "digits.csv.gz",
                idx + 1,
                "expected 64 pixels and a label 0..9",
            ));
        }
        rows.push((values[..64].iter().map(|v| *v as f32 / 16.0).collect(), values[64]));
    }
    let (train, val, test) = split_rows(rows);
    Ok(Classification {
        name: "digits".into(),
        n_features: 64,
        n_classes: 10,
        image: Some(ImageShape { channels: 1, size: 8 }),
        train,
        val,
        test,
    })
}

/// WDBC: 569 rows of 30 features (standardized), 2 classes.
pub fn breast_cancer() -> Result<Classification, Error> {
    super::verify_checksum("breast_cancer.csv.gz", BREAST_CANCER_GZ, BREAST_CANCER_SHA256)?;
    let text =
        String::from_utf8_lossy(&gunzip(BREAST_CANCER_GZ, "breast_cancer.csv.gz")?).into_owned();
    let mut rows = Vec::with_capacity(569);
    // The first line is metadata (`569,30,malignant,benign`), not a header.
    for (idx, line) in text.lines().enumerate().skip(1) {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|err| parse_error("breast_cancer.csv.gz", idx + 1, err.to_string()))?;
        if values.len() != 31 || !(values[30] == 0.0 || values[30] == 1.0) {
            return Err(parse_error(
                "breast_cancer.csv.gz",
                idx + 1,
                "expected 30 features and a label 0 or 1",
            ));
        }
        rows.push((values[..30].to_vec(), values[30] as u32));
    }
    let (mut train, mut val, mut test) = split_rows(rows);
    standardize(&mut train, &mut [&mut val, &mut test], 30);
    Ok(Classification {
        name: "breast-cancer".into(),
        n_features: 30,
        n_classes: 2,
        image: None,
        train,
        val,
        test,
    })
}

fn idx_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn idx_images(bytes: &[u8], what: &str) -> Result<(usize, Vec<f32>), Error> {
    if bytes.len() < 16 || idx_u32(bytes, 0) != 0x0803 {
        return Err(Error::Parse { what: what.into(), message: "not an IDX image file".into() });
    }
    let (n, rows, cols) =
        (idx_u32(bytes, 4) as usize, idx_u32(bytes, 8) as usize, idx_u32(bytes, 12) as usize);
    if rows != 28 || cols != 28 || bytes.len() != 16 + n * 784 {
        return Err(Error::Parse {
            what: what.into(),
            message: format!("expected {n} 28x28 images"),
        });
    }
    Ok((n, bytes[16..].iter().map(|p| *p as f32 / 255.0).collect()))
}

fn idx_labels(bytes: &[u8], what: &str) -> Result<Vec<u32>, Error> {
    if bytes.len() < 8
        || idx_u32(bytes, 0) != 0x0801
        || bytes.len() != 8 + idx_u32(bytes, 4) as usize
    {
        return Err(Error::Parse { what: what.into(), message: "not an IDX label file".into() });
    }
    Ok(bytes[8..].iter().map(|l| *l as u32).collect())
}

/// Fashion-MNIST: the 60,000 training images split 50,000 train / 10,000 validation
/// by the data seed; the 10,000 t10k images are the test split.
pub fn fashion_mnist() -> Result<Classification, Error> {
    let files = FASHION_MNIST.read()?;
    let names: Vec<&str> = FASHION_MNIST.files.iter().map(|(f, _)| *f).collect();
    let (n_train, train_images) = idx_images(&gunzip(&files[0], names[0])?, names[0])?;
    let train_labels = idx_labels(&gunzip(&files[1], names[1])?, names[1])?;
    let (n_test, test_images) = idx_images(&gunzip(&files[2], names[2])?, names[2])?;
    let test_labels = idx_labels(&gunzip(&files[3], names[3])?, names[3])?;
    if train_labels.len() != n_train || test_labels.len() != n_test {
        return Err(Error::Parse {
            what: "fashion-mnist".into(),
            message: "image and label counts differ".into(),
        });
    }
    let mut order: Vec<usize> = (0..n_train).collect();
    order.shuffle(&mut StdRng::seed_from_u64(DATA_SEED));
    let n_val = n_train / 6;
    let gather = |idx: &[usize]| Split {
        features: idx
            .iter()
            .flat_map(|i| train_images[i * 784..(i + 1) * 784].iter().copied())
            .collect(),
        labels: idx.iter().map(|i| train_labels[*i]).collect(),
        teacher: None,
    };
    let val = gather(&order[..n_val]);
    let train = gather(&order[n_val..]);
    Ok(Classification {
        name: "fashion-mnist".into(),
        n_features: 784,
        n_classes: 10,
        image: Some(ImageShape { channels: 1, size: 28 }),
        train,
        val,
        test: Split { features: test_images, labels: test_labels, teacher: None },
    })
}

fn tokenize(name: &str, text: &str) -> Text {
    let vocab: Vec<char> =
        text.chars().collect::<std::collections::BTreeSet<char>>().into_iter().collect();
    let index: BTreeMap<char, u32> =
        vocab.iter().enumerate().map(|(i, c)| (*c, i as u32)).collect();
    let tokens: Vec<u32> = text.chars().map(|c| index[&c]).collect();
    let (train, val, test) = split_text(tokens);
    Text { name: name.to_owned(), vocab, train, val, test }
}

/// The Jargon File 4.4.7: 1.6M characters, 155 distinct.
pub fn jargon() -> Result<Text, Error> {
    let files = JARGON.read()?;
    let bytes = gunzip(&files[0], "jargon.txt.gz")?;
    let text = String::from_utf8(bytes).map_err(|err| Error::Parse {
        what: "jargon.txt.gz".into(),
        message: format!("not UTF-8: {err}"),
    })?;
    Ok(tokenize("jargon", &text))
}

/// A user's text file (UTF-8, optionally gzipped).
pub fn text_file(path: &Path) -> Result<Text, Error> {
    let bytes = super::read_maybe_gz(path)?;
    let text = String::from_utf8(bytes).map_err(|err| Error::Parse {
        what: path.display().to_string(),
        message: format!("not UTF-8 text: {err}"),
    })?;
    if text.chars().count() < 1000 {
        return Err(Error::Parse {
            what: path.display().to_string(),
            message: "a language-model dataset needs at least 1,000 characters".into(),
        });
    }
    Ok(tokenize(&path.display().to_string(), &text))
}

/// A user's CSV: a header row, numeric feature columns, and a `target` column whose
/// distinct values (numbers or strings, sorted) become the classes.
pub fn csv(path: &Path, target: &str) -> Result<Classification, Error> {
    let what = path.display().to_string();
    let bytes = super::read_maybe_gz(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(Error::Parse {
            what,
            message: "the file is empty; it needs a header row".into(),
        });
    };
    let columns: Vec<&str> = header.split(',').map(|c| c.trim().trim_matches('"')).collect();
    let Some(target_idx) = columns.iter().position(|c| *c == target) else {
        return Err(Error::Parse {
            what,
            message: format!("no column named `{target}`; the header has: {}", columns.join(", ")),
        });
    };
    let mut raw: Vec<(Vec<f32>, String)> = Vec::new();
    for (idx, line) in lines {
        let cells: Vec<&str> = line.split(',').map(|c| c.trim().trim_matches('"')).collect();
        if cells.len() != columns.len() {
            return Err(parse_error(
                &what,
                idx + 1,
                format!("{} cells, the header has {}", cells.len(), columns.len()),
            ));
        }
        let mut features = Vec::with_capacity(columns.len() - 1);
        for (j, cell) in cells.iter().enumerate() {
            if j == target_idx {
                continue;
            }
            let value = cell.parse::<f32>().map_err(|_| {
                parse_error(
                    &what,
                    idx + 1,
                    format!("column `{}` has `{cell}`, not a number", columns[j]),
                )
            })?;
            features.push(value);
        }
        raw.push((features, cells[target_idx].to_owned()));
    }
    let classes: Vec<String> = raw
        .iter()
        .map(|(_, c)| c.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if classes.len() < 2 || raw.len() < 10 {
        return Err(Error::Parse {
            what,
            message: format!(
                "need at least 10 rows and 2 classes in `{target}`; found {} rows, {} classes",
                raw.len(),
                classes.len()
            ),
        });
    }
    let n_features = columns.len() - 1;
    let rows: Vec<(Vec<f32>, u32)> = raw
        .into_iter()
        .map(|(x, c)| (x, classes.iter().position(|k| *k == c).unwrap_or(0) as u32))
        .collect();
    let (mut train, mut val, mut test) = split_rows(rows);
    standardize(&mut train, &mut [&mut val, &mut test], n_features);
    Ok(Classification {
        name: what,
        n_features,
        n_classes: classes.len(),
        image: None,
        train,
        val,
        test,
    })
}
