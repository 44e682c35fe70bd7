"""UpbitController against a loopback server speaking Upbit's protocol (binary frames, PING)."""

import logging
import time

from core.model import Market
from controllers import UpbitController
from tests.helpers import by_symbol, collect, expected_upbit, fast, run_until
from tests.sim_oracles import (fixture_json, fixture_text, upbit_generated_books,
                               upbit_recorded_books)
from collector.simulator.upbit import UpbitServer


FastUpbit = fast(UpbitController)


def collect_from(server, markets, until, controller_class=FastUpbit):
    """:func:`tests.helpers.collect` against ``server``."""
    return collect(controller_class, markets, {"UPBIT_WS_URL": server.url}, until)


def test_recorded_session_is_stored_exactly():
    recorded = upbit_recorded_books()
    frames = {code: recorded[code] for code in ("KRW-LAMB", "KRW-WAVES")}
    distinct = sum(len(expected_upbit(f)) for f in frames.values())
    with UpbitServer(frames) as server:
        controller, stored = collect_from(server, [Market("LAMB", "KRW"), Market("WAVES", "KRW")],
                                          until=lambda s: len(s) >= distinct)
    [subscribe] = server.subscriptions
    assert subscribe[1] == {"type": "orderbook", "codes": ["KRW-LAMB", "KRW-WAVES"]}
    assert subscribe[2] == {"format": "DEFAULT"} and subscribe[0]["ticket"]
    assert {k: len(v) for k, v in frames.items()} == {"KRW-LAMB": 87, "KRW-WAVES": 26}
    got = by_symbol(stored)
    for code in frames:
        assert got[code.split("-")[1]] == expected_upbit(server.sent[code])
    assert controller.stats.messages == 113
    assert controller.stats.books + controller.stats.duplicates == 113
    assert controller.stats.errors == 0


class PingingUpbit(FastUpbit):
    keepalive_interval = 0.3


def test_text_ping_keepalive_is_sent_and_its_reply_is_no_error():
    frames = {"KRW-BTC": [fixture_text("upbit/ws_orderbook_default_docs.json")]}
    with UpbitServer(frames) as server:
        start = time.monotonic()
        controller, stored = collect_from(server, [Market("BTC", "KRW")],
                                          until=lambda s: server.pings >= 3, controller_class=PingingUpbit)
    assert server.pings >= 3 and time.monotonic() - start >= 0.9
    assert "PING" in server.received
    assert len(stored) == 1 and controller.stats.errors == 0
    assert controller.stats.messages >= 1 + 2  # the book and the {"status":"UP"} replies


def test_bad_frames_are_logged_counted_and_skipped(caplog):
    docs = fixture_json("upbit/ws_orderbook_default_docs.json")
    frames = {"KRW-BTC": upbit_generated_books("KRW-BTC", docs, 20, seed=11)}
    bad = [b"{not json", b'{"type":"orderbook","code":"KRW-BTC"}', b'{"type":"candle"}',
           fixture_text("upbit/ws_error_invalid_param_wire_2026-09.json").encode()]
    caplog.set_level(logging.WARNING, "collector")
    with UpbitServer(frames, extra_frames=bad) as server:
        controller, stored = collect_from(server, [Market("BTC", "KRW")],
                                          until=lambda s: server.finished.is_set() and len(s) >= 20)
    assert by_symbol(stored)["BTC"] == expected_upbit(server.sent["KRW-BTC"])
    assert controller.stats.errors == 4
    text = caplog.text
    assert "parse error: DecodeError" in text and "payload: {not json" in text
    assert "orderbook_units is NoneType, not a list" in text and "unexpected message type 'candle'" in text
    assert "exchange error: INVALID_PARAM" in text


def test_dropped_connection_reconnects_resubscribes_and_loses_nothing(caplog):
    docs = fixture_json("upbit/ws_orderbook_default_docs.json")
    frames = {"KRW-BTC": upbit_generated_books("KRW-BTC", docs, 30, seed=5)}
    caplog.set_level(logging.INFO, "collector")
    with UpbitServer(frames, disconnect_after=8) as server:
        controller, stored = collect_from(server, [Market("BTC", "KRW")],
                                          until=lambda s: server.finished.is_set() and len(s) >= 30)
    assert server.connections >= 4 and len(server.subscriptions) == server.connections
    assert by_symbol(stored)["BTC"] == expected_upbit(server.sent["KRW-BTC"])
    assert len(stored) == 30
    assert controller.stats.reconnects >= 3
    assert "reconnecting in" in caplog.text and caplog.text.count("connected to ws://") >= 4


class QuickTimeoutUpbit(FastUpbit):
    subscribe_timeout = 0.5


def test_unknown_code_gets_a_warning_and_the_others_go_on(caplog):
    frames = {"KRW-BTC": [fixture_text("upbit/ws_orderbook_default_docs.json")]}
    caplog.set_level(logging.WARNING, "collector")
    with UpbitServer(frames) as server:
        controller, stored = collect_from(server, [Market("BTC", "KRW"), Market("NOPE", "KRW")],
                                          until=lambda s: "no book within 0.5 s" in caplog.text,
                                          controller_class=QuickTimeoutUpbit)
    assert len(stored) == 1 and stored[0].base == "BTC"
    record = next(r for r in caplog.records if "no book within" in r.getMessage())
    assert record.tag == "UPBIT-NOPE-KRW" and record.markets == ("UPBIT-NOPE-KRW",)


def test_refused_connection_is_retried_until_stopped(caplog):
    caplog.set_level(logging.WARNING, "collector")
    stored = []
    controller = FastUpbit([Market("BTC", "KRW")], sink=stored.append,
                           env={"UPBIT_WS_URL": "ws://127.0.0.1:9/websocket/v1"})
    run_until(controller, lambda: controller.stats.reconnects >= 3, timeout=5.0, stop_within=3.0)
    assert controller.stats.reconnects >= 3 and controller.stats.errors >= 1
    assert "connection error: ConnectionRefusedError" in caplog.text
    assert stored == []
