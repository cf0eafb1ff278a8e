//! Local models: feature parity on the real data, save/load, clear errors for bad files,
//! deterministic training, the shipped model's provenance, and the output guard.

mod common;

use std::sync::{Arc, Mutex};

use defai::core::SwitchState;
use defai::models::calibration::ProbabilityModel;
use defai::models::train::{TrainConfig, bars_sha256, train};
use defai::models::{
    FEATURES, FeatureState, ModelError, N_FEATURES, PriceDirection, WARMUP, batch_features,
};
use defai::strategies::MlSignal;

#[test]
fn live_and_batch_features_agree_on_the_bundled_data() {
    let bars = common::bundled_bars();
    let batch = batch_features(&bars);
    let mut live = FeatureState::new();
    let mut compared = 0;
    for (bar, b) in bars.iter().zip(&batch) {
        let l = live.update(bar);
        assert_eq!(l.is_some(), b.is_some(), "warm-up differs at ts {}", bar.ts);
        if let (Some(l), Some(b)) = (l, b) {
            for k in 0..N_FEATURES {
                let tol = 1e-9 * b[k].abs().max(1.0);
                assert!(
                    (l[k] - b[k]).abs() <= tol,
                    "ts {} {}: live {} batch {}",
                    bar.ts,
                    FEATURES[k],
                    l[k],
                    b[k]
                );
            }
            compared += 1;
        }
    }
    assert_eq!(compared, bars.len() - (WARMUP - 1));
}

fn small_config() -> TrainConfig {
    TrainConfig {
        max_epochs: 4,
        hidden: 8,
        ..TrainConfig::default()
    }
}

#[test]
fn training_is_deterministic_for_a_seed_and_save_load_round_trips() {
    let bars = common::bundled_bars()[..4_000].to_vec();
    let dir = tempfile::tempdir().unwrap();
    let weights = |sub: &str, seed: u64| {
        let cfg = TrainConfig {
            seed,
            ..small_config()
        };
        let t = train(&bars, "slice", "test", &cfg, &mut |_| {}).unwrap();
        let path = dir.path().join(sub);
        t.model.save(&path).unwrap();
        (
            std::fs::read(path.join("price_direction.safetensors")).unwrap(),
            path,
        )
    };
    let (a, path_a) = weights("a", 7);
    let (b, _) = weights("b", 7);
    let (c, _) = weights("c", 8);
    assert_eq!(a, b, "same seed, same weights, byte for byte");
    assert_ne!(a, c, "another seed gives other weights");

    let loaded = PriceDirection::load(&path_a).unwrap();
    let again = PriceDirection::load(&path_a).unwrap();
    assert_eq!(loaded.hash(), again.hash());
    assert_eq!(loaded.hash().len(), 64);
    let f = batch_features(&bars)[500].unwrap();
    let p = loaded.probability_up(&f).unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(p, again.probability_up(&f).unwrap());
    // Saving what was loaded gives the same files.
    let resaved = dir.path().join("resaved");
    loaded.save(&resaved).unwrap();
    assert_eq!(
        std::fs::read(resaved.join("price_direction.safetensors")).unwrap(),
        a
    );
}

#[test]
fn corrupt_or_wrong_shape_weights_are_clear_errors_naming_file_and_tensor() {
    let bars = common::bundled_bars()[..3_000].to_vec();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    train(&bars, "slice", "test", &small_config(), &mut |_| {})
        .unwrap()
        .model
        .save(&good)
        .unwrap();

    // A model saved with 8 hidden units, metadata claiming 16: every layer's shape is wrong.
    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::copy(
        good.join("price_direction.safetensors"),
        wrong.join("price_direction.safetensors"),
    )
    .unwrap();
    let meta = std::fs::read_to_string(good.join("price_direction.json")).unwrap();
    std::fs::write(
        wrong.join("price_direction.json"),
        meta.replace("\"hidden\": 8", "\"hidden\": 16"),
    )
    .unwrap();
    let err = PriceDirection::load(&wrong).unwrap_err().to_string();
    assert!(
        err.contains("price_direction.safetensors")
            && err.contains("l1.weight")
            && err.contains("[8, 14]"),
        "{err}"
    );

    // Truncated weights.
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let bytes = std::fs::read(good.join("price_direction.safetensors")).unwrap();
    std::fs::write(
        cut.join("price_direction.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    std::fs::write(cut.join("price_direction.json"), &meta).unwrap();
    let err = PriceDirection::load(&cut).unwrap_err();
    assert!(matches!(err, ModelError::Weights { .. }), "{err}");
    assert!(err.to_string().contains("price_direction.safetensors"));

    // Broken metadata: file, line and column.
    let badmeta = dir.path().join("badmeta");
    std::fs::create_dir_all(&badmeta).unwrap();
    std::fs::write(badmeta.join("price_direction.safetensors"), &bytes).unwrap();
    std::fs::write(badmeta.join("price_direction.json"), "{\n  \"kind\": 3\n}").unwrap();
    let err = PriceDirection::load(&badmeta).unwrap_err().to_string();
    assert!(err.contains("price_direction.json: line 2"), "{err}");

    // Through the CLI: a non-zero exit with the same message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .args([
            "backtest",
            "--strategy",
            "ml_signal",
            "--param",
            &format!("model={}", wrong.display()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("l1.weight") && stderr.contains("price_direction.safetensors"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_model_was_trained_by_our_code_on_the_bundled_data_and_retraining_reproduces_it() {
    let shipped = PriceDirection::shipped().unwrap();
    let meta = shipped.meta();
    let bars = common::bundled_bars();
    assert_eq!(meta.training_data.sha256, bars_sha256(&bars));
    assert_eq!(meta.training_data.bars, bars.len());
    assert!(meta.command.starts_with("defai train"));
    let m = &meta.metrics;
    assert!(m.heldout_accuracy > 0.0 && m.majority_baseline_accuracy > 0.0);
    assert!(meta.split.train_end_ts < meta.split.validation_end_ts);
    assert!(meta.split.validation_end_ts < meta.split.heldout_start_ts);

    // Retrain with the recorded settings: the same weights (to float noise across CPUs).
    let cfg = TrainConfig {
        seed: meta.seed,
        horizon: meta.horizon_bars,
        hidden: meta.hidden,
        ..TrainConfig::default()
    };
    let again = train(
        &bars,
        &meta.training_data.source,
        &meta.command,
        &cfg,
        &mut |_| {},
    )
    .unwrap()
    .model;
    assert_eq!(again.meta().metrics.best_epoch, m.best_epoch);
    let feats = batch_features(&bars);
    for i in [WARMUP, 10_000, 30_000] {
        let f = feats[i].unwrap();
        let (a, b) = (
            shipped.probability_up(&f).unwrap(),
            again.probability_up(&f).unwrap(),
        );
        assert!((a - b).abs() < 1e-4, "bar {i}: shipped {a}, retrained {b}");
    }
}

/// A model that has gone wrong.
struct NanModel;
impl ProbabilityModel for NanModel {
    fn probability(&self, _: &[f64]) -> Result<f64, ModelError> {
        Ok(f64::NAN)
    }
    fn model_id(&self) -> &str {
        "nan-model"
    }
}

#[test]
fn a_model_that_outputs_nan_trips_the_kill_switch_and_no_order_reaches_the_venue() {
    let bars = common::bundled_bars()[..500].to_vec();
    let first_decision = bars[WARMUP - 1].ts;
    let strategy = MlSignal::new(Box::new(NanModel), 0.55, 0.45, 0.65, 0.95);
    let tape = common::Tape::default();
    let agent = common::agent(Box::new(strategy), common::paper(), bars)
        .with_observer(Box::new(tape.clone()));
    let report = common::run_to_end(agent);
    assert_eq!(report.kill_switch.state, SwitchState::Halted);
    let reason = report.kill_switch.reason.clone().unwrap();
    assert!(
        reason.contains("model probability") && reason.contains("NaN"),
        "{reason}"
    );
    assert_eq!(report.intents, 0, "no intent was formed");
    assert_eq!(report.fills, 0);
    assert!(tape.0.lock().unwrap().1.is_empty());
    assert_eq!(
        report.kill_switch.tripped_at,
        Some(first_decision),
        "tripped at the first output"
    );
}

/// (model hash, output, features hash) of each decision.
type Seen = (String, f64, Option<String>);

/// Records the audit stream's decisions.
#[derive(Clone, Default)]
struct Decisions(Arc<Mutex<Vec<Seen>>>);
impl defai::core::Observer for Decisions {
    fn on_audit(
        &mut self,
        e: &defai::core::AuditEvent<'_>,
    ) -> Result<(), defai::core::agent::AuditError> {
        if let defai::core::AuditEvent::Decision { decision, .. } = e {
            self.0.lock().unwrap().push((
                decision.model.clone(),
                decision.output,
                decision.features.clone(),
            ));
        }
        Ok(())
    }
}

#[test]
fn every_ml_signal_decision_carries_the_model_hash_and_the_hash_of_its_features() {
    let bars = common::bundled_bars()[..400].to_vec();
    let shipped = PriceDirection::shipped().unwrap();
    let hash = shipped.hash().to_string();
    let strategy = MlSignal::new(Box::new(shipped), 0.55, 0.45, 0.65, 0.95);
    let rec = Decisions::default();
    let report = common::run_to_end(
        common::agent(Box::new(strategy), common::paper(), bars.clone())
            .with_observer(Box::new(rec.clone())),
    );
    let d = rec.0.lock().unwrap();
    assert_eq!(d.len() as u64, report.bars - (WARMUP as u64 - 1));
    assert!(
        d.iter()
            .all(|(m, p, _)| *m == hash && (0.0..=1.0).contains(p))
    );
    // The features hash is that of the very vector the live pipeline computes for the bar.
    let mut live = defai::models::FeatureState::default();
    let expected: Vec<String> = bars
        .iter()
        .filter_map(|b| live.update(b))
        .map(|f| defai::models::features::features_hash(&f))
        .collect();
    let got: Vec<String> = d.iter().map(|(_, _, f)| f.clone().unwrap()).collect();
    assert_eq!(got, expected);
    assert_ne!(got[0], got[1], "different bars, different inputs");
}
