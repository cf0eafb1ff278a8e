//! `defai train` (the PriceDirection model) and `defai predict-eval` (kelly_bettor offline):
//! the models' and the bettor's evaluations.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::engine;
use anyhow::{Result, bail};

/// `defai train`: trains on `data` (default: the bundled data) and writes the model to `out`.
pub(super) fn train(
    data: Option<PathBuf>,
    out: &Path,
    seed: u64,
    horizon: usize,
    max_epochs: usize,
    json: bool,
) -> Result<()> {
    use crate::models::train::{TrainConfig, train_to_dir};
    let series = engine::load_data(&Config::default(), data.as_deref(), false)?;
    let cfg = TrainConfig {
        seed,
        horizon,
        max_epochs,
        ..TrainConfig::default()
    };
    let source = series.report.source.clone();
    let command = format!(
        "defai train{} --out {} --seed {seed} --horizon {horizon} --max-epochs {max_epochs}",
        data.as_ref()
            .map(|d| format!(" --data {}", d.display()))
            .unwrap_or_default(),
        out.display()
    );
    let pb = (!json && std::io::stderr().is_terminal()).then(|| epoch_bar(max_epochs));
    let started = std::time::Instant::now();
    let (model, epochs) = train_to_dir(&series.bars, &source, &command, &cfg, out, &mut |e| {
        if let Some(pb) = &pb {
            pb.set_position(e.epoch as u64);
            pb.set_message(format!(
                "train {:.4} val {:.4}",
                e.train_loss, e.validation_loss
            ));
        }
    })?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    let m = &model.meta().metrics;
    if json {
        println!(
            "{}",
            serde_json::json!({"out": out, "model_hash": model.hash(), "training_s": secs,
                "epochs": epochs.len(), "metrics": m, "split": model.meta().split})
        );
    } else {
        println!(
            "trained in {secs:.1} s ({} epochs, best {}), wrote {}",
            epochs.len(),
            m.best_epoch,
            out.display()
        );
        println!("model hash {}", model.hash());
        println!(
            "held-out: accuracy {:.4} (majority class {:.4}), log-loss {:.4} (base rate {:.4}), Brier {:.4}",
            m.heldout_accuracy,
            m.majority_baseline_accuracy,
            m.heldout_log_loss,
            m.base_rate_log_loss,
            m.heldout_brier
        );
    }
    Ok(())
}

/// The training's progress bar on stderr, one step per epoch.
fn epoch_bar(max_epochs: usize) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(max_epochs as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} training [{bar:30}] epoch {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// `defai predict-eval`: kelly_bettor over generated markets, offline.
pub(super) async fn predict_eval(
    markets: usize,
    seed: u64,
    bankroll: f64,
    fraction: f64,
    json: bool,
) -> Result<()> {
    if markets == 0
        || bankroll.is_nan()
        || bankroll <= 0.0
        || !(0.0..=1.0).contains(&fraction)
        || fraction == 0.0
    {
        bail!("--markets and --bankroll must be positive, --fraction in (0, 1]");
    }
    let gen_cfg = crate::connectors::paper_fpmm::GenConfig {
        markets,
        ..Default::default()
    };
    let kelly = crate::strategies::KellyConfig {
        fraction,
        ..Default::default()
    };
    let (e, cycles_per_s) = crate::predict::evaluate(seed, &gen_cfg, &kelly, bankroll).await?;
    if json {
        let mut v = serde_json::to_value(&e)?;
        v["cycles_per_s"] = serde_json::json!(cycles_per_s);
        println!("{v}");
    } else {
        println!(
            "kelly_bettor on {} generated markets (seed {seed}), {} cycles",
            e.markets, e.cycles
        );
        println!(
            "  bets {}, bankroll {:.2} → {:.2} dUSD ({:+.2} %), redeemed {:.2}",
            e.bets, e.start_bankroll, e.end_bankroll, e.return_pct, e.redeemed
        );
        println!(
            "  Brier: forecasts {:.4}, market prices {:.4} (trust the market: never bets, +0.00 %)",
            e.brier_forecast, e.brier_market
        );
        println!("  {cycles_per_s:.0} cycles/s over {} markets", e.markets);
    }
    Ok(())
}
