#!/usr/bin/env python3
"""The same EMA cross over the same bars in nautilus_trader, for docs/benchmarks.md.

Not part of the test suite. nautilus_trader is not a dependency of defai: install it in a
virtual environment of your own (`python3 -m venv /tmp/nt && /tmp/nt/bin/pip install
nautilus_trader`), then:

    /tmp/nt/bin/python scripts/nautilus_bench.py FILE.csv [--fast 12 --slow 26]

FILE is a generic `timestamp,open,high,low,close,volume` CSV (unix seconds) or a
CryptoDataDownload export (as defai reads them; `.gz` is fine). Prints one JSON object: bars,
the load and engine seconds, the whole script's seconds and bars/s for each. The venue is a
simulated Binance spot ETHUSDT on a cash account with 10,000 USDT; the strategy is
nautilus' own example `EMACrossLongOnly` buying a fixed 1 ETH (nautilus sizes orders in
units, not in shares of equity), so it compares engine speed, not returns.
"""

import argparse
import gzip
import io
import json
import time
from decimal import Decimal

T0 = time.perf_counter()

import pandas as pd  # noqa: E402
from nautilus_trader.backtest.config import BacktestEngineConfig  # noqa: E402
from nautilus_trader.backtest.engine import BacktestEngine  # noqa: E402
from nautilus_trader.config import LoggingConfig  # noqa: E402
from nautilus_trader.examples.strategies.ema_cross_long_only import (  # noqa: E402
    EMACrossLongOnly,
    EMACrossLongOnlyConfig,
)
from nautilus_trader.model.currencies import USDT  # noqa: E402
from nautilus_trader.model.data import BarType  # noqa: E402
from nautilus_trader.model.enums import AccountType, OmsType  # noqa: E402
from nautilus_trader.model.identifiers import Venue  # noqa: E402
from nautilus_trader.model.objects import Money  # noqa: E402
from nautilus_trader.persistence.wranglers import BarDataWrangler  # noqa: E402
from nautilus_trader.test_kit.providers import TestInstrumentProvider  # noqa: E402


def load(path: str) -> pd.DataFrame:
    """OHLCV rows in time order, indexed by UTC timestamp."""
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode()
    lines = text.splitlines()
    # CryptoDataDownload: a banner line, then `Unix,Date,Symbol,Open,High,Low,Close,...`.
    if lines and not lines[0].lower().startswith(("timestamp", "unix")):
        text = "\n".join(lines[1:])
    df = pd.read_csv(io.StringIO(text))
    df.columns = [c.strip().lower() for c in df.columns]
    ts = df["timestamp"] if "timestamp" in df else df["unix"]
    unit = "ms" if ts.iloc[0] > 10**11 else "s"
    df.index = pd.to_datetime(ts, unit=unit, utc=True)
    if "volume" not in df:
        # CryptoDataDownload names the base token's volume `Volume ETH`.
        df["volume"] = df[[c for c in df.columns if c.startswith("volume")][0]]
    df = df[["open", "high", "low", "close", "volume"]].sort_index()
    return df[~df.index.duplicated()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--fast", type=int, default=12)
    ap.add_argument("--slow", type=int, default=26)
    args = ap.parse_args()

    t_load = time.perf_counter()
    df = load(args.file)
    instrument = TestInstrumentProvider.ethusdt_binance()
    step = (df.index[1] - df.index[0]).total_seconds() if len(df) > 1 else 3600
    spec = f"{int(step // 60)}-MINUTE" if step < 3600 else f"{int(step // 3600)}-HOUR"
    bar_type = BarType.from_str(f"{instrument.id}-{spec}-LAST-EXTERNAL")
    bars = BarDataWrangler(bar_type, instrument).process(df)
    load_s = time.perf_counter() - t_load

    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR"))
    )
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=None,
        starting_balances=[Money(10_000, USDT)],
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    engine.add_strategy(
        EMACrossLongOnly(
            EMACrossLongOnlyConfig(
                instrument_id=instrument.id,
                bar_type=bar_type,
                trade_size=Decimal("1"),
                fast_ema_period=args.fast,
                slow_ema_period=args.slow,
                request_historical_bars=False,
            )
        )
    )
    t_run = time.perf_counter()
    engine.run()
    run_s = time.perf_counter() - t_run
    fills = len(engine.trader.generate_fills_report())
    engine.dispose()
    total_s = time.perf_counter() - T0
    n = len(bars)
    print(
        json.dumps(
            {
                "engine": "nautilus_trader",
                "bars": n,
                "fills": fills,
                "load_s": round(load_s, 3),
                "run_s": round(run_s, 3),
                "total_s": round(total_s, 3),
                "run_bars_per_s": round(n / run_s),
                "total_bars_per_s": round(n / total_s),
            }
        )
    )


if __name__ == "__main__":
    main()
