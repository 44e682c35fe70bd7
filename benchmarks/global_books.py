"""Parse rates of the snapshot + delta controllers on their real recordings, one core.

    python -m benchmarks.global_books            # about 30 seconds

For each global exchange: the recorded book messages of ``tests/fixtures/<exchange>`` go through
the controller's ``parse`` in order, after the recorded snapshots (REST exchanges) are loaded:
decode, sequence rule, local book, checksum where the exchange has one, the top 10 book. The baseline, measured in the same run on the same frames, is the bare
``msgspec.json.decode`` of each frame; the ratio says how much of the time is the book work.
Each figure is the best of ``--repeat`` passes, each pass on a fresh controller.

Nothing here reaches the internet.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable

import msgspec

from core.model import Market, now_ms
from collector.simulator.recorded import KrakenRecordedServer
from controllers import (BinanceController, BinanceFuturesController, BitmexController,
                         BybitController, GateioController, KrakenController, KucoinController,
                         OkxController)
from controllers.deltabook import Delta, DeltaBookController

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
DEPTH = 10
"""Levels a side in each book made (Kraken's recording is a depth-10 subscription)."""


def lines(path: str) -> list[str]:
    return [line for line in (FIXTURES / path).read_text().splitlines() if line.strip()]


def only(frames: list[str], marker: str) -> list[bytes]:
    return [f.encode() for f in frames if marker in f]


def binance(folder: str, cls: type) -> tuple:
    expected = json.loads((FIXTURES / folder / "expected_rec_hftbacktest_20240808_BTCUSDT_replay.json").read_text())
    snapshot = (FIXTURES / folder / expected["files"]["snapshot"]).read_text()
    frames = only(lines(f"{folder}/{expected['files']['depth']}"), "depthUpdate")
    return cls, [Market("BTC", "USDT")], frames, {"BTCUSDT": snapshot}


def cases() -> dict[str, tuple]:
    """name -> (controller class, markets, frames, {exchange market name: REST snapshot body})."""
    gate = json.loads((FIXTURES / "gateio/expected_rec_cryptofeed_20210422_replay.json").read_text())["books"]
    kucoin = json.loads((FIXTURES / "kucoin/expected_rec_cryptofeed_20210425_replay.json").read_text())["books"]
    bitmex = json.loads((FIXTURES / "bitmex/expected_rec_cryptofeed_20210722_replay.json").read_text())["final_books"]
    bitmex_markets = [Market("BTC", "USD") if n == "XBTUSD" else
                      Market(n[:-4], "USDT") if n.endswith("USDT") else
                      Market(n[:-3], n[-3:]) for n in bitmex]
    return {
        "BINANCE (BTCUSDT 2024)": binance("binance_spot", BinanceController),
        "BINANCE_FUTURES (BTCUSDT 2024)": binance("binance_futures", BinanceFuturesController),
        "OKX (3 instruments, checksum)": (
            OkxController, [Market("BTC", "USD-220527"), Market("UNI", "USD-SWAP"), Market("BTC", "USDT")],
            only(lines("okx/rec_cryptofeed_20220513_ws_recv.ndjson"), '"action"'), {}),
        "BYBIT (XRPUSDT, 500 levels)": (
            BybitController, [Market("XRP", "USDT")],
            only(lines("bybit/rec_bybit-archive_20241201_XRPUSDT_orderbook500_linear.ndjson"), "orderbook"), {}),
        "GATEIO (10 pairs)": (
            GateioController, [Market(*n.split("_")) for n in gate],
            only(lines("gateio/rec_cryptofeed_20210422_ws_recv.ndjson"), '"channel":"spot.order_book_update","event":"update"'),
            {n: (FIXTURES / f"gateio/rec_cryptofeed_20210422_rest_snapshot_{n}.json").read_text() for n in gate}),
        "KRAKEN (BTC/USD, checksum)": (
            KrakenController, [Market("BTC", "USD")],
            [line.encode() for line in KrakenRecordedServer(
                lines("kraken/rec_python-kraken-sdk_20230730_BTCUSD_book10_v2.ndjson"), precision=(1, 8)).lines],
            {}),
        "KUCOIN (9 markets)": (
            KucoinController, [Market(*n.split("-")) for n in kucoin],
            only(lines("kucoin/rec_cryptofeed_20210425_ws_recv.ndjson"), "trade.l2update"),
            {n: (FIXTURES / f"kucoin/rec_cryptofeed_20210425_rest_snapshot_{n}.json").read_text() for n in kucoin}),
        "BITMEX (10 markets)": (
            BitmexController, bitmex_markets,
            only(lines("bitmex/rec_cryptofeed_20210722_ws_recv.ndjson"), '"table":"orderBookL2"'), {}),
    }


def prepared(cls: type, markets: list[Market], snapshots: dict[str, str]) -> DeltaBookController:
    """A controller (not started) whose REST snapshots are the recorded ones, loaded."""
    controller = cls(markets, sink=lambda book: True, depth=DEPTH)
    if controller.rest_snapshots:
        recorded: Callable[[Market], Delta] = controller.fetch_snapshot

        def fetch(market: Market) -> Delta:
            body = snapshots[controller.market_name(market)]
            client = controller.rest_client
            client.get_json = lambda *_: json.loads(body)  # type: ignore[method-assign]
            return recorded(market)

        controller.fetch_snapshot = fetch  # type: ignore[method-assign]
        controller.on_connect(markets)
        for market in markets:
            controller._request_snapshot(market)
    return controller


def best_rate(repeat: int, run: Callable[[], tuple[int, float]]) -> float:
    """The best items/s of ``repeat`` calls of ``run``, which returns (items, seconds timed)."""
    best = 0.0
    for _ in range(repeat):
        count, seconds = run()
        best = max(best, count / seconds)
    return best


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.global_books", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes per figure (default: 20)")
    args = parser.parse_args(argv)
    print(f"# {platform.machine()}, Python {platform.python_version()}, msgspec {msgspec.__version__}")
    print(f"{'exchange (recording)':34} {'frames':>7} {'parse/s':>10} {'decode/s':>10} {'ratio':>6} {'books':>6}")
    for name, (cls, markets, frames, snapshots) in cases().items():
        received = now_ms()
        books: list = []

        def parse_all() -> tuple[int, float]:  # a fresh controller each pass, its set-up untimed
            controller = prepared(cls, markets, snapshots)
            books.clear()
            return len(frames), timed(lambda: [books.extend(controller.parse(f, received)) for f in frames])

        rate = best_rate(args.repeat, parse_all)
        decode = best_rate(args.repeat, lambda: (len(frames), timed(
            lambda: deque(map(msgspec.json.decode, frames), maxlen=0))))  # each result dropped
        print(f"{name:34} {len(frames):7d} {rate:10,.0f} {decode:10,.0f} {rate / decode:6.2f} {len(books):6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
