//! Chain modes: `defai run` (live: signs and sends) and `defai paper --devnet|[chain]` (reads the
//! real pool every block and fills on the paper venue; never loads a key).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_core::{Clock, Pair, Portfolio, Token};
use connectors::PaperVenue;
use connectors::evm::alloy::eips::BlockId;
use connectors::evm::alloy::primitives::{Address, B256, U256};
use connectors::evm::bindings::IERC20;
use connectors::evm::guard::check_chain;
use connectors::evm::{
    Chain, ChainSource, DevnetInfo, EvmError, NonceManager, PoolRef, TxPolicy, TxSender,
    UniswapV2Config, UniswapV2Venue, Wallet, WalletSource,
};

use crate::engine::{DataInfo, Drive, Mode, RunError, RunOutput, RunSpec};

/// What chain modes take besides the config.
#[derive(Debug, Clone, Default)]
pub struct ChainArgs {
    /// Take the chain and contracts from this `devnet.json`.
    pub devnet: Option<PathBuf>,
    /// Keystore (overrides `wallet.keystore`).
    pub keystore: Option<PathBuf>,
    /// Allow a mainnet chain id (`--allow-mainnet`); refused otherwise.
    pub allow_mainnet: bool,
    /// Shared by every agent of the process: one [`NonceManager`] per wallet address, so
    /// several strategies can send from one wallet without gaps or reuse.
    pub nonces: Arc<NonceRegistry>,
}

/// One nonce manager per wallet address, shared across the agents of a process.
#[derive(Debug, Default)]
pub struct NonceRegistry(std::sync::Mutex<std::collections::HashMap<Address, Arc<NonceManager>>>);

impl NonceRegistry {
    /// The nonce manager of `address`, created on first use.
    pub fn get(&self, address: Address) -> Arc<NonceManager> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(address)
            .or_insert_with(|| Arc::new(NonceManager::new(address)))
            .clone()
    }
}

async fn check_decimals(chain: &Chain, token: Address, want: &Token) -> Result<(), EvmError> {
    let got = chain
        .view(token, IERC20::decimalsCall {}, BlockId::latest())
        .await?;
    if got != want.decimals() {
        return Err(EvmError::Contract {
            contract: token.to_string(),
            detail: format!(
                "has {got} decimals, the config says {} has {}",
                want.symbol(),
                want.decimals()
            ),
        });
    }
    Ok(())
}

/// The signing sender of a live run: the wallet (keystore or `DEFAI_PRIVATE_KEY`), its fee cap
/// and receipt policy from the config, and the process-wide nonce manager of its address.
pub(crate) fn live_sender(
    cfg: &crate::config::Config,
    args: &ChainArgs,
    chain: &Chain,
    chain_id: u64,
) -> Result<TxSender, RunError> {
    let source = match (
        args.keystore.clone().or_else(|| cfg.keystore_path()),
        cfg.key_env(),
    ) {
        (Some(path), _) => WalletSource::Keystore(path),
        (None, Some(var)) => WalletSource::EnvVar(var.to_string()),
        (None, None) => WalletSource::Env,
    };
    let wallet = Wallet::load(&source)?;
    tracing::info!(target: "defai::chain", address = %wallet.address(), chain_id, "live");
    let c = &cfg.chain;
    let policy = TxPolicy {
        // Validated at load: finite, above 0, at most a day.
        receipt_timeout: Duration::from_secs_f64(*c.receipt_timeout_s.get_ref()),
        max_replacements: c.max_replacements,
        gas_cap_wei: cfg
            .risk_limits()?
            .max_gas_price_wei
            .map(|w| w.saturating_to::<u128>()),
        // Every transaction of every venue on this sender, the library user's own included.
        allowed_to: allowed_contracts(cfg)?,
        ..TxPolicy::default()
    };
    let nonces = args.nonces.get(wallet.address());
    Ok(TxSender::new(
        chain.clone(),
        wallet,
        chain_id,
        nonces,
        policy,
    )?)
}

impl ChainArgs {
    /// The `--devnet` file's contents, when one was given.
    fn devnet_info(&self) -> Result<Option<DevnetInfo>, EvmError> {
        self.devnet.as_deref().map(DevnetInfo::read).transpose()
    }
}

/// For kinds that only run live: `Ok` in live mode, else the error saying where to go instead.
fn live_only(spec: &RunSpec, otherwise: &str) -> Result<(), RunError> {
    if spec.mode == Mode::Live {
        Ok(())
    } else {
        Err(EvmError::Devnet(otherwise.into()).into())
    }
}

/// `[risk] allowed_contracts` as addresses (`None`: unset). The config checked each parses.
fn allowed_contracts(cfg: &crate::config::Config) -> Result<Option<Vec<Address>>, RunError> {
    let Some(list) = cfg.risk_limits()?.allowed_contracts else {
        return Ok(None);
    };
    list.iter()
        .map(|s| {
            s.parse::<Address>().map_err(|e| {
                RunError::Setup(format!(
                    "[risk] allowed_contracts: {s:?} is not an address: {e}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `[risk] allowed_contracts`: every contract the agent would send to or read from must be
/// listed (unset: the configured ones). The first that is not stops the run, named.
fn check_allowed_contracts(
    cfg: &crate::config::Config,
    contracts: &[(String, Address)],
) -> Result<(), RunError> {
    let Some(allowed) = allowed_contracts(cfg)? else {
        return Ok(());
    };
    match contracts.iter().find(|(_, a)| !allowed.contains(a)) {
        Some((what, addr)) => Err(EvmError::ChainGuard(format!(
            "{what} {addr} is not in [risk] allowed_contracts"
        ))
        .into()),
        None => Ok(()),
    }
}

/// Runs `spec` on a chain: `Mode::Live` trades, `Mode::Paper` only reads.
///
/// # Errors
/// The chain (unreachable, a refused chain id, a contract not in `[risk] allowed_contracts`,
/// token decimals unlike the config's, a pool not of the router), the wallet, the config, the
/// strategy, the state folder or the journal.
pub async fn run_chain(mut spec: RunSpec, args: ChainArgs) -> Result<RunOutput, RunError> {
    let cfg = &spec.config.clone();
    let devnet = args.devnet_info()?;
    let target = cfg.chain_target(devnet.as_ref())?;
    let chain = Chain::connect(&target.rpc_url)?;
    check_chain(&chain, target.chain_id, args.allow_mainnet).await?;

    check_allowed_contracts(
        cfg,
        &[
            ("router".into(), target.router),
            ("pool".into(), target.pool),
            ("base token".into(), target.base_token),
            ("quote token".into(), target.quote_token),
        ],
    )?;
    let pair = Pair::new(cfg.base(), cfg.quote());
    check_decimals(&chain, target.base_token, &pair.base).await?;
    check_decimals(&chain, target.quote_token, &pair.quote).await?;
    let pool = PoolRef::resolve(
        &chain,
        pair.clone(),
        target.pool,
        target.base_token,
        target.quote_token,
    )
    .await?;
    let c = &cfg.chain;
    let source = ChainSource::new(chain.clone(), pool.clone(), cfg.cycle_clock(&chain)?);
    let drive = Drive {
        pair: pair.clone(),
        portfolio: Portfolio::new(),
        // The chain's block time is the agent's time (trade rates, UTC days); the age of the
        // latest block is measured against the wall clock, so `max_data_age_s` holds live.
        clock: Clock::Simulated,
        wall_data_age: true,
        total: spec.max_cycles,
        data: DataInfo {
            source: format!("chain {} pool {}", target.rpc_url, target.pool),
            tokens: [
                (
                    pair.base.symbol().to_string(),
                    target.base_token.to_string(),
                ),
                (
                    pair.quote.symbol().to_string(),
                    target.quote_token.to_string(),
                ),
            ]
            .into(),
            ..DataInfo::default()
        },
        chain_id: Some(target.chain_id),
        bet_limits: None,
    };

    match spec.mode {
        Mode::Live => {
            pool.check_router(&chain, target.router).await?;
            let tx = live_sender(cfg, &args, &chain, target.chain_id)?;
            let venue = UniswapV2Venue::new(
                pool,
                tx,
                Token::new(&c.native_symbol, 18),
                UniswapV2Config {
                    router: target.router,
                    deadline_s: *cfg.venue.deadline_s.get_ref(),
                    gas_per_swap: *c.gas_per_swap.get_ref(),
                    chain_id: target.chain_id,
                    chain_check_every: *c.chain_check_every.get_ref(),
                },
            );
            drive.go(&mut spec, source, venue).await
        }
        Mode::Paper | Mode::Backtest => {
            let mut paper = cfg.paper_amm()?;
            paper.gas_per_swap = *c.gas_per_swap.get_ref();
            let venue = PaperVenue::new(pair.clone(), paper);
            let drive = Drive {
                portfolio: Portfolio::with_balances([(pair.quote.clone(), cfg.starting_quote()?)]),
                ..drive
            };
            drive.go(&mut spec, source, venue).await
        }
    }
}

/// One bet in the prediction summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BetRow {
    /// The market's FPMM contract address.
    pub market: String,
    /// The outcome bet on (index into the market's outcomes).
    pub outcome: usize,
    /// Collateral put in, decimal.
    pub investment: String,
    /// Outcome tokens received, decimal (collateral decimals).
    pub tokens: String,
    /// The bet's mined transaction.
    pub tx_hash: Option<String>,
}

/// The JSON summary of a prediction-market run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PredictionSummary {
    /// How it ran (live).
    pub mode: crate::engine::Mode,
    /// The strategy's name.
    pub strategy: String,
    /// The chain it bet on.
    pub chain_id: u64,
    /// Cycles run (blocks or timer ticks).
    pub cycles: u64,
    /// Distinct markets the strategy was shown.
    pub markets_seen: u64,
    /// Number of bets placed.
    pub bets: usize,
    /// Every bet filled, in order.
    pub bet_fills: Vec<BetRow>,
    /// Collateral received from redemptions, in collateral units (the token's smallest unit).
    pub redeemed: String,
    /// The same, as a decimal of whole tokens.
    pub redeemed_collateral: String,
    /// Collateral at the start, whole tokens (decimal string).
    pub start_collateral: String,
    /// Collateral at the end, whole tokens (decimal string); open positions are not in it.
    pub end_collateral: String,
    /// What the gate decided on the bets.
    pub risk: crate::engine::RiskSummary,
    /// Approved bets or redemptions that failed on chain.
    pub execution_failures: u64,
    /// Cycles on which the strategy returned an error.
    pub strategy_faults: u64,
    /// Every mined transaction (approvals, bets, redemptions), in order.
    pub tx_hashes: Vec<String>,
    /// Gas paid by the bets, wei, exact.
    pub gas_paid_wei: String,
    /// The kill switch at the end.
    pub kill_switch: crate::engine::KillSwitchSummary,
}

/// Probabilities by market address, from a forecasts file.
type Forecasts = std::collections::BTreeMap<Address, f64>;

/// Reads a forecasts file: a JSON object of market address → probability.
fn read_forecasts(path: &std::path::Path) -> Result<Forecasts, RunError> {
    let bad = |msg: String| {
        RunError::Chain(EvmError::Devnet(format!(
            "forecasts {}: {msg}",
            path.display()
        )))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let raw: std::collections::BTreeMap<String, f64> = serde_json::from_str(&text)
        .map_err(|e| bad(format!("line {} column {}: {e}", e.line(), e.column())))?;
    raw.into_iter()
        .map(|(k, p)| {
            let a: Address = k
                .parse()
                .map_err(|e| bad(format!("`{k}`: not an address: {e}")))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(format!("`{k}`: probability {p} is outside [0, 1]")));
            }
            Ok((a, p))
        })
        .collect()
}

/// Wires `kelly_bettor` live on a chain's prediction markets (the devnet's, or those `[markets]`
/// finds): the Gnosis CTF/FPMM venue behind [`Betting`](agent_core::Betting), a cycle per new
/// block or timer tick (up to `--max-cycles`), and the same agent loop, gate, kill switch,
/// journal and restart as every strategy ([`AgentBuilder`](crate::AgentBuilder)). Each cycle redeems resolved
/// positions, then judges every market; a flatten holds the positions to redemption.
///
/// # Errors
/// Not live mode, a key the chain cannot honour (`min_time_to_close_s`), the forecasts file,
/// and everything [`run_chain`] can fail on.
pub async fn run_bettor(mut spec: RunSpec, args: ChainArgs) -> Result<PredictionSummary, RunError> {
    use agent_core::{Betting, Bettor};
    use connectors::evm::{ChainPredictionVenue, CycleSource, PredictionMarkets};
    use models::calibration::FeatureProbability;
    use strategies::KellyBettor;

    let cfg = &spec.config.clone();
    live_only(
        &spec,
        "prediction markets run live (`defai run`); evaluate offline with `defai predict-eval`",
    )?;
    let devnet = args.devnet_info()?;
    let target = cfg.markets_target(devnet.as_ref())?;
    let chain = Chain::connect(&target.rpc_url)?;
    check_chain(&chain, target.chain_id, args.allow_mainnet).await?;
    let (kelly, forecasts) = bettor_params(cfg, &spec)?;

    let tx = live_sender(cfg, &args, &chain, target.chain_id)?;
    let pm = PredictionMarkets::new(tx, target.conditional_tokens, target.fpmm_factory);
    let collateral = Token::new(&cfg.market.quote, cfg.market.quote_decimals);
    // Every bet limit is scaled by the collateral's decimals: they must be the token's own.
    check_decimals(&chain, target.collateral, &collateral).await?;
    let markets = bettor_markets(cfg, &target, &pm).await?;
    let venue =
        ChainPredictionVenue::open(pm, &markets, target.oracle, collateral.clone(), forecasts)
            .await?
            .with_chain_check(target.chain_id, *cfg.chain.chain_check_every.get_ref());
    // The spec's strategy object (any betting strategy behind a `Bettor`), else kelly_bettor
    // as the config's parameters set it.
    let strategy: Box<dyn agent_core::Strategy> = match spec.strategy.take() {
        Some(s) => s,
        None => Box::new(Bettor::new(Box::new(KellyBettor::new(
            Box::new(FeatureProbability::new(0)),
            collateral.clone(),
            kelly.clone(),
        )))),
    };
    let strategy_name = strategy.name().to_string();
    // `[risk]` tightens these in the wiring (`Drive::go_with`), as for every kind.
    let bet_limits = crate::predict::bet_limits(&kelly, &collateral).map_err(RunError::Limit)?;
    let drive = Drive {
        // The book is the collateral; positions are valued market by market.
        pair: Pair::new(
            Token::new("positions", collateral.decimals()),
            collateral.clone(),
        ),
        portfolio: Portfolio::new(),
        clock: Clock::Simulated,
        wall_data_age: true,
        total: spec.max_cycles,
        data: DataInfo {
            source: format!(
                "chain {} prediction markets ({})",
                target.rpc_url,
                markets.len()
            ),
            tokens: [(
                collateral.symbol().to_string(),
                target.collateral.to_string(),
            )]
            .into(),
            ..DataInfo::default()
        },
        chain_id: Some(target.chain_id),
        bet_limits: Some(bet_limits),
    };
    let source = CycleSource(cfg.cycle_clock(&chain)?);
    let out = drive
        .go_with(&mut spec, source, Betting(venue), strategy, Vec::new())
        .await?;
    Ok(prediction_summary(
        &spec,
        strategy_name,
        target.chain_id,
        &out,
        &collateral,
    ))
}

/// The bettor's `[strategy.params]`: the Kelly sizing (within the gate's price-impact limit)
/// and the forecasts file's probabilities by market (none when `forecasts` is unset). A key
/// the chain cannot honour (`min_time_to_close_s`) is refused.
fn bettor_params(
    cfg: &crate::config::Config,
    spec: &RunSpec,
) -> Result<(strategies::KellyConfig, Forecasts), RunError> {
    // FPMM markets carry no closing time on chain (it lives with the question, off this
    // contract): the filter cannot apply, so a key asking for it is an error, not ignored.
    cfg.refuse_param(
        "min_time_to_close_s",
        &spec.params,
        "is unsupported for markets on chain: a FixedProductMarketMaker has no closing time to compare with (remove the key)",
    )?;
    let mut params = cfg.strategy_params(&spec.params)?;
    let mut kelly =
        strategies::KellyConfig::from_params(&mut params).map_err(strategies::BuildError::from)?;
    // The bettor sizes within the gate's price-impact limit.
    kelly.max_price_impact_bps = cfg.risk_limits()?.max_price_impact_bps;
    let forecasts_path = params
        .string("forecasts", "")
        .map_err(strategies::BuildError::from)?;
    params.finish().map_err(strategies::BuildError::from)?;
    let forecasts = if forecasts_path.is_empty() {
        Default::default()
    } else {
        read_forecasts(&cfg.resolve(std::path::Path::new(&forecasts_path)))?
    };
    Ok((kelly, forecasts))
}

/// The markets a bettor trades, with their question ids: those found on chain (discovered and
/// listed) within `[risk] allowed_contracts`.
async fn bettor_markets(
    cfg: &crate::config::Config,
    target: &crate::config::MarketsTarget,
    pm: &connectors::evm::PredictionMarkets,
) -> Result<Vec<(Address, B256)>, RunError> {
    // The markets: the factory's creations with this collateral and oracle, and the listed.
    let markets = pm
        .discover(
            target.from_block,
            target.collateral,
            target.oracle,
            &target.list,
        )
        .await?;
    // `[risk] allowed_contracts`: the contracts every bet and redemption sends to must be
    // listed, and so must each market named in the config; a discovered market that is not
    // listed is left out (the gate would refuse every bet on it anyway).
    let mut required = vec![
        ("collateral".to_string(), target.collateral),
        ("conditional tokens".to_string(), target.conditional_tokens),
        ("FPMM factory".to_string(), target.fpmm_factory),
    ];
    required.extend(
        target
            .list
            .iter()
            .map(|a| ("listed market".to_string(), *a)),
    );
    check_allowed_contracts(cfg, &required)?;
    let markets: Vec<_> = match allowed_contracts(cfg)? {
        None => markets,
        Some(allowed) => markets
            .into_iter()
            .filter(|(m, _)| {
                let listed = allowed.contains(m);
                if !listed {
                    tracing::warn!(target: "defai::markets", market = %m, "a discovered market is not in [risk] allowed_contracts: left out");
                }
                listed
            })
            .collect(),
    };
    tracing::info!(target: "defai::markets", markets = markets.len(), from_block = target.from_block, "prediction markets found on chain");
    Ok(markets)
}

/// The JSON summary of a bettor's run from its output: the bets, redemptions and collateral
/// (formatted in `collateral`'s decimals), the gate's verdicts and the gas the bets paid.
fn prediction_summary(
    spec: &RunSpec,
    strategy: String,
    chain_id: u64,
    out: &RunOutput,
    collateral: &Token,
) -> PredictionSummary {
    let report = &out.report;
    let c = collateral;
    let gas: U256 = report.bets.iter().map(|b| b.gas_native).sum();
    PredictionSummary {
        mode: spec.mode,
        strategy,
        chain_id,
        cycles: report.bars,
        markets_seen: report.markets_seen,
        bets: report.bets.len(),
        bet_fills: report
            .bets
            .iter()
            .map(|b| BetRow {
                market: b.market.clone(),
                outcome: b.outcome,
                investment: c.format(b.investment),
                tokens: c.format(b.tokens),
                tx_hash: b.tx_hash.clone(),
            })
            .collect(),
        redeemed: report.redeemed.to_string(),
        redeemed_collateral: c.format(report.redeemed),
        start_collateral: c.format(report.start_equity),
        end_collateral: c.format(report.portfolio.balance(c)),
        risk: (&report.risk).into(),
        execution_failures: report.execution_failures,
        strategy_faults: report.strategy_faults,
        tx_hashes: out.summary.tx_hashes.clone(),
        gas_paid_wei: gas.to_string(),
        kill_switch: (&report.kill_switch).into(),
    }
}

/// The JSON summary of a live rebalancing run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebalanceSummary {
    /// How it ran (live).
    pub mode: crate::engine::Mode,
    /// The strategy's name.
    pub strategy: String,
    /// The chain it traded on.
    pub chain_id: u64,
    /// Cycles run (blocks or timer ticks).
    pub cycles: u64,
    /// Cycles on which the plan proposed legs (the built-in rebalancer's count).
    pub rebalances: u64,
    /// Legs filled.
    pub trades: u64,
    /// Legs skipped because gas would exceed `max_gas_share` of their value, or below min_trade.
    pub skipped_cycles: u64,
    /// Approved legs that failed on chain.
    pub execution_failures: u64,
    /// Target weight by token symbol (fractions summing to 1).
    pub targets: std::collections::BTreeMap<String, f64>,
    /// Final weight by token symbol, at the last prices.
    pub weights: std::collections::BTreeMap<String, f64>,
    /// RMS distance of the final weights from the targets, percent.
    pub tracking_error_pct: f64,
    /// Final balance by token symbol, decimal strings in whole tokens.
    pub balances: std::collections::BTreeMap<String, String>,
    /// Gas the run's receipts say it paid, wei, exact.
    pub gas_paid_wei: String,
    /// Every mined transaction, in order.
    pub tx_hashes: Vec<String>,
    /// Legs the risk gate or the kill switch refused.
    pub refused: u64,
    /// What the risk gate decided on the legs, by reason.
    pub risk: crate::engine::RiskSummary,
    /// Balances the chain corrected after the start (0: every leg booked to the wei).
    pub reconciliations: u64,
    /// The kill switch at the end.
    pub kill_switch: crate::engine::KillSwitchSummary,
}

/// A model tilting the rebalancer's targets and the tilt's strength (weight points).
pub type TiltModel = (Box<dyn models::ProbabilityModel>, f64);

/// The rebalancer's model tilt from its parameters: `model` (`"shipped"` or a folder written
/// by `defai train`; unset: no tilt) and `tilt` (its strength in weight points, default 0.1;
/// only with a model). `given`, a model of the caller's own, takes the place of `model`.
///
/// # Errors
/// `tilt` without a model, `model` beside `given`, a parameter of the wrong type, or a model
/// that cannot be loaded (the parameter and the model error are named).
pub fn model_tilt(
    p: &mut crate::core::Params,
    given: Option<Box<dyn models::ProbabilityModel>>,
) -> Result<Option<TiltModel>, strategies::BuildError> {
    let tilt_set = p.is_set("tilt");
    let model = p.string("model", "")?;
    let strength = p.f64("tilt", 0.1)?;
    if !(0.0..=0.5).contains(&strength) {
        return Err(p
            .invalid("tilt", format!("must be in [0, 0.5], got {strength}"))
            .into());
    }
    if let Some(given) = given {
        if !model.is_empty() {
            return Err(p
                .invalid(
                    "model",
                    "is set, but the agent was given a model of its own",
                )
                .into());
        }
        return Ok(Some((given, strength)));
    }
    if model.is_empty() {
        if tilt_set {
            return Err(p
                .invalid("tilt", "is set without a `model` to tilt by")
                .into());
        }
        return Ok(None);
    }
    let loaded =
        models::PriceDirection::named(&model).map_err(|e| p.invalid("model", e.to_string()))?;
    Ok(Some((Box::new(loaded), strength)))
}

/// Wires `rebalancer` live on a chain: the tokens `[rebalance]` lists (or the devnet's WETH, DVT
/// and dUSD), one Uniswap V2 pool venue per asset against the quote token behind one
/// [`VenueSet`](agent_core::VenueSet), one wallet and one nonce manager for all of them, and the
/// same agent loop, gate, kill switch, journal and restart as every strategy
/// ([`AgentBuilder`](crate::AgentBuilder)). Gas is valued at the price of the gas token's pool.
///
/// # Errors
/// Not live mode, targets that are not fractions summing to 1, an asset without a pool, and
/// everything [`run_chain`] can fail on.
pub async fn run_rebalancer(
    mut spec: RunSpec,
    args: ChainArgs,
) -> Result<RebalanceSummary, RunError> {
    let cfg = &spec.config.clone();
    live_only(
        &spec,
        "the live rebalancer runs with `defai run`; backtest it with `defai rebalance`",
    )?;
    let devnet = args.devnet_info()?;
    let RebalancerParams {
        default_targets,
        rc,
        tilt,
    } = rebalancer_params(cfg, &mut spec)?;
    let target = cfg.rebalance_target(devnet.as_ref(), default_targets)?;
    let chain = Chain::connect(&target.rpc_url)?;
    check_chain(&chain, target.chain_id, args.allow_mainnet).await?;
    for (token, address, _, _) in &target.tokens {
        check_decimals(&chain, *address, token).await?;
    }

    // Tokens in the order the config lists them, the quote token last; one venue per asset,
    // the first asset's pair the agent's own.
    let book = RebalanceBook::of(&target)?;
    let pools = rebalancer_pools(cfg, &args, &chain, &target).await?;
    let strategy = book.rebalancer(rc, tilt)?;
    let stats = strategy.stats();
    // The spec's strategy object (e.g. a model-driven target) trades the same tokens and pools;
    // the summary's counters and prices are then the built-in rebalancer's, left at zero.
    let strategy: Box<dyn agent_core::Strategy> = match spec.strategy.take() {
        Some(s) => s,
        None => Box::new(strategy),
    };
    let strategy_name = strategy.name().to_string();
    let tokens = pools
        .pools
        .iter()
        .flat_map(|p| {
            [
                (p.pair.base.symbol().to_string(), p.base.to_string()),
                (p.pair.quote.symbol().to_string(), p.quote.to_string()),
            ]
        })
        .collect();
    let source = ChainSource::pools(chain.clone(), pools.pools, cfg.cycle_clock(&chain)?);
    let drive = Drive {
        pair: pools.pairs[0].clone(),
        portfolio: Portfolio::new(),
        clock: Clock::Simulated,
        wall_data_age: true,
        total: spec.max_cycles,
        data: DataInfo {
            source: format!(
                "chain {} pools of {}",
                target.rpc_url,
                book.assets()
                    .iter()
                    .map(|t| t.symbol())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            tokens,
            ..DataInfo::default()
        },
        chain_id: Some(target.chain_id),
        bet_limits: None,
    };
    let out = drive
        .go_with(
            &mut spec,
            source,
            pools.venue,
            strategy,
            pools.pairs[1..].to_vec(),
        )
        .await?;
    let stats = stats.lock().map(|s| s.clone()).unwrap_or_default();
    let gas_paid = receipts_gas(&chain, &out.summary.tx_hashes).await?;
    Ok(book.summary(&spec, strategy_name, &out, &stats, gas_paid))
}

/// The live rebalancer's `[strategy.params]`.
struct RebalancerParams {
    /// The targets of WETH, DVT and dUSD (`weth`, `dvt`, `usd`; zeros when `[rebalance]`
    /// lists the tokens and their targets).
    default_targets: [f64; 3],
    /// The band, smallest trade and gas share.
    rc: strategies::rebalancer::RebalanceConfig,
    /// The model tilting the targets, with its strength.
    tilt: Option<TiltModel>,
}

/// Reads the live rebalancer's parameters: the default targets (refused beside a `[rebalance]`
/// that lists the tokens, and checked to be fractions summing to 1), the rebalancing config
/// and the model tilt, which takes the spec's model and is refused beside a strategy of the
/// caller's own.
fn rebalancer_params(
    cfg: &crate::config::Config,
    spec: &mut RunSpec,
) -> Result<RebalancerParams, RunError> {
    use strategies::rebalancer::RebalanceConfig;

    let listed = cfg.rebalance.is_some();
    if listed {
        for key in ["weth", "dvt", "usd"] {
            cfg.refuse_param(
                key,
                &spec.params,
                "targets come from [rebalance] when it lists the tokens (set each asset's target there)",
            )?;
        }
    }
    let mut params = cfg.strategy_params(&spec.params)?;
    let p = &mut params;
    let bad = strategies::BuildError::from;
    let default_targets = if listed {
        [0.0; 3]
    } else {
        [
            p.f64("weth", 0.4).map_err(bad)?,
            p.f64("dvt", 0.3).map_err(bad)?,
            p.f64("usd", 0.3).map_err(bad)?,
        ]
    };
    let rc = RebalanceConfig {
        band: p.f64("band", 0.05).map_err(bad)?,
        min_trade: p.f64("min_trade", 10.0).map_err(bad)?,
        max_gas_share: p.f64("max_gas_share", 0.01).map_err(bad)?,
    };
    let tilt = model_tilt(p, spec.rebalance_model.take())?;
    if tilt.is_some() && spec.strategy.is_some() {
        // The model tilts the built-in rebalancer; a strategy of the caller's own replaces it,
        // and a model given for it must not be dropped without a word.
        return Err(RunError::Setup(
            "a model tilt (`model` / `tilt`, or AgentBuilder::rebalance_model) applies to the built-in rebalancer, but the agent was given a strategy of its own".into(),
        ));
    }
    if !listed
        && (default_targets.iter().any(|t| !(0.0..=1.0).contains(t))
            || (default_targets.iter().sum::<f64>() - 1.0).abs() > 1e-9)
    {
        return Err(bad(p.invalid(
            "weth",
            "targets weth + dvt + usd must be in [0, 1] and sum to 1",
        ))
        .into());
    }
    params.finish().map_err(bad)?;
    Ok(RebalancerParams {
        default_targets,
        rc,
        tilt,
    })
}

/// The live rebalancer's pools: what its source reads, one pair per asset against the quote
/// token (the first the agent's own) and one Uniswap V2 venue per asset behind one venue set.
struct RebalancePools {
    /// Each asset's pool, in the config's order.
    pools: Vec<PoolRef>,
    /// Each asset's pair with the quote token, in the same order.
    pairs: Vec<Pair>,
    /// The venues, gas estimated at the price of the gas token's pool.
    venue: agent_core::VenueSet<UniswapV2Venue>,
}

/// Resolves each asset's pool (checked against the router and `[risk] allowed_contracts`) and
/// opens its venue; one sender (one nonce manager) for every venue, and every venue books
/// every token.
async fn rebalancer_pools(
    cfg: &crate::config::Config,
    args: &ChainArgs,
    chain: &Chain,
    target: &crate::config::RebalanceTarget,
) -> Result<RebalancePools, RunError> {
    let quote = target.tokens.len() - 1;
    let (usd, usd_address) = (target.tokens[quote].0.clone(), target.tokens[quote].1);
    // One sender (one nonce manager) for every pool venue; the journal's recorder reaches each
    // venue's sender through the agent before anything is sent.
    let tx = live_sender(cfg, args, chain, target.chain_id)?;
    let native = Token::new(&cfg.chain.native_symbol, 18);
    let venue_cfg = UniswapV2Config {
        router: target.router,
        deadline_s: *cfg.venue.deadline_s.get_ref(),
        gas_per_swap: *cfg.chain.gas_per_swap.get_ref(),
        chain_id: target.chain_id,
        chain_check_every: *cfg.chain.chain_check_every.get_ref(),
    };
    let every_token: Vec<(Token, Address)> =
        target.tokens.iter().map(|t| (t.0.clone(), t.1)).collect();
    let mut contracts = vec![("router".to_string(), target.router)];
    for (token, address, pool, _) in &target.tokens {
        contracts.push((format!("token {token}"), *address));
        if let Some(p) = pool {
            contracts.push((format!("pool of {token}"), *p));
        }
    }
    check_allowed_contracts(cfg, &contracts)?;
    let mut pools = Vec::with_capacity(quote);
    let mut venues = Vec::with_capacity(quote);
    for (token, address, pool, _) in &target.tokens[..quote] {
        let pool = pool.ok_or_else(|| EvmError::Devnet(format!("{token} has no pool")))?;
        let pair = Pair::new(token.clone(), usd.clone());
        let pool = PoolRef::resolve(chain, pair.clone(), pool, *address, usd_address).await?;
        pool.check_router(chain, target.router).await?;
        pools.push(pool.clone());
        // Every venue books every token: whichever settles a restart's open transactions
        // sees all that moved.
        let venue = UniswapV2Venue::new(pool, tx.clone(), native.clone(), venue_cfg.clone())
            .also_tracking(every_token.clone());
        venues.push((pair, venue));
    }
    let pairs: Vec<Pair> = venues.iter().map(|(p, _)| p.clone()).collect();
    let venue = agent_core::VenueSet::new(venues)
        .map_err(RunError::Setup)?
        .gas_estimate_from(&target.tokens[target.gas_token].0);
    Ok(RebalancePools {
        pools,
        pairs,
        venue,
    })
}

/// Gas the run's transactions paid, wei, as their receipts say: not the change of the native
/// balance (an external transfer from the same wallet is not gas).
async fn receipts_gas(chain: &Chain, tx_hashes: &[String]) -> Result<U256, RunError> {
    let mut gas_paid = U256::ZERO;
    for h in tx_hashes {
        let hash = h
            .parse()
            .map_err(|e| EvmError::Devnet(format!("transaction hash {h}: {e}")))?;
        if let Some(r) = chain.receipt(hash).await? {
            gas_paid += U256::from(r.gas_used) * U256::from(r.effective_gas_price);
        }
    }
    Ok(gas_paid)
}

/// A live rebalancer's tokens in the config's order (the quote token last), their target
/// weights and the chain they trade on.
struct RebalanceBook {
    /// Every token, the quote token last.
    tokens: Vec<Token>,
    /// Each token's target weight, in the same order.
    targets: Vec<f64>,
    /// The chain traded on.
    chain_id: u64,
}

impl RebalanceBook {
    /// The tokens and targets `[rebalance]` (or the devnet) lists, in order.
    ///
    /// # Errors
    /// [`RunError::Setup`] when the quote token is the only one.
    fn of(target: &crate::config::RebalanceTarget) -> Result<Self, RunError> {
        let book = Self {
            tokens: target.tokens.iter().map(|t| t.0.clone()).collect(),
            targets: target.tokens.iter().map(|t| t.3).collect(),
            chain_id: target.chain_id,
        };
        let quote = book.tokens.len() - 1;
        if quote == 0 {
            return Err(RunError::Setup(
                "the rebalancer needs at least one asset besides the quote token".into(),
            ));
        }
        Ok(book)
    }

    /// The assets: every token but the quote token.
    fn assets(&self) -> &[Token] {
        &self.tokens[..self.tokens.len() - 1]
    }

    /// The built-in rebalancer of these tokens and targets against the quote token, its
    /// targets tilted by the model when one is given.
    fn rebalancer(
        &self,
        rc: strategies::rebalancer::RebalanceConfig,
        tilt: Option<TiltModel>,
    ) -> Result<strategies::rebalancer::Rebalancer, RunError> {
        let strategy = strategies::rebalancer::Rebalancer::new(
            self.tokens
                .iter()
                .cloned()
                .zip(self.targets.iter().copied())
                .collect(),
            &self.tokens[self.tokens.len() - 1],
            rc,
        )
        .map_err(RunError::Setup)?;
        Ok(match tilt {
            Some((model, strength)) => strategy
                .with_model(model, strength)
                .map_err(RunError::Setup)?,
            None => strategy,
        })
    }

    /// The JSON summary of the run: its output, the built-in rebalancer's counters and prices
    /// (`stats`; zeros for a strategy of the caller's own) and the gas its receipts paid.
    fn summary(
        &self,
        spec: &RunSpec,
        strategy: String,
        out: &RunOutput,
        stats: &strategies::rebalancer::RebalanceStats,
        gas_paid: U256,
    ) -> RebalanceSummary {
        use strategies::rebalancer::{Holding, tracking_error, weights};

        let (tokens, targets) = (&self.tokens, &self.targets);
        let report = &out.report;
        let holdings: Vec<Holding> = tokens
            .iter()
            .enumerate()
            .map(|(k, t)| Holding {
                token: t.clone(),
                balance: report.portfolio.balance(t),
                price: stats.prices.get(k).copied().unwrap_or(0.0),
                target: targets[k],
            })
            .collect();
        RebalanceSummary {
            mode: spec.mode,
            strategy,
            chain_id: self.chain_id,
            cycles: report.bars,
            rebalances: stats.rebalances,
            trades: report.fills,
            skipped_cycles: stats.skipped,
            execution_failures: report.execution_failures,
            targets: tokens
                .iter()
                .zip(targets)
                .map(|(t, w)| (t.symbol().to_string(), *w))
                .collect(),
            weights: tokens
                .iter()
                .zip(weights(&holdings))
                .map(|(t, w)| (t.symbol().to_string(), w))
                .collect(),
            tracking_error_pct: tracking_error(&holdings) * 100.0,
            balances: tokens
                .iter()
                .map(|t| {
                    (
                        t.symbol().to_string(),
                        t.format(report.portfolio.balance(t)),
                    )
                })
                .collect(),
            gas_paid_wei: gas_paid.to_string(),
            tx_hashes: out.summary.tx_hashes.clone(),
            refused: report.risk.refused,
            risk: (&report.risk).into(),
            reconciliations: report.reconciliations,
            kill_switch: (&report.kill_switch).into(),
        }
    }
}
