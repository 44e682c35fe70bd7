"""Gate.io ``spot.order_book_update`` against the real recorded session (loopback server)."""

from __future__ import annotations

import pytest

from core.errors import ExchangeError, MalformedMessage
from core.model import Market
from collector.simulator.recorded import GateioRecordedServer
from controllers.gateio import GateioController
from tests.global_helpers import (FIXTURES, fixture_lines, last_books, levels, oracle, resyncs,
                                  run_recorded)

RECORDING = "gateio/rec_cryptofeed_20210422_ws_recv.ndjson"
OMG = Market("OMG", "USDT")


def session(**kwargs) -> tuple[GateioRecordedServer, dict, dict[str, Market]]:
    expected = oracle("gateio/expected_rec_cryptofeed_20210422_replay.json")
    snapshots = {name: (FIXTURES / f"gateio/rec_cryptofeed_20210422_rest_snapshot_{name}.json").read_text()
                 for name in expected["books"]}
    markets = {name: Market(*name.split("_")) for name in expected["books"]}
    return GateioRecordedServer(fixture_lines(RECORDING), snapshots=snapshots, **kwargs), expected, markets


def final(book: dict) -> tuple:
    return levels(book["final_top5_bids"]), levels(book["final_top5_asks"])


def test_recorded_session_ten_pairs_match_the_oracle():
    server, expected, markets = session()
    total = sum(book["applied_msgs"] for book in expected["books"].values())
    with server:
        controller, books, events = run_recorded(
            GateioController, server, list(markets.values()),
            settle=lambda c, _: sum(s.applied for s in c.sync.values()) >= total)
    stored = last_books(books)
    for name, book in expected["books"].items():
        stats = controller.sync[markets[name]]
        assert (stats.snapshots, stats.applied, stats.skipped, stats.resyncs) == (
            1, book["applied_msgs"], book["dropped_msgs"], 0), name
        assert stored[name.replace("_", "")] == final(book), name
    assert sorted(server.rest_requests) == sorted(expected["books"])  # one snapshot each
    assert resyncs(events) == [] and controller.stats.errors == 0
    subscribes = [m for m in server.received if '"spot.order_book_update"' in m]
    assert len(subscribes) == 10 and all('"100ms"' in m for m in subscribes)


@pytest.mark.parametrize("fault", ["drop", "swap", "cross"])
def test_an_injected_fault_resyncs_the_market_once_and_the_book_ends_right(fault):
    server, expected, _ = session(faults={20: fault}, interval=0.01)
    with server:
        controller, books, events = run_recorded(
            GateioController, server, [OMG],
            settle=lambda c, books: c.sync[OMG].snapshots >= 2
            and last_books(books).get("OMGUSDT") == final(expected["books"]["OMG_USDT"]))
    [resync] = resyncs(events)
    cause = "crossed book" if fault == "cross" else "sequence gap"
    assert resync.detail.startswith(cause) and (resync.base, resync.quote) == ("OMG", "USDT")
    stats = controller.sync[OMG]
    assert (stats.resyncs, stats.snapshots) == (1, 2)
    assert server.rest_requests == ["OMG_USDT", "OMG_USDT"]
    assert last_books(books)["OMGUSDT"] == final(expected["books"]["OMG_USDT"])
    assert all(b.bids[0][0] < b.asks[0][0] for b in books)


def test_a_bad_snapshot_or_error_body_is_a_clear_error():
    controller = GateioController([OMG], sink=lambda b: True)
    with pytest.raises(MalformedMessage, match="order book snapshot without id"):
        controller.snapshot_delta(OMG, {"bids": [], "asks": []}, "id", ("current",))
    with pytest.raises(MalformedMessage, match="bad snapshot id or time"):
        controller.snapshot_delta(OMG, {"id": "x", "bids": [], "asks": []}, "id", ("current",))
    with pytest.raises(ExchangeError, match="INVALID_CURRENCY_PAIR: Invalid currency pair OMG_USDX"):
        GateioController.check_body({"label": "INVALID_CURRENCY_PAIR",
                                     "message": "Invalid currency pair OMG_USDX"})
    with pytest.raises(ExchangeError, match="spot.order_book_update subscribe: 2: unknown currency pair"):
        controller.decode('{"channel": "spot.order_book_update", "event": "subscribe", '
                          '"error": {"code": 2, "message": "unknown currency pair"}}')
