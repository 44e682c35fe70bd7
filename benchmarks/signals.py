"""Trades and signals, one core: the cost of the other channels and of a signal computation.

    python -m benchmarks.signals            # about 20 seconds

* **trade parse**: the 1,255 recorded Binance trades of one minute (``tests/fixtures``) through
  ``BinanceController.parse``, against the bare ``msgspec.json.decode`` of the same frames
  (the baseline of the same run);
* **trade store**: those trades, 20 times over with new ids (25,100), through ``SQLiteWriter``
  (``INSERT OR IGNORE`` on the trade key), against the same number of 15-level books (30 level
  rows each) written by the same writer in the same run; from the first submit to the end of
  ``stop`` (which drains and commits);
* **signal computation**: one :meth:`SignalEngine.compute` on a board of ``--markets`` assets on
  five KRW exchanges and four USDT exchanges (15-level books), three sizes; the rows it makes.

Each figure is the best of ``--repeat`` passes. Nothing here reaches the internet.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from benchmarks.global_books import best_rate, lines, timed
from core.model import Market, OrderBookSnapshot
from analytics.signals import BookBoard, SignalEngine
from controllers import BY_EXCHANGE, BinanceController
from storage.writer import SQLiteWriter

TRADES = "binance_spot/rec_hftbacktest_20240808_BTCUSDT_trade_minute_1723161300000.ndjson"
KRW = tuple(e for e, v in BY_EXCHANGE.items() if v.korean)
USDT = ("BINANCE", "OKX", "BYBIT", "KUCOIN")


def book(exchange: str, symbol: str, currency: str, price: float, now: int) -> OrderBookSnapshot:
    tick = price * 0.0001
    bids = tuple((price - tick * (i + 1), 0.5 + i * 0.1) for i in range(15))
    asks = tuple((price + tick * (i + 1), 0.5 + i * 0.1) for i in range(15))
    return OrderBookSnapshot(exchange, symbol, currency, now, now, bids, asks)


def store_rate(items: list, repeat: int) -> float:
    """Items/s through a fresh writer: submit all, stop (drains and commits)."""
    def run() -> tuple[int, float]:
        with tempfile.TemporaryDirectory() as folder:
            writer = SQLiteWriter(Path(folder) / "b.db", queue_size=len(items) + 1)
            writer.start()
            started = time.perf_counter()
            for item in items:
                writer.submit(item)
            writer.stop()
            return len(items), time.perf_counter() - started
    return best_rate(repeat, run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.signals", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markets", type=int, default=20, help="assets on the signal board")
    args = parser.parse_args(argv)
    frames = [line.encode() for line in lines(TRADES)]
    market = [Market("BTC", "USDT")]

    def parse() -> tuple[int, float]:
        controller = BinanceController(market, channels=("orderbook", "trade"))
        return len(frames), timed(lambda: [controller.parse(f, 0) for f in frames])

    def decode() -> tuple[int, float]:
        return len(frames), timed(lambda: [msgspec.json.decode(f) for f in frames])

    parse_rate, decode_rate = best_rate(args.repeat * 4, parse), best_rate(args.repeat * 4, decode)
    controller = BinanceController(market, channels=("orderbook", "trade"))
    recorded = [t for f in frames for t in controller.parse(f, 0)]
    trades = [t._replace(trade_id=f"{t.trade_id}-{copy}") for copy in range(20) for t in recorded]
    books = [book("UPBIT", "BTC", "KRW", 100_000_000 + i, i + 1) for i in range(len(trades))]
    trade_rate, book_rate = store_rate(trades, args.repeat), store_rate(books, args.repeat)

    now = 1_790_000_000_000
    board = BookBoard(clock=lambda: now)
    for n in range(args.markets):
        symbol = f"C{n}"
        for exchange in KRW:
            board.watch(book(exchange, symbol, "KRW", 1_400_000 * (n + 1), now))
        for exchange in USDT:
            board.watch(book(exchange, symbol, "USDT", 1_000 * (n + 1), now))
    board.watch(book("UPBIT", "USDT", "KRW", 1_400, now))
    made: list[int] = []
    engine = SignalEngine(board, lambda table, rows: made.append(len(rows)),
                          notionals=(1_000_000.0, 10_000_000.0, 50_000_000.0),
                          venues=BY_EXCHANGE)
    compute = min(timed(lambda: engine.compute(now)) for _ in range(args.repeat))
    rows = sum(made) // args.repeat

    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.repeat} "
          f"passes ({args.repeat * 4} for the parse)")
    print(f"trade parse   {parse_rate:>10,.0f} trades/s   bare decode {decode_rate:>10,.0f}/s   "
          f"ratio {parse_rate / decode_rate:.2f}")
    print(f"trade store   {trade_rate:>10,.0f} trades/s   15-level books {book_rate:>10,.0f}/s   "
          f"ratio {trade_rate / book_rate:.2f}")
    print(f"signals       {compute * 1000:>10.1f} ms per computation, {args.markets} assets x "
          f"{len(KRW) + len(USDT)} exchanges, {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
