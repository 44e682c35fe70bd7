"""OKX ``books`` against the real recorded session (loopback server), and the seqId rule."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError
from core.model import Market
from collector.simulator.recorded import OkxRecordedServer
from controllers.okx import OkxController
from tests.global_helpers import FIXTURES, fixture_lines, last_books, levels, oracle, resyncs, run_recorded

RECORDING = "okx/rec_cryptofeed_20220513_ws_recv.ndjson"
INSTRUMENTS = {"BTC-USD-220527": Market("BTC", "USD-220527"), "UNI-USD-SWAP": Market("UNI", "USD-SWAP"),
               "BTC-USDT": Market("BTC", "USDT")}
BTC_USDT = INSTRUMENTS["BTC-USDT"]


def checked(controller) -> int:
    return sum(s.checksums for s in controller.sync.values())


@pytest.mark.parametrize("numbered", [False, True])
def test_recorded_session_checksums_and_final_books_match_the_oracle(numbered):
    """As recorded (no sequence ids, 2022), and numbered as OKX sends today."""
    expected = oracle("okx/expected_rec_cryptofeed_20220513_replay.json")
    total = sum(expected["checksum_matches"].values())
    with OkxRecordedServer(fixture_lines(RECORDING), numbered=numbered) as server:
        controller, books, events = run_recorded(OkxController, server, list(INSTRUMENTS.values()),
                                                 settle=lambda c, _: checked(c) >= total)
    final = last_books(books)
    for name, market in INSTRUMENTS.items():
        stats = controller.sync[market]
        assert (stats.checksums, stats.checksum_failures, stats.resyncs, stats.snapshots) == (
            expected["checksum_matches"][name], 0, 0, 1), name
        top = expected["final_top5"][name]
        assert final[market.base + market.quote] == (levels(top["bids"]), levels(top["asks"])), name
    assert resyncs(events) == [] and controller.stats.errors == 0


def btc_usdt_position() -> int:
    """A position in the served book frames where BTC-USDT updates come twice in a row."""
    names = [json.loads(line)["arg"]["instId"] for line in fixture_lines(RECORDING)
             if '"channel":"books"' in line and '"data"' in line]
    return next(p for p in range(100, len(names) - 1) if names[p] == names[p + 1] == "BTC-USDT")


def test_without_ws_snapshots_the_controller_switches_to_rest_snapshots(caplog):
    """OKX's announced procedure: no WS snapshot; buffer, fetch ``/api/v5/market/books`` (with a
    seqId), drop what it holds, bridge with ``prevSeqId <= seqId < next seqId``."""
    expected = oracle("okx/expected_rec_cryptofeed_20220513_replay.json")
    total = sum(expected["checksum_matches"].values()) - 3  # the three snapshots are withheld
    handled = lambda c: sum(s.applied + s.skipped for s in c.sync.values())  # noqa: E731
    with OkxRecordedServer(fixture_lines(RECORDING), numbered=True, ws_snapshots=False) as server:
        controller, books, events = run_recorded(OkxController, server, list(INSTRUMENTS.values()),
                                                 settle=lambda c, _: handled(c) >= total)
    assert not any('"action":"snapshot"' in line for line in server.received)
    assert sorted(server.rest_requests) == sorted(INSTRUMENTS)  # one REST snapshot each
    final = last_books(books)
    for name, market in INSTRUMENTS.items():
        stats = controller.sync[market]
        # the updates the REST snapshot already held are skipped, every later one checked
        assert stats.applied + stats.skipped == expected["checksum_matches"][name] - 1, name
        assert (stats.checksums, stats.checksum_failures, stats.resyncs, stats.snapshots) == (
            stats.applied, 0, 0, 1), name
        top = expected["final_top5"][name]
        assert final[market.base + market.quote] == (levels(top["bids"]), levels(top["asks"])), name
    assert controller.rest_snapshots and resyncs(events) == [] and controller.stats.errors == 0
    switches = [r for r in caplog.records if "switching to REST snapshots" in r.getMessage()]
    assert len(switches) == 1


def test_a_bad_snapshot_source_is_refused():
    with pytest.raises(ConfigError, match="OKX_SNAPSHOTS must be 'auto' or 'rest'"):
        OkxController([BTC_USDT], sink=lambda b: True, env={"OKX_SNAPSHOTS": "websocket"})


@pytest.mark.parametrize("source", ["ws", "rest"])
@pytest.mark.parametrize("fault", ["drop", "swap", "checksum"])
def test_an_injected_fault_resyncs_the_market_once_and_the_book_ends_right(fault, source):
    """The recording served with today's sequence ids: a lost or late update is a gap; a wrong
    checksum is a mismatch. ``rest``: ``OKX_SNAPSHOTS=rest`` and no WS snapshots, the resync
    fetches a REST snapshot."""
    expected = oracle("okx/expected_rec_cryptofeed_20220513_replay.json")["final_top5"]
    want = {n: (levels(expected[n]["bids"]), levels(expected[n]["asks"])) for n in INSTRUMENTS}
    server = OkxRecordedServer(fixture_lines(RECORDING), faults={btc_usdt_position(): fault},
                               interval=0.002, numbered=True, ws_snapshots=source == "ws")
    with server:
        controller, books, events = run_recorded(
            OkxController, server, list(INSTRUMENTS.values()),
            env={"OKX_SNAPSHOTS": "rest"} if source == "rest" else None,
            settle=lambda c, books: c.sync[BTC_USDT].snapshots >= 2
            and all(last_books(books).get(m.base + m.quote) == want[n] for n, m in INSTRUMENTS.items()))
    [resync] = resyncs(events)
    assert (resync.base, resync.quote) == ("BTC", "USDT")
    cause = "checksum mismatch" if fault == "checksum" else "sequence gap"
    assert resync.detail.startswith(cause), resync.detail
    stats = controller.sync[BTC_USDT]
    assert (stats.resyncs, stats.snapshots, stats.checksum_failures) == (1, 2, int(fault == "checksum"))
    assert sum(s.resyncs for s in controller.sync.values()) == 1  # the other markets went on
    unsubscribes = [m for m in server.received if '"unsubscribe"' in m]
    if source == "ws":
        assert len(unsubscribes) == 1 and '"BTC-USDT"' in unsubscribes[0]
        assert server.rest_requests == []
    else:
        assert unsubscribes == [] and sorted(server.rest_requests) == sorted([*INSTRUMENTS, "BTC-USDT"])
    final = last_books(books)
    assert all(final[m.base + m.quote] == want[n] for n, m in INSTRUMENTS.items())


def test_seq_ids_chain_and_a_gap_resyncs():
    snapshot = json.loads((FIXTURES / "okx/doc_ws_books_snapshot_seqid.json").read_text())
    update = json.loads((FIXTURES / "okx/doc_ws_books_update_seqid.json").read_text())
    events = []
    controller = OkxController([Market("BTC", "USDT")], sink=lambda b: True, events=events.append)
    first = snapshot["data"][0]["seqId"]
    assert controller.parse(json.dumps(snapshot), 1)  # the snapshot makes a book
    update["data"][0].update(prevSeqId=first, seqId=first + 1)
    [book] = controller.parse(json.dumps(update), 2)
    heartbeat = {**update, "data": [{"asks": [], "bids": [], "ts": "2", "checksum": 0,
                                     "prevSeqId": first + 1, "seqId": first + 1}]}
    [again] = controller.parse(json.dumps(heartbeat), 3)  # a heartbeat changes nothing
    assert (again.bids, again.asks) == (book.bids, book.asks)
    reset = {**heartbeat, "data": [{**heartbeat["data"][0], "prevSeqId": first + 1, "seqId": 3}]}
    controller.parse(json.dumps(reset), 4)  # seqId going down after maintenance is fine
    assert controller.sync[BTC_USDT].resyncs == 0
    gap = {**heartbeat, "data": [{**heartbeat["data"][0], "prevSeqId": 10, "seqId": 12}]}
    assert controller.parse(json.dumps(gap), 5) == []
    assert controller.sync[BTC_USDT].resyncs == 1
    assert [e.kind for e in events] == ["resync"] and "sequence gap" in events[0].detail
