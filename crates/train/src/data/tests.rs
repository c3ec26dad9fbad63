//! Unit tests of the datasets: checksums, splits and the files hpo reads.

use std::collections::HashSet;

use super::files::{FASHION_MNIST, FileDataset};
use super::*;

fn classification(name: &str) -> Classification {
    match load(&Source::Named(name.into())).unwrap() {
        Dataset::Classification(it) => it,
        Dataset::Text(_) => panic!("{name} is classification"),
    }
}

fn rows(split: &Split, n_features: usize) -> HashSet<Vec<u32>> {
    split.features.chunks(n_features).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect()
}

#[test]
fn digits_are_verified_and_split_60_20_20() {
    let data = classification("digits");
    assert_eq!((data.train.n_rows(), data.val.n_rows(), data.test.n_rows()), (1078, 359, 360));
    assert!(data.train.features.iter().all(|v| (0.0..=1.0).contains(v)));
    for split in [&data.train, &data.val, &data.test] {
        assert_eq!(
            split.labels.iter().collect::<HashSet<_>>().len(),
            10,
            "every class in every split"
        );
    }
    assert_eq!(classification("digits"), data, "the split is fixed");
    let train = rows(&data.train, 64);
    let leaked = rows(&data.test, 64).iter().filter(|r| train.contains(*r)).count();
    // The UCI file has a few duplicate images; a leak would be hundreds.
    assert!(leaked < 5, "{leaked}");
}

#[test]
fn rows_are_split_in_split_order() {
    // Row i of the file carries i as its feature and i % 10 as its label.
    let rows: Vec<(Vec<f32>, u32)> = (0..50).map(|i| (vec![i as f32], i % 10)).collect();
    let (train, val, test) = split_rows(rows);
    let order = split_order(50);
    assert_ne!(order, (0..50).collect::<Vec<_>>(), "shuffled");
    assert_eq!(split_sizes(50), (30, 10));
    let rows_of = |s: &Split| s.features.iter().map(|v| *v as usize).collect::<Vec<_>>();
    assert_eq!(rows_of(&train), order[..30]);
    assert_eq!(rows_of(&val), order[30..40]);
    assert_eq!(rows_of(&test), order[40..]);
    assert!(test.labels.iter().zip(&order[40..]).all(|(y, i)| *y as usize == i % 10));
}

#[test]
fn breast_cancer_is_standardized_on_train() {
    let data = classification("breast-cancer");
    assert_eq!((data.n_features, data.n_classes), (30, 2));
    assert_eq!(data.train.n_rows() + data.val.n_rows() + data.test.n_rows(), 569);
    let n = data.train.n_rows() as f64;
    for j in 0..30 {
        let column: Vec<f64> = data.train.features.chunks(30).map(|r| r[j] as f64).collect();
        let mean = column.iter().sum::<f64>() / n;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
            "feature {j}: mean {mean} var {var}"
        );
    }
}

#[test]
fn fashion_mnist_loads_with_its_published_split() {
    let data = classification("fashion-mnist");
    assert_eq!(
        (data.train.n_rows(), data.val.n_rows(), data.test.n_rows()),
        (50_000, 10_000, 10_000)
    );
    assert_eq!(data.image, Some(ImageShape { channels: 1, size: 28 }));
    let mut counts = [0usize; 10];
    for label in data.test.labels.iter() {
        counts[*label as usize] += 1;
    }
    assert_eq!(counts, [1000; 10], "t10k is balanced");
}

#[test]
fn jargon_is_split_into_contiguous_spans() {
    let Dataset::Text(text) = load(&Source::Named("jargon".into())).unwrap() else { panic!() };
    assert_eq!(text.vocab.len(), 155);
    assert_eq!(text.train.len() + text.val.len() + text.test.len(), 1_618_757);
    assert_eq!(text.val.len(), 161_876);
}

#[test]
fn a_missing_dataset_says_how_to_install_it() {
    let missing = FileDataset { debian_dir: "/nonexistent/fashion-mnist", ..FASHION_MNIST };
    let err = missing.read_from(&missing.candidates(None)).unwrap_err().to_string();
    assert_eq!(
        err,
        "dataset `fashion-mnist` is not installed (looked in /nonexistent/fashion-mnist); install it with `sudo apt-get install dataset-fashion-mnist`, or put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz in $HPO_DATA_DIR/fashion-mnist"
    );
}

#[test]
fn a_corrupt_file_is_refused_with_both_hashes() {
    let err = verify_checksum("x.gz", b"not the file", "abc").unwrap_err().to_string();
    assert!(err.starts_with("x.gz is corrupt: its SHA-256 is "), "{err}");
    assert!(err.ends_with(", expected abc; reinstall it"), "{err}");
}

#[test]
fn user_csv_and_text_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iris.csv");
    let mut text = String::from("a,b,species\n");
    for i in 0..30 {
        text.push_str(&format!("{},{},{}\n", i, i * 2, ["x", "y", "z"][i % 3]));
    }
    std::fs::write(&csv, text).unwrap();
    let Dataset::Classification(data) =
        load(&Source::Csv { path: csv.clone(), target: "species".into() }).unwrap()
    else {
        panic!()
    };
    assert_eq!((data.n_features, data.n_classes, data.train.n_rows()), (2, 3, 18));
    let err = load(&Source::Csv { path: csv, target: "kind".into() }).unwrap_err().to_string();
    assert!(err.ends_with("no column named `kind`; the header has: a, b, species"), "{err}");

    let txt = dir.path().join("story.txt");
    std::fs::write(&txt, "the quick brown fox jumps over the lazy dog. ".repeat(40)).unwrap();
    let Dataset::Text(text) = load(&Source::Text { path: txt }).unwrap() else { panic!() };
    assert_eq!(text.vocab.len(), 28);
    assert_eq!(text.train.len(), 1440);
}
