"""The five Korean exchanges and the global ones in one ``python run_controller.py`` run, each
against its loopback server (the global ones replaying their real recorded sessions)."""

from __future__ import annotations

import sqlite3

from collector.simulator.recorded import BinanceRecordedServer, BybitRecordedServer, OkxRecordedServer
from collector.simulator.servers import Servers
from tests.global_helpers import FIXTURES, fixture_lines, levels, oracle
from tests.helpers import expected_books, stored_books
from tests.test_end_to_end import summaries
from tests.test_korea_end_to_end import run

KOREAN = ("UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX")
GLOBAL = "binance,binance_futures,okx,bybit"


def binance(folder: str, futures: bool) -> tuple[BinanceRecordedServer, dict]:
    expected = oracle(f"{folder}/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")
    snapshot = (FIXTURES / folder / expected["files"]["snapshot"]).read_text()
    server = BinanceRecordedServer(fixture_lines(f"{folder}/{expected['files']['depth']}"),
                                   snapshots={"BTCUSDT": snapshot}, futures=futures)
    return server, expected


def test_korean_and_global_exchanges_at_once_store_correct_books(tmp_path):
    spot, spot_expected = binance("binance_spot", False)
    futures, futures_expected = binance("binance_futures", True)
    okx = OkxRecordedServer(fixture_lines("okx/rec_cryptofeed_20220513_ws_recv.ndjson"))
    okx_expected = oracle("okx/expected_rec_cryptofeed_20220513_replay.json")["final_top5"]["BTC-USDT"]
    bybit = BybitRecordedServer(fixture_lines("bybit/rec_bybit-archive_20241201_XRPUSDT_orderbook500_linear.ndjson"))
    bybit_expected = oracle("bybit/expected_rec_bybit-archive_20241201_replay.json")
    named = {name: ["BTC", "XRP"] for name in ("upbit", "bithumb", "coinone", "korbit", "gopax")}
    with Servers(named, 100, interval=0.004) as servers, spot, futures, okx, bybit:
        env = {**servers.env(), **spot.env(), **futures.env(), **okx.env(), **bybit.env()}
        done = run(tmp_path, env, "--exchanges", f"upbit,bithumb,coinone,korbit,gopax,{GLOBAL}",
                   "--symbols", "BTC,XRP", "--duration", "6", "--stats-interval", "2")
        assert all(s.finished.is_set() for s in (spot, futures, okx, bybit))
    assert done.returncode == 0, done.stderr
    db = tmp_path / "ob.db"
    figures = summaries(done.stderr)
    for exchange in KOREAN:
        assert stored_books(db, exchange) == expected_books(servers, exchange), exchange
        assert figures[exchange]["errors"] == figures[exchange]["lost"] == 0, exchange
    finals = {
        ("BINANCE", "BTC"): spot_expected, ("BINANCE_FUTURES", "BTC"): futures_expected,
        ("OKX", "BTC"): {"final_top5_bids": okx_expected["bids"], "final_top5_asks": okx_expected["asks"]},
        ("BYBIT", "XRP"): bybit_expected,
    }
    for (exchange, symbol), expected in finals.items():
        _, bids, asks = stored_books(db, exchange)[symbol][-1]
        assert (bids[:5], asks[:5]) == (levels(expected["final_top5_bids"]),
                                        levels(expected["final_top5_asks"])), exchange
        assert len(bids) == len(asks) == 15, exchange  # the run's --depth
        assert figures[exchange]["lost"] == figures[exchange]["dropped"] == 0, exchange
    conn = sqlite3.connect(db)
    kinds = conn.execute("SELECT exchange, kind, COUNT(*) FROM feed_event GROUP BY exchange, kind").fetchall()
    currencies = dict(conn.execute("SELECT exchange, MIN(currency) FROM orderbook GROUP BY exchange"))
    conn.close()
    assert not [k for k in kinds if k[1] == "resync"]
    assert {e: currencies[e] for e in ("UPBIT", "BINANCE", "OKX", "BYBIT")} == {
        "UPBIT": "KRW", "BINANCE": "USDT", "OKX": "USDT", "BYBIT": "USDT"}
