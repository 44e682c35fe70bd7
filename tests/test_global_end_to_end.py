"""The five Korean exchanges and the eight global ones in one ``python run_controller.py`` run,
each against its loopback server (the global ones replaying their real recorded sessions)."""

from __future__ import annotations

import argparse
import sqlite3

import pytest

from collector.cli import build_parser, config_from_args
from core.errors import ConfigError
from core.model import Market
from collector.simulator.recorded import (BinanceRecordedServer, BitmexRecordedServer,
                                          BybitRecordedServer, GateioRecordedServer,
                                          KrakenRecordedServer, KucoinRecordedServer,
                                          OkxRecordedServer)
from tests.sim_servers import Servers
from tests.global_helpers import FIXTURES, fixture_lines, levels, oracle
from tests.helpers import expected_books, stored_books
from tests.test_end_to_end import summaries
from tests.test_korea_end_to_end import run

KOREAN = ("UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX")
GLOBAL = "binance,binance_futures,okx,bybit,gateio,kraken,kucoin,bitmex"
DEPTH = 10  # Kraken's recording is a depth-10 subscription


def binance(folder: str, futures: bool) -> tuple[BinanceRecordedServer, dict]:
    expected = oracle(f"{folder}/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")
    snapshot = (FIXTURES / folder / expected["files"]["snapshot"]).read_text()
    server = BinanceRecordedServer(fixture_lines(f"{folder}/{expected['files']['depth']}"),
                                   snapshots={"BTCUSDT": snapshot}, futures=futures)
    return server, expected


def top5(bids, asks) -> dict:
    return {"final_top5_bids": bids[:5], "final_top5_asks": asks[:5]}


@pytest.mark.slow
def test_korean_and_eight_global_exchanges_at_once_store_correct_books(tmp_path):
    spot, spot_expected = binance("binance_spot", False)
    futures, futures_expected = binance("binance_futures", True)
    okx = OkxRecordedServer(fixture_lines("okx/rec_cryptofeed_20220513_ws_recv.ndjson"))
    okx_expected = oracle("okx/expected_rec_cryptofeed_20220513_replay.json")["final_top5"]["BTC-USDT"]
    bybit = BybitRecordedServer(fixture_lines("bybit/rec_bybit-archive_20241201_XRPUSDT_orderbook500_linear.ndjson"))
    bybit_expected = oracle("bybit/expected_rec_bybit-archive_20241201_replay.json")
    gate_expected = oracle("gateio/expected_rec_cryptofeed_20210422_replay.json")["books"]["OMG_USDT"]
    gate = GateioRecordedServer(fixture_lines("gateio/rec_cryptofeed_20210422_ws_recv.ndjson"), snapshots={
        "OMG_USDT": (FIXTURES / "gateio/rec_cryptofeed_20210422_rest_snapshot_OMG_USDT.json").read_text()})
    kraken = KrakenRecordedServer(fixture_lines("kraken/rec_python-kraken-sdk_20230730_BTCUSD_book10_v2.ndjson"),
                                  precision=(1, 8))
    kraken_expected = oracle("kraken/expected_rec_python-kraken-sdk_20230730_replay.json")
    kucoin_expected = oracle("kucoin/expected_rec_cryptofeed_20210425_replay.json")["books"]["SNX-BTC"]
    kucoin = KucoinRecordedServer(fixture_lines("kucoin/rec_cryptofeed_20210425_ws_recv.ndjson"), snapshots={
        "SNX-BTC": (FIXTURES / "kucoin/rec_cryptofeed_20210425_rest_snapshot_SNX-BTC.json").read_text()})
    bitmex = BitmexRecordedServer(fixture_lines("bitmex/rec_cryptofeed_20210722_ws_recv.ndjson"))
    bitmex_expected = oracle("bitmex/expected_rec_cryptofeed_20210722_replay.json")["final_books"]["XBTUSD"]
    recorded = (spot, futures, okx, bybit, gate, kraken, kucoin, bitmex)
    named = {name: ["BTC", "XRP"] for name in ("upbit", "bithumb", "coinone", "korbit", "gopax")}
    with Servers(named, 100, interval=0.004, gopax={"depth": DEPTH}, usdt_krw=1400.0) as servers, \
            spot, futures, okx, bybit, gate, kraken, kucoin, bitmex:
        env = {**servers.env()}
        for server in recorded:
            env.update(server.env())
        done = run(tmp_path, env, "--exchanges", f"upbit,bithumb,coinone,korbit,gopax,{GLOBAL}",
                   "--symbols", "BTC,XRP", "--depth", str(DEPTH), "--duration", "8",
                   "--stats-interval", "2", "--markets",
                   "gateio:OMG/USDT,kraken:BTC/USD,kucoin:SNX/BTC,bitmex:BTC/USD")
        assert all(s.finished.is_set() for s in recorded)
    assert done.returncode == 0, done.stderr
    db = tmp_path / "ob.db"
    figures = summaries(done.stderr)
    for exchange in KOREAN:
        assert stored_books(db, exchange) == expected_books(servers, exchange, DEPTH), exchange
        assert figures[exchange]["errors"] == figures[exchange]["lost"] == 0, exchange
    finals = {
        ("BINANCE", "BTC", "USDT"): spot_expected, ("BINANCE_FUTURES", "BTC", "USDT"): futures_expected,
        ("OKX", "BTC", "USDT"): top5(okx_expected["bids"], okx_expected["asks"]),
        ("BYBIT", "XRP", "USDT"): bybit_expected,
        ("GATEIO", "OMG", "USDT"): gate_expected,
        ("KRAKEN", "BTC", "USD"): top5(kraken_expected["final_top10_bids"], kraken_expected["final_top10_asks"]),
        ("KUCOIN", "SNX", "BTC"): kucoin_expected,
        ("BITMEX", "BTC", "USD"): top5(bitmex_expected["top5_bids"], bitmex_expected["top5_asks"]),
    }
    conn = sqlite3.connect(db)
    for (exchange, symbol, currency), expected in finals.items():
        _, bids, asks = stored_books(db, exchange)[symbol][-1]
        assert (bids[:5], asks[:5]) == (levels(expected["final_top5_bids"]),
                                        levels(expected["final_top5_asks"])), exchange
        assert len(bids) == len(asks) == DEPTH, exchange  # the run's --depth
        assert figures[exchange]["lost"] == figures[exchange]["dropped"] == 0, exchange
        assert conn.execute("SELECT DISTINCT currency FROM orderbook WHERE exchange = ?",
                            (exchange,)).fetchall() == [(currency,)], exchange
    kinds = conn.execute("SELECT exchange, kind, COUNT(*) FROM feed_event GROUP BY exchange, kind").fetchall()
    conn.close()
    assert not [k for k in kinds if k[1] == "resync"]
    assert all(figures[e]["errors"] == 0 for e in ("GATEIO", "KRAKEN", "KUCOIN", "BITMEX"))


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_markets_pins_the_exact_markets_of_the_exchanges_it_names():
    config, _ = config_from_args(parse("--exchanges", "upbit,kraken,okx", "--symbols", "BTC,ETH",
                                       "--markets", "kraken:BTC/USD,KRAKEN:eth/usd,okx:BTC/USD-SWAP"), {})
    assert config.markets == {"kraken": [Market("BTC", "USD"), Market("ETH", "USD")],
                              "okx": [Market("BTC", "USD-SWAP")]}
    assert config.symbols == ["BTC", "ETH"]  # still Upbit's


@pytest.mark.parametrize("given, message", [
    ("kraken:BTCUSD", "bad --markets entry 'kraken:BTCUSD'"),
    ("BTC/USD", "bad --markets entry 'BTC/USD'"),
    ("bitmex:BTC/USD", "--markets names 'bitmex', which is not in --exchanges"),
])
def test_a_bad_markets_entry_is_one_clear_error(given, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        config_from_args(parse("--exchanges", "kraken", "--markets", given), {})
