//! A rebalancing target from a candle model of your own: a logistic trend model (weights on
//! the 24- and 72-bar returns and the EMA 12/26 spread) tilts the rebalancer's 40/30/30 % WETH /
//! DVT / dUSD targets toward the assets it expects to rise. Only the public API.
//!
//! ```text
//! cargo run --release --example model_rebalancer                 # backtest, bundled data
//! DEFAI_PRIVATE_KEY=<an anvil test key> cargo run --release --example model_rebalancer -- \
//!     devnet.json state/model-rebalancer 100                      # live on `defai devnet`
//! ```
use defai::AgentBuilder;
use defai::config::Config;
use defai::core::{RiskLimits, amount::Token};
use defai::models::candle_core::{Device, Tensor};
use defai::models::{ModelError, N_FEATURES, ProbabilityModel};
use defai::strategies::{Rebalancer, rebalancer::RebalanceConfig};

/// `p = σ(w · x)`, computed by candle on the CPU.
struct Trend {
    w: Tensor,
}

impl Trend {
    fn new() -> Result<Self, ModelError> {
        let mut w = [0f32; N_FEATURES];
        (w[2], w[3], w[7]) = (4.0, 2.0, 20.0); // ret_24, ret_72, ema_12_26 (models::FEATURES)
        let w = Tensor::from_slice(&w, (N_FEATURES, 1), &Device::Cpu)?;
        Ok(Self { w })
    }
}

impl ProbabilityModel for Trend {
    fn probability(&self, features: &[f64]) -> Result<f64, ModelError> {
        let x: Vec<f32> = features.iter().map(|v| *v as f32).collect();
        let x = Tensor::from_vec(x, (1, features.len()), &Device::Cpu)?;
        let p = (x.matmul(&self.w)?.neg()?.exp()? + 1.0)?.recip()?;
        Ok(f64::from(p.flatten_all()?.to_vec1::<f32>()?[0]))
    }

    fn model_id(&self) -> &str {
        "trend-logistic-v1"
    }
}

/// The devnet's WETH/dUSD and DVT/dUSD pools, 40/30/30 % before the tilt of up to 10 points.
const LIVE: &str = r#"
[venue]
deadline_s = 7200    # the devnet's replay moves chain time an hour per bar: give a swap two
[chain]
poll_interval_ms = 20
receipt_timeout_s = 10.0
[strategy]
name = "rebalancer"
[strategy.params]
weth = 0.4
dvt = 0.3
usd = 0.3
tilt = 0.1
[risk]
max_slippage_bps = 100
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = match args.as_slice() {
        [] => {
            let usd = Token::new("dUSD", 6);
            let assets = vec![
                (Token::new("WETH", 18), 0.4),
                (Token::new("DVT", 18), 0.3),
                (usd.clone(), 0.3),
            ];
            let strategy = Rebalancer::new(assets, &usd, RebalanceConfig::default())?
                .with_model(Box::new(Trend::new()?), 0.1)?;
            let series = defai::engine::load_data(&Config::default(), None, false)?;
            let limits = RiskLimits::permissive();
            let bars = &series.bars;
            let report = defai::rebalance::backtest_strategy(bars, 7, strategy, 1e4, limits);
            serde_json::to_string(&report.await?)?
        }
        [devnet, state, cycles] => {
            let agent = AgentBuilder::new(Config::parse(LIVE, None)?);
            let agent = agent.rebalance_model(Box::new(Trend::new()?));
            let agent = agent
                .devnet(devnet)
                .state_dir(state)
                .max_cycles(cycles.parse()?);
            serde_json::to_string(&agent.live_rebalance().await?)?
        }
        _ => return Err("usage: model_rebalancer [DEVNET_JSON STATE_DIR CYCLES]".into()),
    };
    println!("{json}");
    Ok(())
}
