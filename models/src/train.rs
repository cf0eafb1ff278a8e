//! Training [`PriceDirection`] on bars: features from the one pipeline, a chronological split
//! (train, validation, held-out tail; never shuffled across time, with `horizon` bars purged at
//! each boundary so no label looks into the next part), AdamW on the binary cross-entropy,
//! early stopping on the validation loss. Deterministic on the CPU for a given seed: weights are
//! initialised from our own seeded generator and minibatches are shuffled (within the training
//! part only) by it.

use std::path::Path;

use agent_core::Bar;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::features::{FEATURES, N_FEATURES, batch_features};
use crate::price_direction::{
    DataRef, FORMAT_VERSION, KIND, Metrics, ModelMeta, PriceDirection, Split, sigmoid,
};

/// Training settings; the defaults produced the shipped model.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Seeds the weight initialisation and the minibatch shuffling.
    pub seed: u64,
    /// Label horizon in bars (close `horizon` bars ahead above the current close); also the
    /// number of samples purged before each split boundary.
    pub horizon: usize,
    /// Units in each of the two hidden layers.
    pub hidden: usize,
    /// Most epochs to train; early stopping may end sooner.
    pub max_epochs: usize,
    /// Minibatch size in samples (0 is treated as 1).
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Share of the usable samples for validation, taken after the training part.
    pub validation_frac: f64,
    /// Share of the usable samples held out at the end, never seen in training or early
    /// stopping.
    pub heldout_frac: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            horizon: 6,
            hidden: 32,
            max_epochs: 60,
            batch: 256,
            lr: 1e-3,
            weight_decay: 1e-4,
            patience: 6,
            validation_frac: 0.15,
            heldout_frac: 0.15,
        }
    }
}

/// One epoch's losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochLog {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean over the epoch's minibatches of the binary cross-entropy.
    pub train_loss: f64,
    /// Mean binary cross-entropy on the whole validation part after the epoch.
    pub validation_loss: f64,
    /// This epoch beat every earlier validation loss: its weights are the ones kept so far.
    pub best: bool,
}

/// SHA-256 of bars as trained on.
pub fn bars_sha256(bars: &[Bar]) -> String {
    let mut h = Sha256::new();
    for b in bars {
        h.update(b.ts.to_le_bytes());
        for v in [b.open, b.high, b.low, b.close, b.volume] {
            h.update(v.to_le_bytes());
        }
    }
    format!("{:x}", h.finalize())
}

/// A training sample: the features, the label (1: the close `horizon` bars ahead is higher)
/// and the bar's index.
type Sample = ([f64; N_FEATURES], f32, usize);

/// (features, label, bar index) for every bar with complete features and a known future.
fn samples(bars: &[Bar], horizon: usize) -> Vec<Sample> {
    let feats = batch_features(bars);
    feats
        .into_iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let f = f?;
            let future = bars.get(i + horizon)?;
            f.iter().all(|v| v.is_finite()).then(|| {
                let up = if future.close > bars[i].close {
                    1.0
                } else {
                    0.0
                };
                (f, up, i)
            })
        })
        .collect()
}

fn to_tensor(rows: &[&[f64; N_FEATURES]], dev: &Device) -> Result<Tensor, ModelError> {
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|v| *v as f32))
        .collect();
    Ok(Tensor::from_vec(flat, (rows.len(), N_FEATURES), dev)?)
}

/// Numerically stable mean binary cross-entropy on logits.
fn bce(logits: &Tensor, y: &Tensor) -> Result<Tensor, ModelError> {
    let pos = logits.relu()?;
    let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((pos - logits.mul(y)?)?.add(&soft)?.mean_all()?)
}

struct Rng(fastrand::Rng);

impl Rng {
    fn normal(&mut self) -> f64 {
        // Box–Muller.
        let u1 = self.0.f64().max(f64::MIN_POSITIVE);
        let u2 = self.0.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A trained model and how training went.
#[derive(Debug)]
pub struct Trained {
    /// The model with the best-validation weights and its metrics filled in; its hash is
    /// empty until it is saved and reloaded.
    pub model: PriceDirection,
    /// Every epoch run, in order.
    pub epochs: Vec<EpochLog>,
}

/// Trains on `bars`; `source` names them in the metadata, `command` records how to reproduce.
/// `on_epoch` is called after each epoch (for progress output).
///
/// # Errors
/// [`ModelError::Training`] if fewer than 1,000 samples have complete features and a known
/// future, if the split leaves an empty part, or if the validation loss becomes non-finite;
/// [`ModelError::Candle`] if a tensor operation fails.
///
/// # Panics
/// If `cfg.validation_frac + cfg.heldout_frac` exceeds 1, or the training or validation part
/// has fewer than `cfg.horizon` samples (the purge slices out of range).
pub fn train(
    bars: &[Bar],
    source: &str,
    command: &str,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<Trained, ModelError> {
    let data = samples(bars, cfg.horizon);
    let parts = split(&data, cfg)?;
    let Parts { train, val, held } = parts;

    let dev = Device::Cpu;
    // Normalisation from the training part only.
    let (mean_t, std_t) = normalisation(train, &dev)?;
    let varmap = VarMap::new();
    let (l1, l2, l3) = layers(&varmap, cfg.hidden, &dev)?;
    let mut rng = Rng(fastrand::Rng::with_seed(cfg.seed));
    let vars = init_weights(&varmap, &mut rng, &dev)?;

    let train_y: Vec<f32> = train.iter().map(|s| s.1).collect();
    let base_rate = train_y.iter().map(|v| f64::from(*v)).sum::<f64>() / train_y.len() as f64;
    let meta = model_meta(bars, source, command, cfg, &parts);
    let mut model = PriceDirection::from_parts(mean_t, std_t, l1, l2, l3, meta);

    let val_x = to_tensor(&val.iter().map(|s| &s.0).collect::<Vec<_>>(), &dev)?;
    let val_y = Tensor::from_vec(val.iter().map(|s| s.1).collect::<Vec<_>>(), val.len(), &dev)?;
    let mut opt = optimiser(&vars, cfg)?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best = (f64::INFINITY, 0usize);
    let mut snapshot: Vec<Tensor> = Vec::new();
    let mut logs = Vec::new();
    for epoch in 1..=cfg.max_epochs {
        rng.0.shuffle(&mut order);
        let train_loss = train_epoch(&model, &mut opt, train, &order, cfg.batch, &dev)?;
        let val_loss = f64::from(bce(&model.logits(&val_x)?, &val_y)?.to_scalar::<f32>()?);
        if !val_loss.is_finite() {
            return Err(ModelError::Training(format!(
                "validation loss is {val_loss} at epoch {epoch}"
            )));
        }
        let improved = val_loss < best.0;
        if improved {
            best = (val_loss, epoch);
            snapshot = copies(&vars)?;
        }
        let log = EpochLog {
            epoch,
            train_loss,
            validation_loss: val_loss,
            best: improved,
        };
        on_epoch(&log);
        logs.push(log);
        if epoch - best.1 >= cfg.patience {
            break;
        }
    }
    for ((_, var), t) in vars.iter().zip(&snapshot) {
        var.set(t)?;
    }

    // Held-out metrics with the best weights.
    let heldout = heldout_metrics(&model, held, base_rate, &dev)?;
    model.meta_mut().metrics = Metrics {
        validation_log_loss: best.0,
        epochs_run: logs.len(),
        best_epoch: best.1,
        ..heldout
    };
    // Detach from the training graph: the saved and returned model holds plain tensors.
    model.freeze()?;
    Ok(Trained {
        model,
        epochs: logs,
    })
}

/// AdamW over `vars` at the config's learning rate and weight decay.
fn optimiser(vars: &[(String, Var)], cfg: &TrainConfig) -> Result<AdamW, ModelError> {
    Ok(AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?)
}

/// A copy of each variable's current value, in order: the weights to restore.
fn copies(vars: &[(String, Var)]) -> Result<Vec<Tensor>, ModelError> {
    Ok(vars
        .iter()
        .map(|(_, v)| v.as_tensor().copy())
        .collect::<Result<_, _>>()?)
}

/// The chronological parts of the samples: training, validation and the held-out tail.
struct Parts<'a> {
    train: &'a [Sample],
    val: &'a [Sample],
    held: &'a [Sample],
}

/// Splits `data` in time order by the config's fractions, purging `horizon` samples before
/// each boundary (their labels would see the next part).
fn split<'a>(data: &'a [Sample], cfg: &TrainConfig) -> Result<Parts<'a>, ModelError> {
    let n = data.len();
    if n < 1000 {
        return Err(ModelError::Training(format!(
            "{n} usable samples; need at least 1,000 bars after the {}-bar warm-up",
            crate::features::WARMUP
        )));
    }
    let n_held = ((n as f64) * cfg.heldout_frac) as usize;
    let n_val = ((n as f64) * cfg.validation_frac) as usize;
    let n_train = n - n_held - n_val;
    let h = cfg.horizon;
    // Purge `horizon` samples before each boundary: their labels would see the next part.
    let train = &data[..n_train - h];
    let val = &data[n_train..n_train + n_val - h];
    let held = &data[n_train + n_val..];
    if train.is_empty() || val.is_empty() || held.is_empty() {
        return Err(ModelError::Training("split left an empty part".into()));
    }
    Ok(Parts { train, val, held })
}

/// Each feature's mean and standard deviation (at least 1e-8) over `train`, as tensors.
fn normalisation(train: &[Sample], dev: &Device) -> Result<(Tensor, Tensor), ModelError> {
    let mut mean = [0.0f64; N_FEATURES];
    let mut sq = [0.0f64; N_FEATURES];
    for (f, _, _) in train {
        for k in 0..N_FEATURES {
            mean[k] += f[k];
            sq[k] += f[k] * f[k];
        }
    }
    let m = train.len() as f64;
    let mut std = [0.0f64; N_FEATURES];
    for k in 0..N_FEATURES {
        mean[k] /= m;
        std[k] = (sq[k] / m - mean[k] * mean[k]).max(0.0).sqrt().max(1e-8);
    }
    let mean_t = Tensor::from_vec(mean.map(|v| v as f32).to_vec(), N_FEATURES, dev)?;
    let std_t = Tensor::from_vec(std.map(|v| v as f32).to_vec(), N_FEATURES, dev)?;
    Ok((mean_t, std_t))
}

/// The network's layers on `varmap`: the features into `hidden` units, `hidden` into
/// `hidden`, and `hidden` into the one logit.
fn layers(
    varmap: &VarMap,
    hidden: usize,
    dev: &Device,
) -> Result<(Linear, Linear, Linear), ModelError> {
    let vb = VarBuilder::from_varmap(varmap, DType::F32, dev);
    let l1 = candle_nn::linear(N_FEATURES, hidden, vb.pp("l1"))?;
    let l2 = candle_nn::linear(hidden, hidden, vb.pp("l2"))?;
    let l3 = candle_nn::linear(hidden, 1, vb.pp("l3"))?;
    Ok((l1, l2, l3))
}

/// `varmap`'s variables sorted by name, set by a seeded He initialisation from `rng`
/// (weights; biases at 0): candle's CPU generator cannot be seeded.
fn init_weights(
    varmap: &VarMap,
    rng: &mut Rng,
    dev: &Device,
) -> Result<Vec<(String, Var)>, ModelError> {
    let vars: Vec<(String, Var)> = {
        // The map is local to this call: no other thread can have poisoned its lock.
        let data = varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    // Seeded He initialisation (candle's CPU generator cannot be seeded).
    for (name, var) in &vars {
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with("weight") {
            let fan_in = dims[1] as f64;
            let s = (2.0 / fan_in).sqrt();
            (0..count).map(|_| (rng.normal() * s) as f32).collect()
        } else {
            vec![0.0; count]
        };
        var.set(&Tensor::from_vec(values, dims, dev)?)?;
    }
    Ok(vars)
}

/// The model's metadata before training: its architecture, the data and split it is trained
/// on, and how to reproduce it; the metrics are filled in after training.
fn model_meta(
    bars: &[Bar],
    source: &str,
    command: &str,
    cfg: &TrainConfig,
    parts: &Parts<'_>,
) -> ModelMeta {
    let Parts { train, val, held } = *parts;
    ModelMeta {
        kind: KIND.into(),
        format_version: FORMAT_VERSION,
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        input_dim: N_FEATURES,
        hidden: cfg.hidden,
        output_dim: 1,
        horizon_bars: cfg.horizon,
        seed: cfg.seed,
        training_data: DataRef {
            source: source.into(),
            sha256: bars_sha256(bars),
            bars: bars.len(),
            first_ts: bars[0].ts,
            last_ts: bars[bars.len() - 1].ts,
        },
        split: Split {
            train: train.len(),
            validation: val.len(),
            heldout: held.len(),
            train_end_ts: bars[train[train.len() - 1].2].ts,
            validation_end_ts: bars[val[val.len() - 1].2].ts,
            heldout_start_ts: bars[held[0].2].ts,
            heldout_end_ts: bars[held[held.len() - 1].2].ts,
        },
        metrics: Metrics {
            heldout_accuracy: 0.0,
            heldout_log_loss: 0.0,
            heldout_brier: 0.0,
            majority_baseline_accuracy: 0.0,
            base_rate_log_loss: 0.0,
            validation_log_loss: 0.0,
            epochs_run: 0,
            best_epoch: 0,
        },
        command: command.into(),
    }
}

/// One epoch: an AdamW step on each minibatch of `train` in `order` (`batch` samples each, 0
/// taken as 1). Returns the mean of the minibatches' losses.
fn train_epoch(
    model: &PriceDirection,
    opt: &mut AdamW,
    train: &[Sample],
    order: &[usize],
    batch: usize,
    dev: &Device,
) -> Result<f64, ModelError> {
    let mut total = 0.0;
    let mut batches = 0usize;
    for chunk in order.chunks(batch.max(1)) {
        let xs = to_tensor(&chunk.iter().map(|i| &train[*i].0).collect::<Vec<_>>(), dev)?;
        let ys = Tensor::from_vec(
            chunk.iter().map(|i| train[*i].1).collect::<Vec<_>>(),
            chunk.len(),
            dev,
        )?;
        let loss = bce(&model.logits(&xs)?, &ys)?;
        opt.backward_step(&loss)?;
        total += f64::from(loss.to_scalar::<f32>()?);
        batches += 1;
    }
    Ok(total / batches as f64)
}

/// The model's held-out metrics (accuracy, log loss, Brier score, and the majority and
/// base-rate baselines from the training part's `base_rate`); the training fields
/// (validation loss, epochs) are left at zero for the caller.
fn heldout_metrics(
    model: &PriceDirection,
    held: &[Sample],
    base_rate: f64,
    dev: &Device,
) -> Result<Metrics, ModelError> {
    let held_x = to_tensor(&held.iter().map(|s| &s.0).collect::<Vec<_>>(), dev)?;
    let logits: Vec<f32> = model.logits(&held_x)?.to_vec1()?;
    let (mut correct, mut ll, mut brier, mut base_ll) = (0usize, 0.0, 0.0, 0.0);
    let majority = if base_rate >= 0.5 { 1.0 } else { 0.0 };
    let mut majority_right = 0usize;
    for (z, s) in logits.iter().zip(held) {
        let p = sigmoid(f64::from(*z));
        let y = f64::from(s.1);
        correct += usize::from((p >= 0.5) == (y == 1.0));
        majority_right += usize::from(majority == y);
        ll += crate::calibration::log_loss(p, y == 1.0);
        base_ll += crate::calibration::log_loss(base_rate, y == 1.0);
        brier += (p - y) * (p - y);
    }
    let k = held.len() as f64;
    Ok(Metrics {
        heldout_accuracy: correct as f64 / k,
        heldout_log_loss: ll / k,
        heldout_brier: brier / k,
        majority_baseline_accuracy: majority_right as f64 / k,
        base_rate_log_loss: base_ll / k,
        validation_log_loss: 0.0,
        epochs_run: 0,
        best_epoch: 0,
    })
}

/// Trains and saves into `dir`; returns the model as reloaded from disk (with its hash).
///
/// # Errors
/// As [`train()`], [`PriceDirection::save`] and [`PriceDirection::load`].
///
/// # Panics
/// As [`train()`].
pub fn train_to_dir(
    bars: &[Bar],
    source: &str,
    command: &str,
    cfg: &TrainConfig,
    dir: &Path,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<(PriceDirection, Vec<EpochLog>), ModelError> {
    let trained = train(bars, source, command, cfg, on_epoch)?;
    trained.model.save(dir)?;
    Ok((PriceDirection::load(dir)?, trained.epochs))
}
