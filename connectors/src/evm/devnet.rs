//! A local devnet: anvil from the pinned npm package, the real Uniswap V2 factory and router,
//! WETH9, and our two test tokens, with pools at a chosen price; plus Gnosis ConditionalTokens and
//! the FixedProductMarketMakerFactory with a few binary prediction markets in dUSD.
//! [`Devnet::start`] is what `defai devnet` runs and what tests call; dropping the [`Devnet`]
//! stops anvil.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolCall, SolConstructor};
use serde::{Deserialize, Serialize};

use super::artifacts::{Artifact, check_init_code_hash};
use super::bindings::{DevToken, IERC20, IUniswapV2Factory, IUniswapV2Router02, IWETH9};
use super::error::EvmError;
use super::nonce::NonceManager;
use super::prediction::{MarketSpec, PredictionMarkets};
use super::rpc::Chain;
use super::tx::{TxPolicy, TxRequest, TxSender};
use super::wallet::Wallet;
use agent_core::amount::price_to_units;

/// Decimals of the devnet's USD token.
pub const USD_DECIMALS: u8 = 6;
/// Anvil account that deploys, provides liquidity and moves the market.
pub const DEPLOYER_INDEX: usize = 9;
/// Anvil account that is the oracle of the devnet's prediction markets (it reports outcomes).
pub const ORACLE_INDEX: usize = 8;
/// Initial liquidity of each devnet prediction market, whole dUSD.
pub const MARKET_FUNDING_USD: u64 = 10_000;
/// Fee of the devnet prediction markets: 2 % of 1e18, Omen's usual fee.
pub const MARKET_FEE: u64 = 20_000_000_000_000_000;
/// Starting odds of devnet market `i` are `MARKET_ODDS[i % 3]` (outcome 0, outcome 1), percent.
pub const MARKET_ODDS: [[u64; 2]; 3] = [[50, 50], [30, 70], [70, 30]];

/// What the devnet sets up.
#[derive(Debug, Clone, PartialEq)]
pub struct DevnetConfig {
    /// 0 picks a free port.
    pub port: u16,
    /// Seconds between blocks; `None` mines one block per transaction.
    pub block_time: Option<f64>,
    /// WETH price in USD at start.
    pub price: f64,
    /// DVT price in USD at start.
    pub dvt_price: f64,
    /// USD on each side of every pool, whole tokens.
    pub depth_usd: u64,
    /// What each of accounts 0..=8 receives: USD, WETH (wrapped from its ETH) and DVT, whole.
    pub fund_usd: u64,
    /// WETH each of accounts 0..=8 receives, whole tokens.
    pub fund_weth: u64,
    /// DVT each of accounts 0..=8 receives, whole tokens.
    pub fund_dvt: u64,
    /// Binary prediction markets to create (dUSD collateral, [`MARKET_FUNDING_USD`] each,
    /// odds cycling through [`MARKET_ODDS`], oracle = account [`ORACLE_INDEX`]).
    pub markets: usize,
    /// anvil binary; default: `node_modules/.bin/anvil` found from the current directory up.
    pub anvil: Option<PathBuf>,
}

impl DevnetConfig {
    /// WETH at `price` USD, DVT at 2 USD, 5,000,000 dUSD a side in each pool, accounts funded
    /// with 100,000 dUSD, 50 WETH and 50,000 DVT, three prediction markets, automine on a free
    /// port.
    pub fn at_price(price: f64) -> Self {
        Self {
            port: 0,
            block_time: None,
            price,
            dvt_price: 2.0,
            depth_usd: 5_000_000,
            fund_usd: 100_000,
            fund_weth: 50,
            fund_dvt: 50_000,
            markets: 3,
            anvil: None,
        }
    }
}

/// Addresses and facts of a running devnet: what `devnet.json` holds. No keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevnetInfo {
    /// Anvil's HTTP endpoint.
    pub rpc_url: String,
    /// The chain id anvil reports (31337 by default).
    pub chain_id: u64,
    /// The WETH9 contract (18 decimals).
    pub weth: Address,
    /// The dUSD DevToken ([`USD_DECIMALS`] decimals).
    pub usd: Address,
    /// The DVT DevToken (18 decimals).
    pub dvt: Address,
    /// The UniswapV2Factory.
    pub factory: Address,
    /// The UniswapV2Router02 over `factory` and `weth`.
    pub router: Address,
    /// The WETH/dUSD pair, opened at `price`.
    pub weth_usd_pair: Address,
    /// The DVT/dUSD pair, opened at the config's `dvt_price`.
    pub dvt_usd_pair: Address,
    /// Anvil's default accounts 0..=8, funded with USD, WETH and DVT.
    pub accounts: Vec<Address>,
    /// Account 9: deployer, liquidity provider and market mover.
    pub deployer: Address,
    /// WETH's starting price, USD.
    pub price: f64,
    /// The pair init-code hash checked at start ([`super::artifacts::PAIR_INIT_CODE_HASH`]).
    pub pair_init_code_hash: B256,
    /// Gnosis ConditionalTokens (ERC-1155 outcome tokens).
    #[serde(default)]
    pub conditional_tokens: Address,
    /// Gnosis FixedProductMarketMakerFactory.
    #[serde(default)]
    pub fpmm_factory: Address,
    /// Account 8: reports the prediction markets' outcomes.
    #[serde(default)]
    pub oracle: Address,
    /// The binary prediction markets created at start.
    #[serde(default)]
    pub markets: Vec<MarketInfo>,
    /// A second Uniswap V2 deployment (another "DEX", the same npm artifacts) with its own
    /// WETH/dUSD pool at the starting price and depth. The market mover moves only the first
    /// pool, so the two drift apart (for cross-DEX arbitrage). Zero in a devnet.json written
    /// before it existed.
    #[serde(default)]
    pub dex2_factory: Address,
    /// The second deployment's UniswapV2Router02.
    #[serde(default)]
    pub dex2_router: Address,
    /// The second deployment's WETH/dUSD pair.
    #[serde(default)]
    pub dex2_weth_usd_pair: Address,
}

/// A devnet prediction market (a FixedProductMarketMaker over one binary condition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketInfo {
    /// The FixedProductMarketMaker.
    pub address: Address,
    /// Its ConditionalTokens condition.
    pub condition_id: B256,
    /// Its question, [`market_question_id`] of its index.
    pub question_id: B256,
    /// Its collateral (the devnet's dUSD).
    pub collateral: Address,
}

/// Question id of devnet market `i`: keccak256 of `defai devnet market {i}`.
pub fn market_question_id(i: usize) -> B256 {
    alloy::primitives::keccak256(format!("defai devnet market {i}"))
}

impl DevnetInfo {
    /// The two Uniswap V2 deployments' WETH/dUSD pools as `(key, pool, router)`: `dex1` (the
    /// first, which the market mover moves) and `dex2`, for
    /// [`UniswapV2Venue::keyed_set`](super::UniswapV2Venue::keyed_set).
    pub fn dexes(&self) -> [(&'static str, Address, Address); 2] {
        [
            ("dex1", self.weth_usd_pair, self.router),
            ("dex2", self.dex2_weth_usd_pair, self.dex2_router),
        ]
    }

    /// Reads a `devnet.json` written by [`DevnetInfo::write`].
    ///
    /// # Errors
    /// [`EvmError::Devnet`] naming the file when it cannot be read, or with the line and
    /// column when it is not valid JSON for this type.
    pub fn read(path: &Path) -> Result<Self, EvmError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EvmError::Devnet(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| {
            EvmError::Devnet(format!(
                "{}: line {} column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Writes `devnet.json` atomically (a temporary file renamed over `path`).
    ///
    /// # Errors
    /// [`EvmError::Devnet`] naming the file when it cannot be written or renamed.
    pub fn write(&self, path: &Path) -> Result<(), EvmError> {
        // Plain fields only: serialising cannot fail, but an error would still name the file.
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| EvmError::Devnet(format!("{}: {e}", path.display())))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| EvmError::Devnet(format!("{}: {e}", path.display())))
    }
}

/// The platform package of `@foundry-rs/anvil` holding the native binary, e.g.
/// `@foundry-rs/anvil-linux-amd64/bin/anvil`.
fn native_anvil() -> Option<PathBuf> {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let exe = if os == "win32" { "anvil.exe" } else { "anvil" };
    Some(PathBuf::from(format!(
        "node_modules/@foundry-rs/anvil-{os}-{arch}/bin/{exe}"
    )))
}

/// Finds anvil: `$DEFAI_ANVIL`, else the npm package's native binary, else its
/// `node_modules/.bin/anvil` wrapper, from the current directory up, then beside this crate's
/// workspace. The native binary comes first: signals sent to it stop anvil itself, where the
/// node wrapper would have to pass them on.
///
/// # Errors
/// [`EvmError::Devnet`] saying to run `npm ci` (or set `DEFAI_ANVIL`) when no candidate is a
/// file. `$DEFAI_ANVIL` is taken as given, unchecked.
pub fn find_anvil() -> Result<PathBuf, EvmError> {
    if let Ok(p) = std::env::var("DEFAI_ANVIL") {
        return Ok(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    dirs.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")));
    let candidates: Vec<PathBuf> = native_anvil()
        .into_iter()
        .chain([PathBuf::from("node_modules/.bin/anvil")])
        .collect();
    candidates
        .iter()
        .flat_map(|rel| dirs.iter().map(move |d| d.join(rel)))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            EvmError::Devnet(
                "anvil not found: run `npm ci` in the repository (it installs @foundry-rs/anvil), \
                 or set DEFAI_ANVIL"
                    .into(),
            )
        })
}

/// A running devnet. Dropping it stops anvil.
pub struct Devnet {
    anvil: AnvilInstance,
    info: DevnetInfo,
    chain: Chain,
    deployer: TxSender,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet").field("info", &self.info).finish()
    }
}

fn units(whole: u64, decimals: u8) -> U256 {
    U256::from(whole) * U256::from(10u64).pow(U256::from(decimals))
}

/// Starts anvil (the config's binary, else [`find_anvil`]'s) on the config's port and block
/// time.
fn spawn_anvil(cfg: &DevnetConfig) -> Result<AnvilInstance, EvmError> {
    let path = match &cfg.anvil {
        Some(p) => p.clone(),
        None => find_anvil()?,
    };
    let mut builder = Anvil::at(&path).port(cfg.port).timeout(20_000);
    if let Some(bt) = cfg.block_time {
        builder = builder.block_time_f64(bt);
    }
    builder
        .try_spawn()
        .map_err(|e| EvmError::Devnet(format!("cannot start {}: {e}", path.display())))
}

/// The devnet's tokens: WETH9, dUSD and DVT.
#[derive(Debug, Clone, Copy)]
struct DevTokens {
    weth: Address,
    usd: Address,
    dvt: Address,
}

/// The devnet's prediction markets and the contracts they run on.
struct DevMarkets {
    conditional_tokens: Address,
    fpmm_factory: Address,
    /// The account that reports the outcomes ([`ORACLE_INDEX`]).
    oracle: Address,
    markets: Vec<MarketInfo>,
}

impl Devnet {
    /// Starts anvil and deploys everything. Fails loudly if the Uniswap init-code hash differs.
    ///
    /// # Errors
    /// [`EvmError::Devnet`] when the bytecode is missing or its init-code hash differs, a price
    /// is not positive (or rounds to 0 dUSD units), anvil is not found or does not start, or a
    /// deployment has no contract address; as [`TxSender::send`] for any deployment or setup
    /// transaction; as [`PredictionMarkets::create_market`] for the markets. Anvil is stopped
    /// on any error.
    pub async fn start(cfg: DevnetConfig) -> Result<Self, EvmError> {
        let init_hash = check_init_code_hash()?;
        let price_units = price_to_units(cfg.price, USD_DECIMALS)
            .filter(|p| !p.is_zero())
            .ok_or_else(|| EvmError::Devnet(format!("bad price {}", cfg.price)))?;
        let dvt_units = price_to_units(cfg.dvt_price, USD_DECIMALS)
            .filter(|p| !p.is_zero())
            .ok_or_else(|| EvmError::Devnet(format!("bad DVT price {}", cfg.dvt_price)))?;
        let anvil = spawn_anvil(&cfg)?;
        let chain = Chain::connect(&anvil.endpoint())?;
        let chain_id = chain.chain_id().await?;
        let wallet = Self::key_of(&anvil, DEPLOYER_INDEX)?;
        let nonces = Arc::new(NonceManager::new(wallet.address()));
        let deployer = TxSender::new(chain.clone(), wallet, chain_id, nonces, TxPolicy::default())?;
        let me = deployer.address();
        let ops = Ops { tx: &deployer };
        let tokens = ops.deploy_tokens().await?;
        let DevTokens { weth, usd, dvt } = tokens;
        let (factory, router) = ops.deploy_uniswap_v2(weth).await?;

        // Pools: depth_usd on the USD side, the other side at the price.
        let depth = units(cfg.depth_usd, USD_DECIMALS);
        let weth_side = depth * units(1, 18) / price_units;
        let dvt_side = depth * units(1, 18) / dvt_units;
        ops.wrap(weth, weth_side).await?;
        ops.mint(usd, me, depth * U256::from(2)).await?;
        ops.mint(dvt, me, dvt_side).await?;
        ops.add_liquidity(router, weth, weth_side, usd, depth)
            .await?;
        ops.add_liquidity(router, dvt, dvt_side, usd, depth).await?;
        let weth_usd_pair = ops.pair(factory, weth, usd).await?;
        let dvt_usd_pair = ops.pair(factory, dvt, usd).await?;

        // Fund accounts 0..=8.
        let accounts: Vec<Address> = anvil.addresses()[..DEPLOYER_INDEX].to_vec();
        ops.fund(tokens, &accounts, &cfg).await?;
        // Prediction markets: deployed after everything else so the addresses above do not move.
        let markets = ops.prediction_markets(&anvil, usd, cfg.markets).await?;
        // The second DEX: deployed last, so every address above stays where it was.
        let (dex2_factory, dex2_router, dex2_weth_usd_pair) =
            ops.second_dex(weth, usd, weth_side, depth).await?;

        let info = DevnetInfo {
            rpc_url: anvil.endpoint(),
            chain_id,
            weth,
            usd,
            dvt,
            factory,
            router,
            weth_usd_pair,
            dvt_usd_pair,
            accounts,
            deployer: me,
            price: cfg.price,
            pair_init_code_hash: init_hash,
            conditional_tokens: markets.conditional_tokens,
            fpmm_factory: markets.fpmm_factory,
            oracle: markets.oracle,
            markets: markets.markets,
            dex2_factory,
            dex2_router,
            dex2_weth_usd_pair,
        };
        tracing::info!(target: "defai::devnet", rpc = %info.rpc_url, %weth_usd_pair, "devnet ready");
        Ok(Self {
            anvil,
            info,
            chain,
            deployer,
        })
    }

    fn key_of(anvil: &AnvilInstance, i: usize) -> Result<Wallet, EvmError> {
        let key = anvil
            .nth_key(i)
            .ok_or_else(|| EvmError::Devnet(format!("anvil has no account {i}")))?;
        Wallet::from_key_bytes(&B256::from_slice(&key.to_bytes()))
    }

    /// The addresses and facts (what `devnet.json` holds).
    pub fn info(&self) -> &DevnetInfo {
        &self.info
    }
    /// An RPC connection to anvil.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
    /// Anvil's HTTP endpoint.
    pub fn rpc_url(&self) -> &str {
        &self.info.rpc_url
    }
    /// The deployer's sender (account 9): it mints test tokens and moves the market.
    pub fn deployer(&self) -> &TxSender {
        &self.deployer
    }
    /// Anvil's well-known test key of account `i` as hex, for tests and local runs that pass it
    /// through `DEFAI_PRIVATE_KEY`. These keys are public; never fund them on a real chain.
    pub fn test_key_hex(&self, i: usize) -> Option<String> {
        self.anvil
            .nth_key(i)
            .map(|k| alloy::primitives::hex::encode_prefixed(k.to_bytes()))
    }
    /// Whether anvil has exited, and how (`None` while it runs). A devnet whose node died is
    /// of no use: `defai devnet` ends with an error when this says so.
    pub fn anvil_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.anvil.child_mut().try_wait().ok().flatten()
    }

    /// A wallet for anvil account `i`.
    ///
    /// # Errors
    /// [`EvmError::Devnet`] when anvil has no account `i` (it has 10: 0..=9).
    pub fn wallet(&self, i: usize) -> Result<Wallet, EvmError> {
        Self::key_of(&self.anvil, i)
    }
    /// A sender for anvil account `i` with a fresh nonce manager: keep one per account (two
    /// managers of one address would hand out the same nonce). Not for the deployer: use
    /// [`Devnet::deployer`].
    ///
    /// # Errors
    /// [`EvmError::Devnet`] for account 9 (the deployer) or an account anvil lacks.
    pub fn sender(&self, i: usize) -> Result<TxSender, EvmError> {
        if i == DEPLOYER_INDEX {
            return Err(EvmError::Devnet(
                "account 9 already has a sender: use Devnet::deployer()".into(),
            ));
        }
        let wallet = self.wallet(i)?;
        let nonces = Arc::new(NonceManager::new(wallet.address()));
        TxSender::new(
            self.chain.clone(),
            wallet,
            self.info.chain_id,
            nonces,
            TxPolicy::default(),
        )
    }
    /// Prediction markets as seen from anvil account `i` (the oracle is [`ORACLE_INDEX`]), with
    /// a fresh sender (see [`Devnet::sender`]).
    ///
    /// # Errors
    /// As [`Devnet::sender`].
    pub fn prediction_markets(&self, i: usize) -> Result<PredictionMarkets, EvmError> {
        Ok(PredictionMarkets::new(
            self.sender(i)?,
            self.info.conditional_tokens,
            self.info.fpmm_factory,
        ))
    }
}

/// Deployer-side helpers: every call goes through the full transaction lifecycle.
struct Ops<'a> {
    tx: &'a TxSender,
}

impl Ops<'_> {
    async fn send(&self, req: TxRequest) -> Result<super::tx::TxOutcome, EvmError> {
        let mut log = Vec::new();
        self.tx.send(&req, &mut log).await
    }

    /// Deploys WETH9, then the dUSD and DVT DevTokens.
    async fn deploy_tokens(&self) -> Result<DevTokens, EvmError> {
        let weth = self.deploy(Artifact::Weth9, Vec::new()).await?;
        let usd = self
            .deploy(
                Artifact::DevToken,
                DevToken::constructorCall {
                    name_: "Dev USD".into(),
                    symbol_: "dUSD".into(),
                    decimals_: USD_DECIMALS,
                }
                .abi_encode(),
            )
            .await?;
        let dvt = self
            .deploy(
                Artifact::DevToken,
                DevToken::constructorCall {
                    name_: "Dev Token".into(),
                    symbol_: "DVT".into(),
                    decimals_: 18,
                }
                .abi_encode(),
            )
            .await?;
        Ok(DevTokens { weth, usd, dvt })
    }

    /// Gives each of `accounts` the config's USD, WETH (wrapped by the deployer) and DVT.
    async fn fund(
        &self,
        tokens: DevTokens,
        accounts: &[Address],
        cfg: &DevnetConfig,
    ) -> Result<(), EvmError> {
        let DevTokens { weth, usd, dvt } = tokens;
        let fund_weth = units(cfg.fund_weth, 18);
        self.wrap(weth, fund_weth * U256::from(accounts.len()))
            .await?;
        for a in accounts {
            self.mint(usd, *a, units(cfg.fund_usd, USD_DECIMALS))
                .await?;
            self.mint(dvt, *a, units(cfg.fund_dvt, 18)).await?;
            self.transfer(weth, *a, fund_weth).await?;
        }
        Ok(())
    }

    /// Deploys ConditionalTokens and the FPMM factory, then creates `count` binary markets in
    /// `usd` ([`MARKET_FUNDING_USD`] each, odds cycling through [`MARKET_ODDS`]), reported by
    /// anvil's account [`ORACLE_INDEX`].
    async fn prediction_markets(
        &self,
        anvil: &AnvilInstance,
        usd: Address,
        count: usize,
    ) -> Result<DevMarkets, EvmError> {
        let me = self.tx.address();
        let conditional_tokens = self.deploy(Artifact::ConditionalTokens, Vec::new()).await?;
        let fpmm_factory = self.deploy(Artifact::FpmmFactory, Vec::new()).await?;
        let oracle = *anvil
            .addresses()
            .get(ORACLE_INDEX)
            .ok_or_else(|| EvmError::Devnet(format!("anvil has no account {ORACLE_INDEX}")))?;
        let funding = units(MARKET_FUNDING_USD, USD_DECIMALS);
        if count > 0 {
            self.mint(usd, me, funding * U256::from(count)).await?;
        }
        let mut pm = PredictionMarkets::new(self.tx.clone(), conditional_tokens, fpmm_factory);
        let mut markets = Vec::with_capacity(count);
        for i in 0..count {
            let spec = MarketSpec::binary(
                market_question_id(i),
                oracle,
                usd,
                U256::from(MARKET_FEE),
                funding,
            )
            .with_odds(&MARKET_ODDS[i % MARKET_ODDS.len()]);
            let m = pm.create_market(&spec).await?;
            markets.push(MarketInfo {
                address: m.address,
                condition_id: m.condition_id,
                question_id: m.question_id,
                collateral: m.collateral,
            });
        }
        Ok(DevMarkets {
            conditional_tokens,
            fpmm_factory,
            oracle,
            markets,
        })
    }

    /// A second Uniswap V2 deployment: its factory, router and WETH/dUSD pair, opened with
    /// `weth_side` WETH against `depth` dUSD.
    async fn second_dex(
        &self,
        weth: Address,
        usd: Address,
        weth_side: U256,
        depth: U256,
    ) -> Result<(Address, Address, Address), EvmError> {
        let me = self.tx.address();
        let (dex2_factory, dex2_router) = self.deploy_uniswap_v2(weth).await?;
        self.wrap(weth, weth_side).await?;
        self.mint(usd, me, depth).await?;
        self.add_liquidity(dex2_router, weth, weth_side, usd, depth)
            .await?;
        let dex2_weth_usd_pair = self.pair(dex2_factory, weth, usd).await?;
        Ok((dex2_factory, dex2_router, dex2_weth_usd_pair))
    }

    async fn deploy(&self, artifact: Artifact, args: Vec<u8>) -> Result<Address, EvmError> {
        let mut code = artifact.creation_code()?.to_vec();
        code.extend_from_slice(&args);
        let out = self
            .send(TxRequest::deploy(
                format!("deploy {}", artifact.name()),
                code,
            ))
            .await?;
        out.contract_address.ok_or_else(|| {
            EvmError::Devnet(format!(
                "{}: receipt has no contract address",
                artifact.name()
            ))
        })
    }

    /// Wraps `amount` ETH. Deep pools at low prices and long replays need more than anvil's
    /// 10,000 ETH per account: on the devnet the deployer mints itself what it lacks.
    /// A Uniswap V2 deployment: the factory (fees to the deployer) and Router02 over `weth`.
    async fn deploy_uniswap_v2(&self, weth: Address) -> Result<(Address, Address), EvmError> {
        let me = self.tx.address();
        let factory = self
            .deploy(
                Artifact::UniswapV2Factory,
                alloy::sol_types::SolValue::abi_encode(&me),
            )
            .await?;
        let router = self
            .deploy(
                Artifact::UniswapV2Router02,
                alloy::sol_types::SolValue::abi_encode_params(&(factory, weth)),
            )
            .await?;
        Ok((factory, router))
    }

    async fn wrap(&self, weth: Address, amount: U256) -> Result<(), EvmError> {
        let me = self.tx.address();
        let need = amount + units(10, 18);
        if self.tx.chain().balance(me).await? < need {
            let _: serde_json::Value = self
                .tx
                .chain()
                .dev_call("anvil_setBalance", (me, need * U256::from(2)))
                .await?;
        }
        self.send(
            TxRequest::call("wrap ETH", weth, IWETH9::depositCall {}.abi_encode())
                .with_value(amount),
        )
        .await
        .map(drop)
    }

    async fn mint(&self, token: Address, to: Address, amount: U256) -> Result<(), EvmError> {
        self.send(TxRequest::call(
            "mint",
            token,
            DevToken::mintCall { to, value: amount }.abi_encode(),
        ))
        .await
        .map(drop)
    }

    async fn transfer(&self, token: Address, to: Address, amount: U256) -> Result<(), EvmError> {
        self.send(TxRequest::call(
            "transfer",
            token,
            IERC20::transferCall { to, value: amount }.abi_encode(),
        ))
        .await
        .map(drop)
    }

    async fn approve(
        &self,
        token: Address,
        spender: Address,
        amount: U256,
    ) -> Result<(), EvmError> {
        self.send(TxRequest::call(
            "approve",
            token,
            IERC20::approveCall {
                spender,
                value: amount,
            }
            .abi_encode(),
        ))
        .await
        .map(drop)
    }

    async fn add_liquidity(
        &self,
        router: Address,
        a: Address,
        amount_a: U256,
        b: Address,
        amount_b: U256,
    ) -> Result<(), EvmError> {
        self.approve(a, router, amount_a).await?;
        self.approve(b, router, amount_b).await?;
        let deadline = self.tx.chain().block(None).await?.timestamp + 600;
        self.send(TxRequest::call(
            "addLiquidity",
            router,
            IUniswapV2Router02::addLiquidityCall {
                tokenA: a,
                tokenB: b,
                amountADesired: amount_a,
                amountBDesired: amount_b,
                amountAMin: amount_a,
                amountBMin: amount_b,
                to: self.tx.address(),
                deadline: U256::from(deadline),
            }
            .abi_encode(),
        ))
        .await
        .map(drop)
    }

    async fn pair(&self, factory: Address, a: Address, b: Address) -> Result<Address, EvmError> {
        let pair = self
            .tx
            .chain()
            .view(
                factory,
                IUniswapV2Factory::getPairCall {
                    tokenA: a,
                    tokenB: b,
                },
                alloy::eips::BlockId::latest(),
            )
            .await?;
        if pair.is_zero() {
            return Err(EvmError::Devnet(format!("no pair for {a} / {b}")));
        }
        Ok(pair)
    }
}

/// Moves a devnet pool toward a target price each step, like arbitrageurs would: one swap of
/// exactly the size that brings the reserves' price to the target (the deployer mints or wraps
/// what it needs). Chain time advances `interval_s` per step so that bars keep the data's spacing.
#[derive(Debug)]
pub struct MarketMover {
    tx: TxSender,
    router: Address,
    pool: super::uniswap::PoolRef,
    interval_s: u64,
}

impl MarketMover {
    /// Moves the WETH/USD pool of `info` with the deployer's sender.
    ///
    /// # Errors
    /// As [`super::uniswap::PoolRef::resolve`] for `info.weth_usd_pair`.
    pub async fn new(info: &DevnetInfo, tx: TxSender, interval_s: u64) -> Result<Self, EvmError> {
        let pair = agent_core::market::Pair::new(
            agent_core::amount::Token::new("WETH", 18),
            agent_core::amount::Token::new("dUSD", USD_DECIMALS),
        );
        let pool = super::uniswap::PoolRef::resolve(
            tx.chain(),
            pair,
            info.weth_usd_pair,
            info.weth,
            info.usd,
        )
        .await?;
        Ok(Self {
            tx,
            router: info.router,
            pool,
            interval_s,
        })
    }

    /// One bar: advance chain time, then trade the pool to `price` (USD per WETH). The swap
    /// size solves the constant product `x·y = k` for the target price, grossed up for the
    /// 0.3 % LP fee (Uniswap V2's 997/1000).
    ///
    /// # Errors
    /// [`EvmError::Devnet`] for a price that is not positive (or rounds to 0 dUSD units); as
    /// [`TxSender::send`] for the mint, wrap, approval and swap; [`EvmError::Contract`] or
    /// [`EvmError::Rpc`] when the reserves or a balance cannot be read; [`EvmError::Rpc`] when a
    /// block or an anvil method (`evm_increaseTime`, `evm_mine`, `anvil_setBalance`) fails.
    pub async fn step(&self, price: f64) -> Result<(), EvmError> {
        let chain = self.tx.chain();
        let ops = Ops { tx: &self.tx };
        let target = price_to_units(price, USD_DECIMALS)
            .filter(|p| !p.is_zero())
            .ok_or_else(|| EvmError::Devnet(format!("bad target price {price}")))?;
        let (rb, rq) = self
            .pool
            .reserves(chain, alloy::eips::BlockId::latest())
            .await?;
        let one = units(1, 18);
        let k = rb * rq;
        let rq_target = (k * target / one).root(2);
        let rb_target = (k * one / target).root(2);
        let (sell, amount) = if rq_target > rq {
            (
                self.pool.quote,
                (rq_target - rq) * U256::from(1000) / U256::from(997),
            )
        } else if rb_target > rb {
            (
                self.pool.base,
                (rb_target - rb) * U256::from(1000) / U256::from(997),
            )
        } else {
            (self.pool.quote, U256::ZERO)
        };
        let me = self.tx.address();
        if !amount.is_zero() {
            let have = chain
                .view(
                    sell,
                    IERC20::balanceOfCall { owner: me },
                    alloy::eips::BlockId::latest(),
                )
                .await?;
            if have < amount {
                if sell == self.pool.base {
                    ops.wrap(sell, amount - have).await?;
                } else {
                    ops.mint(sell, me, amount - have).await?;
                }
            }
            ops.approve(sell, self.router, amount).await?;
        }
        let _: serde_json::Value = chain
            .dev_call("evm_increaseTime", (self.interval_s,))
            .await?;
        if amount.is_zero() {
            let _: serde_json::Value = chain.dev_call("evm_mine", ()).await?;
            return Ok(());
        }
        let buy = if sell == self.pool.base {
            self.pool.quote
        } else {
            self.pool.base
        };
        let deadline = chain.block(None).await?.timestamp + 3600 + self.interval_s;
        ops.send(TxRequest::call(
            "market move",
            self.router,
            IUniswapV2Router02::swapExactTokensForTokensCall {
                amountIn: amount,
                amountOutMin: U256::ZERO,
                path: vec![sell, buy],
                to: me,
                deadline: U256::from(deadline),
            }
            .abi_encode(),
        ))
        .await
        .map(drop)
    }

    /// Steps through `prices`, one every `pause`, until done or `stop` is set; returns the
    /// number of steps taken.
    ///
    /// # Errors
    /// As [`MarketMover::step`], for the first step that fails.
    pub async fn replay(
        &self,
        prices: &[f64],
        pause: std::time::Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<usize, EvmError> {
        let mut done = 0;
        for p in prices {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            self.step(*p).await?;
            done += 1;
            tokio::time::sleep(pause).await;
        }
        Ok(done)
    }
}
