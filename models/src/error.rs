use std::path::PathBuf;

/// What went wrong with a model file or a model run. Messages name the file and, where it
/// applies, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line} column {column}: {message}", path.display())]
    Meta {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: not a valid safetensors file: {detail}", path.display())]
    Weights { path: PathBuf, detail: String },
    #[error("{}: tensor `{tensor}`: {detail}", path.display())]
    Tensor {
        path: PathBuf,
        tensor: String,
        detail: String,
    },
    #[error("{}: {detail}", path.display())]
    Mismatch { path: PathBuf, detail: String },
    #[error("model input: {0}")]
    Input(String),
    #[error("training: {0}")]
    Training(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}
