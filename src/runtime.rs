//! [`AgentBuilder`]: runs any strategy object — bars, bets, a portfolio, or a kind of your own on
//! venues of your own — in backtest, paper or live mode with everything the `defai` commands
//! give an agent: the state folder and its lock, the journal, the latched kill switch and its
//! operator commands, restart from the journal, the risk gate, and (feature `api`) the control
//! API and dashboard. The `defai` binary is a user of this builder.
//!
//! ```no_run
//! use defai::AgentBuilder;
//! use defai::config::Config;
//!
//! # async fn run() -> Result<(), defai::engine::RunError> {
//! let config = Config::load("agent.toml".as_ref())?;
//! let series = defai::engine::load_data(&config, None, false)?;
//! let out = AgentBuilder::new(config)
//!     .strategy(defai::strategies::build("ema_cross", Default::default())?)
//!     .state_dir("state/my-agent")
//!     .paper(&series)
//!     .await?;
//! println!("{} fills, return {:.2} %", out.summary.trades, out.summary.return_pct);
//! # Ok(()) }
//! ```
//!
//! A fleet is several builders sharing one [`NonceRegistry`] (one nonce manager per wallet)
//! and one stop flag, their futures run on one tokio runtime (e.g. a `JoinSet`); with the `api`
//! feature, [`serve_api`] serves them all from one control API.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use agent_core::{
    BettingStrategy, Bettor, Clock, JournalBackend, MarketSource, Observer, Pair, Portfolio,
    Strategy, Venue,
};
use connectors::Series;

use crate::chain::{ChainArgs, NonceRegistry, PredictionSummary, RebalanceSummary};
use crate::config::Config;
use crate::engine::{DataInfo, Drive, Mode, RunError, RunOutput, RunSpec};

/// Builds and runs one agent. Start from a [`Config`] (the `[market]`, `[risk]`,
/// `[kill_switch]`, `[venue]`, `[chain]` sections apply as they do for `defai`), give it a
/// strategy object (else the one `[strategy]` names is built by the installed registry), then
/// finish with the mode: [`backtest`](Self::backtest), [`paper`](Self::paper),
/// [`paper_on_chain`](Self::paper_on_chain), [`live`](Self::live), [`live_bets`](Self::live_bets),
/// [`live_rebalance`](Self::live_rebalance) or, for venues of your own, [`run_on`](Self::run_on).
///
/// Without [`state_dir`](Self::state_dir) nothing persists: no journal, and the kill switch
/// starts active every run. With it the folder is locked for the run (a second agent on it is
/// refused), the journal is `DIR/journal.sqlite` (`defai audit verify --state DIR` checks it), the
/// kill switch is latched in `DIR` (`defai kill --state DIR` halts the agent), and a chain run
/// restarted on the folder resumes from its journal without sending anything twice.
pub struct AgentBuilder {
    spec: RunSpec,
    chain: ChainArgs,
    #[cfg(feature = "api")]
    api: Option<ApiOptions>,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("agent", &self.spec.config.agent_name())
            .field("strategy", &self.spec.strategy.as_ref().map(|s| s.name()))
            .field("state", &self.spec.state)
            .field("observers", &self.spec.observers.len())
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// An agent configured by `config`; nothing else set.
    pub fn new(config: Config) -> Self {
        Self {
            spec: RunSpec::backtest(config),
            chain: ChainArgs::default(),
            #[cfg(feature = "api")]
            api: None,
        }
    }

    /// The strategy object to run, of any kind (a bar strategy, a [`Bettor`] over a betting
    /// strategy, a rebalancer, your own). Unset: the one the config's `[strategy]` names.
    pub fn strategy(mut self, strategy: Box<dyn Strategy>) -> Self {
        self.spec.strategy = Some(strategy);
        self
    }

    /// A betting strategy, run as a [`Bettor`] (one decision per market per cycle; bets sized
    /// in the collateral's units).
    pub fn betting(self, strategy: Box<dyn BettingStrategy>) -> Self {
        self.strategy(Box::new(Bettor::new(strategy)))
    }

    /// A model of your own (any [`ProbabilityModel`](models::ProbabilityModel), e.g. a candle
    /// network) tilting the targets of the built-in rebalancer in
    /// [`live_rebalance`](Self::live_rebalance): each asset's target moves by
    /// `tilt × (2p − 1)` weight points, `p` the model's probability that the asset rises, `tilt`
    /// the strategy parameter (default 0.1). The run is refused if the config's `model`
    /// parameter names a model too, or if a strategy of your own ([`strategy`](Self::strategy))
    /// would replace the built-in rebalancer; only `live_rebalance` reads it.
    pub fn rebalance_model(mut self, model: Box<dyn models::ProbabilityModel>) -> Self {
        self.spec.rebalance_model = Some(model);
        self
    }

    /// `key=value` overrides of the config's `[strategy] params` (as `defai --param`), for the
    /// strategy the config names.
    pub fn params(mut self, overrides: Vec<String>) -> Self {
        self.spec.params = overrides;
        self
    }

    /// The agent's state folder (created if missing): its lock, journal, latched kill switch,
    /// operator commands and risk baselines.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spec.state = Some(dir.into());
        self
    }

    /// Journals to `journal` (any [`JournalBackend`], e.g. a database shared by several
    /// machines) instead of the state folder's SQLite `journal.sqlite`. It is written before
    /// every other observer, a failed write halts the agent, and a live run resumes from it.
    pub fn journal(mut self, journal: Box<dyn JournalBackend>) -> Self {
        self.spec.journal = Some(journal);
        self
    }

    /// How much the state folder's journal keeps: [`Detail::Compact`](connectors::journal::Detail::Compact) (a replay's default: no
    /// record per bar, repeated refusals counted) or [`Detail::Full`](connectors::journal::Detail::Full) (every event; a chain
    /// run's default and only choice: asking a chain run for a compact journal fails with
    /// [`RunError::Setup`] when it starts).
    pub fn journal_detail(mut self, detail: connectors::journal::Detail) -> Self {
        self.spec.journal_detail = Some(detail);
        self
    }

    /// Another observer of the audit stream (after the journal, which sees every event first).
    pub fn observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.spec.observers.push(observer);
        self
    }

    /// Ends the run (after the current event, with its report) once `stop` is set.
    pub fn stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.spec.stop = stop;
        self
    }

    /// Stops after this many market events (blocks or timer ticks on a chain, bars in a replay).
    pub fn max_cycles(mut self, cycles: u64) -> Self {
        self.spec.max_cycles = Some(cycles);
        self
    }

    /// Paces a paper replay at `speed` × real time (bar timestamps); unset: as fast as it runs.
    pub fn speed(mut self, speed: f64) -> Self {
        self.spec.speed = Some(speed);
        self
    }

    /// Keeps every fill and the equity at every bar in [`RunOutput::recording`].
    pub fn record(mut self) -> Self {
        self.spec.record = true;
        self
    }

    /// A progress bar on stderr (feature `cli`; without it nothing is drawn).
    pub fn progress(mut self, show: bool) -> Self {
        self.spec.progress = show;
        self
    }

    /// Takes the chain and contract addresses from a `defai devnet` file instead of `[chain]`.
    pub fn devnet(mut self, file: impl Into<PathBuf>) -> Self {
        self.chain.devnet = Some(file.into());
        self
    }

    /// Signs with this encrypted keystore (its password from `DEFAI_KEYSTORE_PASSWORD` or the
    /// terminal) instead of `[wallet]`'s.
    pub fn keystore(mut self, file: impl Into<PathBuf>) -> Self {
        self.chain.keystore = Some(file.into());
        self
    }

    /// Allows a mainnet chain id (refused by default).
    pub fn allow_mainnet(mut self) -> Self {
        self.chain.allow_mainnet = true;
        self
    }

    /// Shares one nonce manager per wallet with the other agents of a fleet.
    pub fn nonces(mut self, nonces: Arc<NonceRegistry>) -> Self {
        self.chain.nonces = nonces;
        self
    }

    /// Serves the control API and dashboard for this agent while it runs (feature `api`); it
    /// needs a [`state_dir`](Self::state_dir), where `api.json` and `api-token` are written.
    #[cfg(feature = "api")]
    pub fn api(mut self, options: ApiOptions) -> Self {
        self.api = Some(options);
        self
    }

    /// The spec this builder runs (for code that drives [`crate::engine`] itself).
    pub fn into_spec(self) -> RunSpec {
        self.spec
    }

    /// Replays `series` on the simulated pool with the simulated clock. A backtest is a pure
    /// function of its inputs: the state folder's journal and kill switch start afresh.
    ///
    /// # Errors
    /// A config value that cannot be converted (named), the strategy's parameters, the state
    /// folder (locked by another agent, unwritable), or the journal failing to write.
    pub async fn backtest(self, series: &Series) -> Result<RunOutput, RunError> {
        self.replay(Mode::Backtest, true, series).await
    }

    /// Paper-trades `series` on the simulated pool (paced with [`speed`](Self::speed)). The
    /// journal starts afresh each run (the run is reproducible); the kill switch stays latched
    /// in the state folder across runs, as a live agent's does.
    ///
    /// # Errors
    /// As [`backtest`](Self::backtest).
    pub async fn paper(self, series: &Series) -> Result<RunOutput, RunError> {
        self.replay(Mode::Paper, false, series).await
    }

    async fn replay(
        mut self,
        mode: Mode,
        reset_switch: bool,
        series: &Series,
    ) -> Result<RunOutput, RunError> {
        self.spec.mode = mode;
        self.spec.fresh_state = true;
        self.spec.reset_switch = reset_switch;
        let _api = self.start_api()?;
        crate::engine::run(self.spec, series).await
    }

    /// Paper-trades a bar strategy on the configured chain's pool: reads it every block (or
    /// timer tick), fills on the simulated pool, never loads a key. Resumes from the journal.
    ///
    /// # Errors
    /// As [`live`](Self::live), less the wallet.
    pub async fn paper_on_chain(self) -> Result<RunOutput, RunError> {
        self.on_chain(Mode::Paper).await
    }

    /// Trades a bar strategy live on the configured Uniswap V2 pool: signs (key from
    /// `DEFAI_PRIVATE_KEY` or the keystore) and sends every approved intent. Resumes from the
    /// state folder's journal, settling what a previous run left open.
    ///
    /// # Errors
    /// The chain (unreachable, a mainnet id without [`allow_mainnet`](Self::allow_mainnet), a
    /// contract not in `[risk] allowed_contracts`, token decimals unlike the config's), the
    /// wallet, and everything [`backtest`](Self::backtest) can fail on.
    pub async fn live(self) -> Result<RunOutput, RunError> {
        self.on_chain(Mode::Live).await
    }

    async fn on_chain(mut self, mode: Mode) -> Result<RunOutput, RunError> {
        self.chain_mode(mode);
        let _api = self.start_api()?;
        crate::chain::run_chain(self.spec, self.chain).await
    }

    /// Bets live on the chain's prediction markets (Gnosis CTF/FPMM: the devnet's, or those
    /// `[markets]` finds), with the builder's strategy (a [`Bettor`], e.g. through
    /// [`betting`](Self::betting)) or else `kelly_bettor` from the config. The bet limits are
    /// `[strategy] params`' (`max_bet`, `max_market_exposure`, `floor_balance`) tightened by
    /// `[risk]`.
    ///
    /// # Errors
    /// As [`live`](Self::live), and a market or collateral the config cannot reach.
    pub async fn live_bets(mut self) -> Result<PredictionSummary, RunError> {
        self.chain_mode(Mode::Live);
        let _api = self.start_api()?;
        crate::chain::run_bettor(self.spec, self.chain).await
    }

    /// Holds a portfolio live on one Uniswap V2 pool per asset (`[rebalance]` lists tokens,
    /// targets and pools), with the builder's strategy or else the built-in rebalancer.
    ///
    /// # Errors
    /// As [`live`](Self::live), and a token without a pool.
    pub async fn live_rebalance(mut self) -> Result<RebalanceSummary, RunError> {
        self.chain_mode(Mode::Live);
        let _api = self.start_api()?;
        crate::chain::run_rebalancer(self.spec, self.chain).await
    }

    fn chain_mode(&mut self, mode: Mode) {
        self.spec.mode = mode;
        self.spec.fresh_state = false;
        self.spec.reset_switch = false;
    }

    /// The signing sender for venues of your own on `chain` (for [`run_on`](Self::run_on)): the
    /// wallet the CLI would use (the builder's keystore, the config's `key_env`, else
    /// `DEFAI_PRIVATE_KEY`), the config's fee cap and receipt policy, and the nonce manager of
    /// the builder's registry (one per wallet across a fleet). The chain must answer
    /// `chain_id`, and a mainnet id is refused without [`allow_mainnet`](Self::allow_mainnet).
    /// With `[risk] allowed_contracts` set, the sender refuses every transaction to a contract
    /// not listed (and every contract creation) before it is simulated or signed.
    ///
    /// # Errors
    /// The chain answers another id or a mainnet one unallowed, the RPC fails, or the wallet
    /// or a limit cannot be read.
    pub async fn sender(
        &self,
        chain: &connectors::evm::Chain,
        chain_id: u64,
    ) -> Result<connectors::evm::TxSender, RunError> {
        connectors::evm::guard::check_chain(chain, chain_id, self.chain.allow_mainnet).await?;
        crate::chain::live_sender(&self.spec.config, &self.chain, chain, chain_id)
    }

    /// Runs the strategy on a source and venue of your own (e.g. a
    /// [`VenueSet`](agent_core::VenueSet) of several DEXes): `pairs[0]` is the agent's own pair,
    /// the others' bases are held too (every pair quoted in the numéraire), `portfolio` the
    /// starting book. In [`Mode::Live`] the journal resumes (a restart settles and sells back
    /// what a previous run left open) and data age is measured against the wall clock; otherwise
    /// the state folder starts afresh.
    ///
    /// # Errors
    /// `pairs` empty or a pair listed twice ([`RunError::Setup`]), and everything
    /// [`backtest`](Self::backtest) can fail on.
    pub async fn run_on<S: MarketSource, V: Venue>(
        mut self,
        mode: Mode,
        pairs: Vec<Pair>,
        portfolio: Portfolio,
        source: S,
        venue: V,
    ) -> Result<RunOutput, RunError> {
        let mut pairs = pairs.into_iter();
        let pair = pairs
            .next()
            .ok_or_else(|| RunError::Setup("run_on: no pair given".into()))?;
        let live = mode == Mode::Live;
        if live {
            self.chain_mode(mode);
        } else {
            self.spec.mode = mode;
            self.spec.fresh_state = true;
        }
        let strategy = match self.spec.strategy.take() {
            Some(s) => s,
            None => crate::engine::build_strategy(&self.spec.config, &self.spec.params)?,
        };
        let _api = self.start_api()?;
        let drive = Drive {
            pair,
            portfolio,
            clock: Clock::Simulated,
            total: self.spec.max_cycles,
            data: DataInfo {
                source: format!("{} source", strategy.name()),
                ..DataInfo::default()
            },
            chain_id: None,
            wall_data_age: live,
            bet_limits: None,
        };
        drive
            .go_with(&mut self.spec, source, venue, strategy, pairs.collect())
            .await
    }

    #[cfg(feature = "api")]
    fn start_api(&mut self) -> Result<Option<ApiRunning>, RunError> {
        let Some(options) = self.api.take() else {
            return Ok(None);
        };
        let state = self.spec.state.clone().ok_or_else(|| {
            RunError::Setup("the control API needs a state folder (AgentBuilder::state_dir)".into())
        })?;
        let name = self.spec.strategy.as_ref().map_or_else(
            || self.spec.config.strategy.name.clone(),
            |s| s.name().to_string(),
        );
        let agent = ApiAgent {
            name: self.spec.config.agent_name(),
            state,
            mode: self.spec.mode,
            strategy: name,
        };
        let (mut handles, server) = serve_api(&options, std::slice::from_ref(&agent))?;
        let handle = handles.remove(0);
        self.spec.observers.push(handle.observer());
        Ok(Some(ApiRunning(server)))
    }

    #[cfg(not(feature = "api"))]
    fn start_api(&mut self) -> Result<Option<()>, RunError> {
        Ok(None)
    }
}

/// Where and how the control API listens (feature `api`).
#[cfg(feature = "api")]
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The socket address (port 0: any free port). Loopback unless `public`.
    pub addr: std::net::SocketAddr,
    /// Serve on a non-loopback address anyway (behind a TLS proxy): the bearer token would
    /// otherwise cross the network in the clear.
    pub public: bool,
}

/// The server of a running agent's API; dropping it stops the server and removes `api.json`.
#[cfg(feature = "api")]
#[derive(Debug)]
struct ApiRunning(#[allow(dead_code)] crate::control::ApiServer);

/// An agent the control API reports on.
#[cfg(feature = "api")]
#[derive(Debug, Clone)]
pub struct ApiAgent {
    /// Its `[agent] name`.
    pub name: String,
    /// Its state folder; the server's `api.json` and `api-token` are written there.
    pub state: PathBuf,
    /// How it runs.
    pub mode: Mode,
    /// Its strategy's name.
    pub strategy: String,
}

/// Starts one control API and dashboard for `agents`: each state folder gets the server's
/// `api.json` and `api-token` (mode 0600). Returns the agents' board handles, in order (add
/// each one's [`observer`](crate::control::AgentHandle::observer) to its agent), and the server
/// (dropping it stops the server and removes the files).
///
/// # Errors
/// A non-loopback address without `public`, a state folder held by another agent or
/// unwritable, the address in use, or no randomness for the token.
#[cfg(feature = "api")]
pub fn serve_api(
    options: &ApiOptions,
    agents: &[ApiAgent],
) -> Result<(Vec<crate::control::AgentHandle>, crate::control::ApiServer), RunError> {
    use crate::control::{ApiServer, ApiToken, Board};
    use connectors::StateDir;
    if !options.addr.ip().is_loopback() && !options.public {
        return Err(RunError::Setup(format!(
            "--api {}: not a loopback address. The API halts and resumes the agent over plain \
             HTTP, so its bearer token would cross the network in the clear: keep it on \
             127.0.0.1 (reach it through an SSH tunnel), or pass --api-public to serve it there \
             anyway (behind a TLS proxy)",
            options.addr
        )));
    }
    let api_err = |e: crate::control::ControlError| RunError::Setup(format!("control API: {e}"));
    let board = Board::new();
    let mut handles = Vec::with_capacity(agents.len());
    let mut dirs = Vec::with_capacity(agents.len());
    for a in agents {
        let dir = StateDir::open(&a.state)?;
        // Refused here, before this process writes its endpoint over the one of an agent that
        // holds the folder (the run itself takes the lock for good).
        drop(dir.lock()?);
        let dir = std::fs::canonicalize(&a.state).unwrap_or_else(|_| a.state.clone());
        let handle = board.register(&a.name, Some(dir.clone()));
        handle.describe(a.mode.name(), &a.strategy);
        handles.push(handle);
        dirs.push(dir);
    }
    let mut server = ApiServer::start(board, options.addr, ApiToken::generate().map_err(api_err)?)
        .map_err(api_err)?;
    for dir in &dirs {
        server.publish(dir).map_err(api_err)?;
    }
    let url = server.url();
    for (a, dir) in agents.iter().zip(&dirs) {
        tracing::info!(
            target: "defai::api",
            "agent `{}`: control API {url}, dashboard {url}/#token=<the contents of {}> \
             (`defai status --state {}`)",
            a.name,
            dir.join(crate::control::TOKEN_FILE).display(),
            dir.display()
        );
    }
    Ok((handles, server))
}
