"""GopaxController: snapshot + deltas on real frames, and a loopback server speaking GOPAX's
protocol (buffered early deltas, stale deltas, text ping/pong, 50 books per connection, signed
connects)."""

import base64
import json
import logging

import pytest

from core.errors import ConfigError, ExchangeError, MalformedMessage
from core.logs import close_logging, setup_logging
from core.model import Market
from controllers import GopaxController
from controllers.gopax import sign_connect
from tests.helpers import fast, by_symbol, collect, without_repeats
from tests.sim_servers import GopaxServer
from tests.sim_oracles import fixture_json, fixture_text

RECEIVED = 1_790_139_000_000


FastGopax = fast(GopaxController)


@pytest.fixture
def gopax():
    return GopaxController([Market("BCH", "KRW"), Market("BTC", "KRW")], env={}, depth=15)


def test_docs_snapshot_then_docs_delta(gopax):
    [snap] = gopax.parse(fixture_text("gopax/ws_orderbook_snapshot_docs.json"), RECEIVED)
    assert snap.bids == ((5000000.0, 5.0), (4500000.0, 3.0)) and snap.asks == ((5100000.0, 2.5),)
    assert snap.timestamp == 1599089007614  # the newest updatedAt (s) of the book, in ms
    [book] = gopax.parse(fixture_text("gopax/ws_orderbook_delta_docs.json"), RECEIVED)
    # entry 51 deletes 5,000,000; entry 52 replaces 4,500,000
    assert book.bids == ((4500000.0, 1.3),) and book.asks == ((5100000.0, 2.5),)
    assert book.timestamp == 1599089169282


def test_deltas_before_the_snapshot_are_buffered_and_old_ones_skipped(gopax):
    delete = fixture_text("gopax/ws_orderbook_delta_delete_wire_2026-09.json")  # entryId < maxEntryId
    assert gopax.parse(delete, RECEIVED) == []
    early = {"i": -1, "n": "OrderBookEvent", "o": {"ask": [], "bid": [
        {"entryId": 84563416, "price": 115020000, "volume": 0.25, "updatedAt": 1790138990.001}],
        "tradingPairName": "BTC-KRW"}}
    assert gopax.parse(json.dumps(early), RECEIVED) == []
    [book] = gopax.parse(fixture_text("gopax/ws_orderbook_snapshot_wire_2026-09_trimmed.json"), RECEIVED)
    assert book.bids == ((115020000.0, 0.25), (115010000.0, 0.0015), (115000000.0, 0.008))
    assert book.asks == ((117020000.0, 0.00000858), (117030000.0, 0.00000858))
    assert book.timestamp == 1790138990001
    again = dict(early, o=dict(early["o"], bid=[dict(early["o"]["bid"][0], volume=9)]))
    assert gopax.parse(json.dumps(again), RECEIVED) == []  # same entryId: not newer


def test_ping_is_answered_with_the_exact_pong(gopax):
    ping = fixture_text("gopax/ws_keepalive_server_ping_frame.txt")
    assert gopax.reply_to(ping) == fixture_text("gopax/ws_keepalive_client_pong_frame.txt")
    assert gopax.reply_to(fixture_text("gopax/ws_orderbook_delta_docs.json")) is None


def test_error_replies_name_their_market(gopax):
    error = fixture_json("gopax/ws_error_10058_invalid_asset_wire_2026-09.json")
    error["i"] = "BTC-KRW"
    with pytest.raises(ExchangeError) as caught:
        gopax.parse(json.dumps(error), RECEIVED)
    assert caught.value.market == "GOPAX-BTC-KRW" and "10058 NOPE" in str(caught.value)


@pytest.mark.parametrize("payload", [
    '{"n":"OrderBookEvent","o":{"ask":[],"bid":[],"tradingPairName":"ETH-KRW"}}',
    '{"n":"SubscribeToOrderBook","o":{"ask":[],"bid":[],"tradingPairName":"BTC-KRW"}}',
    '{"n":"OrderBookEvent","o":{"ask":[{"price":1}],"bid":[],"tradingPairName":"BTC-KRW"}}',
    '{"n":"TickerEvent","o":{}}',
    '"primus::pong::1"',
])
def test_malformed_frames_raise(gopax, payload):
    with pytest.raises(MalformedMessage):
        gopax.parse(payload, RECEIVED)


def test_keys_must_come_in_pairs_and_the_secret_be_base64():
    with pytest.raises(ConfigError, match="both"):
        GopaxController([Market("BTC", "KRW")], env={"GOPAX_API_KEY": "k"})
    with pytest.raises(ConfigError, match="not base64") as error:
        GopaxController([Market("BTC", "KRW")], env={"GOPAX_API_KEY": "k", "GOPAX_SECRET_KEY": "%%%"})
    assert "%%%" not in str(error.value)


def expected(server: GopaxServer) -> dict[str, list[tuple]]:
    """What must be stored: the server's true books, without repeats and without empty books
    (a book whose every level was deleted is logged, not stored)."""
    return {pair.split("-")[0]: without_repeats([b for b in books if b[1] or b[2]])
            for pair, books in server.expected.items()}


@pytest.mark.slow
def test_books_follow_the_server_truth_and_pings_are_answered(caplog):
    caplog.set_level(logging.WARNING, "collector")
    markets = [Market("BTC", "KRW"), Market("ETH", "KRW")]
    with GopaxServer({"BTC-KRW": 150, "ETH-KRW": 150}, depth=5, interval=0.01, ping_every=0.25,
                     pong_timeout=0.5) as server:
        controller, stored = collect(FastGopax, markets, {"GOPAX_WS_URL": server.url}, depth=5,
                                     until=lambda s: server.finished.is_set()
                                     and len(s) >= sum(map(len, expected(server).values())))
    assert by_symbol(stored) == expected(server)
    assert server.pings_sent >= 3 and len(server.pongs) >= 3 and server.unanswered_closes == 0
    assert server.connections == 1 and controller.stats.errors == 0, caplog.text
    assert controller.stats.heartbeats == len(server.pongs)


class Deaf(FastGopax):
    def reply_to(self, payload):
        return None


def test_an_unanswered_ping_closes_the_connection_so_pongs_matter(caplog):
    """The check above has teeth: a client that does not answer is cut off by the server."""
    with GopaxServer({"BTC-KRW": 1000}, interval=0.005, ping_every=0.2, pong_timeout=0.2) as server:
        controller, _ = collect(Deaf, [Market("BTC", "KRW")], {"GOPAX_WS_URL": server.url},
                                until=lambda s: server.unanswered_closes >= 1 and server.connections >= 2)
    assert server.unanswered_closes >= 1 and controller.stats.reconnects >= 1


@pytest.mark.slow
def test_reconnect_starts_each_book_again_from_a_snapshot():
    # 10 ms between deltas: both markets are subscribed long before the server drops the
    # connection. Without it, a subscribe could race the drop: the server booked the delta it
    # made for it but never sent it, or the close reset the socket and discarded frames already
    # sent (seen when other tests loaded the CPU).
    with GopaxServer({"BTC-KRW": 80, "XRP-KRW": 80}, disconnect_after=25, interval=0.01) as server:
        controller, stored = collect(FastGopax, [Market("BTC", "KRW"), Market("XRP", "KRW")],
                                     {"GOPAX_WS_URL": server.url},
                                     until=lambda s: server.finished.is_set()
                                     and len(s) >= sum(map(len, expected(server).values())))
    assert server.connections >= 4
    assert by_symbol(stored) == expected(server)


@pytest.mark.slow
def test_more_than_fifty_markets_use_more_connections_and_unknown_pairs_are_logged(caplog):
    caplog.set_level(logging.WARNING, "collector")
    pairs = {f"C{i:03d}-KRW": 2 for i in range(120)}
    markets = [Market(p.split("-")[0], "KRW") for p in pairs] + [Market("NOPE", "KRW")]
    with GopaxServer(pairs) as server:
        controller, stored = collect(FastGopax, markets, {"GOPAX_WS_URL": server.url},
                                     until=lambda s: server.finished.is_set()
                                     and len(s) >= sum(map(len, expected(server).values())))
    assert server.connections == 3 and len(controller.connections) == 3
    assert len(server.subscribes) == 121
    assert [e["o"]["errCode"] for e in server.errors_sent] == [10058]  # never 10321
    assert by_symbol(stored) == expected(server)
    assert "exchange error: SubscribeToOrderBook failed: 10058 NOPE" in caplog.text
    assert any(getattr(r, "tag", None) == "GOPAX-NOPE-KRW" for r in caplog.records)


def test_signed_connect_is_verified_and_no_secret_reaches_a_log(tmp_path):
    secret = base64.b64encode(b"loopback-secret-bytes-for-the-test-" * 2).decode()
    api_key = "k" * 64
    setup_logging(tmp_path / "logs", max_bytes=1_000_000, backup_count=1, level=logging.DEBUG,
                  console=False)
    try:
        with GopaxServer({"BTC-KRW": 20}, api_key=api_key, secret=secret) as server:
            env = {"GOPAX_WS_URL": server.url, "GOPAX_API_KEY": api_key, "GOPAX_SECRET_KEY": secret}
            controller, stored = collect(FastGopax, [Market("BTC", "KRW")], env,
                                         until=lambda s: server.finished.is_set()
                                         and len(s) >= len(expected(server)["BTC"]))
            assert server.signed_connects == 1 and server.rejected_connects == 0
            assert by_symbol(stored) == expected(server)
            signatures = list(controller._signatures)
            # a wrong secret: rejected with 401, logged, retried; still nothing secret in the logs
            wrong = dict(env, GOPAX_SECRET_KEY=base64.b64encode(b"wrong").decode())
            rejected, _ = collect(FastGopax, [Market("BTC", "KRW")], wrong,
                                  until=lambda s: server.rejected_connects >= 2)
            assert server.rejected_connects >= 2
    finally:
        close_logging()
    text = "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert "connected to ws://127.0.0.1" in text and "401" in text
    for secret_text in [api_key, secret, base64.b64encode(b"wrong").decode(), *signatures]:
        assert secret_text not in text
    assert "signature=" not in text and "apiKey=" not in text
    # nor in what goes to the database (feed_event details) or into exceptions' texts
    stored_text = " ".join([e.detail for c in (controller, rejected) for e in c.recent_events]
                           + [str(rejected.last_error), str(rejected.status())])
    assert "401" in stored_text
    for secret_text in [api_key, secret, *signatures, "signature=", "apiKey="]:
        assert secret_text not in stored_text


def test_sign_connect_follows_the_documented_recipe():
    secret = base64.b64encode(b"s3cret").decode()
    import hashlib
    import hmac
    want = base64.b64encode(hmac.new(b"s3cret", b"t1790139005374", hashlib.sha512).digest()).decode()
    assert sign_connect(secret, 1790139005374) == want


def test_a_crossed_book_resyncs_by_reopening_the_connection(gopax):
    """The shared synchroniser checks GOPAX books too: a delta that crosses the book drops it,
    records a resync event, and (a second subscribe being refused with 10325) asks the snapshot
    worker to reopen the market's connection."""
    [snap] = gopax.parse(fixture_text("gopax/ws_orderbook_snapshot_docs.json"), RECEIVED)
    crossing = json.loads(fixture_text("gopax/ws_orderbook_delta_docs.json"))
    crossing["o"]["bid"] = [{"entryId": 99, "price": 5200000, "volume": 1, "updatedAt": 1599089200.5}]
    crossing["o"]["ask"] = []
    assert gopax.parse(json.dumps(crossing), RECEIVED) == []
    [event] = gopax.recent_events
    assert (event.kind, event.tag) == ("resync", "GOPAX-BCH-KRW")
    assert event.detail == "crossed book: best bid 5200000.0 >= best ask 5100000.0"
    market = Market("BCH", "KRW")
    assert not gopax.has_book(market) and gopax.sync[market].resyncs == 1
    assert gopax._snapshot_requests.get_nowait() == market
    connection = gopax._connection_of[market]
    assert gopax._request_snapshot(market) is None
    assert connection.close_reason == "reopened to resync GOPAX-BCH-KRW"
