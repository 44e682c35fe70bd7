"""The pure parsers on the real Upbit and Bithumb messages (no network, no database)."""

import json

import pytest

from core.errors import ExchangeError, MalformedMessage
from core.model import Market
from controllers import BithumbController, UpbitController
from tests.helpers import expected_book
from tests.sim_oracles import fixture_json, fixture_text

RECEIVED = 1_790_000_000_000


@pytest.fixture
def upbit():
    return UpbitController([Market("BTC", "KRW"), Market("ETH", "KRW")], depth=15)


@pytest.fixture
def bithumb():
    return BithumbController([Market("BTC", "KRW"), Market("ETH", "KRW")], depth=15)


def test_upbit_docs_book_keeps_15_best_levels_each_side(upbit):
    frame = fixture_text("upbit/ws_orderbook_default_docs.json")
    [book] = upbit.parse(frame.encode(), RECEIVED)  # Upbit frames are binary
    units = json.loads(frame)["orderbook_units"]
    assert (book.exchange, book.base, book.quote) == ("UPBIT", "BTC", "KRW")
    assert book.timestamp == 1746601573804 and book.received_at == RECEIVED
    assert (book.bids, book.asks) == expected_book(units, 15)
    assert len(book.bids) == len(book.asks) == 15
    assert book.bids[0] == (137001000.0, 0.03656812) and book.asks[0] == (137002000.0, 0.10623869)


def test_upbit_wire_number_spelling(upbit):
    [book] = upbit.parse(fixture_text("upbit/ws_orderbook_default_wire_2026-09_snapshot_trimmed.json"), RECEIVED)
    assert book.asks == ((116539000.0, 0.02054761), (116542000.0, 0.0007772))  # 1.16539E8, 0.00077720
    assert book.bids == ((116538000.0, 0.08120946), (116537000.0, 0.01129382))
    [book] = upbit.parse(fixture_text("upbit/ws_orderbook_default_wire_2026-09_realtime_trimmed.json"), RECEIVED)
    assert book.timestamp == 1790134743006 and book.bids[0] == (116538000.0, 0.06612366)


def test_upbit_status_reply_is_no_book(upbit):
    assert upbit.parse(fixture_text("upbit/ws_keepalive_status_up.json").encode(), RECEIVED) == []


@pytest.mark.parametrize("name, code", [
    ("ws_error_no_ticket_wire_2026-09.json", "NO_TICKET"),
    ("ws_error_invalid_param_wire_2026-09.json", "INVALID_PARAM"),
    ("ws_error_wrong_format_wire_2026-09.json", "WRONG_FORMAT"),
])
def test_upbit_error_frames_raise_exchange_error(upbit, name, code):
    with pytest.raises(ExchangeError, match=code):
        upbit.parse(fixture_text(f"upbit/{name}").encode(), RECEIVED)


@pytest.mark.parametrize("payload, error", [
    (b"not json", ValueError),
    (b"[1, 2]", MalformedMessage),
    (b'{"type": "trade", "code": "KRW-BTC"}', MalformedMessage),
    (b'{"type": "orderbook", "code": "KRW-XRP", "timestamp": 1, "orderbook_units": []}', MalformedMessage),
    (b'{"type": "orderbook", "code": "KRW-BTC", "orderbook_units": []}', MalformedMessage),
    (b'{"type": "orderbook", "code": "KRW-BTC", "timestamp": 1746601573804}', MalformedMessage),
    (b'{"type": "orderbook", "code": "KRW-BTC", "timestamp": 1746601573804,'
     b' "orderbook_units": [{"ask_price": 1}]}', MalformedMessage),
])
def test_upbit_malformed_frames_raise(upbit, payload, error):
    with pytest.raises(error):
        upbit.parse(payload, RECEIVED)


def test_upbit_subscribe_is_one_array_with_ticket_codes_and_format(upbit):
    [message] = upbit.subscribe_messages(upbit.markets)
    ticket, orderbook, fmt = json.loads(message)
    assert ticket["ticket"]
    assert orderbook == {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]}
    assert fmt == {"format": "DEFAULT"}


def test_bithumb_recorded_book_microseconds_and_dust(bithumb):
    body = fixture_text("bithumb/rest_orderbook_v1_recorded_2025-08.json")
    [book] = bithumb.parse(body.encode(), RECEIVED)
    units = json.loads(body)[0]["orderbook_units"]
    assert book.timestamp == 1756135632391  # 1756135632391949 µs
    assert (book.bids, book.asks) == expected_book(units, 15)
    assert 157454000.0 not in [price for price, _ in book.asks]  # ask_size 0 at a live price
    assert book.asks[:3] == ((157450000.0, 0.0019), (157451000.0, 0.2987), (157462000.0, 0.0045))


def test_bithumb_string_timestamp(bithumb):
    frame = fixture_json("bithumb/ws_orderbook_ccxt_comment_2026-07.json")
    body = json.dumps([{"market": frame["code"], "timestamp": frame["timestamp"],
                        "orderbook_units": frame["orderbook_units"]}])
    [book] = bithumb.parse(body, RECEIVED)
    assert book.timestamp == 1783657882348
    assert book.bids == ((95339000.0, 0.0024),) and book.asks == ((95340000.0, 0.0007),)


@pytest.mark.parametrize("name, text", [
    ("rest_error_v1_404_code_not_found_http200_wire_2026-09.json", "404: Code not found"),
    ("rest_error_v1_400_missing_parameter_http200_wire_2026-09.json", "400: Missing request parameter"),
])
def test_bithumb_error_bodies_raise_exchange_error(bithumb, name, text):
    with pytest.raises(ExchangeError, match=text):
        bithumb.parse(fixture_text(f"bithumb/{name}"), RECEIVED)


def test_bithumb_unexpected_bodies_raise(bithumb):
    with pytest.raises(MalformedMessage):
        bithumb.parse(fixture_text("bithumb/rest_error_v1_no_route_http404_wire_2026-09.json"), RECEIVED)
    with pytest.raises(MalformedMessage):
        bithumb.parse('[{"market": "KRW-DOGE", "timestamp": 1, "orderbook_units": []}]', RECEIVED)
    # one market's bad book is that market's error: counted, and the others' books kept
    assert bithumb.parse('[{"market": "KRW-BTC", "timestamp": "soon", "orderbook_units": []}]',
                         RECEIVED) == []
    assert bithumb.stats.errors == 1 and "bad timestamp 'soon'" in bithumb.last_error


def test_bithumb_request_asks_every_market_at_once(bithumb):
    assert bithumb.request() == ("/v1/orderbook", {"markets": "KRW-BTC,KRW-ETH"})


def test_typed_and_plain_decoding_give_the_same_book(upbit, bithumb):
    """Numbers go through the typed decoder; numeric strings, which it refuses, through the slow
    path: both give the same levels, and a unit with a key missing is named in the error."""
    frame = fixture_json("upbit/ws_orderbook_default_docs.json")
    [typed] = upbit.parse(json.dumps(frame).encode(), RECEIVED)
    as_strings = dict(frame, orderbook_units=[{k: str(v) for k, v in unit.items()}
                                              for unit in frame["orderbook_units"]])
    [plain] = upbit.parse(json.dumps(as_strings).encode(), RECEIVED)
    assert plain == typed and len(typed.bids) == 15
    assert all(type(price) is float and type(size) is float for price, size in typed.bids + typed.asks)
    body = [{"market": frame["code"], "timestamp": frame["timestamp"], "orderbook_units": units}
            for units in (frame["orderbook_units"], as_strings["orderbook_units"])]
    assert bithumb.parse(json.dumps(body), RECEIVED) == [typed._replace(exchange="BITHUMB")] * 2
    broken = dict(frame, orderbook_units=[{"ask_price": 1, "bid_price": 1, "ask_size": 1}])
    with pytest.raises(MalformedMessage, match="bad orderbook unit: .*bid_size"):
        upbit.parse(json.dumps(broken), RECEIVED)
