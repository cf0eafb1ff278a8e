//! `ml_signal`: trades on a local model's probability that the price rises over its horizon.
//! Long above `entry`, sized by confidence (full `size` at `full_at`), flat below `exit`, hold
//! in between. The model runs in-process (candle, CPU); its content hash goes into every
//! decision record, and an unusable output (NaN, outside [0, 1]) is a model fault that trips the
//! kill switch instead of reaching the venue.

use agent_core::{
    Context, Decision, Intent, MarketEvent, ParamError, Params, Strategy, StrategyError,
};
use models::{FeatureState, PriceDirection, ProbabilityModel};

/// Probability-threshold trading on a [`ProbabilityModel`] fed by the shared feature pipeline.
pub struct MlSignal {
    model: Box<dyn ProbabilityModel>,
    features: FeatureState,
    entry: f64,
    exit: f64,
    full_at: f64,
    size: f64,
    last: Option<Decision>,
}

impl std::fmt::Debug for MlSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlSignal")
            .field("model", &self.model.model_id())
            .field("entry", &self.entry)
            .field("exit", &self.exit)
            .field("full_at", &self.full_at)
            .field("size", &self.size)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl MlSignal {
    /// `entry > 0.5 ≥ exit`-style thresholds are checked by [`MlSignal::from_params`].
    pub fn new(
        model: Box<dyn ProbabilityModel>,
        entry: f64,
        exit: f64,
        full_at: f64,
        size: f64,
    ) -> Self {
        Self {
            model,
            features: FeatureState::new(),
            entry,
            exit,
            full_at,
            size,
            last: None,
        }
    }

    /// Reads `model` (a folder written by `defai train`; default `shipped`, the model embedded in
    /// the binary), `entry` (0.55), `exit` (0.45), `full_at` (0.65) and `size` (0.95).
    ///
    /// # Errors
    /// [`ParamError`] if a value has the wrong type; unless `0 ≤ exit ≤ entry ≤ 1`,
    /// `max(entry, 0.5) < full_at ≤ 1` and `0 < size ≤ 1`; if the `model` folder cannot be
    /// loaded (the [`models::ModelError`] text becomes the reason); or if an unknown key was
    /// given.
    pub fn from_params(mut p: Params) -> Result<Self, ParamError> {
        let model = p.string("model", "shipped")?;
        let entry = p.f64("entry", 0.55)?;
        let exit = p.f64("exit", 0.45)?;
        let full_at = p.f64("full_at", 0.65)?;
        let size = p.f64("size", 0.95)?;
        if !(0.0..=1.0).contains(&exit) || !(exit..=1.0).contains(&entry) {
            return Err(p.invalid(
                "entry",
                format!("need 0 ≤ exit ({exit}) ≤ entry ({entry}) ≤ 1"),
            ));
        }
        if !(full_at > entry.max(0.5) && full_at <= 1.0) {
            return Err(p.invalid(
                "full_at",
                format!("must be in (max(entry, 0.5), 1], got {full_at}"),
            ));
        }
        if !(size > 0.0 && size <= 1.0) {
            return Err(p.invalid("size", format!("must be in (0, 1], got {size}")));
        }
        let loaded =
            PriceDirection::named(&model).map_err(|e| p.invalid("model", e.to_string()))?;
        p.finish()?;
        Ok(Self::new(Box::new(loaded), entry, exit, full_at, size))
    }

    fn target(&self, prob: f64) -> Option<f64> {
        if prob >= self.entry {
            let conf = ((prob - 0.5) / (self.full_at - 0.5)).clamp(0.0, 1.0);
            Some(self.size * conf)
        } else if prob <= self.exit {
            Some(0.0)
        } else {
            None
        }
    }
}

impl Strategy for MlSignal {
    fn name(&self) -> &str {
        "ml_signal"
    }

    fn on_event(
        &mut self,
        event: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        self.last = None;
        let Some(bar) = event.as_bar() else {
            return Ok(Vec::new());
        };
        let Some(features) = self.features.update(bar) else {
            return Ok(Vec::new());
        };
        let prob = self
            .model
            .probability(&features)
            .map_err(|e| StrategyError::Other(format!("model: {e}")))?;
        // The output guard: nothing unusable becomes an order.
        let prob = StrategyError::check_fraction("model probability", prob)?;
        let target = self.target(prob);
        // Trade only when the held exposure is off the target by a tenth of the full size:
        // small probability wiggles would otherwise churn fees.
        let intent = match target {
            Some(t)
                if (ctx.exposure() - t).abs() > self.size * 0.1
                    || (t == 0.0 && !ctx.base_balance().is_zero()) =>
            {
                ctx.target_exposure(t)?
            }
            _ => None,
        };
        self.last = Some(Decision {
            model: self.model.model_id().to_string(),
            features: Some(models::features::features_hash(&features)),
            output: prob,
            action: match target {
                Some(t) => format!("target exposure {t:.3}"),
                None => "hold".into(),
            },
        });
        Ok(intent.into_iter().collect())
    }

    fn decision(&self) -> Option<Decision> {
        self.last.clone()
    }
}
