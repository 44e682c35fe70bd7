"""Kraken v2 ``book`` against the real recorded session and a wire snapshot (loopback server)."""

from __future__ import annotations

import pytest

from core.model import Market, Ticker
from collector.simulator.recorded import KrakenRecordedServer
from controllers.book import LocalBook
from controllers.kraken import KrakenController, kraken_checksum
from tests.global_helpers import FIXTURES, fixture_lines, last_books, levels, oracle, resyncs, run_recorded

RECORDING = "kraken/rec_python-kraken-sdk_20230730_BTCUSD_book10_v2.ndjson"
BTC = Market("BTC", "USD")


def expected() -> dict:
    return oracle("kraken/expected_rec_python-kraken-sdk_20230730_replay.json")


def final(depth: int = 5) -> tuple:
    book = expected()
    return levels(book["final_top10_bids"][:depth]), levels(book["final_top10_asks"][:depth])


def server(**kwargs) -> KrakenRecordedServer:
    return KrakenRecordedServer(fixture_lines(RECORDING), precision=(1, 8), **kwargs)


def test_checksum_of_the_wire_snapshot_is_krakens():
    controller = KrakenController([Market("USDG", "USD")], sink=lambda b: True)
    [snapshot] = controller.decode((FIXTURES / "kraken/rec_public-test_USDGUSD_book_snapshot_v2_wire.json").read_bytes())
    assert snapshot.asks[-1] == ("1.0024", "5000.00000") and snapshot.bids[6] == ("0.9990", "28045.34609")
    book = LocalBook()
    for side, pairs in (("bid", snapshot.bids), ("ask", snapshot.asks)):
        for price, qty in pairs:
            book.apply(side, float(price), float(qty), text=(price, qty))
    assert kraken_checksum(book) == snapshot.checksum == 3225719247
    assert snapshot.timestamp == 1789625804386 and snapshot.last == 1789625804386754


def test_recorded_session_matches_the_oracle():
    with server() as srv:
        controller, books, events = run_recorded(
            KrakenController, srv, [BTC], depth=10,
            settle=lambda c, _: c.sync[BTC].applied >= 509)
    stats = controller.sync[BTC]
    book = expected()
    assert (stats.snapshots, stats.applied, stats.resyncs) == (1, 509, 0)
    assert (stats.checksums, stats.checksum_failures) == (book["checksum_matches"], 0)
    assert last_books(books)["BTCUSD"] == final(10)
    assert controller.levels_held(BTC) == (10, 10)  # cut to the subscribed depth after each
    assert resyncs(events) == [] and controller.stats.errors == 0
    assert srv.received[0] == ('{"method": "subscribe", "params": {"channel": "book", "symbol": '
                               '["BTC/USD"], "depth": 10, "snapshot": true}}')


@pytest.mark.parametrize("fault", ["drop", "swap", "checksum", "cross"])
def test_an_injected_fault_resyncs_the_pair_once_and_the_book_ends_right(fault):
    with server(faults={200: fault}, interval=0.002) as srv:
        controller, books, events = run_recorded(
            KrakenController, srv, [BTC],
            settle=lambda c, books: c.sync[BTC].snapshots >= 2
            and last_books(books).get("BTCUSD") == final())
    [resync] = resyncs(events)
    cause = "crossed book" if fault == "cross" else "checksum mismatch"
    assert resync.detail.startswith(cause) and (resync.base, resync.quote) == ("BTC", "USD")
    stats = controller.sync[BTC]
    assert (stats.resyncs, stats.snapshots) == (1, 2)
    assert stats.checksum_failures == (0 if fault == "cross" else 1)
    assert [m for m in srv.received if '"unsubscribe"' in m] == [
        '{"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}}']
    assert last_books(books)["BTCUSD"] == final()
    assert all(b.bids[0][0] < b.asks[0][0] for b in books)


def test_tickers_on_the_wire_beside_the_book():
    # the recorded book of BTC/USD and the wire ticker of USDT/USD, on one connection
    wire = fixture_lines("kraken/rec_ark-readme_20260924_USDTUSD_ticker_v2_wire.ndjson")
    usdt = Market("USDT", "USD")
    with KrakenRecordedServer(fixture_lines(RECORDING) + [wire[3]], precision=(1, 8)) as srv:
        controller, records, events = run_recorded(
            KrakenController, srv, [BTC, usdt], depth=10, channels=("orderbook", "ticker"),
            settle=lambda c, _: c.sync[BTC].applied >= 509)
    [ticker] = [r for r in records if type(r) is Ticker]
    assert (ticker.base, ticker.quote, ticker.last, ticker.open) == ("USDT", "USD", 0.99981, 0.99976)
    assert srv.channel_sent == 1 and controller.stats.tickers == 1
    assert last_books(records)["BTCUSD"] == final(10)
    assert controller.stats.errors == 0 and resyncs(events) == []
    assert srv.received[1] == ('{"method": "subscribe", "params": {"channel": "ticker", "symbol": '
                               '["BTC/USD", "USDT/USD"]}}')


def test_two_markets_with_one_base_keep_their_own_tag_book_and_events(tmp_path):
    """Kraken BTC/USD and BTC/EUR: each has its own tag (log lines, log file, errors, events),
    its own book and its own subscription tracking."""
    usd, eur = Market("BTC", "USD"), Market("BTC", "EUR")
    stored = []
    controller = KrakenController([usd, eur], sink=lambda b: stored.append(b) or True, depth=10)
    assert [m.tag("KRAKEN") for m in controller.markets] == ["KRAKEN-BTC-USD", "KRAKEN-BTC-EUR"]
    assert controller.log.markets == ("KRAKEN-BTC-USD", "KRAKEN-BTC-EUR")
    controller.expect_books([usd, eur])
    assert sorted(controller._awaiting) == ["KRAKEN-BTC-EUR", "KRAKEN-BTC-USD"]
    wire = (FIXTURES / "kraken/rec_public-test_USDGUSD_book_snapshot_v2_wire.json").read_text()
    assert controller.handle_payload(wire.replace('"USDG/USD"', '"BTC/USD"')) == 1
    assert list(controller._awaiting) == ["KRAKEN-BTC-EUR"], "BTC/USD's book is not BTC/EUR's"
    assert controller.handle_payload(wire.replace('"USDG/USD"', '"BTC/EUR"')) == 1
    assert controller._awaiting == {}
    assert [(b.base, b.quote, b.tag) for b in stored] == [
        ("BTC", "USD", "KRAKEN-BTC-USD"), ("BTC", "EUR", "KRAKEN-BTC-EUR")]
    assert stored[0].bids == stored[1].bids and controller.sync[usd].snapshots == 1
    assert controller.sync[eur].snapshots == 1 and controller.stats.errors == 0
    controller.record_event("subscribe_failed", [eur], "refused")
    [event] = controller.recent_events
    assert (event.base, event.quote, event.tag) == ("BTC", "EUR", "KRAKEN-BTC-EUR")
