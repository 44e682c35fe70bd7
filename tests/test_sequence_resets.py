"""Sequence resets as OKX and Bybit document them, when the message that carries the reset is
lost, and the market watchdog: recorded frames fed to ``handle_payload`` without sockets, and the
same through the recorded loopback servers (the other markets on the connection keep flowing)."""

from __future__ import annotations

import json

import pytest

from core.model import Market
from collector.simulator.recorded import (BybitRecordedServer, OkxRecordedServer, TruthBook,
                                          _numbered_okx)
from controllers.bybit import BybitController
from controllers.okx import OkxController
from tests.global_helpers import fixture_lines, last_books, levels, oracle, resyncs, run_recorded
from tests.test_sync_recordings import book_frames

OKX_RECORDING = "okx/rec_cryptofeed_20220513_ws_recv.ndjson"
OKX_MARKETS = {"BTC-USD-220527": Market("BTC", "USD-220527"),
               "UNI-USD-SWAP": Market("UNI", "USD-SWAP"), "BTC-USDT": Market("BTC", "USDT")}
BTC_USDT = OKX_MARKETS["BTC-USDT"]
OKX_RESET = ("BTC-USDT", 40)  # BTC-USDT's 40th update resets its seqId to 3, as after maintenance
BYBIT_RECORDING = "bybit/rec_bybit-archive_20241201_XRPUSDT_orderbook500_linear.ndjson"
XRP = Market("XRP", "USDT")
BYBIT_RESTART = 20  # a service restart: a snapshot with u = 1 before the 20th book frame


def okx_want() -> dict[str, tuple]:
    final = oracle("okx/expected_rec_cryptofeed_20220513_replay.json")["final_top5"]
    return {name: (levels(final[name]["bids"]), levels(final[name]["asks"])) for name in OKX_MARKETS}


def bybit_want() -> tuple:
    expected = oracle("bybit/expected_rec_bybit-archive_20241201_replay.json")
    return levels(expected["final_top5_bids"]), levels(expected["final_top5_asks"])


def okx_reset_frames() -> tuple[list[str], int]:
    """The served OKX book frames with BTC-USDT's sequence reset, and the reset frame's place."""
    server = OkxRecordedServer.__new__(OkxRecordedServer)  # its rules only: no socket
    frames = book_frames(OkxRecordedServer, _numbered_okx(fixture_lines(OKX_RECORDING), OKX_RESET),
                         OKX_MARKETS)
    data = [json.loads(frame)["data"][0] for frame in frames]
    [reset] = [p for p, d in enumerate(data) if d["prevSeqId"] > d["seqId"]]
    assert server.book_frame(frames[reset]) == "BTC-USDT"
    return frames, reset


def bybit_restart_frames() -> list[str]:
    server = BybitRecordedServer.__new__(BybitRecordedServer)  # its rules only: no socket
    frames = book_frames(BybitRecordedServer,
                         server._restarted(fixture_lines(BYBIT_RECORDING), BYBIT_RESTART), {"XRPUSDT"})
    assert '"u": 1,' in frames[BYBIT_RESTART] and '"snapshot"' in frames[BYBIT_RESTART]
    return frames


def feed(controller, server_cls, frames: list[str], drop: int) -> list:
    """Feed ``frames`` to ``controller.handle_payload`` in order, without the one at ``drop``
    (lost on the way); when a market is resynced, what its resubscribe brings comes next: a
    snapshot of the exchange's book as it stands (the truth, kept from every frame, the lost
    one too). Returns the books handed on."""
    server = server_cls.__new__(server_cls)
    truths: dict[str, TruthBook] = {}
    markets = {controller.market_name(m): m for m in controller.markets}
    for position, frame in enumerate(frames):
        name = server.book_frame(frame)
        server.advance(truths.setdefault(name, TruthBook()), frame)
        if position == drop:
            continue
        controller.handle_payload(frame, 1_000_000 + position)
        if controller._sync[markets[name]].requested:
            assert controller._snapshot_requests.get_nowait() == markets[name]
            controller.handle_payload(server.snapshot_frame(name, truths[name]), 1_000_000 + position)


def collecting(cls, markets):
    stored, events = [], []
    controller = cls(markets, sink=lambda b: stored.append(b) or True, events=events.append, depth=5)
    controller.on_connect(controller.markets)
    return controller, stored, events


def test_okx_seq_reset_whose_message_was_lost_resyncs_once_and_ends_at_the_truth():
    frames, reset = okx_reset_frames()
    controller, stored, events = collecting(OkxController, list(OKX_MARKETS.values()))
    feed(controller, OkxRecordedServer, frames, drop=reset)
    [resync] = resyncs(events)
    assert (resync.base, resync.quote) == ("BTC", "USDT")
    assert resync.detail.startswith("sequence reset: 2 updates chain below the book's id"), resync.detail
    final, want = last_books(stored), okx_want()
    for name, market in OKX_MARKETS.items():
        stats = controller.sync[market]
        assert final[market.base + market.quote] == want[name], name
        assert (stats.resyncs, stats.snapshots) == ((1, 2) if market == BTC_USDT else (0, 1)), name
        assert stats.checksum_failures == 0 and stats.checksums > 80, name  # checked on the truth
    assert controller.stats.errors == 0


def test_okx_seq_reset_received_is_followed_without_a_resync():
    frames, _ = okx_reset_frames()
    controller, stored, events = collecting(OkxController, list(OKX_MARKETS.values()))
    feed(controller, OkxRecordedServer, frames, drop=-1)
    assert resyncs(events) == [] and controller.stats.errors == 0
    final, want = last_books(stored), okx_want()
    assert all(final[m.base + m.quote] == want[n] for n, m in OKX_MARKETS.items())


def test_bybit_restart_snapshot_lost_resyncs_once_and_ends_at_the_truth():
    controller, stored, events = collecting(BybitController, [XRP])
    feed(controller, BybitRecordedServer, bybit_restart_frames(), drop=BYBIT_RESTART)
    [resync] = resyncs(events)
    assert resync.detail.startswith("sequence reset: book at 20254888, update 2 went back"), resync.detail
    stats = controller.sync[XRP]
    assert (stats.resyncs, stats.snapshots) == (1, 2)
    assert last_books(stored)["XRPUSDT"] == bybit_want() and controller.levels_held(XRP) == (500, 500)


def test_bybit_restart_snapshot_received_replaces_the_book_without_a_resync():
    controller, stored, events = collecting(BybitController, [XRP])
    feed(controller, BybitRecordedServer, bybit_restart_frames(), drop=-1)
    assert resyncs(events) == [] and controller.sync[XRP].snapshots == 2
    assert last_books(stored)["XRPUSDT"] == bybit_want()


def test_bybit_delta_with_u_1_resyncs():
    frames = book_frames(BybitRecordedServer, fixture_lines(BYBIT_RECORDING), {"XRPUSDT"})
    controller, stored, events = collecting(BybitController, [XRP])
    controller.handle_payload(frames[0], 1)
    restart = json.loads(frames[1])
    restart["data"]["u"] = 1  # a restart sent as a delta: only changes, not the whole book
    assert controller.handle_payload(json.dumps(restart), 2) == 0
    [resync] = resyncs(events)
    assert resync.detail.startswith("sequence reset: book at 20254869, update 1 went back")
    assert not controller.has_book(XRP) and controller._snapshot_requests.get_nowait() == XRP


def bad_level(frame: str, key: str) -> str:
    """``frame`` (a snapshot) with its third bid's price no number."""
    message = json.loads(frame)
    data = message["data"][0] if isinstance(message["data"], list) else message["data"]
    data[key][2][0] = "1.2.3"
    return json.dumps(message)


@pytest.mark.parametrize("venue", ["okx", "bybit"])
def test_a_snapshot_with_a_bad_level_is_rejected_whole_and_asked_again(venue):
    if venue == "okx":
        cls, market, key = OkxController, BTC_USDT, "bids"
        frames = book_frames(OkxRecordedServer, fixture_lines(OKX_RECORDING), {"BTC-USDT"})
    else:
        cls, market, key = BybitController, XRP, "b"
        frames = book_frames(BybitRecordedServer, fixture_lines(BYBIT_RECORDING), {"XRPUSDT"})
    controller, stored, events = collecting(cls, [market])
    for book_before in (False, True):  # on a new subscription, and replacing a book
        if book_before:
            controller.handle_payload(frames[0], 1)
            assert controller.has_book(market) and len(stored) == 1
        assert controller.handle_payload(bad_level(frames[0], key), 2) == 0
        assert controller.levels_held(market) == (0, 0)  # no half-built book
        assert controller._snapshot_requests.get_nowait() == market  # asked again
        assert resyncs(events)[-1].detail.startswith("snapshot rejected: bad level")
        assert controller._sync[market].requested
    assert controller.stats.errors == 2 and len(stored) == 1
    controller.handle_payload(frames[0], 3)  # the snapshot asked for
    assert controller.has_book(market) and not controller._sync[market].requested


def test_okx_lost_reset_over_the_wire_recovers_while_the_other_markets_flow():
    frames, reset = okx_reset_frames()
    want = okx_want()
    server = OkxRecordedServer(fixture_lines(OKX_RECORDING), numbered=True, reset=OKX_RESET,
                               faults={reset: "drop"}, interval=0.002)
    with server:
        controller, books, events = run_recorded(
            OkxController, server, list(OKX_MARKETS.values()),
            settle=lambda c, books: c.sync[BTC_USDT].snapshots >= 2
            and all(last_books(books).get(m.base + m.quote) == want[n] for n, m in OKX_MARKETS.items()))
    [resync] = resyncs(events)
    assert (resync.base, resync.quote) == ("BTC", "USDT") and resync.detail.startswith("sequence reset")
    for name, market in OKX_MARKETS.items():
        stats = controller.sync[market]
        assert (stats.resyncs, stats.snapshots) == ((1, 2) if market == BTC_USDT else (0, 1)), name
        assert stats.checksum_failures == 0
    assert [m for m in server.received if '"unsubscribe"' in m] == [
        '{"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]}']
    assert server.connections == 1  # the connection stayed; the others never stopped


def test_bybit_lost_restart_over_the_wire_recovers():
    server = BybitRecordedServer(fixture_lines(BYBIT_RECORDING), restart_at=BYBIT_RESTART,
                                 faults={BYBIT_RESTART: "drop"}, interval=0.01)
    with server:
        controller, books, events = run_recorded(
            BybitController, server, [XRP],
            settle=lambda c, books: c.sync[XRP].snapshots >= 2
            and last_books(books).get("XRPUSDT") == bybit_want())
    [resync] = resyncs(events)
    assert resync.detail.startswith("sequence reset")
    assert last_books(books)["XRPUSDT"] == bybit_want() and server.connections == 1


@pytest.mark.slow
def test_the_market_watchdog_resyncs_a_market_whose_updates_are_all_skipped():
    """Without the lost-reset rule, the market watchdog finds the same market: its updates come
    and are skipped, none applied, for ``stall_timeout`` seconds, while its connection (the
    other markets) delivers data."""
    blind = type("BlindOkx", (OkxController,), {"chained_skips_reset": None, "stall_timeout": 0.3})
    frames, reset = okx_reset_frames()
    want = okx_want()
    server = OkxRecordedServer(fixture_lines(OKX_RECORDING), numbered=True, reset=OKX_RESET,
                               faults={reset: "drop"}, interval=0.02)
    with server:
        controller, books, events = run_recorded(
            blind, server, list(OKX_MARKETS.values()),
            settle=lambda c, books: c.sync[BTC_USDT].snapshots >= 2
            and all(last_books(books).get(m.base + m.quote) == want[n] for n, m in OKX_MARKETS.items()))
    [resync] = resyncs(events)
    assert (resync.base, resync.quote) == ("BTC", "USDT")
    assert resync.detail.startswith("stalled: ") and "skipped and none applied" in resync.detail
    assert [controller.sync[m].resyncs for m in OKX_MARKETS.values()] == [0, 0, 1]
    assert all(last_books(books)[m.base + m.quote] == want[n] for n, m in OKX_MARKETS.items())
