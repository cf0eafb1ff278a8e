//! A betting strategy of your own on the devnet's prediction markets (Gnosis CTF + FPMM),
//! through [`AgentBuilder::betting`] with the risk gate, kill switch and journal of every
//! `defai` run: a fixed-fraction longshot rule, not Kelly. Only the public API.
//!
//! ```text
//! cargo run --release -- devnet &                     # 3 markets at 50/50, 30/70, 70/30
//! DEFAI_PRIVATE_KEY=<an anvil test key> cargo run --release --example custom_bettor -- \
//!     devnet.json state/longshot 3
//! ```
use defai::AgentBuilder;
use defai::config::Config;
use defai::core::{Bet, BettingStrategy, MarketView, StrategyError, Token, U256};

/// Stakes `fraction_bps` of the bankroll (integer math, rounded down) on the cheapest outcome
/// of every market that prices it below `below`, once per market.
struct Longshot {
    fraction_bps: u64,
    below: f64,
    collateral: Token,
}

impl BettingStrategy for Longshot {
    fn name(&self) -> &str {
        "longshot"
    }

    fn on_market(
        &mut self,
        market: &MarketView,
        bankroll: U256,
        exposure: U256,
        _now: i64,
    ) -> Result<Option<Bet>, StrategyError> {
        let cheapest = market
            .prices
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((outcome, price)) = cheapest else {
            return Ok(None);
        };
        if price >= self.below || !exposure.is_zero() {
            return Ok(None);
        }
        let investment = bankroll * U256::from(self.fraction_bps) / U256::from(10_000u64);
        if investment.is_zero() {
            return Ok(None);
        }
        Ok(Some(Bet {
            market: market.id.clone(),
            outcome,
            investment,
            collateral: self.collateral.clone(),
        }))
    }
}

/// dUSD collateral; the bet limits the gate holds every bet to, whatever the strategy asks.
const LIVE: &str = r#"
[market]
quote = "dUSD"
quote_decimals = 6
[chain]
poll_interval_ms = 20
receipt_timeout_s = 10.0
[strategy.params]
max_bet = 500.0
max_market_exposure = 1000.0
floor_balance = 1000.0
[risk]
max_bet = 500.0
max_slippage_bps = 100
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [devnet, state, cycles] = args.as_slice() else {
        return Err("usage: custom_bettor DEVNET_JSON STATE_DIR CYCLES".into());
    };
    let config = Config::parse(LIVE, None)?;
    let collateral = Token::new(&config.market.quote, config.market.quote_decimals);
    let strategy = Longshot {
        fraction_bps: 5,
        below: 0.35,
        collateral,
    };
    let agent = AgentBuilder::new(config).betting(Box::new(strategy));
    let agent = agent
        .devnet(devnet)
        .state_dir(state)
        .max_cycles(cycles.parse()?);
    let summary = agent.live_bets().await?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
