//! The agent's TOML configuration. Unknown keys and wrong types are errors that name the key and
//! the line; every section and key is optional with a documented default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_core::amount::{Rounding, limit_units_from_f64, units_from_f64};
use agent_core::{KillMode, KillSwitchPolicy, ParamValue, Params, RiskLimits, Token, U256};
use connectors::PaperAmmConfig;
use connectors::evm::DevnetInfo;
use connectors::evm::alloy::primitives::Address;

/// A chain and the Uniswap V2 contracts to trade on it, resolved by [`Config::chain_target`]
/// from a devnet's `devnet.json` or from `[chain]` and `[venue]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTarget {
    /// The JSON-RPC endpoint, an `http://` or `https://` URL (`[chain] rpc_url`).
    pub rpc_url: String,
    /// The chain id the RPC must report (`[chain] chain_id`).
    pub chain_id: u64,
    /// The UniswapV2Router02 contract swaps go through (`[venue] router`).
    pub router: Address,
    /// The Uniswap V2 pair contract of base/quote the agent prices and trades (`[venue] pool`).
    pub pool: Address,
    /// The ERC-20 contract of the base token, e.g. WETH (`[venue] base_token`).
    pub base_token: Address,
    /// The ERC-20 contract of the quote token (`[venue] quote_token`).
    pub quote_token: Address,
}
use serde::Deserialize;
use toml::Spanned;

/// Why a config could not be loaded or a value of it cannot be used. Every message names the
/// file, and where it can the line and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file, as given.
        path: String,
        /// What reading it failed with.
        error: std::io::Error,
    },
    /// The text is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file (`config` for text parsed without a path).
        path: String,
        /// The TOML parser's message, which names the line, the column and the key.
        message: String,
    },
    /// A well-typed value that cannot be honoured (out of range, not an address, missing where
    /// required, ...).
    #[error("{path} line {line}: `{key}`: {reason}")]
    Invalid {
        /// The file (`config` for text parsed without a path, `--param` for a command-line
        /// override).
        path: String,
        /// The 1-based line of the value; 0 when the key is absent or came from `--param`.
        line: usize,
        /// The dotted key, e.g. `risk.max_trade_notional` or `strategy.params.fast`.
        key: String,
        /// What is wrong with the value (never the value itself for wallet keys).
        reason: String,
    },
    /// A `--param` override that is not `key=value` (no `=`, or an empty key); holds the
    /// argument as given.
    #[error("--param `{0}`: expected key=value")]
    BadOverride(String),
}

/// A parsed and validated agent config file ([`Config::load`], [`Config::parse`]): one field per
/// TOML section, each optional (a missing section takes its defaults). Unknown sections or keys
/// and values of the wrong type fail the load naming the file, line and key.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[agent]`: the agent's name and starting balance.
    #[serde(default)]
    pub agent: AgentSection,
    /// `[market]`: the bar data and the pair's token symbols and decimals.
    #[serde(default)]
    pub market: MarketSection,
    /// `[venue]`: the paper pool or the Uniswap V2 contracts, fees and gas.
    #[serde(default)]
    pub venue: VenueSection,
    /// `[strategy]`: which strategy runs, its parameters and its risk overrides.
    #[serde(default)]
    pub strategy: StrategySection,
    /// `[risk]`: the risk gate's limits (overridden key by key by `[strategy.risk]`).
    #[serde(default)]
    pub risk: RiskSection,
    /// `[kill_switch]`: what trips the kill switch automatically and what a breach does.
    #[serde(default)]
    pub kill_switch: KillSwitchSection,
    /// The chain, for `defai run` and chain-fed paper trading.
    #[serde(default)]
    pub chain: ChainSection,
    /// `[wallet]`: where the signing key comes from (never the key itself).
    #[serde(default)]
    pub wallet: WalletSection,
    /// Prediction markets to trade on a chain without `devnet.json` (kelly_bettor).
    #[serde(default)]
    pub markets: MarketsSection,
    /// The live rebalancer's tokens, targets and pools (without it: the devnet's three).
    pub rebalance: Option<RebalanceSection>,
    /// Where the file was read from (for messages and relative paths); not a TOML key.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    #[serde(skip)]
    text: String,
}

/// `[agent]`: who the agent is and what it starts with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// The agent's name: its state folder is `./state/<name>-<mode>` unless `--state` says
    /// otherwise. Default: the config file's stem, or the strategy's name.
    pub name: Option<String>,
    /// `[agent] starting_quote`: quote tokens the agent starts with, whole tokens (default
    /// 10,000). A negative or non-finite value, or one with more decimals than `[market]
    /// quote_decimals`, fails the load naming file, line and key.
    #[serde(default = "default_starting_quote")]
    pub starting_quote: Spanned<f64>,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            name: None,
            starting_quote: default_starting_quote(),
        }
    }
}

fn default_starting_quote() -> Spanned<f64> {
    Spanned::new(0..0, 10_000.0)
}

/// `[market]`: the bars a bar strategy replays and the pair they price.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSection {
    /// OHLCV CSV (optionally .gz); relative paths are relative to the config file. Default: the
    /// bundled ETH/USDC hourly data.
    pub data: Option<PathBuf>,
    /// `[market] base`: symbol of the base token, the one the agent buys and sells (default
    /// `ETH`).
    #[serde(default = "default_base")]
    pub base: String,
    /// `[market] base_decimals`: decimals of the base token, 0 to 255 (default 18); anything
    /// else is a type error that fails the load naming file, line and key.
    #[serde(default = "default_base_decimals")]
    pub base_decimals: u8,
    /// `[market] quote`: symbol of the quote token, the one prices, balances and limits are in
    /// (default `USDC`).
    #[serde(default = "default_quote")]
    pub quote: String,
    /// `[market] quote_decimals`: decimals of the quote token, 0 to 255 (default 6); whole-token
    /// amounts in quote (starting balance, pool depth, `max_trade_notional`, `max_bet`) are
    /// converted to units with it.
    #[serde(default = "default_quote_decimals")]
    pub quote_decimals: u8,
    /// Skip malformed rows instead of stopping (default false).
    #[serde(default)]
    pub skip_bad_rows: bool,
}

fn default_base() -> String {
    "ETH".into()
}
fn default_quote() -> String {
    "USDC".into()
}
fn default_base_decimals() -> u8 {
    18
}
fn default_quote_decimals() -> u8 {
    6
}

impl Default for MarketSection {
    fn default() -> Self {
        Self {
            data: None,
            base: default_base(),
            base_decimals: default_base_decimals(),
            quote: default_quote(),
            quote_decimals: default_quote_decimals(),
            skip_bad_rows: false,
        }
    }
}

/// `[venue] kind`: where trades fill, `paper_amm` (default) or `uniswap_v2`; any other name
/// fails the load naming file, line and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VenueKind {
    /// Simulated Uniswap V2 pool ([`connectors::PaperVenue`]).
    #[default]
    PaperAmm,
    /// The real Uniswap V2 router and pair on a chain (`defai run`; `defai paper` reads the
    /// pool and fills on the paper venue).
    UniswapV2,
}

/// `[venue] fill`: when a replay's order fills, `close` (default) or `next_open`; any other
/// value fails the load naming file, line and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FillModel {
    /// On the pool re-centred at the close of the bar the intent was decided on: the decision
    /// and the trade see the same price (optimistic: no time passes between them).
    #[default]
    Close,
    /// On the pool re-centred at the next bar's open: a decision on bar `t`'s close trades at
    /// bar `t + 1`'s open, as a trader acting after the close would. An intent on the last bar
    /// does not fill.
    NextOpen,
}

impl FillModel {
    /// `close` or `next_open`, as the config spells it and the summary reports it.
    pub fn name(self) -> &'static str {
        match self {
            FillModel::Close => "close",
            FillModel::NextOpen => "next_open",
        }
    }
}

/// `[venue]`: the venue trades fill on: the paper pool's fee, depth and gas, or the Uniswap V2
/// contracts on a chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VenueSection {
    /// `[venue] kind`: the paper pool (default) or the real Uniswap V2 contracts.
    #[serde(default)]
    pub kind: VenueKind,
    /// LP fee, basis points (default 30, Uniswap V2).
    #[serde(default = "default_fee_bps")]
    pub fee_bps: Spanned<u32>,
    /// Quote-side pool reserve after each re-centring (default 5,000,000).
    #[serde(default = "default_depth")]
    pub depth_quote: Spanned<f64>,
    /// Gas units per swap (default 120,000).
    #[serde(default = "default_gas_per_swap")]
    pub gas_per_swap: Spanned<u64>,
    /// Gas price, gwei (default 20).
    #[serde(default = "default_gas_price")]
    pub gas_price_gwei: Spanned<f64>,
    /// uniswap_v2: UniswapV2Router02 address.
    pub router: Option<Spanned<String>>,
    /// uniswap_v2: the pair contract of base/quote.
    pub pool: Option<Spanned<String>>,
    /// uniswap_v2: ERC-20 address of the base token (e.g. WETH).
    pub base_token: Option<Spanned<String>>,
    /// uniswap_v2: ERC-20 address of the quote token.
    pub quote_token: Option<Spanned<String>>,
    /// Seconds after the next block's timestamp (the node's pending block) a swap stays valid:
    /// the router's `deadline` (default 300).
    #[serde(default = "default_deadline")]
    pub deadline_s: Spanned<u64>,
    /// When a replay's (backtest, paper on a file) order fills: at the close of the bar it
    /// was decided on (default) or at the next bar's open. Chain runs fill on the pool's
    /// state at the time.
    #[serde(default)]
    pub fill: FillModel,
}

fn default_deadline() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}

/// `[chain]`: where `defai run` trades.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// `[chain] rpc_url`: the JSON-RPC endpoint (no default; required by the chain modes unless
    /// `--devnet` gives one). A URL that is not `http://` or `https://` is refused, naming file,
    /// line and key, when a chain mode resolves it.
    pub rpc_url: Option<Spanned<String>>,
    /// Must equal what the RPC reports, at start and every `chain_check_every` cycles.
    pub chain_id: Option<Spanned<u64>>,
    /// Symbol the portfolio books the gas token under (default ETH, 18 decimals).
    #[serde(default = "default_native")]
    pub native_symbol: String,
    /// How often to look for a new block (default 200 ms).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// No new block for this long ends the run with an error (default 0: never — a quiet
    /// chain keeps cycling on the `cycle_interval_s` timer).
    #[serde(default = "default_idle_s")]
    pub idle_timeout_s: u64,
    /// A cycle starts on every new block, or after this many seconds without one (default 30,
    /// a few block times on Ethereum):
    /// on an automine devnet or a quiet chain the agent still cycles (kill switch, health
    /// checks, `--max-cycles`). Must be above 0 and at most 86400.
    #[serde(default = "default_cycle_s")]
    pub cycle_interval_s: Spanned<f64>,
    /// Wait this long for a receipt before replacing with bumped fees (default 30 s).
    #[serde(default = "default_receipt_s")]
    pub receipt_timeout_s: Spanned<f64>,
    /// Replacements at the same nonce before giving up (default 3).
    #[serde(default = "default_replacements")]
    pub max_replacements: u32,
    /// Check the RPC's chain id every N cycles (default 10).
    #[serde(default = "default_chain_check")]
    pub chain_check_every: Spanned<u32>,
    /// Gas units per swap used in quotes (default 150,000, approval included).
    #[serde(default = "default_chain_gas")]
    pub gas_per_swap: Spanned<u64>,
}

fn default_native() -> String {
    "ETH".into()
}
fn default_poll_ms() -> u64 {
    200
}
fn default_idle_s() -> u64 {
    0
}
fn default_cycle_s() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}
fn default_receipt_s() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}
fn default_replacements() -> u32 {
    3
}
fn default_chain_check() -> Spanned<u32> {
    Spanned::new(0..0, 10)
}
fn default_chain_gas() -> Spanned<u64> {
    Spanned::new(0..0, 150_000)
}

impl Default for ChainSection {
    fn default() -> Self {
        Self {
            rpc_url: None,
            chain_id: None,
            native_symbol: default_native(),
            poll_interval_ms: default_poll_ms(),
            idle_timeout_s: default_idle_s(),
            cycle_interval_s: default_cycle_s(),
            receipt_timeout_s: default_receipt_s(),
            max_replacements: default_replacements(),
            chain_check_every: default_chain_check(),
            gas_per_swap: default_chain_gas(),
        }
    }
}

/// `[markets]`: where a prediction agent finds its markets on a chain (with `--devnet` they
/// come from `devnet.json`). Markets are discovered from the FPMM factory's creation events from
/// `from_block` on, filtered by `collateral` and `oracle`, plus the `list`ed addresses.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MarketsSection {
    /// The Gnosis ConditionalTokens contract.
    pub conditional_tokens: Option<Spanned<String>>,
    /// The FixedProductMarketMakerFactory whose creation events list the markets.
    pub fpmm_factory: Option<Spanned<String>>,
    /// Only markets whose condition this oracle prepared.
    pub oracle: Option<Spanned<String>>,
    /// Only markets with this collateral token (its decimals must be `[market] quote_decimals`).
    pub collateral: Option<Spanned<String>>,
    /// First block to read the factory's events from (default 0).
    #[serde(default)]
    pub from_block: u64,
    /// Markets to trade besides the discovered ones (addresses).
    #[serde(default)]
    pub list: Vec<Spanned<String>>,
}

/// `[rebalance]`: what the live rebalancer holds. Every asset trades against `quote` in its own
/// Uniswap V2 pool (through `[venue] router`, or the devnet's); targets (quote's included) are
/// weights in [0, 1] summing to 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceSection {
    /// The token every leg trades against.
    pub quote: RebalanceAsset,
    /// The other tokens, each with its pool against `quote`.
    pub assets: Vec<RebalanceAsset>,
    /// The asset whose pool prices the gas token, to value gas in the quote token (default
    /// `W` + `[chain] native_symbol`, e.g. WETH).
    pub gas_token: Option<Spanned<String>>,
}

/// One token of `[rebalance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceAsset {
    /// The token's symbol, as balances and legs name it; each must be listed once.
    pub symbol: String,
    /// The token's decimals, 0 to 255 (its ERC-20 `decimals()`).
    pub decimals: u8,
    /// The ERC-20 contract.
    pub address: Spanned<String>,
    /// Its Uniswap V2 pool against the quote token (not set for the quote token itself).
    pub pool: Option<Spanned<String>>,
    /// Target weight, 0..=1.
    pub target: Spanned<f64>,
}

/// One token the live rebalancer holds: the token (symbol, decimals), its ERC-20 contract,
/// its Uniswap V2 pool against the quote token (`None` for the quote token) and its target
/// weight in [0, 1].
pub type RebalanceToken = (Token, Address, Option<Address>, f64);

/// The live rebalancer's resolved holdings: `tokens[k]` with its contract, its pool (none for
/// the quote token, which is last) and its target weight; gas is priced by `tokens[gas_token]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceTarget {
    /// The JSON-RPC endpoint (`[chain] rpc_url`, or the devnet's).
    pub rpc_url: String,
    /// The chain id the RPC must report (`[chain] chain_id`, or the devnet's).
    pub chain_id: u64,
    /// The UniswapV2Router02 every leg goes through (`[venue] router`, or the devnet's).
    pub router: Address,
    /// Per token: the token (symbol, decimals), its ERC-20 contract, its Uniswap V2 pool
    /// against the quote token (`None` for the quote token, which is last) and its target
    /// weight in [0, 1]; the weights sum to 1.
    pub tokens: Vec<RebalanceToken>,
    /// Index into `tokens` of the asset whose pool prices the gas token.
    pub gas_token: usize,
}

/// Where a prediction agent's markets are: contracts, filters and explicit markets.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketsTarget {
    /// The JSON-RPC endpoint (`[chain] rpc_url`, or the devnet's).
    pub rpc_url: String,
    /// The chain id the RPC must report (`[chain] chain_id`, or the devnet's).
    pub chain_id: u64,
    /// The Gnosis ConditionalTokens contract (`[markets] conditional_tokens`).
    pub conditional_tokens: Address,
    /// The FixedProductMarketMakerFactory whose creation events list the markets
    /// (`[markets] fpmm_factory`).
    pub fpmm_factory: Address,
    /// Only markets whose condition this oracle prepared are traded (`[markets] oracle`).
    pub oracle: Address,
    /// Only markets with this ERC-20 collateral are traded (`[markets] collateral`).
    pub collateral: Address,
    /// First block of the factory's events to read (`[markets] from_block`, 0 on a devnet).
    pub from_block: u64,
    /// Markets traded besides the discovered ones (`[markets] list`; a devnet's markets).
    pub list: Vec<Address>,
}

/// `[wallet]`: where the signing key comes from. The key itself never goes in a config file:
/// it comes from `DEFAI_PRIVATE_KEY` or an encrypted keystore.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WalletSection {
    /// Encrypted JSON keystore (relative to the config file); its password comes from
    /// `DEFAI_KEYSTORE_PASSWORD` or a prompt. Unset: `DEFAI_PRIVATE_KEY`.
    pub keystore: Option<PathBuf>,
    /// The environment variable holding this agent's key (default `DEFAI_PRIVATE_KEY`): agents
    /// of one process can trade from different wallets.
    pub key_env: Option<Spanned<String>>,
    /// Refused: present only to give a clear error (without echoing the value).
    private_key: Option<Spanned<toml::Value>>,
}

fn default_fee_bps() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}
fn default_depth() -> Spanned<f64> {
    Spanned::new(0..0, 5_000_000.0)
}
fn default_gas_per_swap() -> Spanned<u64> {
    Spanned::new(0..0, 120_000)
}
fn default_gas_price() -> Spanned<f64> {
    Spanned::new(0..0, 20.0)
}

impl Default for VenueSection {
    fn default() -> Self {
        Self {
            kind: VenueKind::PaperAmm,
            fee_bps: default_fee_bps(),
            depth_quote: default_depth(),
            gas_per_swap: default_gas_per_swap(),
            gas_price_gwei: default_gas_price(),
            router: None,
            pool: None,
            base_token: None,
            quote_token: None,
            deadline_s: default_deadline(),
            fill: FillModel::Close,
        }
    }
}

/// `[strategy]`: the strategy the agent runs, its `[strategy.params]` and its
/// `[strategy.risk]` overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySection {
    /// A built-in strategy name (default `ema_cross`).
    #[serde(default = "default_strategy")]
    pub name: String,
    /// Strategy parameters; each strategy documents its own and rejects unknown ones.
    #[serde(default)]
    pub params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    /// Risk keys for this strategy, overriding `[risk]`.
    #[serde(default)]
    pub risk: RiskSection,
}

fn default_strategy() -> String {
    "ema_cross".into()
}

impl Default for StrategySection {
    fn default() -> Self {
        Self {
            name: default_strategy(),
            params: BTreeMap::new(),
            risk: RiskSection::default(),
        }
    }
}

/// `[risk]` (and `[strategy.risk]`, whose keys override it). Unset keys keep the defaults of
/// [`RiskLimits`]; see `examples/configs/ema_cross.toml` for every key. Every value keeps its
/// place in the file, so a value that cannot be honoured is refused naming its key and line.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RiskSection {
    /// `[risk] max_trade_notional`: largest notional of one exposure-increasing trade, whole
    /// quote tokens, rounded down to quote units (default: no limit). A negative, non-finite or
    /// too large value, or one below one quote unit, fails the load naming file, line and key.
    pub max_trade_notional: Option<Spanned<f64>>,
    /// `[risk] max_position_pct`: largest value of one asset as a share of equity, percent
    /// (default 100: no leverage). Outside 0 to 100, or not finite, fails the load naming file,
    /// line and key.
    pub max_position_pct: Option<Spanned<f64>>,
    /// `[risk] max_gross_exposure_pct`: largest value of all non-quote assets together as a
    /// share of equity, percent (default 100). Outside 0 to 100 fails the load naming file,
    /// line and key.
    pub max_gross_exposure_pct: Option<Spanned<f64>>,
    /// `[risk] max_daily_loss_pct`: loss from the UTC day's starting equity that trips the kill
    /// switch, percent (default 20). Outside 0 to 100 fails the load naming file, line and key.
    pub max_daily_loss_pct: Option<Spanned<f64>>,
    /// `[risk] max_drawdown_pct`: fall from peak equity that trips the kill switch, percent
    /// (default 50). Outside 0 to 100 fails the load naming file, line and key.
    pub max_drawdown_pct: Option<Spanned<f64>>,
    /// `[risk] max_slippage_bps`: how far below the quote every swap's minimum output is set,
    /// basis points (default 100). Above 10000 fails the load naming file, line and key.
    pub max_slippage_bps: Option<Spanned<u32>>,
    /// `[risk] max_price_impact_bps`: how far a trade's average price (LP fee excluded) may be
    /// from the venue's marginal price before it, basis points (default 100); larger
    /// exposure-increasing trades are resized down to it. Outside 1 to 10000 fails the load
    /// naming file, line and key.
    pub max_price_impact_bps: Option<Spanned<u32>>,
    /// `[risk] max_gas_price_gwei`: transactions priced above this are refused, gwei, rounded
    /// down to wei (default 200 gwei). A negative, non-finite or too large value, or one below
    /// 1 wei, fails the load naming file, line and key.
    pub max_gas_price_gwei: Option<Spanned<f64>>,
    /// `[risk] max_gas_spend_per_day`: gas the agent may burn per UTC day, whole native tokens
    /// (e.g. ETH), rounded down to wei (default: no limit). A negative, non-finite or too large
    /// value, or one below 1 wei, fails the load naming file, line and key.
    pub max_gas_spend_per_day: Option<Spanned<f64>>,
    /// `[risk] max_trades_per_hour`: exposure-increasing trades per rolling hour, a
    /// non-negative integer (default 60; 0 allows none). A negative or fractional value fails
    /// the load naming file, line and key.
    pub max_trades_per_hour: Option<Spanned<u32>>,
    /// `[risk] min_seconds_between_trades`: seconds between exposure-increasing trades, a
    /// non-negative integer (default 0). A negative or fractional value fails the load naming
    /// file, line and key.
    pub min_seconds_between_trades: Option<Spanned<u32>>,
    /// `[risk] allowed_tokens`: array of the token symbols the agent may trade (default: only
    /// the agent's own pair). A value that is not an array of strings fails the load naming
    /// file, line and key.
    pub allowed_tokens: Option<Spanned<Vec<String>>>,
    /// `[risk] allowed_contracts`: array of the contract addresses (`0x…`) a live venue may send
    /// transactions to (default: the venue's own router only). An entry that is not an address
    /// fails the load naming file, line and key.
    pub allowed_contracts: Option<Spanned<Vec<String>>>,
    /// `[risk] max_price_deviation_bps`: intents are refused when the venue's price is further
    /// than this from the latest bar's close, basis points (default 300). A negative or
    /// fractional value fails the load naming file, line and key.
    pub max_price_deviation_bps: Option<Spanned<u32>>,
    /// `[risk] max_data_age_s`: new intents are refused on data older than this, seconds
    /// (default: no limit, as replayed data has no age; set it for live trading). A negative or
    /// fractional value fails the load naming file, line and key.
    pub max_data_age_s: Option<Spanned<u32>>,
    /// Prediction markets: the largest single bet, collateral (whole tokens). The bet gate
    /// refuses anything above it, whatever the strategy asks.
    pub max_bet: Option<Spanned<f64>>,
}

macro_rules! risk_keys {
    ($m:ident) => {
        $m!(
            max_trade_notional,
            max_position_pct,
            max_gross_exposure_pct,
            max_daily_loss_pct,
            max_drawdown_pct,
            max_slippage_bps,
            max_price_impact_bps,
            max_gas_price_gwei,
            max_gas_spend_per_day,
            max_trades_per_hour,
            min_seconds_between_trades,
            allowed_tokens,
            allowed_contracts,
            max_price_deviation_bps,
            max_data_age_s,
            max_bet
        )
    };
}

impl RiskSection {
    /// `self` with every key `over` sets replaced.
    pub fn overlay(&self, over: &RiskSection) -> RiskSection {
        macro_rules! overlay {
            ($($f:ident),*) => {
                RiskSection { $($f: over.$f.clone().or_else(|| self.$f.clone()),)* }
            };
        }
        risk_keys!(overlay)
    }
}

/// What kind of agent a strategy runs as: how the binary wires it (every kind runs in the one
/// agent loop, under every `[risk]` and `[kill_switch]` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    /// Trades a pair bar by bar (ema_cross, ml_signal, registered bar strategies).
    Bar,
    /// Bets on prediction markets (kelly_bettor); a flatten holds positions to redemption.
    Prediction,
    /// Holds target weights (rebalancer); a flatten sells every asset into the quote token.
    Rebalance,
}

impl StrategyKind {
    /// The kind of the strategy named `name`.
    pub fn of(name: &str) -> Self {
        match name {
            "kelly_bettor" => StrategyKind::Prediction,
            "rebalancer" => StrategyKind::Rebalance,
            _ => StrategyKind::Bar,
        }
    }
}

/// `[kill_switch]`. Each key keeps its place in the file (see [`RiskSection`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchSection {
    /// Start halted until `defai resume` (default false).
    pub start_halted: Option<Spanned<bool>>,
    /// What a daily-loss or drawdown breach does: halt, reduce_only or flatten (default).
    /// `flatten_now` (ignoring the price-impact limit) is refused here: only an operator asks
    /// for it.
    pub on_breach: Option<Spanned<String>>,
    /// Consecutive failed executions that halt the agent (default 3, at least 1).
    pub max_consecutive_failures: Option<Spanned<u32>>,
    /// Data older than this many × `risk.max_data_age_s` halts the agent (default 3, at least 1).
    pub stale_data_multiple: Option<Spanned<u32>>,
}

impl KillSwitchSection {
    /// `start_halted`, default false.
    pub fn start_halted(&self) -> bool {
        self.start_halted.as_ref().is_some_and(|v| *v.get_ref())
    }
}

impl Config {
    /// The agent's name (`[agent] name`, else the config file's stem, else the strategy).
    pub fn agent_name(&self) -> String {
        let raw = self
            .agent
            .name
            .clone()
            .or_else(|| {
                self.source
                    .as_ref()
                    .and_then(|p| p.file_stem())
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| self.strategy.name.clone());
        // A folder name: nothing that climbs out of ./state/.
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string()
    }

    /// Reads and validates a config file.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read; otherwise every error of
    /// [`Config::parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.display().to_string(),
            error,
        })?;
        Self::parse(&text, Some(path))
    }

    /// The text the config was parsed from (empty for [`Config::default`]).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses config text; `path` is used in messages and to resolve relative paths.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] when the text is not TOML or has an unknown section or key or a
    /// value of the wrong type; [`ConfigError::Invalid`] (naming file, line and key) when
    /// `[wallet]` holds a `private_key` or a `key_env` that is not an environment variable
    /// name, or when a value [`Config::starting_quote`], [`Config::paper_amm`],
    /// [`Config::chain_policy`], [`Config::risk_limits`], [`Config::max_bet`] or
    /// [`Config::kill_policy`] checks is refused.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: name.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.source = path.map(Path::to_path_buf);
        cfg.text = text.to_string();
        cfg.validate()?;
        Ok(cfg)
    }

    fn name(&self) -> String {
        self.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into())
    }

    fn line_of(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn invalid(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.name(),
            line: self.line_of(span),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(k) = &self.wallet.private_key {
            return Err(self.invalid(
                k.span(),
                "wallet.private_key",
                "private keys never go in a config file: set DEFAI_PRIVATE_KEY or use \
                 `keystore = \"FILE\"` (an encrypted JSON keystore)",
            ));
        }
        if let Some(var) = &self.wallet.key_env {
            let name = var.get_ref();
            let looks_like_key = name.len() >= 60
                && name
                    .trim_start_matches("0x")
                    .chars()
                    .all(|c| c.is_ascii_hexdigit());
            let reason = if looks_like_key {
                Some(
                    "is the name of an environment variable, not a key: never put a key in a config file",
                )
            } else if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                Some("must be an environment variable name (A-Z, 0-9, _)")
            } else {
                None
            };
            if let Some(reason) = reason {
                // Never echo the value: it may be a key pasted in the wrong place.
                return Err(self.invalid(var.span(), "wallet.key_env", reason));
            }
        }
        self.starting_quote()?;
        self.paper_amm()?;
        self.chain_policy()?;
        self.risk_limits()?;
        self.max_bet()?;
        self.kill_policy()?;
        Ok(())
    }

    /// The base token: `[market] base` with `[market] base_decimals` (default ETH, 18).
    pub fn base(&self) -> Token {
        Token::new(&self.market.base, self.market.base_decimals)
    }

    /// The quote token: `[market] quote` with `[market] quote_decimals` (default USDC, 6).
    pub fn quote(&self) -> Token {
        Token::new(&self.market.quote, self.market.quote_decimals)
    }

    /// `agent.starting_quote` in exact quote units.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `agent.starting_quote` when it is negative, not finite, has
    /// more decimals than `[market] quote_decimals` or does not fit in 256 bits.
    pub fn starting_quote(&self) -> Result<U256, ConfigError> {
        let s = &self.agent.starting_quote;
        units_from_f64(*s.get_ref(), self.market.quote_decimals)
            .map_err(|e| self.invalid(s.span(), "agent.starting_quote", e.to_string()))
    }

    /// The paper venue's parameters in exact units (depth in quote units, gas price in wei).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and line when `venue.depth_quote` is negative,
    /// not finite, finer than a quote unit, too large or zero; when `venue.fee_bps` is 10000 or
    /// more; or when `venue.gas_price_gwei` is negative, not finite, finer than 1 wei or too
    /// large.
    pub fn paper_amm(&self) -> Result<PaperAmmConfig, ConfigError> {
        let v = &self.venue;
        let depth = units_from_f64(*v.depth_quote.get_ref(), self.market.quote_decimals)
            .map_err(|e| self.invalid(v.depth_quote.span(), "venue.depth_quote", e.to_string()))?;
        if depth.is_zero() {
            return Err(self.invalid(
                v.depth_quote.span(),
                "venue.depth_quote",
                "must be positive",
            ));
        }
        if *v.fee_bps.get_ref() >= 10_000 {
            return Err(self.invalid(v.fee_bps.span(), "venue.fee_bps", "must be below 10000"));
        }
        // gwei has 9 decimals below the unit; the exact conversion refuses finer values.
        let gas_price_wei = units_from_f64(*v.gas_price_gwei.get_ref(), 9).map_err(|e| {
            self.invalid(
                v.gas_price_gwei.span(),
                "venue.gas_price_gwei",
                e.to_string(),
            )
        })?;
        Ok(PaperAmmConfig {
            fee_bps: *v.fee_bps.get_ref(),
            depth_quote: depth,
            gas_per_swap: *v.gas_per_swap.get_ref(),
            gas_price_wei,
        })
    }

    /// The pace of a live agent's cycles: every new block, or `[chain] cycle_interval_s`
    /// without one; `[chain] idle_timeout_s` (when not 0) ends a wait that long with an error.
    ///
    /// # Errors
    /// A `[chain]` value [`Config::chain_policy`] refuses.
    pub fn cycle_clock(
        &self,
        chain: &connectors::evm::Chain,
    ) -> Result<connectors::evm::CycleClock, ConfigError> {
        self.chain_policy()?;
        let c = &self.chain;
        let clock = connectors::evm::CycleClock::new(
            chain.clone(),
            std::time::Duration::from_millis(c.poll_interval_ms.max(1)),
            std::time::Duration::from_secs_f64(*c.cycle_interval_s.get_ref()),
        );
        Ok(match c.idle_timeout_s {
            0 => clock,
            s => clock.with_idle_timeout(std::time::Duration::from_secs(s)),
        })
    }

    /// Checks the transaction and venue settings a live run relies on for safety: each is
    /// refused, naming its key and line, where it would switch a guard off.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when `chain.chain_check_every` is 0; when
    /// `chain.receipt_timeout_s` or `chain.cycle_interval_s` is not a number of seconds above 0
    /// and at most 86400; when `venue.deadline_s` is not from 1 to 86400; or when
    /// `chain.gas_per_swap` or `venue.gas_per_swap` is 0.
    pub fn chain_policy(&self) -> Result<(), ConfigError> {
        let c = &self.chain;
        if *c.chain_check_every.get_ref() == 0 {
            return Err(self.invalid(
                c.chain_check_every.span(),
                "chain.chain_check_every",
                "must be at least 1 (0 would never re-check the chain id)",
            ));
        }
        let t = *c.receipt_timeout_s.get_ref();
        if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
            return Err(self.invalid(
                c.receipt_timeout_s.span(),
                "chain.receipt_timeout_s",
                "must be a number of seconds above 0 and at most 86400",
            ));
        }
        let t = *c.cycle_interval_s.get_ref();
        if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
            return Err(self.invalid(
                c.cycle_interval_s.span(),
                "chain.cycle_interval_s",
                "must be a number of seconds above 0 and at most 86400",
            ));
        }
        if !(1..=86_400).contains(self.venue.deadline_s.get_ref()) {
            return Err(self.invalid(
                self.venue.deadline_s.span(),
                "venue.deadline_s",
                "must be from 1 to 86400 seconds",
            ));
        }
        for (v, key) in [
            (&c.gas_per_swap, "chain.gas_per_swap"),
            (&self.venue.gas_per_swap, "venue.gas_per_swap"),
        ] {
            if *v.get_ref() == 0 {
                return Err(self.invalid(
                    v.span(),
                    key,
                    "must be positive (gas limits and budgets are computed from it)",
                ));
            }
        }
        Ok(())
    }

    /// The kind of agent the configured strategy runs as.
    pub fn kind(&self) -> StrategyKind {
        StrategyKind::of(&self.strategy.name)
    }

    /// The risk limits: defaults, then `[risk]`, then `[strategy.risk]`, in exact units. Every
    /// value fails closed: a maximum with more decimals than its token rounds down, a value that
    /// cannot be honoured (negative, out of range, rounding to nothing) is an error naming the
    /// key and the line. Every key applies to every kind: each limit judges the actions it
    /// concerns (swaps, bets, the legs of a bundle; see `docs/runtime.md`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and line when a percentage is not from 0 to 100,
    /// `max_slippage_bps` is above 10000, `max_price_impact_bps` is not from 1 to 10000, a
    /// money limit (`max_trade_notional`, `max_gas_price_gwei`, `max_gas_spend_per_day`) is
    /// negative, not finite, too large or below one unit, or an `allowed_contracts` entry is
    /// not an address.
    pub fn risk_limits(&self) -> Result<RiskLimits, ConfigError> {
        let r = self.risk.overlay(&self.strategy.risk);
        let d = RiskLimits::default();
        let plain = |v: &Option<Spanned<u32>>| v.as_ref().map(|s| *s.get_ref());
        self.check_allowed_contracts(&r)?;
        let qd = self.market.quote_decimals;
        // Each helper refuses a set value it cannot honour; `None` means the key is not
        // set, and only then does the documented default of `RiskLimits` apply.
        Ok(RiskLimits {
            max_trade_notional: self
                .limit_units(&r.max_trade_notional, "risk.max_trade_notional", qd)?
                .or(d.max_trade_notional),
            max_position_pct: self
                .limit_pct(&r.max_position_pct, "risk.max_position_pct", 100.0)?
                .unwrap_or(d.max_position_pct),
            max_gross_exposure_pct: self
                .limit_pct(
                    &r.max_gross_exposure_pct,
                    "risk.max_gross_exposure_pct",
                    100.0,
                )?
                .unwrap_or(d.max_gross_exposure_pct),
            max_daily_loss_pct: self
                .limit_pct(&r.max_daily_loss_pct, "risk.max_daily_loss_pct", 100.0)?
                .or(d.max_daily_loss_pct),
            max_drawdown_pct: self
                .limit_pct(&r.max_drawdown_pct, "risk.max_drawdown_pct", 100.0)?
                .or(d.max_drawdown_pct),
            max_slippage_bps: self
                .limit_bps(&r.max_slippage_bps, "risk.max_slippage_bps", 0..=10_000)?
                .unwrap_or(d.max_slippage_bps),
            max_price_impact_bps: self
                .limit_bps(
                    &r.max_price_impact_bps,
                    "risk.max_price_impact_bps",
                    1..=10_000,
                )?
                .or(d.max_price_impact_bps),
            max_gas_price_wei: self
                .limit_units(&r.max_gas_price_gwei, "risk.max_gas_price_gwei", 9)?
                .or(d.max_gas_price_wei),
            max_gas_spend_per_day: self
                .limit_units(&r.max_gas_spend_per_day, "risk.max_gas_spend_per_day", 18)?
                .or(d.max_gas_spend_per_day),
            max_trades_per_hour: plain(&r.max_trades_per_hour).or(d.max_trades_per_hour),
            min_seconds_between_trades: plain(&r.min_seconds_between_trades)
                .map_or(d.min_seconds_between_trades, i64::from),
            allowed_tokens: r
                .allowed_tokens
                .map(Spanned::into_inner)
                .or(d.allowed_tokens),
            allowed_contracts: r
                .allowed_contracts
                .map(Spanned::into_inner)
                .or(d.allowed_contracts),
            max_price_deviation_bps: plain(&r.max_price_deviation_bps)
                .or(d.max_price_deviation_bps),
            max_data_age_s: plain(&r.max_data_age_s).map(i64::from).or(d.max_data_age_s),
        })
    }

    /// A set percentage (`None`: unset), refused unless it is a number from 0 to `max`.
    fn limit_pct(
        &self,
        v: &Option<Spanned<f64>>,
        key: &str,
        max: f64,
    ) -> Result<Option<f64>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) if s.get_ref().is_finite() && (0.0..=max).contains(s.get_ref()) => {
                Ok(Some(*s.get_ref()))
            }
            Some(s) => {
                Err(self.invalid(s.span(), key, format!("must be a number from 0 to {max}")))
            }
        }
    }

    /// A set maximum in token units (`None`: unset): rounded down, and at least one unit.
    fn limit_units(
        &self,
        v: &Option<Spanned<f64>>,
        key: &str,
        decimals: u8,
    ) -> Result<Option<U256>, ConfigError> {
        v.as_ref()
            .map(|s| self.max_units(s, key, decimals))
            .transpose()
    }

    /// A set limit in basis points (`None`: unset), refused outside `range`.
    fn limit_bps(
        &self,
        v: &Option<Spanned<u32>>,
        key: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>, ConfigError> {
        match v {
            Some(s) if !range.contains(s.get_ref()) => Err(self.invalid(
                s.span(),
                key,
                format!("must be from {} to {}", range.start(), range.end()),
            )),
            Some(s) => Ok(Some(*s.get_ref())),
            None => Ok(None),
        }
    }

    /// Refuses an `allowed_contracts` entry of `r` that is not an address.
    fn check_allowed_contracts(&self, r: &RiskSection) -> Result<(), ConfigError> {
        if let Some(list) = &r.allowed_contracts {
            for a in list.get_ref() {
                if a.parse::<Address>().is_err() {
                    return Err(self.invalid(
                        list.span(),
                        "risk.allowed_contracts",
                        format!("`{a}` is not an address"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A configured maximum in units of a token with `decimals`: digits beyond them round down;
    /// a value that is negative, not finite, too large or below one unit is refused.
    fn max_units(&self, v: &Spanned<f64>, key: &str, decimals: u8) -> Result<U256, ConfigError> {
        let units = limit_units_from_f64(*v.get_ref(), decimals, Rounding::Down)
            .map_err(|e| self.invalid(v.span(), key, e.to_string()))?;
        if units.is_zero() {
            return Err(self.invalid(
                v.span(),
                key,
                format!(
                    "must be at least one unit ({}), or the limit would refuse everything",
                    agent_core::amount::format_units(U256::from(1u8), decimals)
                ),
            ));
        }
        Ok(units)
    }

    /// The kill switch's automatic behaviour: `[kill_switch]` over the defaults of
    /// [`KillSwitchPolicy`].
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and line when `kill_switch.on_breach` is not
    /// `halt`, `reduce_only` or `flatten` (`flatten_now` is refused: only an operator asks for
    /// it), or when `max_consecutive_failures` or `stale_data_multiple` is 0.
    pub fn kill_policy(&self) -> Result<KillSwitchPolicy, ConfigError> {
        let k = &self.kill_switch;
        let d = KillSwitchPolicy::default();
        let on_breach = match &k.on_breach {
            Some(v) => match v.get_ref().parse() {
                Ok(KillMode::FlattenNow) => {
                    return Err(self.invalid(
                        v.span(),
                        "kill_switch.on_breach",
                        "flatten_now ignores the price-impact limit: only an operator may ask for it (defai kill --mode flatten_now)",
                    ));
                }
                Ok(mode) => mode,
                Err(e) => return Err(self.invalid(v.span(), "kill_switch.on_breach", e)),
            },
            None => d.on_breach,
        };
        let at_least_one = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
            Some(s) if *s.get_ref() == 0 => Err(self.invalid(s.span(), key, "must be at least 1")),
            Some(s) => Ok(*s.get_ref()),
            None => Ok(default),
        };
        Ok(KillSwitchPolicy {
            on_breach,
            max_consecutive_failures: at_least_one(
                &k.max_consecutive_failures,
                "kill_switch.max_consecutive_failures",
                d.max_consecutive_failures,
            )?,
            stale_data_multiple: i64::from(at_least_one(
                &k.stale_data_multiple,
                "kill_switch.stale_data_multiple",
                d.stale_data_multiple as u32,
            )?),
        })
    }

    /// The environment variable holding the key, if the config names one (`[wallet] key_env`).
    pub fn key_env(&self) -> Option<&str> {
        self.wallet.key_env.as_ref().map(|v| v.get_ref().as_str())
    }

    /// The keystore file (`[wallet] keystore`), relative to the config file's folder; `None`
    /// when unset (the key then comes from an environment variable).
    pub fn keystore_path(&self) -> Option<PathBuf> {
        Some(self.resolve(self.wallet.keystore.as_ref()?))
    }

    /// A path from the file, relative to the file's folder (absolute paths as they are).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        let base = self
            .source
            .as_ref()
            .and_then(|p| p.parent())
            .unwrap_or(Path::new(""));
        base.join(path)
    }

    /// `key` is required for `what` and not set: an error naming it (line 0: it is absent).
    fn missing(&self, key: &str, what: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.name(),
            line: 0,
            key: key.into(),
            reason: format!("required for {what} (or pass --devnet devnet.json)"),
        }
    }

    /// An address-valued key, or an error naming it and its line.
    fn address_of(&self, v: &Spanned<String>, key: &str) -> Result<Address, ConfigError> {
        v.get_ref()
            .parse::<Address>()
            .map_err(|e| self.invalid(v.span(), key, format!("not an address: {e}")))
    }

    /// A required address-valued key (see [`Config::address_of`]).
    fn required_address(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        what: &str,
    ) -> Result<Address, ConfigError> {
        self.address_of(v.as_ref().ok_or_else(|| self.missing(key, what))?, key)
    }

    /// `[chain] rpc_url` (an http(s) URL) and `chain_id`, both required for `what`.
    fn chain_endpoint(&self, what: &str) -> Result<(String, u64), ConfigError> {
        let rpc = self
            .chain
            .rpc_url
            .as_ref()
            .ok_or_else(|| self.missing("chain.rpc_url", what))?;
        if !(rpc.get_ref().starts_with("http://") || rpc.get_ref().starts_with("https://")) {
            return Err(self.invalid(rpc.span(), "chain.rpc_url", "must be an http(s) URL"));
        }
        let chain_id = self
            .chain
            .chain_id
            .as_ref()
            .ok_or_else(|| self.missing("chain.chain_id", what))?;
        Ok((rpc.get_ref().clone(), *chain_id.get_ref()))
    }

    /// What the live rebalancer holds and where it trades: `[rebalance]` when set (on the
    /// devnet's chain with `devnet`, else `[chain]` and `[venue] router`), else the devnet's
    /// WETH, DVT and dUSD with `default_targets` (the strategy's `weth`, `dvt`, `usd`).
    ///
    /// # Errors
    /// Neither `[rebalance]` nor a devnet; a missing or malformed address; targets out of
    /// [0, 1] or not summing to 1; no asset to price the gas token (each naming key and line).
    pub fn rebalance_target(
        &self,
        devnet: Option<&DevnetInfo>,
        default_targets: [f64; 3],
    ) -> Result<RebalanceTarget, ConfigError> {
        const WHAT: &str = "the live rebalancer";
        let Some(r) = &self.rebalance else {
            let d = devnet.ok_or_else(|| self.missing("rebalance", WHAT))?;
            let [w, v, u] = default_targets;
            return Ok(RebalanceTarget {
                rpc_url: d.rpc_url.clone(),
                chain_id: d.chain_id,
                router: d.router,
                tokens: vec![
                    (Token::new("WETH", 18), d.weth, Some(d.weth_usd_pair), w),
                    (Token::new("DVT", 18), d.dvt, Some(d.dvt_usd_pair), v),
                    (Token::new("dUSD", 6), d.usd, None, u),
                ],
                gas_token: 0,
            });
        };
        let (rpc_url, chain_id, router) = match devnet {
            Some(d) => (d.rpc_url.clone(), d.chain_id, d.router),
            None => {
                let (rpc_url, chain_id) = self.chain_endpoint(WHAT)?;
                let router = self.required_address(&self.venue.router, "venue.router", WHAT)?;
                (rpc_url, chain_id, router)
            }
        };
        if r.assets.is_empty() {
            return Err(self.missing("rebalance.assets", WHAT));
        }
        let tokens = self.rebalance_tokens(r)?;
        self.check_rebalance_targets(r)?;
        let gas_token = self.rebalance_gas_token(r)?;
        Ok(RebalanceTarget {
            rpc_url,
            chain_id,
            router,
            tokens,
            gas_token,
        })
    }

    /// `[rebalance]`'s tokens in order, the quote token last: each asset with its pool, none
    /// listed twice (by symbol or address), the quote token without a pool of its own.
    fn rebalance_tokens(&self, r: &RebalanceSection) -> Result<Vec<RebalanceToken>, ConfigError> {
        let mut tokens = Vec::with_capacity(r.assets.len() + 1);
        for (i, a) in r.assets.iter().enumerate() {
            let pool = a.pool.as_ref().ok_or_else(|| {
                self.invalid(
                    a.address.span(),
                    "rebalance.assets.pool",
                    format!("asset {} has no pool against the quote token", a.symbol),
                )
            })?;
            // Legs are routed by token and balances read by address: each must be one asset's.
            for (b, what) in r.assets[..i]
                .iter()
                .map(|b| (b, "an earlier asset"))
                .chain([(&r.quote, "the quote token")])
            {
                if b.symbol == a.symbol
                    || b.address
                        .get_ref()
                        .eq_ignore_ascii_case(a.address.get_ref())
                {
                    return Err(self.invalid(
                        a.address.span(),
                        "rebalance.assets",
                        format!("{} is listed twice (as {what} too)", a.symbol),
                    ));
                }
            }
            tokens.push((
                Token::new(&a.symbol, a.decimals),
                self.address_of(&a.address, "rebalance.assets.address")?,
                Some(self.address_of(pool, "rebalance.assets.pool")?),
                *a.target.get_ref(),
            ));
        }
        let q = &r.quote;
        if let Some(pool) = &q.pool {
            return Err(self.invalid(
                pool.span(),
                "rebalance.quote.pool",
                "the quote token trades in the assets' pools; it has none of its own",
            ));
        }
        tokens.push((
            Token::new(&q.symbol, q.decimals),
            self.address_of(&q.address, "rebalance.quote.address")?,
            None,
            *q.target.get_ref(),
        ));
        Ok(tokens)
    }

    /// Every target weight of `[rebalance]` is in [0, 1] and together they sum to 1.
    fn check_rebalance_targets(&self, r: &RebalanceSection) -> Result<(), ConfigError> {
        let targets = r.assets.iter().chain([&r.quote]).map(|a| &a.target);
        for t in targets.clone() {
            if !(t.get_ref().is_finite() && (0.0..=1.0).contains(t.get_ref())) {
                return Err(self.invalid(t.span(), "rebalance.target", "must be from 0 to 1"));
            }
        }
        let sum: f64 = targets.map(|t| *t.get_ref()).sum();
        if (sum - 1.0).abs() > 1e-9 {
            return Err(self.invalid(
                r.quote.target.span(),
                "rebalance.target",
                format!("the targets sum to {sum}, not 1"),
            ));
        }
        Ok(())
    }

    /// The index of the asset whose pool prices the gas token: `[rebalance] gas_token`, else
    /// `W` + the chain's native symbol.
    fn rebalance_gas_token(&self, r: &RebalanceSection) -> Result<usize, ConfigError> {
        let gas_symbol = r.gas_token.as_ref().map_or_else(
            || format!("W{}", self.chain.native_symbol),
            |g| g.get_ref().clone(),
        );
        r.assets
            .iter()
            .position(|a| a.symbol == gas_symbol)
            .ok_or_else(|| match &r.gas_token {
                Some(g) => {
                    self.invalid(g.span(), "rebalance.gas_token", "is not one of the assets")
                }
                None => ConfigError::Invalid {
                    path: self.name(),
                    line: 0,
                    key: "rebalance.gas_token".into(),
                    reason: format!("no asset {gas_symbol} prices the gas token: name one"),
                },
            })
    }

    /// Where the prediction agent's markets are: from `devnet` when given (every market it
    /// lists, discovery from block 0), else from `[chain]` and `[markets]`.
    ///
    /// # Errors
    /// A required key is missing, or a value is not an address or URL (naming key and line).
    pub fn markets_target(
        &self,
        devnet: Option<&DevnetInfo>,
    ) -> Result<MarketsTarget, ConfigError> {
        if let Some(d) = devnet {
            return Ok(MarketsTarget {
                rpc_url: d.rpc_url.clone(),
                chain_id: d.chain_id,
                conditional_tokens: d.conditional_tokens,
                fpmm_factory: d.fpmm_factory,
                oracle: d.oracle,
                collateral: d.usd,
                from_block: 0,
                list: d.markets.iter().map(|m| m.address).collect(),
            });
        }
        const WHAT: &str = "prediction markets on a chain";
        let address = |v: &Option<Spanned<String>>, key: &str| self.required_address(v, key, WHAT);
        let (rpc_url, chain_id) = self.chain_endpoint(WHAT)?;
        let m = &self.markets;
        Ok(MarketsTarget {
            rpc_url,
            chain_id,
            conditional_tokens: address(&m.conditional_tokens, "markets.conditional_tokens")?,
            fpmm_factory: address(&m.fpmm_factory, "markets.fpmm_factory")?,
            oracle: address(&m.oracle, "markets.oracle")?,
            collateral: address(&m.collateral, "markets.collateral")?,
            from_block: m.from_block,
            list: m
                .list
                .iter()
                .map(|v| self.address_of(v, "markets.list"))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Where to trade: from a devnet's `devnet.json` when given, else from `[chain]` and
    /// `[venue]`. Every missing or malformed field is named with its line.
    ///
    /// # Errors
    /// Without `devnet`: [`ConfigError::Invalid`] when `chain.rpc_url` or `chain.chain_id` is
    /// missing (line 0) or the URL is not http(s), or when `venue.router`, `venue.pool`,
    /// `venue.base_token` or `venue.quote_token` is missing or not an address.
    pub fn chain_target(&self, devnet: Option<&DevnetInfo>) -> Result<ChainTarget, ConfigError> {
        if let Some(d) = devnet {
            return Ok(ChainTarget {
                rpc_url: d.rpc_url.clone(),
                chain_id: d.chain_id,
                router: d.router,
                pool: d.weth_usd_pair,
                base_token: d.weth,
                quote_token: d.usd,
            });
        }
        const WHAT: &str = "chain mode";
        let address = |v: &Option<Spanned<String>>, key: &str| self.required_address(v, key, WHAT);
        let (rpc_url, chain_id) = self.chain_endpoint(WHAT)?;
        Ok(ChainTarget {
            rpc_url,
            chain_id,
            router: address(&self.venue.router, "venue.router")?,
            pool: address(&self.venue.pool, "venue.pool")?,
            base_token: address(&self.venue.base_token, "venue.base_token")?,
            quote_token: address(&self.venue.quote_token, "venue.quote_token")?,
        })
    }

    /// `[risk] max_bet` (with `[strategy.risk]` over it) in units of the collateral (the
    /// market's quote token): rounded down, refused when it rounds to nothing. `None` when unset.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `risk.max_bet` when it is negative, not finite, too large,
    /// or below one unit of the collateral.
    pub fn max_bet(&self) -> Result<Option<U256>, ConfigError> {
        let risk = self.risk.overlay(&self.strategy.risk);
        risk.max_bet
            .as_ref()
            .map(|v| self.max_units(v, "risk.max_bet", self.market.quote_decimals))
            .transpose()
    }

    /// The data file (`[market] data`), resolved against the config file's folder; `None` when
    /// unset (the bundled data is replayed).
    pub fn data_path(&self) -> Option<PathBuf> {
        Some(self.resolve(self.market.data.as_ref()?))
    }

    /// Refuses `strategy.params.<key>` when it is set (in the file, or as `--param` in
    /// `overrides`): for a key this run cannot honour, said with `reason` and the key's line.
    ///
    /// # Errors
    /// The key is set.
    pub fn refuse_param(
        &self,
        key: &str,
        overrides: &[String],
        reason: &str,
    ) -> Result<(), ConfigError> {
        if let Some((k, _)) = self
            .strategy
            .params
            .iter()
            .find(|(k, _)| k.get_ref() == key)
        {
            return Err(self.invalid(k.span(), &format!("strategy.params.{key}"), reason));
        }
        if overrides
            .iter()
            .any(|o| o.split('=').next().is_some_and(|k| k.trim() == key))
        {
            return Err(ConfigError::Invalid {
                path: "--param".into(),
                line: 0,
                key: format!("strategy.params.{key}"),
                reason: reason.into(),
            });
        }
        Ok(())
    }

    /// Strategy parameters from the file, then `key=value` overrides from the command line.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the line when a `[strategy.params]` value is not an
    /// integer, float, boolean or string; [`ConfigError::BadOverride`] when an override has no
    /// `=` or an empty key.
    pub fn strategy_params(&self, overrides: &[String]) -> Result<Params, ConfigError> {
        let mut params = Params::new(&self.strategy.name);
        for (key, value) in &self.strategy.params {
            let line = self.line_of(key.span());
            let origin = format!("{} line {line}", self.name());
            let v = match value.get_ref() {
                toml::Value::Integer(i) => ParamValue::Int(*i),
                toml::Value::Float(f) => ParamValue::Float(*f),
                toml::Value::Boolean(b) => ParamValue::Bool(*b),
                toml::Value::String(s) => ParamValue::Str(s.clone()),
                other => {
                    return Err(ConfigError::Invalid {
                        path: self.name(),
                        line,
                        key: format!("strategy.params.{}", key.get_ref()),
                        reason: format!("unsupported {} value", other.type_str()),
                    });
                }
            };
            params.insert(key.get_ref(), v, origin);
        }
        for kv in overrides {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(kv.clone()))?;
            if k.trim().is_empty() {
                return Err(ConfigError::BadOverride(kv.clone()));
            }
            params.insert(
                k.trim(),
                ParamValue::parse(v.trim()),
                format!("--param {kv}"),
            );
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `[section]\nkey = value` (plus `extra` lines first) and returns the limits, or the
    /// error text.
    fn limits_of(section: &str, key: &str, value: &str) -> Result<RiskLimits, String> {
        let text = format!("[{section}]\n{key} = {value}\n");
        Config::parse(&text, Some(Path::new("odd.toml")))
            .and_then(|c| c.risk_limits())
            .map_err(|e| e.to_string())
    }

    fn refused(section: &str, key: &str, value: &str) {
        let err = limits_of(section, key, value).expect_err(&format!("{key} = {value} accepted"));
        assert!(
            err.contains("odd.toml") && err.contains("line 2") && err.contains(key),
            "{key} = {value}: the error names the key and the line: {err}"
        );
    }

    #[test]
    fn every_money_limit_rounds_toward_strict_or_is_refused() {
        // Maxima in token units round down, never up and never to "no limit".
        let l = limits_of("risk", "max_trade_notional", "2500.1234567").unwrap();
        assert_eq!(l.max_trade_notional, Some(U256::from(2_500_123_456u64)));
        let l = limits_of("risk", "max_gas_price_gwei", "1.0000000009").unwrap();
        assert_eq!(l.max_gas_price_wei, Some(U256::from(1_000_000_000u64)));
        let l = limits_of("risk", "max_gas_spend_per_day", "0.0100000000000000001").unwrap();
        assert_eq!(
            l.max_gas_spend_per_day,
            Some(U256::from(10_000_000_000_000_000u64))
        );
        for key in [
            "max_trade_notional",
            "max_gas_price_gwei",
            "max_gas_spend_per_day",
        ] {
            refused("risk", key, "0.0"); // zero: would refuse everything; say so
            refused("risk", key, "1e-30"); // tiny: rounds to nothing
            refused("risk", key, "1e300"); // huge: not representable
            refused("risk", key, "-1.0");
            refused("risk", key, "nan");
            refused("strategy.risk", key, "-1.0");
        }
    }

    #[test]
    fn every_percentage_and_bps_limit_is_range_checked() {
        for key in [
            "max_position_pct",
            "max_gross_exposure_pct",
            "max_daily_loss_pct",
            "max_drawdown_pct",
        ] {
            refused("risk", key, "100.5"); // a loss limit over 100 % never trips
            refused("risk", key, "-1.0");
            refused("risk", key, "inf");
            let l = limits_of("risk", key, "0.0").unwrap();
            let zero = match key {
                "max_position_pct" => Some(l.max_position_pct),
                "max_gross_exposure_pct" => Some(l.max_gross_exposure_pct),
                "max_daily_loss_pct" => l.max_daily_loss_pct,
                _ => l.max_drawdown_pct,
            };
            assert_eq!(zero, Some(0.0), "{key} = 0 stays on at its strictest");
        }
        refused("risk", "max_slippage_bps", "10001");
        refused("risk", "max_price_impact_bps", "0");
        refused("risk", "max_price_impact_bps", "10001");
        let l = limits_of("risk", "max_price_impact_bps", "25").unwrap();
        assert_eq!(l.max_price_impact_bps, Some(25));
        assert_eq!(
            RiskLimits::default().max_price_impact_bps,
            Some(100),
            "on by default"
        );
        // Counts and ages are integers: a negative or fractional value is a type error.
        for key in [
            "max_trades_per_hour",
            "min_seconds_between_trades",
            "max_price_deviation_bps",
            "max_data_age_s",
        ] {
            refused("risk", key, "-1");
            refused("risk", key, "1.5");
            let zero = limits_of("risk", key, "0").unwrap();
            let on = match key {
                "max_trades_per_hour" => zero.max_trades_per_hour == Some(0),
                "min_seconds_between_trades" => zero.min_seconds_between_trades == 0,
                "max_price_deviation_bps" => zero.max_price_deviation_bps == Some(0),
                _ => zero.max_data_age_s == Some(0),
            };
            assert!(on, "{key} = 0 is kept as the strictest value");
        }
        refused("risk", "allowed_contracts", "[\"0x12\"]");
        refused("risk", "allowed_tokens", "\"ETH\"");
    }

    #[test]
    fn kill_switch_and_chain_safety_values_are_refused_not_clamped() {
        refused("kill_switch", "max_consecutive_failures", "0");
        refused("kill_switch", "stale_data_multiple", "0");
        refused("kill_switch", "on_breach", "\"later\"");
        // An automatic breach must not dump at any price: that is an operator's call.
        refused("kill_switch", "on_breach", "\"flatten_now\"");
        refused("chain", "chain_check_every", "0");
        refused("chain", "receipt_timeout_s", "0.0");
        refused("chain", "receipt_timeout_s", "inf");
        refused("chain", "cycle_interval_s", "0.0");
        refused("chain", "cycle_interval_s", "-1.0");
        refused("chain", "cycle_interval_s", "nan");
        refused("chain", "cycle_interval_s", "90000.0");
        refused("venue", "deadline_s", "0");
        refused("chain", "gas_per_swap", "0");
        refused("venue", "gas_per_swap", "0");
        let cfg = Config::parse("[kill_switch]\non_breach = \"reduce_only\"\n", None).unwrap();
        assert_eq!(cfg.kill_policy().unwrap().on_breach, KillMode::ReduceOnly);
    }

    #[test]
    fn max_bet_rounds_down_to_the_collateral_and_never_switches_off() {
        let bet = |v: &str| {
            Config::parse(
                &format!("[strategy]\nname = \"kelly_bettor\"\n[risk]\nmax_bet = {v}\n"),
                Some(Path::new("odd.toml")),
            )
            .and_then(|c| c.max_bet())
            .map_err(|e| e.to_string())
        };
        // 7 decimals for 6-decimal collateral: the cap stays on, rounded down.
        assert_eq!(bet("5.1234567").unwrap(), Some(U256::from(5_123_456u64)));
        for v in ["0.0000001", "0.0", "-5.0", "1e300", "nan"] {
            let err = bet(v).expect_err(v);
            assert!(
                err.contains("line 4") && err.contains("max_bet"),
                "{v}: {err}"
            );
        }
    }

    #[test]
    fn every_risk_and_kill_switch_key_is_accepted_for_every_kind() {
        let all = "[risk]\nmax_trade_notional = 10.0\nmax_position_pct = 50.0\nmax_gross_exposure_pct = 80.0\nmax_daily_loss_pct = 5.0\nmax_drawdown_pct = 10.0\nmax_slippage_bps = 50\nmax_price_impact_bps = 60\nmax_gas_price_gwei = 5.0\nmax_gas_spend_per_day = 0.01\nmax_trades_per_hour = 5\nmin_seconds_between_trades = 30\nallowed_tokens = [\"dUSD\", \"WETH\"]\nallowed_contracts = [\"0x0000000000000000000000000000000000000001\"]\nmax_price_deviation_bps = 200\nmax_data_age_s = 60\nmax_bet = 5.0\n[kill_switch]\nstart_halted = true\nmax_consecutive_failures = 2\non_breach = \"halt\"\nstale_data_multiple = 2\n";
        for kind in ["kelly_bettor", "rebalancer", "ema_cross", "ml_signal"] {
            let text = format!("[strategy]\nname = \"{kind}\"\n{all}");
            let cfg = Config::parse(&text, Some(Path::new("kind.toml")))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let l = cfg.risk_limits().unwrap();
            assert_eq!(l.max_trades_per_hour, Some(5), "{kind}");
            assert_eq!(
                l.max_trade_notional,
                Some(U256::from(10_000_000u64)),
                "{kind}"
            );
            assert_eq!(
                cfg.max_bet().unwrap(),
                Some(U256::from(5_000_000u64)),
                "{kind}"
            );
        }
    }

    #[test]
    fn documented_keys_parse() {
        let text = r#"
[agent]
starting_quote = 10000.0
[market]
data = "path/to/ohlcv.csv"
[venue]
kind = "paper_amm"
fee_bps = 30
depth_quote = 5000000.0
gas_per_swap = 120000
gas_price_gwei = 20.0
[strategy]
name = "ema_cross"
[strategy.params]
fast = 12
slow = 26
size = 0.95
[risk]
max_drawdown_pct = 10.0
max_trade_notional = 2500.0
[strategy.risk]
max_drawdown_pct = 15.0
[kill_switch]
on_breach = "halt"
"#;
        let cfg = Config::parse(text, Some(Path::new("/cfg/a.toml"))).unwrap();
        assert_eq!(cfg.starting_quote().unwrap(), U256::from(10_000_000_000u64));
        assert_eq!(
            cfg.data_path().unwrap(),
            PathBuf::from("/cfg/path/to/ohlcv.csv")
        );
        let amm = cfg.paper_amm().unwrap();
        assert_eq!(amm.gas_price_wei, U256::from(20_000_000_000u64));
        let mut p = cfg.strategy_params(&["fast=5".into()]).unwrap();
        assert_eq!(p.usize("fast", 0).unwrap(), 5, "--param overrides the file");
        assert_eq!(p.usize("slow", 0).unwrap(), 26);
        let l = cfg.risk_limits().unwrap();
        assert_eq!(
            l.max_drawdown_pct,
            Some(15.0),
            "[strategy.risk] overrides [risk]"
        );
        assert_eq!(l.max_trade_notional, Some(U256::from(2_500_000_000u64)));
        assert_eq!(
            l.max_daily_loss_pct,
            RiskLimits::default().max_daily_loss_pct
        );
        assert_eq!(cfg.kill_policy().unwrap().on_breach, KillMode::Halt);
        let err = Config::parse("[kill_switch]\non_breach = \"panic\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("on_breach"), "{err}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::parse(
            "[venue]\nfee_bps = 30\ndepht_quote = 5.0\n",
            Some(Path::new("c.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("c.toml") && err.contains("line 3") && err.contains("depht_quote"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let err = Config::parse(
            "[agent]\n\nstarting_quote = \"lots\"\n",
            Some(Path::new("c.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 3") && err.contains("starting_quote"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let err = Config::parse(
            "[agent]\nstarting_quote = -5.0\n",
            Some(Path::new("c.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("c.toml line 2") && err.contains("agent.starting_quote"),
            "{err}"
        );
        let cfg = Config::parse(
            "[strategy.params]\n\nfast = [1, 2]\n",
            Some(Path::new("c.toml")),
        )
        .unwrap();
        let err = cfg.strategy_params(&[]).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("fast"), "{err}");
    }
}
