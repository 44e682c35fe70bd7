"""Binance spot and USD-M futures against their real recorded sessions (loopback servers)."""

from __future__ import annotations

import pytest

from core.model import Market
from collector.simulator.recorded import BinanceRecordedServer
from controllers.binance import BinanceController
from controllers.binance_futures import BinanceFuturesController
from tests.global_helpers import (FIXTURES, fixture_lines, last_books, levels, oracle, resyncs,
                                  run_recorded)

SPOT = "binance_spot"
FUTURES = "binance_futures"
PAIRS = {"BLZETH": Market("BLZ", "ETH"), "LRCBTC": Market("LRC", "BTC"),
         "NKNUSDT": Market("NKN", "USDT"), "RUNEEUR": Market("RUNE", "EUR"),
         "AKROUSDT": Market("AKRO", "USDT"), "CTKUSDT": Market("CTK", "USDT"),
         "KEEPUSDT": Market("KEEP", "USDT"), "SUSHIUSDT": Market("SUSHI", "USDT"),
         "BTCUSDT": Market("BTC", "USDT")}
KINDS = {SPOT: (BinanceController, False, "20211012"), FUTURES: (BinanceFuturesController, True, "20210722")}


def cryptofeed_server(folder: str, **kwargs) -> tuple[BinanceRecordedServer, dict]:
    _, futures, day = KINDS[folder]
    expected = oracle(f"{folder}/expected_rec_cryptofeed_{day}_replay.json")
    snapshots = {name: (FIXTURES / folder / book["snapshot_file"]).read_text()
                 for name, book in expected["books"].items()}
    lines = fixture_lines(f"{folder}/rec_cryptofeed_{day}_ws_recv.ndjson")
    return BinanceRecordedServer(lines, snapshots=snapshots, futures=futures, **kwargs), expected


def btcusdt_server(folder: str, **kwargs) -> tuple[BinanceRecordedServer, dict]:
    _, futures, _ = KINDS[folder]
    expected = oracle(f"{folder}/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")
    snapshot = (FIXTURES / folder / expected["files"]["snapshot"]).read_text()
    lines = fixture_lines(f"{folder}/{expected['files']['depth']}")
    return BinanceRecordedServer(lines, snapshots={"BTCUSDT": snapshot}, futures=futures,
                                 **kwargs), expected


def applied(controller) -> int:
    return sum(s.applied for s in controller.sync.values())


@pytest.mark.parametrize("folder", [SPOT, FUTURES])
def test_recorded_session_four_markets_match_the_oracle(folder):
    cls = KINDS[folder][0]
    server, expected = cryptofeed_server(folder)
    total = sum(book["n_applied"] for book in expected["books"].values())
    markets = [PAIRS[name] for name in expected["books"]]
    with server:
        controller, books, events = run_recorded(cls, server, markets,
                                                 settle=lambda c, _: applied(c) >= total)
    final = last_books(books)
    for name, book in expected["books"].items():
        stats = controller.sync[PAIRS[name]]
        assert (stats.snapshots, stats.applied, stats.resyncs) == (1, book["n_applied"], 0), name
        assert stats.skipped == len(book["dropped_event_lines"]), name
        assert final[name] == (levels(book["final_top5_bids"]), levels(book["final_top5_asks"])), name
    assert sorted(server.rest_requests) == sorted(expected["books"])  # one snapshot each
    assert resyncs(events) == [] and controller.stats.errors == 0


@pytest.mark.parametrize("folder", [SPOT, FUTURES])
def test_recorded_btcusdt_session_matches_the_oracle(folder):
    cls = KINDS[folder][0]
    server, expected = btcusdt_server(folder)
    with server:
        controller, books, events = run_recorded(
            cls, server, [PAIRS["BTCUSDT"]], settle=lambda c, _: applied(c) >= expected["n_applied"])
    stats = controller.sync[PAIRS["BTCUSDT"]]
    assert (stats.snapshots, stats.applied, stats.skipped, stats.resyncs) == (
        1, expected["n_applied"], len(expected["dropped_depth_lines"]), 0)
    assert last_books(books)["BTCUSDT"] == (levels(expected["final_top5_bids"]),
                                            levels(expected["final_top5_asks"]))
    assert books[-1].timestamp > 1723161255000 and resyncs(events) == []


@pytest.mark.parametrize("folder", [SPOT, FUTURES])
@pytest.mark.parametrize("fault", ["drop", "swap", "cross"])
def test_an_injected_fault_resyncs_the_market_once_and_the_book_ends_right(folder, fault):
    cls = KINDS[folder][0]
    server, expected = btcusdt_server(folder, faults={200: fault}, interval=0.001)
    with server:
        controller, books, events = run_recorded(
            cls, server, [PAIRS["BTCUSDT"]],
            settle=lambda c, books: c.sync[PAIRS["BTCUSDT"]].snapshots >= 2
            and last_books(books).get("BTCUSDT") == (levels(expected["final_top5_bids"]),
                                                     levels(expected["final_top5_asks"])))
    stats = controller.sync[PAIRS["BTCUSDT"]]
    [resync] = resyncs(events)
    assert (resync.base, resync.quote) == ("BTC", "USDT")
    cause = {"drop": "sequence gap", "swap": "sequence gap", "cross": "crossed book"}[fault]
    assert resync.detail.startswith(cause), resync.detail
    assert (stats.resyncs, stats.snapshots) == (1, 2)
    assert server.rest_requests == ["BTCUSDT", "BTCUSDT"]
    assert last_books(books)["BTCUSDT"] == (levels(expected["final_top5_bids"]),
                                            levels(expected["final_top5_asks"]))
    assert all(b.bids[0][0] < b.asks[0][0] for b in books)  # no crossed book was stored


def test_a_delta_waiting_for_its_paced_snapshot_is_no_failed_subscribe():
    """With hundreds of markets the REST snapshots, paced to Binance's weight limit, take longer
    than the subscribe timeout; a delta buffered for a market shows its subscription delivers,
    so the market is no longer awaited (no 'no data' error, no subscribe_failed event)."""
    nkn, blz = Market("NKN", "USDT"), Market("BLZ", "ETH")
    controller = BinanceController([nkn, blz], sink=lambda b: True)
    controller.on_connect(controller.markets)  # REST snapshots asked for both, not yet loaded
    controller.expect_books(controller.markets)
    first = fixture_lines(f"{SPOT}/rec_cryptofeed_20211012_ws_recv.ndjson")[0]
    assert controller.handle_payload(first) == 0  # NKNUSDT's delta, buffered
    assert controller.sync[nkn].buffered == 1 and not controller.has_book(nkn)
    assert sorted(controller._awaiting) == ["BINANCE-BLZ-ETH"]
