"""CoinoneController: its parser on real frames, and a loopback server speaking Coinone's protocol."""

import json
import logging

import pytest

from core.errors import ExchangeError, MalformedMessage
from core.model import Market
from controllers import CoinoneController
from tests.helpers import by_symbol, collect, expected_coinone, expected_keyed, fast, run_until
from collector.simulator.coinone import CoinoneServer
from tests.sim_oracles import coinone_generated_books, fixture_json, fixture_text, without_elisions

RECEIVED = 1_790_134_180_000


FastCoinone = fast(CoinoneController)


@pytest.fixture
def coinone():
    return CoinoneController([Market("BTC", "KRW"), Market("XRP", "KRW")], env={}, depth=15)


def test_docs_frame_asks_worst_first_are_sorted_best_first(coinone):
    frame = fixture_json("coinone/ws_orderbook_docs.json")
    [book] = coinone.parse(json.dumps(frame), RECEIVED)
    assert (book.exchange, book.base, book.quote) == ("COINONE", "XRP", "KRW")
    assert frame["data"]["asks"][0]["price"] == "695.5"  # the worst ask comes first on the wire
    assert book.asks[0] == (687.5, 47022.8803) and book.bids[0] == (687.4, 6704.0994)
    assert (book.bids, book.asks) == expected_keyed(frame["data"])
    assert book.timestamp == 1693560155038 and book.sequence == 1693560155038001


def test_wire_first_frame_takes_its_time_from_the_id(coinone):
    first = without_elisions(json.loads(fixture_text("coinone/ws_orderbook_wire_2026-09_elided.jsonl").splitlines()[0]))
    [book] = coinone.parse(json.dumps(first), RECEIVED)
    assert first["data"]["timestamp"] == 1790134167554  # ~10 s older than the id says
    assert book.timestamp == 1790134177435
    assert book.asks[0] == (116460000.0, 0.0232) and book.bids[0] == (116450000.0, 0.0118)


@pytest.mark.parametrize("name", ["coinone/ws_connected_wire_2026-09.json",
                                  "coinone/ws_subscribed_ack_wire_2026-09.json",
                                  "coinone/ws_keepalive_pong_response.json"])
def test_control_frames_carry_no_book(coinone, name):
    assert coinone.parse(fixture_text(name), RECEIVED) == []


def test_invalid_topic_is_attributed_to_the_market_acked_last(coinone):
    ack = fixture_json("coinone/ws_subscribed_ack_wire_2026-09.json")
    ack["data"]["target_currency"] = "XRP"
    coinone.parse(json.dumps(ack), RECEIVED)
    with pytest.raises(ExchangeError) as error:
        coinone.parse(fixture_text("coinone/ws_error_160012_invalid_topic.json"), RECEIVED)
    assert error.value.market == "COINONE-XRP-KRW" and "160012 Invalid Topic" in str(error.value)


@pytest.mark.parametrize("payload", [
    '{"response_type":"DATA","channel":"TICKER","data":{}}',
    '{"response_type":"DATA","channel":"ORDERBOOK","data":{"quote_currency":"KRW","target_currency":"BTC","id":"12"}}',
    '{"response_type":"DATA","channel":"ORDERBOOK","data":{"quote_currency":"KRW","target_currency":"ETH",'
    '"id":"1790134177753001","asks":[],"bids":[]}}',
    '{"response_type":"DATA","channel":"ORDERBOOK","data":{"quote_currency":"KRW","target_currency":"BTC",'
    '"id":"1790134177753001","asks":[{"price":"1"}],"bids":[]}}',
])
def test_malformed_frames_raise(coinone, payload):
    with pytest.raises(MalformedMessage):
        coinone.parse(payload, RECEIVED)


def server_frames(count: int) -> dict[str, list[str]]:
    wire = without_elisions(json.loads(fixture_text("coinone/ws_orderbook_wire_2026-09_elided.jsonl").splitlines()[1]))
    docs = fixture_json("coinone/ws_orderbook_docs.json")
    btc = coinone_generated_books("BTC", wire, count, seed=21)
    out_of_order = btc[3]  # sent again after newer books: must be dropped as stale
    return {"BTC": btc[:6] + [out_of_order] + btc[6:],
            "XRP": coinone_generated_books("XRP", docs, count, seed=22)}


def test_streams_are_stored_exactly_out_of_order_frames_dropped_and_pings_answered(caplog):
    caplog.set_level(logging.INFO, "collector")
    frames = server_frames(40)
    want = {s: expected_coinone(f) for s, f in frames.items()}

    class Pinging(FastCoinone):
        keepalive_interval = 0.2

    with CoinoneServer(frames, interval=0.01) as server:
        controller, stored = collect(
            Pinging, [Market("BTC", "KRW"), Market("XRP", "KRW")], {"COINONE_WS_URL": server.url},
            until=lambda s: server.finished.is_set() and server.pings >= 2
            and len(s) >= sum(map(len, want.values())))
    assert [json.loads(r) for r in server.received if "SUBSCRIBE" in r] == [
        {"request_type": "SUBSCRIBE", "channel": "ORDERBOOK",
         "topic": {"quote_currency": "KRW", "target_currency": s}} for s in ("BTC", "XRP")]
    assert by_symbol(stored) == want
    assert controller.stats.stale == 1 and controller.stats.errors == 0
    assert server.pings >= 2 and '{"request_type":"PING"}' in server.received


def test_unknown_pair_is_logged_and_the_others_keep_streaming(caplog):
    caplog.set_level(logging.WARNING, "collector")
    frames = server_frames(10)
    with CoinoneServer(frames) as server:
        controller, stored = collect(
            FastCoinone, [Market("NOPE", "KRW"), Market("BTC", "KRW"), Market("XRP", "KRW")],
            {"COINONE_WS_URL": server.url},
            until=lambda s: server.finished.is_set() and len(s) >= 20)
    assert by_symbol(stored) == {s: expected_coinone(f) for s, f in frames.items()}
    assert "exchange error: 160012 Invalid Topic: right after the subscribe ack of COINONE-NOPE-KRW" in caplog.text
    assert any(r.tag == "COINONE-NOPE-KRW" for r in caplog.records if hasattr(r, "tag"))


def test_reconnect_resubscribes_and_the_repeated_last_book_is_not_stored_twice():
    frames = server_frames(30)
    want = {s: expected_coinone(f) for s, f in frames.items()}
    with CoinoneServer(frames, disconnect_after=12) as server:
        controller, stored = collect(
            FastCoinone, [Market("BTC", "KRW"), Market("XRP", "KRW")], {"COINONE_WS_URL": server.url},
            until=lambda s: server.finished.is_set() and len(s) >= sum(map(len, want.values())))
    assert server.connections >= 4 and controller.stats.reconnects >= 3
    assert by_symbol(stored) == want
    assert controller.stats.stale >= 1 + (server.connections - 1)  # the out-of-order one + repeats


def test_a_market_whose_book_ids_started_again_lower_is_recovered_by_the_market_watchdog():
    """XRP's ids start again lower (an exchange-side reset): every later XRP book is older than
    the last one stored and skipped, while BTC keeps the connection busy (the idle watchdog sees
    nothing). The market watchdog (stall timeout 0.3 s here) records one ``resync`` for XRP and
    reopens the connection, which takes XRP's books in their new order."""
    frames = server_frames(120)
    docs = fixture_json("coinone/ws_orderbook_docs.json")
    reset = coinone_generated_books("XRP", docs, 110, seed=23, start_ms=1_790_000_000_000)
    frames["XRP"] = frames["XRP"][:10] + reset
    events = []
    stored = []
    watched = type("WatchedCoinone", (FastCoinone,), {"stall_timeout": 0.3})
    with CoinoneServer(frames, interval=0.01) as server:
        controller = watched([Market("BTC", "KRW"), Market("XRP", "KRW")],
                             sink=lambda b: stored.append(b) or True, events=events.append,
                             env={"COINONE_WS_URL": server.url})
        run_until(controller, lambda: sum(b.base == "XRP" for b in stored) >= 10 + 20, timeout=20)
    [resync] = [e for e in events if e.kind == "resync"]
    assert (resync.base, resync.quote) == ("XRP", "KRW")
    assert resync.detail.startswith("stalled: ") and "connection reopened" in resync.detail
    assert server.connections == 2 and controller.stats.stale >= 10
    xrp = [b for b in stored if b.base == "XRP"]
    assert [b.sequence for b in xrp[10:]] == sorted(b.sequence for b in xrp[10:])  # the new order
    assert xrp[10].sequence < xrp[9].sequence
