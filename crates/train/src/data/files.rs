//! Finding the large datasets on disk: `$HPO_DATA_DIR` first, then where Debian's
//! packages install them. A missing dataset is an error that says how to install it.

use std::path::PathBuf;

use crate::Error;

/// A dataset that lives in files, not in the binary.
pub struct FileDataset {
    pub name: &'static str,
    /// The folder under `$HPO_DATA_DIR` that holds the files.
    pub data_dir_folder: &'static str,
    /// Where the Debian package installs the files.
    pub debian_dir: &'static str,
    pub debian_package: &'static str,
    /// (file name, SHA-256 of the file as installed).
    pub files: &'static [(&'static str, &'static str)],
}

pub const FASHION_MNIST: FileDataset = FileDataset {
    name: "fashion-mnist",
    data_dir_folder: "fashion-mnist",
    debian_dir: "/usr/share/datasets/fashion-mnist",
    debian_package: "dataset-fashion-mnist",
    files: &[
        (
            "train-images-idx3-ubyte.gz",
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        ),
    ],
};

pub const JARGON: FileDataset = FileDataset {
    name: "jargon",
    data_dir_folder: "jargon-file",
    debian_dir: "/usr/share/doc/jargon-text",
    debian_package: "jargon-text",
    files: &[("jargon.txt.gz", "fcaa76e4c2ebdf90c6557524b9430373dc49d1a26462ef30f43c0ace70a25a3a")],
};

impl FileDataset {
    /// The folders searched, in order, given `$HPO_DATA_DIR`.
    pub fn candidates(&self, data_dir: Option<PathBuf>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(dir) = data_dir {
            out.push(dir.join(self.data_dir_folder));
            out.push(dir);
        }
        out.push(PathBuf::from(self.debian_dir));
        out
    }

    /// Reads every file (verified) from the first folder that has them all.
    pub fn read(&self) -> Result<Vec<Vec<u8>>, Error> {
        let data_dir =
            std::env::var_os("HPO_DATA_DIR").filter(|d| !d.is_empty()).map(PathBuf::from);
        self.read_from(&self.candidates(data_dir))
    }

    /// Reads every file (verified) from the first of `candidates` that has them all.
    pub fn read_from(&self, candidates: &[PathBuf]) -> Result<Vec<Vec<u8>>, Error> {
        let Some(dir) =
            candidates.iter().find(|dir| self.files.iter().all(|(f, _)| dir.join(f).is_file()))
        else {
            return Err(Error::MissingDataset {
                name: self.name.to_owned(),
                looked_in: candidates
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                package: self.debian_package.to_owned(),
                folder: self.data_dir_folder.to_owned(),
                files: self.files.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", "),
            });
        };
        self.files
            .iter()
            .map(|(file, sha)| {
                let path = dir.join(file);
                let bytes = std::fs::read(&path).map_err(|err| Error::Parse {
                    what: path.display().to_string(),
                    message: err.to_string(),
                })?;
                super::verify_checksum(&path.display().to_string(), &bytes, sha)?;
                Ok(bytes)
            })
            .collect()
    }
}
