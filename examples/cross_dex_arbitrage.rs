//! Cross-DEX arbitrage between two Uniswap V2 deployments, written only against defai's public
//! API: the strategy sees both WETH/dUSD pools in one event, and when buying on the cheaper pool
//! and selling on the dearer one beats both LP fees and both legs' gas it proposes a two-leg
//! [`Intent::Bundle`], which the agent judges as a whole (kill switch, risk gate, each leg's
//! quote) before it sends the first leg. Live on the devnet (`defai devnet` deploys the second
//! DEX; its market mover moves only the first):
//!
//! ```text
//! DEFAI_PRIVATE_KEY=<an anvil test key> cargo run --release --example cross_dex_arbitrage -- \
//!     devnet.json state/arbitrage 20
//! ```
//!
//! It runs through [`AgentBuilder::run_on`] with a state folder (journal, latched kill switch; a
//! restart sells back what a bundle cut short bought) and prints a JSON line: bundles proposed,
//! fills, the two pools' prices before and after, and the kill switch.
use std::time::Duration;

use defai::connectors::evm::{
    Chain, ChainSource, CycleClock, DevnetInfo, UniswapV2Config, UniswapV2Venue,
};
use defai::core::amm::get_amount_out;
use defai::core::{Context, Intent, MarketEvent, Pair, Portfolio, Strategy, StrategyError};
use defai::core::{Swap, Token, U256};
use defai::{AgentBuilder, config::Config, engine::Mode};

/// Buys WETH on the cheaper pool and sells it on the dearer when the round trip, at the pools'
/// exact reserves and fees, clears both legs' gas and `min_profit` (whole dUSD).
struct CrossDexArbitrage {
    min_profit: f64,
}

impl Strategy for CrossDexArbitrage {
    fn name(&self) -> &str {
        "cross_dex_arbitrage"
    }

    fn on_event(
        &mut self,
        event: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        let at = |key| {
            event
                .markets()?
                .at(key)
                .and_then(|m| Some((m.bar.close, m.pool?)))
        };
        let (Some(a), Some(b)) = (at("dex1"), at("dex2")) else {
            return Ok(vec![]);
        };
        let ((cheap, ck), (dear, dk)) = if a.0 < b.0 {
            ((a.1, "dex1"), (b.1, "dex2"))
        } else {
            ((b.1, "dex2"), (a.1, "dex1"))
        };
        let (base, quote) = (&ctx.pair.base, &ctx.pair.quote);
        // Each leg within ~1 % of its input reserve: inside the gate's 100 bps price-impact limit.
        let cap = (ctx.portfolio.balance(quote)).min(cheap.reserve_quote / U256::from(110u8));
        let round_trip = |x: U256| -> Option<(U256, U256)> {
            let mid = get_amount_out(x, cheap.reserve_quote, cheap.reserve_base, 30).ok()?;
            let back = get_amount_out(mid, dear.reserve_base, dear.reserve_quote, 30).ok()?;
            (mid <= dear.reserve_base / U256::from(110u8)).then_some((mid, back))
        };
        let step = |x: &U256| Some(*x * U256::from(5u8) / U256::from(4u8));
        let best = std::iter::successors(Some(quote.one()), step)
            .take_while(|x| *x <= cap)
            .filter_map(|x| round_trip(x).map(|(mid, back)| (x, mid, back)))
            .map(|(x, mid, back)| (x, mid, quote.to_f64(back) - quote.to_f64(x)))
            .max_by(|a, b| a.2.total_cmp(&b.2));
        let gas = 2.0 * ctx.gas_estimate.max(0.0);
        match best {
            Some((x, mid, profit)) if profit > gas + self.min_profit => {
                Ok(vec![Intent::Bundle(vec![
                    Swap::new(quote, base, x).on(ck),
                    Swap::new(base, quote, mid).on(dk),
                ])])
            }
            _ => Ok(vec![]),
        }
    }
}

/// The gate's default limits (100 bps price impact among them) and kill switch.
const CONFIG: &str = "[market]\nbase = \"WETH\"\nquote = \"dUSD\"\nquote_decimals = 6\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, devnet, state, cycles] = &args[..] else {
        anyhow::bail!("usage: cross_dex_arbitrage DEVNET_JSON STATE_DIR CYCLES");
    };
    let info = DevnetInfo::read(std::path::Path::new(devnet))?;
    let chain = Chain::connect(&info.rpc_url)?;
    let strategy = Box::new(CrossDexArbitrage { min_profit: 1.0 });
    let agent = AgentBuilder::new(Config::parse(CONFIG, None)?).strategy(strategy);
    let agent = agent.state_dir(state).max_cycles(cycles.parse()?);
    let tx = agent.sender(&chain, info.chain_id).await?;
    let pair = Pair::new(Token::new("WETH", 18), Token::new("dUSD", 6));
    let (tokens, eth) = ((info.weth, info.usd), Token::new("ETH", 18));
    let cfg = UniswapV2Config::new(info.router, info.chain_id);
    let (venues, pools) =
        UniswapV2Venue::keyed_set(&chain, &tx, &pair, tokens, &info.dexes(), &eth, &cfg).await?;
    let price = async |k: usize| pools[k].1.price(&chain).await;
    let prices = async || anyhow::Ok([price(0).await?, price(1).await?]);
    let before = prices().await?;
    let clock = CycleClock::new(
        chain.clone(),
        Duration::from_millis(20),
        Duration::from_secs(1),
    );
    let source = ChainSource::keyed_pools(chain.clone(), pools.clone(), clock);
    let out = agent.run_on(Mode::Live, vec![pair], Portfolio::new(), source, venues);
    let r = out.await?.report;
    let line = serde_json::json!({
        "intents": r.intents, "fills": r.fills, "refused": r.risk.refused,
        "execution_failures": r.execution_failures, "reconciliations": r.reconciliations,
        "prices_before": before, "prices_after": prices().await?,
        "kill_switch": format!("{:?}", r.kill_switch.state),
    });
    println!("{line}");
    Ok(())
}
