"""Bybit v5 ``orderbook`` against the real recorded archive session (loopback server)."""

from __future__ import annotations

import pytest

from core.model import Market
from collector.simulator.recorded import BybitRecordedServer
from controllers.bybit import BybitController
from tests.global_helpers import fixture_lines, last_books, levels, oracle, resyncs, run_recorded

RECORDING = "bybit/rec_bybit-archive_20241201_XRPUSDT_orderbook500_linear.ndjson"
XRP = Market("XRP", "USDT")


def final(expected: dict) -> tuple:
    return levels(expected["final_top5_bids"]), levels(expected["final_top5_asks"])


def test_recorded_session_matches_the_oracle():
    expected = oracle("bybit/expected_rec_bybit-archive_20241201_replay.json")
    with BybitRecordedServer(fixture_lines(RECORDING)) as server:
        controller, books, events = run_recorded(
            BybitController, server, [XRP],
            settle=lambda c, _: c.sync[XRP].applied >= expected["n_messages"] - 1)
    stats = controller.sync[XRP]
    assert (stats.snapshots, stats.applied, stats.skipped, stats.resyncs) == (1, expected["n_messages"] - 1, 0, 0)
    assert controller.levels_held(XRP) == (expected["final_levels"]["bids"], expected["final_levels"]["asks"])
    assert last_books(books)["XRPUSDT"] == final(expected)
    assert books[-1].timestamp > 1733011200000 and resyncs(events) == []
    assert any('"orderbook.50.XRPUSDT"' in m for m in server.received)


@pytest.mark.parametrize("fault", ["drop", "swap", "cross"])
def test_an_injected_fault_resyncs_the_market_once_and_the_book_ends_right(fault):
    expected = oracle("bybit/expected_rec_bybit-archive_20241201_replay.json")
    server = BybitRecordedServer(fixture_lines(RECORDING), faults={20: fault}, interval=0.01)
    with server:
        controller, books, events = run_recorded(
            BybitController, server, [XRP],
            settle=lambda c, books: c.sync[XRP].snapshots >= 2
            and last_books(books).get("XRPUSDT") == final(expected))
    [resync] = resyncs(events)
    cause = "crossed book" if fault == "cross" else "sequence gap"
    assert resync.detail.startswith(cause) and (resync.base, resync.quote) == ("XRP", "USDT")
    stats = controller.sync[XRP]
    assert (stats.resyncs, stats.snapshots) == (1, 2)
    assert [m for m in server.received if '"unsubscribe"' in m] == [
        '{"req_id": "unsubscribe", "op": "unsubscribe", "args": ["orderbook.50.XRPUSDT"]}']
    assert last_books(books)["XRPUSDT"] == final(expected)
    assert controller.levels_held(XRP) == (500, 500)
    assert all(b.bids[0][0] < b.asks[0][0] for b in books)
