//! [`PriceDirection`]: a small MLP (candle-nn) giving the probability that the close `horizon`
//! bars ahead is above the current close. Weights live in safetensors next to a JSON metadata
//! file; the model's content hash (SHA-256 of both) identifies it in every decision record.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::Linear;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::features::{FEATURES, N_FEATURES};

/// Metadata format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The model the project ships, trained by `defai train` on the bundled data (see README).
pub const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../weights/price_direction.safetensors");
/// The shipped model's metadata (JSON [`ModelMeta`]), embedded next to [`SHIPPED_WEIGHTS`].
pub const SHIPPED_META: &[u8] = include_bytes!("../weights/price_direction.json");

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    /// What the bars were read from, as the training command named it (e.g. a CSV path).
    pub source: String,
    /// SHA-256 of the bars as trained on (ts and OHLCV, little-endian f64).
    pub sha256: String,
    /// Number of bars given to training (before warm-up and the horizon trim).
    pub bars: usize,
    /// Open time of the first bar, unix seconds.
    pub first_ts: i64,
    /// Open time of the last bar, unix seconds.
    pub last_ts: i64,
}

/// The chronological split: train, then validation, then the held-out tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Training samples (after purging `horizon` before the validation part).
    pub train: usize,
    /// Validation samples (after purging `horizon` before the held-out tail).
    pub validation: usize,
    /// Held-out samples.
    pub heldout: usize,
    /// Bar timestamp of the last training sample, unix seconds.
    pub train_end_ts: i64,
    /// Bar timestamp of the last validation sample, unix seconds.
    pub validation_end_ts: i64,
    /// First bar of the held-out tail: backtests of this model start here.
    pub heldout_start_ts: i64,
    /// Bar timestamp of the last held-out sample, unix seconds.
    pub heldout_end_ts: i64,
}

/// Measured on data the training never saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of held-out samples where `p ≥ 0.5` matches the label, in `[0, 1]`.
    pub heldout_accuracy: f64,
    /// Mean log-loss (natural log, clipped as [`crate::calibration::log_loss`]) on the
    /// held-out tail.
    pub heldout_log_loss: f64,
    /// Mean Brier score on the held-out tail.
    pub heldout_brier: f64,
    /// Accuracy of always predicting the training set's majority class.
    pub majority_baseline_accuracy: f64,
    /// Log-loss of always predicting the training set's base rate.
    pub base_rate_log_loss: f64,
    /// Mean binary cross-entropy on the validation part at the best epoch (the weights kept).
    pub validation_log_loss: f64,
    /// Epochs trained before early stopping or `max_epochs`.
    pub epochs_run: usize,
    /// The epoch (1-based) whose weights were kept: the lowest validation loss.
    pub best_epoch: usize,
}

/// What a model file is, next to its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Model family; this build loads only `price_direction_mlp`.
    pub kind: String,
    /// Metadata format; must equal [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Feature names in input order; must equal this build's [`FEATURES`].
    pub features: Vec<String>,
    /// Input width; must be [`N_FEATURES`].
    pub input_dim: usize,
    /// Units in each of the two hidden ReLU layers (at least 1).
    pub hidden: usize,
    /// Output width; must be 1 (one logit).
    pub output_dim: usize,
    /// Label: close `horizon_bars` ahead above the current close.
    pub horizon_bars: usize,
    /// Seed of the weight initialisation and minibatch shuffling.
    pub seed: u64,
    /// The bars trained on.
    pub training_data: DataRef,
    /// Where the chronological split fell.
    pub split: Split,
    /// Held-out and validation scores.
    pub metrics: Metrics,
    /// The command that produced this model.
    pub command: String,
}

pub(crate) const KIND: &str = "price_direction_mlp";

/// Tensor names and shapes for a model with `hidden` units.
pub(crate) fn layout(hidden: usize) -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("norm.mean", vec![N_FEATURES]),
        ("norm.std", vec![N_FEATURES]),
        ("l1.weight", vec![hidden, N_FEATURES]),
        ("l1.bias", vec![hidden]),
        ("l2.weight", vec![hidden, hidden]),
        ("l2.bias", vec![hidden]),
        ("l3.weight", vec![1, hidden]),
        ("l3.bias", vec![1]),
    ]
}

/// A loaded (or freshly trained) price-direction model. CPU only unless built with `cuda`.
#[derive(Debug, Clone)]
pub struct PriceDirection {
    mean: Tensor,
    std: Tensor,
    l1: Linear,
    l2: Linear,
    l3: Linear,
    meta: ModelMeta,
    hash: String,
    device: Device,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// File names inside a model folder.
pub fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (
        dir.join("price_direction.safetensors"),
        dir.join("price_direction.json"),
    )
}

fn content_hash(weights: &[u8], meta: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update((weights.len() as u64).to_le_bytes());
    h.update(weights);
    h.update(meta);
    format!("{:x}", h.finalize())
}

impl PriceDirection {
    /// Loads `dir/price_direction.{safetensors,json}`. Every tensor's presence, dtype and shape
    /// is checked against the metadata; a problem names the file and the tensor.
    ///
    /// # Errors
    /// [`ModelError::Io`] if either file cannot be read; otherwise as
    /// [`PriceDirection::from_bytes`].
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let (wpath, mpath) = files(dir);
        let weights = std::fs::read(&wpath).map_err(io(&wpath))?;
        let meta = std::fs::read(&mpath).map_err(io(&mpath))?;
        Self::from_bytes(&weights, &wpath, &meta, &mpath)
    }

    /// The model a config names: `"shipped"` is [`PriceDirection::shipped`], anything else a
    /// folder written by `defai train` ([`PriceDirection::load`]).
    ///
    /// # Errors
    /// As [`PriceDirection::shipped`] or [`PriceDirection::load`].
    pub fn named(name: &str) -> Result<Self, ModelError> {
        if name == "shipped" {
            Self::shipped()
        } else {
            Self::load(Path::new(name))
        }
    }

    /// The model shipped with the project, embedded in the binary.
    ///
    /// # Errors
    /// As [`PriceDirection::from_bytes`]; only if the embedded files do not match this
    /// build's features or format.
    pub fn shipped() -> Result<Self, ModelError> {
        Self::from_bytes(
            SHIPPED_WEIGHTS,
            Path::new("embedded:price_direction.safetensors"),
            SHIPPED_META,
            Path::new("embedded:price_direction.json"),
        )
    }

    /// Parses a model from the bytes of its safetensors weights and JSON metadata; `wpath`
    /// and `mpath` only name the sources in errors. The hash is [`PriceDirection::hash`]'s.
    ///
    /// # Errors
    /// - [`ModelError::Meta`]: the metadata is not valid JSON for [`ModelMeta`].
    /// - [`ModelError::Mismatch`]: its `kind`, `format_version`, `features` or shape differ from
    ///   what this build runs.
    /// - [`ModelError::Weights`]: the weights are not a safetensors buffer.
    /// - [`ModelError::Tensor`]: a tensor is missing, not F32, misshapen, non-finite, or a
    ///   non-positive `norm.std`.
    /// - [`ModelError::Candle`]: reading a tensor's values failed.
    pub fn from_bytes(
        weights: &[u8],
        wpath: &Path,
        meta_bytes: &[u8],
        mpath: &Path,
    ) -> Result<Self, ModelError> {
        let meta: ModelMeta = serde_json::from_slice(meta_bytes).map_err(|e| ModelError::Meta {
            path: mpath.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let mismatch = |detail: String| ModelError::Mismatch {
            path: mpath.to_path_buf(),
            detail,
        };
        if meta.kind != KIND {
            return Err(mismatch(format!(
                "kind is {:?}, expected {KIND:?}",
                meta.kind
            )));
        }
        if meta.format_version != FORMAT_VERSION {
            return Err(mismatch(format!(
                "format_version {} (this build reads {FORMAT_VERSION})",
                meta.format_version
            )));
        }
        if meta.features != FEATURES {
            return Err(mismatch(format!(
                "features {:?} differ from this build's {:?}",
                meta.features, FEATURES
            )));
        }
        if meta.input_dim != N_FEATURES || meta.output_dim != 1 || meta.hidden == 0 {
            return Err(mismatch(format!(
                "shape {}→{}→{} does not fit {N_FEATURES} features and one logit",
                meta.input_dim, meta.hidden, meta.output_dim
            )));
        }
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load_buffer(weights, &device).map_err(|e| {
            ModelError::Weights {
                path: wpath.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        let model = Self::from_tensors(&tensors, meta, wpath)?;
        Ok(Self {
            hash: content_hash(weights, meta_bytes),
            ..model
        })
    }

    pub(crate) fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        meta: ModelMeta,
        wpath: &Path,
    ) -> Result<Self, ModelError> {
        let get = |name: &str, shape: &[usize]| -> Result<Tensor, ModelError> {
            let err = |detail: String| ModelError::Tensor {
                path: wpath.to_path_buf(),
                tensor: name.to_string(),
                detail,
            };
            let t = tensors.get(name).ok_or_else(|| err("missing".into()))?;
            if t.dtype() != DType::F32 {
                return Err(err(format!("dtype {:?}, expected F32", t.dtype())));
            }
            if t.dims() != shape {
                return Err(err(format!("shape {:?}, expected {shape:?}", t.dims())));
            }
            let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
            if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(format!("value {bad} is not finite")));
            }
            Ok(t.clone())
        };
        let h = meta.hidden;
        let mut t = HashMap::new();
        for (name, shape) in layout(h) {
            t.insert(name, get(name, &shape)?);
        }
        let std = t["norm.std"].clone();
        let stds: Vec<f32> = std.to_vec1()?;
        if stds.iter().any(|s| *s <= 0.0) {
            return Err(ModelError::Tensor {
                path: wpath.to_path_buf(),
                tensor: "norm.std".into(),
                detail: "must be positive".into(),
            });
        }
        Ok(Self {
            mean: t["norm.mean"].clone(),
            std,
            l1: Linear::new(t["l1.weight"].clone(), Some(t["l1.bias"].clone())),
            l2: Linear::new(t["l2.weight"].clone(), Some(t["l2.bias"].clone())),
            l3: Linear::new(t["l3.weight"].clone(), Some(t["l3.bias"].clone())),
            meta,
            hash: String::new(),
            device: Device::Cpu,
        })
    }

    /// Writes weights and metadata into `dir` (created if needed); returns the content hash.
    ///
    /// # Errors
    /// [`ModelError::Io`] if the folder cannot be created or the metadata written or the
    /// weights read back; [`ModelError::Candle`] if the safetensors file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<String, ModelError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (wpath, mpath) = files(dir);
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        tensors.insert("norm.mean".into(), self.mean.clone());
        tensors.insert("norm.std".into(), self.std.clone());
        for (name, l) in [("l1", &self.l1), ("l2", &self.l2), ("l3", &self.l3)] {
            tensors.insert(format!("{name}.weight"), l.weight().clone());
            if let Some(b) = l.bias() {
                tensors.insert(format!("{name}.bias"), b.clone());
            }
        }
        candle_core::safetensors::save(&tensors, &wpath)?;
        // Plain fields only: serialising cannot fail, but an error would still name the file.
        let meta = serde_json::to_vec_pretty(&self.meta).map_err(|e| io(&mpath)(e.into()))?;
        std::fs::write(&mpath, &meta).map_err(io(&mpath))?;
        let weights = std::fs::read(&wpath).map_err(io(&wpath))?;
        Ok(content_hash(&weights, &meta))
    }

    /// The metadata the model was loaded or trained with.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// SHA-256 of the weights and metadata as loaded (empty for a model not yet saved).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub(crate) fn from_parts(
        mean: Tensor,
        std: Tensor,
        l1: Linear,
        l2: Linear,
        l3: Linear,
        meta: ModelMeta,
    ) -> Self {
        Self {
            mean,
            std,
            l1,
            l2,
            l3,
            meta,
            hash: String::new(),
            device: Device::Cpu,
        }
    }

    pub(crate) fn meta_mut(&mut self) -> &mut ModelMeta {
        &mut self.meta
    }

    /// Replaces the (variable) training tensors by plain copies.
    pub(crate) fn freeze(&mut self) -> Result<(), ModelError> {
        let copy = |l: &Linear| -> Result<Linear, ModelError> {
            Ok(Linear::new(
                l.weight().copy()?.detach(),
                l.bias().map(|b| b.copy().map(|t| t.detach())).transpose()?,
            ))
        };
        self.l1 = copy(&self.l1)?;
        self.l2 = copy(&self.l2)?;
        self.l3 = copy(&self.l3)?;
        Ok(())
    }

    /// Logits for a batch `[n, N_FEATURES]` of raw (unnormalised) features: shape `[n]`.
    ///
    /// # Errors
    /// [`ModelError::Candle`] if `x` is not F32 `[n, N_FEATURES]` on the model's device.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let x = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let x = self.l1.forward(&x)?.relu()?;
        let x = self.l2.forward(&x)?.relu()?;
        Ok(self.l3.forward(&x)?.squeeze(D::Minus1)?)
    }

    /// P(close `horizon` bars ahead > close now) for one feature vector. Non-finite input is an
    /// error; the output is whatever the network says (the caller guards it).
    ///
    /// # Errors
    /// [`ModelError::Input`] if `features` is not [`N_FEATURES`] long or holds a non-finite
    /// value; [`ModelError::Candle`] if inference fails.
    pub fn probability_up(&self, features: &[f64]) -> Result<f64, ModelError> {
        if features.len() != N_FEATURES {
            return Err(ModelError::Input(format!(
                "{} features, expected {N_FEATURES}",
                features.len()
            )));
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Input(format!(
                "feature {} is not finite",
                FEATURES[i]
            )));
        }
        let x: Vec<f32> = features.iter().map(|v| *v as f32).collect();
        let x = Tensor::from_vec(x, (1, N_FEATURES), &self.device)?;
        let logit: Vec<f32> = self.logits(&x)?.to_vec1()?;
        Ok(sigmoid(f64::from(logit[0])))
    }
}

/// The logistic function `1 / (1 + e^−x)`: a logit to a probability.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
