//! Chain modes: `defai run` (live: signs and sends) and `defai paper --devnet|[chain]` (reads the
//! real pool every block and fills on the paper venue; never loads a key).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_core::{Clock, Pair, Portfolio, Token};
use connectors::PaperVenue;
use connectors::evm::alloy::eips::BlockId;
use connectors::evm::alloy::primitives::Address;
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

/// Runs `spec` on a chain: `Mode::Live` trades, `Mode::Paper` only reads.
pub async fn run_chain(spec: RunSpec, args: ChainArgs) -> Result<RunOutput, RunError> {
    let cfg = &spec.config;
    let devnet = match &args.devnet {
        Some(p) => Some(DevnetInfo::read(p)?),
        None => None,
    };
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
    let source = ChainSource::new(
        chain.clone(),
        pool.clone(),
        Duration::from_millis(c.poll_interval_ms.max(1)),
        Duration::from_secs(c.idle_timeout_s.max(1)),
    );
    let drive = Drive {
        pair: pair.clone(),
        portfolio: Portfolio::new(),
        // The chain's block time is the agent's time.
        clock: Clock::Simulated,
        total: spec.max_cycles,
        data: DataInfo {
            source: format!("chain {} pool {}", target.rpc_url, target.pool),
            ..DataInfo::default()
        },
        chain_id: Some(target.chain_id),
    };

    match spec.mode {
        Mode::Live => {
            let source_kind = match args.keystore.clone().or_else(|| cfg.keystore_path()) {
                Some(path) => WalletSource::Keystore(path),
                None => WalletSource::Env,
            };
            let wallet = Wallet::load(&source_kind)?;
            tracing::info!(target: "defai::chain", address = %wallet.address(), chain_id = target.chain_id, "live trading");
            let limits = cfg.risk_limits()?;
            let policy = TxPolicy {
                receipt_timeout: Duration::from_secs_f64(c.receipt_timeout_s.max(0.01)),
                max_replacements: c.max_replacements,
                gas_cap_wei: limits.max_gas_price_wei.map(|w| w.saturating_to::<u128>()),
                ..TxPolicy::default()
            };
            let nonces = Arc::new(NonceManager::new(wallet.address()));
            let tx = TxSender::new(chain.clone(), wallet, target.chain_id, nonces, policy)?;
            let venue = UniswapV2Venue::new(
                pool,
                tx,
                Token::new(&c.native_symbol, 18),
                UniswapV2Config {
                    router: target.router,
                    deadline_s: cfg.venue.deadline_s,
                    gas_per_swap: c.gas_per_swap,
                    chain_id: target.chain_id,
                    chain_check_every: c.chain_check_every,
                },
            );
            drive.go(&spec, source, venue).await
        }
        Mode::Paper | Mode::Backtest => {
            let mut paper = cfg.paper_amm()?;
            paper.gas_per_swap = c.gas_per_swap;
            let venue = PaperVenue::new(pair.clone(), paper);
            let drive = Drive {
                portfolio: Portfolio::with_balances([(pair.quote.clone(), cfg.starting_quote()?)]),
                ..drive
            };
            drive.go(&spec, source, venue).await
        }
    }
}
