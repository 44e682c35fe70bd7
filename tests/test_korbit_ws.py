"""KorbitController: its parser on real frames, and a loopback server speaking Korbit's protocol."""

import json
import logging

import pytest

from core.errors import ExchangeError, MalformedMessage
from core.model import Market
from controllers import KorbitController
from tests.helpers import fast, by_symbol, collect, expected_korbit, expected_keyed
from tests.sim_oracles import fixture_json, fixture_text, korbit_generated_books
from collector.simulator.korbit import KorbitServer

RECEIVED = 1_790_134_250_000


FastKorbit = fast(KorbitController)


@pytest.fixture
def korbit():
    return KorbitController([Market("BTC", "KRW"), Market("NOPE", "KRW")], env={}, depth=15)


@pytest.mark.parametrize("name", ["korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json",
                                  "korbit/ws_orderbook_update_wire_2026-09_trimmed.json",
                                  "korbit/ws_orderbook_snapshot_docs.json"])
def test_every_orderbook_frame_is_a_full_book_at_data_timestamp(korbit, name):
    frame = fixture_json(name)
    [book] = korbit.parse(fixture_text(name), RECEIVED)
    assert (book.exchange, book.base, book.quote) == ("KORBIT", "BTC", "KRW")
    assert book.timestamp == frame["data"]["timestamp"] != frame["timestamp"]
    assert (book.bids, book.asks) == expected_keyed(frame["data"])


def test_subscribe_is_an_array_with_lower_case_symbols(korbit):
    [message] = korbit.subscribe_messages(korbit.markets)
    assert json.loads(message) == [{"method": "subscribe", "type": "orderbook",
                                    "symbols": ["btc_krw", "nope_krw"], "requestId": 1}]


def test_control_messages(korbit):
    assert korbit.parse(fixture_text("korbit/ws_control_success_wire_2026-09.json"), RECEIVED) == []
    fail = fixture_text("korbit/ws_control_fail_invalid_symbol_wire_2026-09.json")
    with pytest.raises(ExchangeError) as error:
        korbit.parse(fail, RECEIVED)
    assert error.value.market == "KORBIT-NOPE-KRW"
    assert "INVALID_SYMBOL The symbol does not exist (nope_krw)" in str(error.value)
    with pytest.raises(ExchangeError, match="invalid_format"):
        korbit.parse(fixture_text("korbit/ws_control_fail_invalid_format_wire_2026-09.json"), RECEIVED)


@pytest.mark.parametrize("payload", [
    fixture_text("korbit/ws_ticker_snapshot_wire_2026-09.json"),
    '{"symbol":"btckrw","type":"orderbook","data":{"timestamp":1,"asks":[],"bids":[]}}',
    '{"symbol":"eth_krw","type":"orderbook","data":{"timestamp":1790134243067,"asks":[],"bids":[]}}',
    '{"symbol":"btc_krw","type":"orderbook"}',
    '[1]',
])
def test_malformed_frames_raise(korbit, payload):
    with pytest.raises(MalformedMessage):
        korbit.parse(payload, RECEIVED)


def frames(count: int) -> dict[str, list[str]]:
    return {"btc_krw": korbit_generated_books("BTC", fixture_json("korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json"),
                                              count, seed=31),
            "eth_krw": korbit_generated_books("ETH", fixture_json("korbit/ws_orderbook_snapshot_docs.json"),
                                              count, seed=32)}


@pytest.mark.slow
def test_stream_stored_exactly_unknown_and_stopped_pairs_logged_server_pings_answered(caplog):
    caplog.set_level(logging.WARNING, "collector")
    sent = frames(60)
    markets = [Market("BTC", "KRW"), Market("NOPE", "KRW"), Market("KLAY", "KRW"), Market("ETH", "KRW")]
    with KorbitServer(sent, stopped=("klay_krw",), interval=0.02, ping_interval=0.3) as server:
        controller, stored = collect(FastKorbit, markets, {"KORBIT_WS_URL": server.url},
                                     until=lambda s: server.finished.is_set() and len(s) >= 120)
    assert server.subscriptions == [[{"method": "subscribe", "type": "orderbook",
                                      "symbols": ["btc_krw", "nope_krw", "klay_krw", "eth_krw"],
                                      "requestId": 1}]]
    got = by_symbol(stored)
    assert got == {"BTC": expected_korbit(sent["btc_krw"]), "ETH": expected_korbit(sent["eth_krw"])}
    # 60 frames at 20 ms: the server's 0.3 s protocol pings were answered, or it would have closed
    assert server.connections == 1 and controller.stats.reconnects == 0
    text = caplog.text
    assert "exchange error: fail INVALID_SYMBOL The symbol does not exist (nope_krw)" in text
    assert "empty book: book has no levels; not stored" in text
    tags = {r.tag for r in caplog.records if r.levelno >= logging.WARNING}
    assert {"KORBIT-NOPE-KRW", "KORBIT-KLAY-KRW"} <= tags
    assert controller.stats.errors == 2


def test_dropped_connection_resubscribes_and_loses_nothing():
    sent = frames(30)
    with KorbitServer(sent, disconnect_after=9) as server:
        controller, stored = collect(FastKorbit, [Market("BTC", "KRW"), Market("ETH", "KRW")],
                                     {"KORBIT_WS_URL": server.url},
                                     until=lambda s: server.finished.is_set() and len(s) >= 60)
    assert server.connections >= 6 and len(server.subscriptions) == server.connections
    assert by_symbol(stored) == {"BTC": expected_korbit(sent["btc_krw"]),
                                 "ETH": expected_korbit(sent["eth_krw"])}
