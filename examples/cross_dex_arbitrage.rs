//! Cross-DEX arbitrage between two Uniswap V2 deployments, written only against defai's public
//! API: the strategy sees both WETH/dUSD pools in one event, and when buying on the cheaper pool
//! and selling on the dearer one beats both LP fees and both legs' gas it proposes a two-leg
//! [`Intent::Bundle`], which the agent judges as a whole (kill switch, risk gate, each leg's
//! quote) before it sends the first leg. Live on the devnet (`defai devnet` deploys the second
//! DEX; its market mover moves only the first):
//!
//! ```text
//! DEFAI_PRIVATE_KEY=<an anvil test key> cargo run --release --example cross_dex_arbitrage -- \
//!     devnet.json journal.sqlite 20
//! ```
//!
//! It prints a JSON line: bundles proposed, fills, the two pools' prices before and after, and
//! the kill switch.
use std::sync::Arc;
use std::time::Duration;

use defai::connectors::evm::{
    Chain, ChainSource, CycleClock, DevnetInfo, NonceManager, PoolRef, TxPolicy, TxSender,
    UniswapV2Config, UniswapV2Venue, Wallet, WalletSource,
};
use defai::connectors::journal::{Journal, JournalObserver};
use defai::core::amm::get_amount_out;
use defai::core::{
    Agent, Context, Intent, LimitGate, MarketEvent, Pair, Portfolio, RiskLimits, Strategy,
    StrategyError, Swap, TakeEvents, Token, U256, Venue, VenueSet,
};

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
        let Some(set) = event.markets() else {
            return Ok(vec![]);
        };
        let (Some(a), Some(b)) = (set.at("dex1"), set.at("dex2")) else {
            return Ok(vec![]);
        };
        let (Some(pa), Some(pb)) = (a.pool, b.pool) else {
            return Ok(vec![]);
        };
        let ((cheap, ck), (dear, dk)) = if a.bar.close < b.bar.close {
            ((pa, "dex1"), (pb, "dex2"))
        } else {
            ((pb, "dex2"), (pa, "dex1"))
        };
        let (base, quote) = (&ctx.pair.base, &ctx.pair.quote);
        // Each leg within ~1 % of its input reserve: inside the gate's 100 bps price-impact limit.
        let cap = ctx
            .portfolio
            .balance(quote)
            .min(cheap.reserve_quote / U256::from(110u8));
        let round_trip = |x: U256| -> Option<(U256, U256)> {
            let mid = get_amount_out(x, cheap.reserve_quote, cheap.reserve_base, 30).ok()?;
            let back = get_amount_out(mid, dear.reserve_base, dear.reserve_quote, 30).ok()?;
            (mid <= dear.reserve_base / U256::from(110u8)).then_some((mid, back))
        };
        let mut best: Option<(U256, U256, f64)> = None;
        let mut x = quote.one();
        while x <= cap {
            if let Some((mid, back)) = round_trip(x) {
                let profit = quote.to_f64(back) - quote.to_f64(x);
                if best.is_none_or(|(_, _, p)| profit > p) {
                    best = Some((x, mid, profit));
                }
            }
            x = x * U256::from(5u8) / U256::from(4u8);
        }
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, devnet, journal, cycles] = &args[..] else {
        anyhow::bail!("usage: cross_dex_arbitrage DEVNET_JSON JOURNAL CYCLES");
    };
    let info = DevnetInfo::read(std::path::Path::new(devnet))?;
    let chain = Chain::connect(&info.rpc_url)?;
    let wallet = Wallet::load(&WalletSource::Env)?;
    let nonces = Arc::new(NonceManager::new(wallet.address()));
    let tx = TxSender::new(
        chain.clone(),
        wallet,
        info.chain_id,
        nonces,
        TxPolicy::default(),
    )?;
    let pair = Pair::new(Token::new("WETH", 18), Token::new("dUSD", 6));
    let pools = [
        ("dex1", info.weth_usd_pair, info.router),
        ("dex2", info.dex2_weth_usd_pair, info.dex2_router),
    ];
    let (mut keyed, mut venues) = (Vec::new(), Vec::new());
    for (key, address, router) in pools {
        let pool = PoolRef::resolve(&chain, pair.clone(), address, info.weth, info.usd).await?;
        pool.check_router(&chain, router).await?;
        let cfg = UniswapV2Config {
            router,
            deadline_s: 60,
            gas_per_swap: 150_000,
            chain_id: info.chain_id,
            chain_check_every: 1,
        };
        venues.push((
            key.to_string(),
            pair.clone(),
            UniswapV2Venue::new(pool.clone(), tx.clone(), Token::new("ETH", 18), cfg).at_venue(key),
        ));
        keyed.push((key.to_string(), pool));
    }
    let prices = |keyed: &[(String, PoolRef)]| {
        let (chain, keyed) = (chain.clone(), keyed.to_vec());
        async move {
            let mut out = Vec::new();
            for (_, pool) in &keyed {
                let (rb, rq) = pool
                    .reserves(
                        &chain,
                        defai::connectors::evm::alloy::eips::BlockId::latest(),
                    )
                    .await?;
                out.push(pool.price_f64(rb, rq));
            }
            anyhow::Ok(out)
        }
    };
    let before = prices(&keyed).await?;
    let mut venues = VenueSet::keyed(venues).map_err(anyhow::Error::msg)?;
    // A journal from an earlier run: resume from it (a bundle it cut short is sold back).
    let path = std::path::Path::new(journal);
    let existed = path.exists();
    let journal = Journal::open(path)?;
    let resume = existed.then(|| journal.resume()).transpose()?;
    let mut journal = JournalObserver::new(journal);
    venues.set_recorder(journal.recorder());
    let clock = CycleClock::new(
        chain.clone(),
        Duration::from_millis(20),
        Duration::from_secs(1),
    );
    let source = TakeEvents::new(
        ChainSource::keyed_pools(chain.clone(), keyed.clone(), clock),
        cycles.parse()?,
    );
    let strategy = CrossDexArbitrage { min_profit: 1.0 };
    let mut agent = Agent::new(pair, source, venues, Box::new(strategy), Portfolio::new())
        .with_gate(Box::new(LimitGate::new(RiskLimits::default())))
        .with_wall_data_age()
        .with_observer(Box::new(journal));
    if let Some(resume) = resume {
        agent = agent.resuming(resume);
    }
    let report = agent.run().await?;
    let after = prices(&keyed).await?;
    let line = serde_json::json!({
        "intents": report.intents, "fills": report.fills, "risk": format!("{:?}", report.risk),
        "execution_failures": report.execution_failures, "refused": report.risk.refused,
        "prices_before": before, "prices_after": after,
        "kill_switch": format!("{:?}", report.kill_switch.state),
        "reconciliations": report.reconciliations,
    });
    println!("{line}");
    Ok(())
}
