"""KuCoin ``/market/level2`` against the real recorded session (loopback token, WS and REST)."""

from __future__ import annotations

import pytest

from core.model import Market
from collector.simulator.http import Reply
from collector.simulator.recorded import KucoinRecordedServer
from controllers.kucoin import KucoinController
from tests.global_helpers import (FIXTURES, fixture_lines, last_books, levels, oracle, resyncs,
                                  run_recorded)

RECORDING = "kucoin/rec_cryptofeed_20210425_ws_recv.ndjson"
SNX = Market("SNX", "BTC")


def session(**kwargs) -> tuple[KucoinRecordedServer, dict, dict[str, Market]]:
    expected = oracle("kucoin/expected_rec_cryptofeed_20210425_replay.json")
    snapshots = {name: (FIXTURES / f"kucoin/rec_cryptofeed_20210425_rest_snapshot_{name}.json").read_text()
                 for name in expected["books"]}
    markets = {name: Market(*name.split("-")) for name in expected["books"]}
    return KucoinRecordedServer(fixture_lines(RECORDING), snapshots=snapshots, **kwargs), expected, markets


def final(book: dict) -> tuple:
    return levels(book["final_top5_bids"]), levels(book["final_top5_asks"])


def test_recorded_session_nine_markets_match_the_oracle():
    server, expected, markets = session()
    total = sum(book["applied_msgs"] for book in expected["books"].values())
    with server:
        controller, books, events = run_recorded(
            KucoinController, server, list(markets.values()),
            settle=lambda c, _: sum(s.applied for s in c.sync.values()) >= total)
    stored = last_books(books)
    for name, book in expected["books"].items():
        stats = controller.sync[markets[name]]
        assert (stats.snapshots, stats.applied, stats.skipped, stats.resyncs) == (
            1, book["applied_msgs"], book["skipped_msgs"], 0), name
        assert stored[name.replace("-", "")] == final(book), name
    assert sorted(server.rest_requests) == sorted(expected["books"])  # one snapshot each
    assert resyncs(events) == [] and controller.stats.errors == 0
    # a token from bullet-public on the connection, the subscribe after the welcome
    assert server.tokens == ["loopback-token-1"] and "token=loopback-token-1" in server.paths[0]
    [subscribe] = [m for m in server.received if '"subscribe"' in m]
    assert '"/market/level2:' in subscribe and all(name in subscribe for name in expected["books"])


@pytest.mark.parametrize("fault", ["drop", "swap", "cross"])
def test_an_injected_fault_resyncs_the_market_once_and_the_book_ends_right(fault):
    server, expected, _ = session(faults={200: fault}, interval=0.002)
    with server:
        controller, books, events = run_recorded(
            KucoinController, server, [SNX],
            settle=lambda c, books: c.sync[SNX].snapshots >= 2
            and last_books(books).get("SNXBTC") == final(expected["books"]["SNX-BTC"]))
    [resync] = resyncs(events)
    cause = "crossed book" if fault == "cross" else "sequence gap"
    assert resync.detail.startswith(cause) and (resync.base, resync.quote) == ("SNX", "BTC")
    stats = controller.sync[SNX]
    assert (stats.resyncs, stats.snapshots) == (1, 2)
    assert server.rest_requests == ["SNX-BTC", "SNX-BTC"]
    assert last_books(books)["SNXBTC"] == final(expected["books"]["SNX-BTC"])
    assert all(b.bids[0][0] < b.asks[0][0] for b in books)


@pytest.mark.slow
def test_a_failed_token_request_is_logged_and_retried(caplog):
    server, _, _ = session()
    calls = []
    respond = server.respond_post

    def flaky(path):
        calls.append(path)
        if len(calls) == 1:
            return Reply(503, b'{"code": "503000", "msg": "Service unavailable"}')
        return respond(path)

    server.respond_post = flaky
    with server:
        controller, books, events = run_recorded(
            KucoinController, server, [SNX],
            settle=lambda c, _: c.sync[SNX].applied >= 600)
    assert calls == ["/api/v1/bullet-public", "/api/v1/bullet-public"]
    assert controller.sync[SNX].applied == 600 and controller.stats.errors == 1
    assert any("connect failed" in r.getMessage() and "HTTP 503" in r.getMessage()
               for r in caplog.records)
