//! Chain modes: `defai run` (live: signs and sends) and `defai paper --devnet|[chain]` (reads the
//! real pool every block and fills on the paper venue; never loads a key).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_core::{Clock, KillMode, Pair, Portfolio, Token};
use connectors::PaperVenue;
use connectors::evm::alloy::eips::BlockId;
use connectors::evm::alloy::primitives::{Address, U256};
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
    pub allow_mainnet: bool,
    /// Shared by every agent of the process: one [`NonceManager`] per wallet address, so
    /// several strategies can send from one wallet without gaps or reuse.
    pub nonces: Arc<NonceRegistry>,
}

/// One nonce manager per wallet address, shared across the agents of a process.
#[derive(Debug, Default)]
pub struct NonceRegistry(std::sync::Mutex<std::collections::HashMap<Address, Arc<NonceManager>>>);

impl NonceRegistry {
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
fn live_sender(
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

/// Runs `spec` on a chain: `Mode::Live` trades, `Mode::Paper` only reads.
pub async fn run_chain(spec: RunSpec, args: ChainArgs) -> Result<RunOutput, RunError> {
    let cfg = &spec.config;
    let devnet = args.devnet_info()?;
    let target = cfg.chain_target(devnet.as_ref())?;
    let chain = Chain::connect(&target.rpc_url)?;
    check_chain(&chain, target.chain_id, args.allow_mainnet).await?;

    // `[risk] allowed_contracts`: every contract this agent would send to or read from must be
    // listed (unset: the configured router, pool and tokens).
    if let Some(allowed) = &cfg.risk_limits()?.allowed_contracts {
        let listed = |a: &Address| {
            allowed
                .iter()
                .any(|s| s.parse::<Address>().is_ok_and(|x| x == *a))
        };
        for (what, addr) in [
            ("router", target.router),
            ("pool", target.pool),
            ("base token", target.base_token),
            ("quote token", target.quote_token),
        ] {
            if !listed(&addr) {
                return Err(EvmError::ChainGuard(format!(
                    "{what} {addr} is not in [risk] allowed_contracts"
                ))
                .into());
            }
        }
    }
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
            ..DataInfo::default()
        },
        chain_id: Some(target.chain_id),
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
            drive.go(&spec, source, venue).await
        }
        Mode::Paper | Mode::Backtest => {
            let mut paper = cfg.paper_amm()?;
            paper.gas_per_swap = *c.gas_per_swap.get_ref();
            let venue = PaperVenue::new(pair.clone(), paper);
            let drive = Drive {
                portfolio: Portfolio::with_balances([(pair.quote.clone(), cfg.starting_quote()?)]),
                ..drive
            };
            drive.go(&spec, source, venue).await
        }
    }
}

/// One bet in the prediction summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BetRow {
    pub market: String,
    pub outcome: usize,
    /// Collateral put in, decimal.
    pub investment: String,
    /// Outcome tokens received, decimal (collateral decimals).
    pub tokens: String,
    pub tx_hash: Option<String>,
}

/// The JSON summary of a prediction-market run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PredictionSummary {
    pub mode: crate::engine::Mode,
    pub strategy: String,
    pub chain_id: u64,
    pub cycles: u64,
    pub markets_seen: u64,
    /// Number of bets placed.
    pub bets: usize,
    pub bet_fills: Vec<BetRow>,
    /// Collateral received from redemptions, in collateral units (the token's smallest unit).
    pub redeemed: String,
    /// The same, as a decimal of whole tokens.
    pub redeemed_collateral: String,
    pub start_collateral: String,
    pub end_collateral: String,
    pub risk: crate::engine::RiskSummary,
    pub execution_failures: u64,
    pub strategy_faults: u64,
    pub tx_hashes: Vec<String>,
    pub gas_paid_wei: String,
    pub kill_switch: crate::engine::KillSwitchSummary,
}

/// Reads a forecasts file: a JSON object of market address → probability.
fn read_forecasts(
    path: &std::path::Path,
) -> Result<std::collections::BTreeMap<Address, f64>, RunError> {
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

/// `kelly_bettor` live on the devnet's prediction markets: each cycle (one per new block, up to
/// `--max-cycles`) redeems resolved positions, then judges every market.
pub async fn run_prediction(spec: RunSpec, args: ChainArgs) -> Result<PredictionSummary, RunError> {
    use agent_core::{BetGate, PredictionAgent};
    use connectors::evm::{ChainPredictionVenue, PredictionMarkets};
    use models::calibration::FeatureProbability;
    use strategies::{KellyBettor, KellyConfig};

    let cfg = &spec.config;
    live_only(
        &spec,
        "prediction markets run live (`defai run`); evaluate offline with `defai predict-eval`",
    )?;
    let devnet = args.devnet_info()?;
    let target = cfg.markets_target(devnet.as_ref())?;
    let chain = Chain::connect(&target.rpc_url)?;
    check_chain(&chain, target.chain_id, args.allow_mainnet).await?;

    // FPMM markets carry no closing time on chain (it lives with the question, off this
    // contract): the filter cannot apply, so a key asking for it is an error, not ignored.
    cfg.refuse_param(
        "min_time_to_close_s",
        &spec.params,
        "is unsupported for markets on chain: a FixedProductMarketMaker has no closing time to compare with (remove the key)",
    )?;
    let mut params = cfg.strategy_params(&spec.params)?;
    let mut kelly = KellyConfig::from_params(&mut params).map_err(strategies::BuildError::from)?;
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

    let limits = cfg.risk_limits()?;
    let crate::engine::StateParts {
        lock: _lock,
        kill,
        observers,
        resume,
        recorder,
        // No loss limits for this kind (their keys are refused), so no baselines to keep.
        baselines: _,
    } = crate::engine::state_parts(&spec)?;
    let mut tx = live_sender(cfg, &args, &chain, target.chain_id)?;
    if let Some(r) = recorder {
        // Every step on record before it happens, as for the trading agent.
        tx = tx.with_recorder(r);
    }
    let pm = PredictionMarkets::new(tx, target.conditional_tokens, target.fpmm_factory);
    let collateral = Token::new(&cfg.market.quote, cfg.market.quote_decimals);
    // Every bet limit is scaled by the collateral's decimals: they must be the token's own.
    check_decimals(&chain, target.collateral, &collateral).await?;
    // The markets: the factory's creations with this collateral and oracle, and the listed.
    let markets = pm
        .discover(
            target.from_block,
            target.collateral,
            target.oracle,
            &target.list,
        )
        .await?;
    tracing::info!(target: "defai::markets", markets = markets.len(), from_block = target.from_block, "prediction markets found on chain");
    let venue =
        ChainPredictionVenue::open(pm, &markets, target.oracle, collateral.clone(), forecasts)
            .await?;
    let strategy = KellyBettor::new(
        Box::new(FeatureProbability::new(0)),
        collateral.clone(),
        kelly.clone(),
    );
    let mut bet_limits =
        crate::predict::bet_limits(&kelly, &collateral).map_err(RunError::Limit)?;
    // `[risk] max_bet` can only tighten the strategy's own cap.
    if let Some(max) = cfg.max_bet()? {
        bet_limits.max_bet = Some(bet_limits.max_bet.map_or(max, |m| m.min(max)));
    }
    bet_limits.max_slippage_bps = limits.max_slippage_bps;
    bet_limits.max_price_impact_bps = limits.max_price_impact_bps;
    let hashes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut kill = kill;
    if cfg.kill_switch.start_halted() {
        kill.trip(KillMode::Halt, "kill_switch.start_halted = true", 0);
    }
    let mut agent = PredictionAgent::new(venue, Box::new(strategy), BetGate { limits: bet_limits })
        .with_kill_switch(kill)
        .with_max_consecutive_failures(cfg.kill_policy()?.max_consecutive_failures)
        .with_observer(Box::new(crate::engine::TxHashes(hashes.clone())));
    for o in observers {
        agent = agent.with_observer(o);
    }
    if let Some(resume) = resume {
        agent = agent.resuming(resume);
    }
    let cycles = spec.max_cycles.unwrap_or(u64::MAX);
    let mut clock = cfg.cycle_clock(&chain)?;
    let mut done = 0;
    while done < cycles && !spec.stop.load(std::sync::atomic::Ordering::Relaxed) {
        let cycle = clock.next().await?;
        agent
            .cycle(cycle.now)
            .await
            .map_err(|e| RunError::Chain(EvmError::Devnet(format!("prediction venue: {e}"))))?;
        done += 1;
    }
    let (report, kill, _venue) = agent
        .finish_keep_venue()
        .await
        .map_err(|e| RunError::Chain(EvmError::Devnet(format!("prediction venue: {e}"))))?;
    let c = &collateral;
    let gas: U256 = report.bets.iter().map(|b| b.gas_native).sum();
    let tx_hashes = hashes.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(PredictionSummary {
        mode: spec.mode,
        strategy: "kelly_bettor".into(),
        chain_id: target.chain_id,
        cycles: report.cycles,
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
        start_collateral: c.format(report.start_collateral),
        end_collateral: c.format(report.end_collateral),
        risk: (&report.risk).into(),
        execution_failures: report.execution_failures,
        strategy_faults: report.strategy_faults,
        tx_hashes,
        gas_paid_wei: gas.to_string(),
        kill_switch: kill.record().into(),
    })
}

/// The risk verdict on one rebalancing leg, given the venue's quote: the price-impact limit
/// (resizing down to the largest slice within it) and the slippage guard, failing closed.
fn leg_verdict(
    swap: &agent_core::Swap,
    quote: &agent_core::Quote,
    pair: &Pair,
    limits: &agent_core::RiskLimits,
    reduces: bool,
) -> agent_core::Verdict {
    use agent_core::Verdict;
    use agent_core::risk::impact;
    let cut = match limits.max_price_impact_bps {
        Some(max) => impact::limit_swap(swap, swap.amount_in, quote, pair, max, reduces),
        None => Ok(None),
    };
    match cut {
        Err(r) => Verdict::Refuse(r),
        Ok(cut) => {
            let (amount, reason) = cut.map_or((swap.amount_in, None), |(a, r)| (a, Some(r)));
            impact::sized_verdict(swap, amount, reason, quote, limits.max_slippage_bps)
        }
    }
}

/// Journals what the venues learnt of legs they gave up on (late fills, gas of failed legs,
/// dropped legs; the chain's balances, read every cycle, are the rebalancer's book) and adds
/// late-mined hashes to `tx_hashes`; `true` while a leg may still be mined.
async fn settle_open_legs(
    venues: &mut [UniswapV2Venue],
    audit: &mut agent_core::agent::AuditStream,
    tx_hashes: &mut Vec<String>,
    now: i64,
) -> bool {
    use agent_core::{AuditEvent, Venue};
    let mut open = false;
    for v in venues.iter_mut() {
        if !v.has_bookings() {
            continue;
        }
        let bookings = v.bookings().await.unwrap_or_default();
        for e in v.drain_events() {
            if e.step == "mined"
                && let Some(h) = &e.tx_hash
            {
                tx_hashes.push(h.clone());
            }
            audit.emit(AuditEvent::Venue { ts: now, event: &e });
        }
        for b in &bookings {
            audit.emit(b.audit_event(now));
        }
        open |= v.open_transactions() > 0;
    }
    open
}

/// The JSON summary of a live rebalancing run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebalanceSummary {
    pub mode: crate::engine::Mode,
    pub strategy: String,
    pub chain_id: u64,
    pub cycles: u64,
    pub rebalances: u64,
    pub trades: u64,
    /// Legs skipped because gas would exceed `max_gas_share` of their value, or below min_trade.
    pub skipped_cycles: u64,
    pub execution_failures: u64,
    pub targets: std::collections::BTreeMap<String, f64>,
    pub weights: std::collections::BTreeMap<String, f64>,
    /// RMS distance of the final weights from the targets, percent.
    pub tracking_error_pct: f64,
    pub balances: std::collections::BTreeMap<String, String>,
    pub gas_paid_wei: String,
    pub tx_hashes: Vec<String>,
    /// Legs the kill switch refused.
    pub refused: u64,
    pub kill_switch: crate::engine::KillSwitchSummary,
}

/// `rebalancer` live on the devnet: WETH, DVT and dUSD held at target weights through the
/// WETH/dUSD and DVT/dUSD pools, one wallet and one nonce manager for both pool venues.
pub async fn run_rebalance(spec: RunSpec, args: ChainArgs) -> Result<RebalanceSummary, RunError> {
    use agent_core::agent::AuditStream;
    use agent_core::{AuditEvent, Intent, IntentId, Order, Swap, Venue, Verdict};
    use strategies::rebalancer::{Holding, RebalanceConfig, plan, tracking_error, weights};

    let cfg = &spec.config;
    live_only(
        &spec,
        "the live rebalancer runs with `defai run`; backtest it with `defai rebalance`",
    )?;
    let devnet = args.devnet_info()?;
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
    let target = cfg.rebalance_target(devnet.as_ref(), default_targets)?;
    let chain = Chain::connect(&target.rpc_url)?;
    check_chain(&chain, target.chain_id, args.allow_mainnet).await?;
    for (token, address, _, _) in &target.tokens {
        check_decimals(&chain, *address, token).await?;
    }

    let limits = cfg.risk_limits()?;
    // The state folder: journal (every step on record before it happens), kill switch, the
    // intents handled before a restart.
    let crate::engine::StateParts {
        lock: _lock,
        mut kill,
        observers,
        resume,
        recorder,
        // No loss limits for this kind (their keys are refused), so no baselines to keep.
        baselines: _,
    } = crate::engine::state_parts(&spec)?;
    // Nothing is sent that is not on record: a journal failure halts (latched) and ends the run.
    let mut audit = AuditStream::new(observers);
    let handled = resume.map(|r| r.handled).unwrap_or_default();
    let policy = cfg.kill_policy()?;
    if cfg.kill_switch.start_halted() {
        kill.trip(KillMode::Halt, "kill_switch.start_halted = true", 0);
    }
    let mut consecutive_failures = 0u32;
    // One sender (one nonce manager) shared by both pool venues.
    let mut tx = live_sender(cfg, &args, &chain, target.chain_id)?;
    if let Some(r) = recorder {
        tx = tx.with_recorder(r);
    }
    let native = Token::new(&cfg.chain.native_symbol, 18);
    let venue_cfg = UniswapV2Config {
        router: target.router,
        deadline_s: *cfg.venue.deadline_s.get_ref(),
        gas_per_swap: *cfg.chain.gas_per_swap.get_ref(),
        chain_id: target.chain_id,
        chain_check_every: *cfg.chain.chain_check_every.get_ref(),
    };
    // Tokens in the order the config lists them, the quote token last; one venue per asset.
    let tokens: Vec<Token> = target.tokens.iter().map(|t| t.0.clone()).collect();
    let targets: Vec<f64> = target.tokens.iter().map(|t| t.3).collect();
    let addresses: Vec<Address> = target.tokens.iter().map(|t| t.1).collect();
    let quote = tokens.len() - 1;
    let (usd, usd_address) = (tokens[quote].clone(), addresses[quote]);
    let mut venues = Vec::with_capacity(quote);
    for (token, address, pool, _) in &target.tokens[..quote] {
        let pool = pool.ok_or_else(|| EvmError::Devnet(format!("{token} has no pool")))?;
        let pool = PoolRef::resolve(
            &chain,
            Pair::new(token.clone(), usd.clone()),
            pool,
            *address,
            usd_address,
        )
        .await?;
        pool.check_router(&chain, target.router).await?;
        venues.push(UniswapV2Venue::new(
            pool,
            tx.clone(),
            native.clone(),
            venue_cfg.clone(),
        ));
    }
    let me = tx.address();
    // The wallet's token balances and its native balance (for the gas it paid).
    let read = async |chain: &Chain| -> Result<(Vec<U256>, U256), EvmError> {
        let mut bal = vec![U256::ZERO; addresses.len()];
        for (k, a) in addresses.iter().enumerate() {
            bal[k] = chain
                .view(
                    *a,
                    connectors::evm::bindings::IERC20::balanceOfCall { owner: me },
                    connectors::evm::alloy::eips::BlockId::latest(),
                )
                .await?;
        }
        Ok((bal, chain.balance(me).await?))
    };

    let mut out = RebalanceSummary {
        mode: spec.mode,
        strategy: "rebalancer".into(),
        chain_id: target.chain_id,
        cycles: 0,
        rebalances: 0,
        trades: 0,
        skipped_cycles: 0,
        execution_failures: 0,
        targets: tokens
            .iter()
            .zip(&targets)
            .map(|(t, w)| (t.symbol().to_string(), *w))
            .collect(),
        weights: Default::default(),
        tracking_error_pct: 0.0,
        balances: Default::default(),
        gas_paid_wei: String::new(),
        tx_hashes: Vec::new(),
        refused: 0,
        kill_switch: kill.record().into(),
    };
    let cycles = spec.max_cycles.unwrap_or(u64::MAX);
    let mut clock = cfg.cycle_clock(&chain)?;
    let mut last_now = 0i64;
    let mut prices = vec![0.0f64; tokens.len()];
    while out.cycles < cycles && !spec.stop.load(std::sync::atomic::Ordering::Relaxed) {
        let cycle = clock.next().await?;
        out.cycles += 1;
        let now = cycle.now;
        last_now = now;
        audit.halt_on_failure(&mut kill, now)?;
        if let Some(change) = kill.poll(now) {
            audit.emit(AuditEvent::KillSwitch {
                ts: now,
                change: &change,
            });
        }
        // Legs given up on that may still land: journal what became of them, and send nothing
        // while one is open (a new leg would double it, or queue behind it).
        if settle_open_legs(&mut venues, &mut audit, &mut out.tx_hashes, now).await {
            tracing::warn!(target: "defai::audit", "a rebalancing leg given up on may still be mined: no new legs this cycle");
            continue;
        }
        let (bal, _) = read(&chain).await?;
        for (k, v) in venues.iter().enumerate() {
            let (rb, rq) = v
                .pool()
                .reserves(&chain, connectors::evm::alloy::eips::BlockId::latest())
                .await?;
            prices[k] = v.pool().price_f64(rb, rq);
        }
        prices[quote] = 1.0;
        let holdings: Vec<Holding> = (0..tokens.len())
            .map(|k| Holding {
                token: tokens[k].clone(),
                balance: bal[k],
                price: prices[k],
                target: targets[k],
            })
            .collect();
        let fees = tx.market_fees().await?;
        let gas_quote = agent_core::amount::to_f64(
            U256::from(*cfg.chain.gas_per_swap.get_ref()) * U256::from(fees.current_price_wei()),
            18,
        ) * prices[target.gas_token];
        let legs = plan(&holdings, &targets, quote, gas_quote, &rc);
        let drifted = weights(&holdings)
            .iter()
            .zip(&targets)
            .any(|(w, t)| (w - t).abs() > rc.band);
        if legs.is_empty() {
            if drifted {
                out.skipped_cycles += 1;
            }
            continue;
        }
        out.rebalances += 1;
        for (seq, leg) in legs.into_iter().enumerate() {
            // The leg's venue: the pool of its token that is not the quote token.
            let asset = if leg.sell == usd { &leg.buy } else { &leg.sell };
            let Some(k) = tokens[..quote].iter().position(|t| t == asset) else {
                return Err(EvmError::Devnet(format!(
                    "the plan traded {asset}, which has no pool"
                ))
                .into());
            };
            let v = &mut venues[k];
            let swap = Swap {
                sell: leg.sell.clone(),
                buy: leg.buy.clone(),
                amount_in: leg.amount_in,
            };
            let id = IntentId::new("rebalancer", now, seq as u32);
            if handled.contains(&id.to_string()) {
                tracing::warn!(target: "defai::audit", %id, "intent already in the journal: not processed again");
                continue;
            }
            let intent = Intent::Swap(swap.clone());
            audit.emit(AuditEvent::Intent {
                ts: now,
                id: &id,
                intent: &intent,
            });
            // Selling into the quote token shrinks exposure: the only leg reduce_only allows.
            let reduces = leg.buy == usd;
            let verdict = match kill.allows(reduces) {
                Err(r) => Verdict::Refuse(r),
                Ok(()) => match v.quote(&swap).await {
                    Ok(q) => leg_verdict(&swap, &q, &v.pool().pair, &limits, reduces),
                    Err(e) => {
                        Verdict::Refuse(agent_core::Refusal::new("quote_failed", e.to_string()))
                    }
                },
            };
            audit.emit(AuditEvent::Verdict {
                ts: now,
                id: &id,
                verdict: &verdict,
            });
            let (amount_in, min_amount_out) = match verdict {
                Verdict::Approve { min_amount_out } => (swap.amount_in, min_amount_out),
                Verdict::Resize {
                    amount_in,
                    min_amount_out,
                    ..
                } => (amount_in, min_amount_out),
                Verdict::Refuse(_) => {
                    out.refused += 1;
                    continue;
                }
            };
            let order = Order {
                id,
                swap: Swap { amount_in, ..swap },
                min_amount_out,
            };
            audit.halt_on_failure(&mut kill, now)?;
            let executed = v.execute(&order, now).await;
            for e in v.drain_events() {
                if e.step == "mined"
                    && let Some(h) = &e.tx_hash
                {
                    out.tx_hashes.push(h.clone());
                }
                audit.emit(AuditEvent::Venue { ts: now, event: &e });
            }
            match executed {
                Ok(fill) => {
                    out.trades += 1;
                    consecutive_failures = 0;
                    audit.emit(AuditEvent::Fill(&fill));
                }
                Err(e) => {
                    tracing::warn!(target: "defai::audit", error = %e, "rebalance leg failed");
                    out.execution_failures += 1;
                    consecutive_failures += 1;
                    audit.emit(AuditEvent::ExecutionFailed {
                        ts: now,
                        id: &order.id,
                        error: &e,
                    });
                    if consecutive_failures >= policy.max_consecutive_failures {
                        let reason = format!(
                            "{consecutive_failures} consecutive execution failures, last: {e}"
                        );
                        if let Some(change) = kill.trip(KillMode::Halt, &reason, now) {
                            audit.emit(AuditEvent::KillSwitch {
                                ts: now,
                                change: &change,
                            });
                        }
                    }
                }
            }
        }
        let (bal, eth) = read(&chain).await?;
        let book: Vec<(Token, U256)> = tokens
            .iter()
            .cloned()
            .zip(bal)
            .chain([(Token::new(&cfg.chain.native_symbol, 18), eth)])
            .collect();
        audit.emit(AuditEvent::Portfolio {
            ts: now,
            balances: &book,
        });
    }
    audit.finish(&mut kill, last_now)?;
    let (bal, _) = read(&chain).await?;
    let holdings: Vec<Holding> = (0..tokens.len())
        .map(|k| Holding {
            token: tokens[k].clone(),
            balance: bal[k],
            price: prices[k],
            target: targets[k],
        })
        .collect();
    out.tracking_error_pct = tracking_error(&holdings) * 100.0;
    out.weights = tokens
        .iter()
        .zip(weights(&holdings))
        .map(|(t, w)| (t.symbol().to_string(), w))
        .collect();
    out.balances = tokens
        .iter()
        .zip(bal)
        .map(|(t, b)| (t.symbol().to_string(), t.format(b)))
        .collect();
    // Gas is what the receipts of the run's transactions say it cost, not the change of the
    // native balance (an external transfer from the same wallet is not gas).
    let mut gas_paid = U256::ZERO;
    for h in &out.tx_hashes {
        let hash = h
            .parse()
            .map_err(|e| EvmError::Devnet(format!("transaction hash {h}: {e}")))?;
        if let Some(r) = chain.receipt(hash).await? {
            gas_paid += U256::from(r.gas_used) * U256::from(r.effective_gas_price);
        }
    }
    out.gas_paid_wei = gas_paid.to_string();
    out.kill_switch = kill.record().into();
    Ok(out)
}
