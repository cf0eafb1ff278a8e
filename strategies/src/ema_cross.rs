//! `ema_cross`: long `size` of equity while the fast EMA is above the slow one, else flat.

use agent_core::{Context, Intent, MarketEvent, ParamError, Params, Strategy, StrategyError};
use models::Ema;

/// Fast/slow EMA crossover, long or flat. The reference strategy for benchmarks.
///
/// It compares the exposure it wants with the exposure it has on every bar, rather than acting
/// only on the bar of a crossover, so an intent the risk gate refused is retried and a restart
/// picks up where it left off.
#[derive(Debug, Clone)]
pub struct EmaCross {
    fast: Ema,
    slow: Ema,
    size: f64,
}

impl EmaCross {
    /// `fast < slow` bars; `size` in (0, 1] is the share of equity held while long.
    pub fn new(fast: usize, slow: usize, size: f64) -> Self {
        Self {
            fast: Ema::new(fast),
            slow: Ema::new(slow),
            size,
        }
    }

    /// Reads `fast` (12), `slow` (26) and `size` (0.95).
    ///
    /// # Errors
    /// [`ParamError`] if a value has the wrong type, `fast` is 0, `slow` is not greater than
    /// `fast`, `size` is outside (0, 1], or a key other than these three was given.
    pub fn from_params(mut p: Params) -> Result<Self, ParamError> {
        let fast = p.usize("fast", 12)?;
        let slow = p.usize("slow", 26)?;
        let size = p.f64("size", 0.95)?;
        if fast == 0 {
            return Err(p.invalid("fast", "must be at least 1"));
        }
        if slow <= fast {
            return Err(p.invalid(
                "slow",
                format!("must be greater than fast ({fast}), got {slow}"),
            ));
        }
        if !(size > 0.0 && size <= 1.0) {
            return Err(p.invalid("size", format!("must be in (0, 1], got {size}")));
        }
        p.finish()?;
        Ok(Self::new(fast, slow, size))
    }
}

impl Strategy for EmaCross {
    fn name(&self) -> &str {
        "ema_cross"
    }

    fn on_event(
        &mut self,
        event: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        let Some(bar) = event.as_bar() else {
            return Ok(Vec::new());
        };
        self.fast.update(bar.close);
        self.slow.update(bar.close);
        let (Some(fast), Some(slow)) = (self.fast.ready(), self.slow.ready()) else {
            return Ok(Vec::new());
        };
        let long = fast > slow;
        let exposure = ctx.exposure();
        // Act only when the held side disagrees with the signal; drift within a side is fine.
        let intent = if long && exposure < self.size / 2.0 {
            ctx.target_exposure(self.size)?
        } else if !long && !ctx.base_balance().is_zero() {
            ctx.target_exposure(0.0)?
        } else {
            None
        };
        Ok(intent.map_or_else(Vec::new, |i| vec![i]))
    }
}
