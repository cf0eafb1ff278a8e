//! [`ModelError`], the one error type of this crate.

use std::path::PathBuf;

/// What went wrong with a model file or a model run. Messages name the file and, where it
/// applies, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing a model file (or creating its folder) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The metadata file is not valid JSON for [`crate::ModelMeta`].
    #[error("{}: line {line} column {column}: {message}", path.display())]
    Meta {
        /// The metadata file.
        path: PathBuf,
        /// 1-based line of the parse error (serde_json's count).
        line: usize,
        /// 1-based column of the parse error.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// The weights file is not a readable safetensors buffer.
    #[error("{}: not a valid safetensors file: {detail}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// The safetensors reader's message.
        detail: String,
    },
    /// A tensor the metadata calls for is missing, not F32, of the wrong shape, holds a
    /// non-finite value, or (for `norm.std`) a value that is not positive.
    #[error("{}: tensor `{tensor}`: {detail}", path.display())]
    Tensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name, e.g. `l1.weight`.
        tensor: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The metadata describes a different model than this build runs: another `kind`,
    /// `format_version`, feature list or layer shape.
    #[error("{}: {detail}", path.display())]
    Mismatch {
        /// The metadata file.
        path: PathBuf,
        /// Which field differs, with both values.
        detail: String,
    },
    /// Bad input to a model or a calibration: a feature vector of the wrong length or with a
    /// non-finite value, a missing feature index, mismatched probability and outcome lists, or a
    /// fit that did not converge.
    #[error("model input: {0}")]
    Input(String),
    /// Training could not run or diverged: too few usable samples, a split leaving an empty
    /// part, or a non-finite validation loss.
    #[error("training: {0}")]
    Training(String),
    /// A tensor operation failed inside candle (shapes, dtypes, device, safetensors writing).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}
