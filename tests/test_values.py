"""Values a record may not hold, on every venue: each venue's real fixture message, mutated to
carry NaN, an infinity, 0 or a negative number in a price or a size, goes through the
controller's data path (``handle_payload``, no socket) and must hand nothing on, be counted and
logged with the market's tag, and leave the controller storing the next good message.

Sizes of 0 are not among the mutations of books: a level of size 0 is padding in a full book and
a deletion in a delta (both kept as they were); a ticker's volume may be 0 too (no trade in the
window). The stored-rows test runs every accepted and refused record into a real
:class:`~storage.SQLiteWriter` and reads the file back.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3

import pytest

from core.model import Market, OrderBookSnapshot
from controllers import (BinanceController, BinanceFuturesController, BithumbController,
                         BitmexController, BybitController, CoinoneController, GateioController,
                         GopaxController, KorbitController, KrakenController, KucoinController,
                         OkxController, UpbitController)
from controllers.bithumb import BithumbStreamController
from storage import SQLiteWriter
from tests.global_helpers import last_books, resyncs
from tests.sim_oracles import fixture_text
from tests.test_sync_recordings import VENUES, controller_for, replay

RECEIVED = 1_790_000_000_000
ALL = ("orderbook", "ticker", "trade")
BAD = ("NaN", "inf", "0", "-1")
"""The values put in: as a string where the exchange sends strings; where it sends numbers,
NaN stays the string ``"NaN"`` (JSON has no NaN) and an infinity is ``1e999``."""
INF_TOKEN = "@1e999@"


def spelled(original: object, bad: str) -> object:
    """``bad`` as the exchange spells the field ``original`` came in."""
    if isinstance(original, str) or bad == "NaN":
        return bad
    return {"inf": INF_TOKEN, "0": 0, "-1": -1}[bad]


def dumped(message: object) -> str:
    return json.dumps(message).replace(f'"{INF_TOKEN}"', "1e999")


def is_number(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def first_level(node: object) -> tuple[object, object, object] | None:
    """``(container, price key, size key)`` of the first level of positive size in a decoded
    message: ``{"price", "qty"|"size"|"volume"}`` objects, ``["price", "size", …]`` arrays of
    strings, and ``orderbook_units`` (the bid of the first unit)."""
    if isinstance(node, dict):
        if "bid_price" in node and "bid_size" in node:
            return node, "bid_price", "bid_size"
        size = next((key for key in ("qty", "size", "volume") if key in node), None)
        if "price" in node and size and is_number(node[size]) and float(node[size]) > 0:
            return node, "price", size
        children = list(node.values())
    elif isinstance(node, list):
        if (len(node) >= 2 and all(isinstance(v, str) and is_number(v) for v in node[:2])
                and float(node[1]) > 0):
            return node, 0, 1
        children = node
    else:
        return None
    for child in children:
        found = first_level(child)
        if found is not None:
            return found
    return None


def with_level(text: str, field: str, bad: str) -> str:
    """``text`` with the price (``field="price"``) or size of its first level set to ``bad``."""
    message = json.loads(text)
    found = first_level(message)
    assert found is not None, text[:200]
    container, price_key, size_key = found
    key = price_key if field == "price" else size_key
    container[key] = spelled(container[key], bad)  # type: ignore[index]
    return dumped(message)


def with_field(text: str, key: str, bad: str) -> str:
    """``text`` with the first field named ``key`` (anywhere in it) set to ``bad``."""
    message = json.loads(text)

    def visit(node):
        if isinstance(node, dict):
            if key in node:
                node[key] = spelled(node[key], bad)
                return True
            return any(visit(child) for child in node.values())
        return isinstance(node, list) and any(visit(child) for child in node)

    assert visit(message), f"no {key!r} in {text[:200]}"
    return dumped(message)


class Sink:
    """The records a controller hands on, and a controller with it."""

    def __init__(self) -> None:
        self.records: list = []

    def __call__(self, record) -> bool:
        self.records.append(record)
        return True


def refused(controller, payload: str, sink: Sink, tag: str, caplog) -> None:
    """``payload`` is refused: nothing handed on, one error counted, a warning with ``tag``."""
    handed, errors = len(sink.records), controller.stats.errors
    caplog.clear()
    assert controller.handle_payload(payload, RECEIVED) == 0
    assert len(sink.records) == handed, sink.records[handed:]
    assert controller.stats.errors == errors + 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.tag for r in warnings] == [tag], (controller.last_error, [r.tag for r in warnings])
    assert "parse error: MalformedMessage" in warnings[0].getMessage()


def stored_after(controller, payload: str, sink: Sink, kind: type) -> object:
    """``payload`` is handed on: the last record is of ``kind``."""
    handed = len(sink.records)
    controller.handle_payload(payload, RECEIVED + 1)
    assert len(sink.records) > handed and type(sink.records[-1]) is kind, controller.last_error
    return sink.records[-1]


BOOK_MUTATIONS = [(field, bad) for field in ("price", "size") for bad in BAD
                  if (field, bad) != ("size", "0")]


# --- full books: Upbit, Bithumb (REST), Coinone, Korbit -----------------------------------------

FULL_BOOKS = {
    "upbit": (UpbitController, Market("BTC", "KRW"), "upbit/ws_orderbook_default_docs.json"),
    "bithumb": (BithumbController, Market("BTC", "KRW"),
                "bithumb/rest_orderbook_v1_recorded_2025-08.json"),
    "coinone": (CoinoneController, Market("XRP", "KRW"), "coinone/ws_orderbook_docs.json"),
    "korbit": (KorbitController, Market("BTC", "KRW"),
               "korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json"),
}


def full_book_controller(venue: str, sink: Sink):
    cls, market, fixture = FULL_BOOKS[venue]
    text = fixture_text(fixture)
    extra = [Market("ETH", "KRW")] if venue == "bithumb" else []  # its body holds both
    return cls([market] + extra, sink=sink, depth=15), market, text


@pytest.mark.parametrize("field, bad", BOOK_MUTATIONS)
@pytest.mark.parametrize("venue", FULL_BOOKS)
def test_a_full_book_with_a_bad_level_is_refused(venue, field, bad, caplog):
    sink = Sink()
    controller, market, text = full_book_controller(venue, sink)
    refused(controller, with_level(text, field, bad), sink, market.tag(controller.exchange), caplog)
    book = stored_after(controller, text, sink, OrderBookSnapshot)
    assert all(0 < p < math.inf and 0 < v < math.inf for p, v in book.bids + book.asks)


def crossed(text: str) -> str:
    """The book of ``text`` with its bids lifted to its best ask (best bid = best ask)."""
    message = json.loads(text)
    units = message[0]["orderbook_units"] if isinstance(message, list) else \
        message.get("orderbook_units")
    if units is not None:
        best_ask = min(u["ask_price"] for u in units if float(u["ask_price"]) > 0)
        for unit in units:
            unit["bid_price"] = best_ask
        return json.dumps(message)
    data = message["data"]
    best_ask = min(data["asks"], key=lambda level: float(level["price"]))["price"]
    for level in data["bids"]:
        level["price"] = best_ask
    return json.dumps(message)


@pytest.mark.parametrize("venue", FULL_BOOKS)
def test_a_crossed_full_book_is_refused(venue, caplog):
    sink = Sink()
    controller, market, text = full_book_controller(venue, sink)
    refused(controller, crossed(text), sink, market.tag(controller.exchange), caplog)
    assert "crossed book: best bid" in controller.last_error
    stored_after(controller, text, sink, OrderBookSnapshot)


@pytest.mark.parametrize("venue", ["upbit", "bithumb"])
def test_zero_padding_of_a_full_book_is_still_dropped_silently(venue):
    sink = Sink()
    controller, market, text = full_book_controller(venue, sink)
    message = json.loads(text)
    units = message[0]["orderbook_units"] if isinstance(message, list) else message["orderbook_units"]
    units.append({"ask_price": 0, "bid_price": 0, "ask_size": 0, "bid_size": 0})  # a thin book
    units.append(dict(units[0], bid_size=0))  # dust shown as 0 at a live price (Bithumb)
    book = stored_after(controller, json.dumps(message), sink, OrderBookSnapshot)
    assert controller.stats.errors == 0 and len(book.bids) == len(book.asks) == 15


# --- local books: GOPAX and the eight snapshot + delta venues -----------------------------------

@pytest.mark.parametrize("field, bad", BOOK_MUTATIONS)
@pytest.mark.parametrize("what", ["snapshot", "delta"])
def test_a_gopax_snapshot_or_delta_with_a_bad_entry_is_refused_whole(what, field, bad, caplog):
    sink = Sink()
    gopax = GopaxController([Market("BCH", "KRW")], sink=sink, env={}, depth=15)
    snapshot = fixture_text("gopax/ws_orderbook_snapshot_docs.json")
    delta = fixture_text("gopax/ws_orderbook_delta_docs.json")
    if what == "snapshot":
        refused(gopax, with_level(snapshot, field, bad), sink, "GOPAX-BCH-KRW", caplog)
        assert not gopax.has_book(Market("BCH", "KRW"))
    stored_after(gopax, snapshot, sink, OrderBookSnapshot)
    if what == "delta":  # the second entry (the first deletes a level: size 0 is no mutation)
        refused(gopax, with_level(delta, field, bad), sink, "GOPAX-BCH-KRW", caplog)
    book = stored_after(gopax, delta, sink, OrderBookSnapshot)
    assert book.bids == ((4500000.0, 1.3),) and book.asks == ((5100000.0, 2.5),)


DELTA_SESSIONS = ["binance_spot-BTCUSDT", "binance_futures-BTCUSDT", "okx", "bybit", "gateio",
                  "kucoin", "kraken", "bitmex"]


DELTA_CASES = [(session, field, bad) for session in DELTA_SESSIONS for field, bad in BOOK_MUTATIONS
               if (session, field, bad) != ("kucoin", "price", "0")]
"""KuCoin documents a change at price 0 as one that only moves the sequence: it is ignored."""


@pytest.mark.parametrize("session, field, bad", DELTA_CASES)
def test_a_delta_with_a_bad_level_is_refused_and_the_book_stays_the_oracles(session, field, bad,
                                                                              caplog):
    """The first delta of a market whose book already took one is sent mutated first: it is refused
    whole (no level of it applied), and the rest of the session, that delta included, ends at
    the oracle's book without a resync."""
    venue = VENUES[session]()
    stored: list = []
    events: list = []
    controller = controller_for(venue, stored, events)
    sink = Sink()
    sink.records = stored
    injected = []

    def before(position: int, frame: str) -> None:
        markets = [m for m in controller.markets if is_frame_of(frame, controller, m)]
        if injected or len(markets) != 1 or not controller.sync[markets[0]].applied:
            return  # the frame of one market whose book already took a delta
        if controller.exchange == "BITMEX" and '"action":"insert"' not in frame:
            return  # BitMEX updates take their price from the id, deletes have no size
        if first_level(json.loads(frame)) is None:
            return  # only deletions
        refused(controller, with_level(frame, field, bad), sink,
                markets[0].tag(controller.exchange), caplog)
        injected.append(len(stored))

    replay(controller, venue, before)
    assert injected, "no delta came after a market's book took one"
    assert len(stored) > injected[0]  # the good delta and the ones after it were stored
    final = last_books(stored)
    for name, market in venue.markets.items():
        assert final[market.base + market.quote] == venue.final[name], name
        assert controller.sync[market].snapshots == 1
    assert controller.stats.errors == 1 and resyncs(events) == []


def is_frame_of(frame: str, controller, market: Market) -> bool:
    """Whether ``frame`` carries ``market``'s book (its exchange name appears in it)."""
    return f'"{controller.market_name(market)}"' in frame or (
        controller.exchange == "KRAKEN" and f'"{market.base}/{market.quote}"' in frame)


# --- tickers and trades of every venue ----------------------------------------------------------

def line_with(path: str, marker: str) -> str:
    return next(line for line in fixture_text(path).splitlines() if marker in line)


RECORDS = {
    # venue: (controller, markets, ticker (fixture text, price key, volume key), trade (text, price, size))
    "upbit": (UpbitController, [Market("BTC", "KRW")],
              (fixture_text("upbit/ws_ticker_default_docs.json"), "trade_price", "acc_trade_volume_24h"),
              (fixture_text("upbit/ws_trade_default_docs.jsonl").splitlines()[0], "trade_price",
               "trade_volume")),
    "bithumb": (BithumbStreamController, [Market("BTC", "KRW")],
                (fixture_text("bithumb/ws_ticker_wire_2026-09_trimmed.json"), "trade_price", None),
                (fixture_text("bithumb/ws_trade_wire_2026-09_trimmed.json"), "trade_price",
                 "trade_volume")),
    "coinone": (CoinoneController, [Market("BTC", "KRW")],
                (fixture_text("coinone/ws_ticker_wire_2026-09.json"), "last", "target_volume"),
                (fixture_text("coinone/ws_trade_wire_2026-09.json"), "price", "qty")),
    "korbit": (KorbitController, [Market("BTC", "KRW")],
               (fixture_text("korbit/ws_ticker_snapshot_wire_2026-09.json"), "close", "volume"),
               (fixture_text("korbit/ws_trade_snapshot_wire_2026-09.json"), "price", "qty")),
    "gopax": (GopaxController, [Market("WOORI", "KRW"), Market("BCH", "KRW")],
              (fixture_text("gopax/ws_ticker_event_wire_2026-09.json"), "last", "baseVolume"),
              (fixture_text("gopax/ws_public_trade_event_docs.json"), "price", "baseAmount")),
    "binance_spot": (BinanceController, [Market("BNB", "BTC")],
                     (fixture_text("binance_spot/doc_ws_24hrTicker.json"), "c", "v"),
                     (fixture_text("binance_spot/doc_ws_trade.json"), "p", "q")),
    "binance_futures": (BinanceFuturesController.feeds(["trade"])[0], [Market("BTC", "USDT")],
                        (fixture_text("binance_futures/doc_ws_24hrTicker.json"), "c", "v"),
                        (fixture_text("binance_futures/rec_hftbacktest_20240808_BTCUSDT_trade_minute"
                                      "_1723161300000.ndjson").splitlines()[0], "p", "q")),
    "okx": (OkxController, [Market("BTC", "USDT"), Market("BTC", "USD-220527")],
            (line_with("okx/rec_cryptofeed_20220513_ws_recv.ndjson",
                       '{"arg":{"channel":"tickers","instId":"BTC-USDT"'), "last", "vol24h"),
            (line_with("okx/rec_cryptofeed_20220513_ws_recv.ndjson", '{"arg":{"channel":"trades"'),
             "px", "sz")),
    "bybit": (BybitController, [Market("BTC", "USDT")],
              (fixture_text("bybit/doc_ws_tickers_spot_snapshot.json"), "lastPrice", "volume24h"),
              (fixture_text("bybit/doc_ws_publicTrade_linear.json"), "p", "v")),
    "gateio": (GateioController, [Market("NEO", "BTC"), Market("GT", "USDT")],
               (line_with("gateio/rec_cryptofeed_20210422_ws_recv.ndjson",
                          '"channel":"spot.tickers","event":"update","result":{"currency_pair":"NEO_BTC"'),
                "last", "base_volume"),
               (fixture_text("gateio/doc_ws_trades_update.json"), "price", "amount")),
    "kraken": (KrakenController, [Market("ALGO", "USD"), Market("MATIC", "USD")],
               (fixture_text("kraken/doc_ws_v2_ticker_snapshot.json"), "last", "volume"),
               (fixture_text("kraken/doc_ws_v2_trade_snapshot.json"), "price", "qty")),
    "kucoin": (KucoinController, [Market("BTC", "USDT"), Market("SNX", "BTC")],
               (line_with("kucoin/rec_cryptofeed_20210425_ws_recv.ndjson",
                          '"topic":"/market/ticker:SNX-BTC"'), "price", None),
               (fixture_text("kucoin/doc_ws_match.json"), "price", "size")),
    "bitmex": (BitmexController, [Market("BTC", "USD"), Market("UNI", "USDT")],
               (fixture_text("bitmex/instrument_XBTUSD_assembled.ndjson").splitlines()[0],
                "lastPrice", "homeNotional24h"),
               (line_with("bitmex/rec_cryptofeed_20210722_ws_recv.ndjson",
                          '{"table":"trade","action":"insert"'), "price", "size")),
}

RECORD_CASES = [
    pytest.param(venue, kind, key, bad, id=f"{venue}-{kind}-{key}-{bad}")
    for venue, (_, _, ticker, trade) in RECORDS.items()
    for kind, (_, price, size) in (("ticker", ticker), ("trade", trade))
    for key, bads in ((price, BAD), (size, BAD if kind == "trade" else ("NaN", "inf", "-1")))
    if key is not None for bad in bads
]


@pytest.mark.parametrize("venue, kind, key, bad", RECORD_CASES)
def test_a_ticker_or_trade_with_a_bad_price_or_size_is_refused(venue, kind, key, bad, caplog):
    cls, markets, ticker, trade = RECORDS[venue]
    text = ticker[0] if kind == "ticker" else trade[0]
    sink = Sink()
    controller = cls(markets, sink=sink, channels=ALL, env={})
    good = controller.parse(text, RECEIVED)  # the market the good message is of
    assert good and all(type(r).__name__.lower() == kind for r in good), good
    tag = good[0].tag
    if venue == "bitmex" and kind == "ticker":
        controller = cls(markets, sink=sink, channels=ALL, env={})  # fields merge: start afresh
    refused(controller, with_field(text, key, bad), sink, tag, caplog)
    handed = len(sink.records)
    controller.handle_payload(text, RECEIVED + 1)
    assert len(sink.records) > handed and sink.records[-1].tag == tag


def test_a_ticker_volume_of_0_is_stored():
    cls, markets, (text, _, volume), _ = RECORDS["okx"]
    sink = Sink()
    controller = cls(markets, sink=sink, channels=ALL, env={})
    controller.handle_payload(with_field(text, volume, "0"), RECEIVED)
    assert [r.base_volume for r in sink.records] == [0.0] and controller.stats.errors == 0


# --- what reaches SQLite ------------------------------------------------------------------------

def test_no_refused_value_reaches_the_stored_rows(tmp_path):
    """Every mutation of every full book, ticker and trade above, and the good messages, through
    the controllers into a real writer: the file holds the good rows only, all finite and
    positive, none NULL."""
    db = tmp_path / "values.db"
    writer = SQLiteWriter(db)
    writer.start()
    handed = 0
    for venue in FULL_BOOKS:
        controller, _, text = full_book_controller(venue, writer.submit)  # type: ignore[arg-type]
        for field, bad in BOOK_MUTATIONS:
            controller.handle_payload(with_level(text, field, bad), RECEIVED)
        controller.handle_payload(crossed(text), RECEIVED)
        handed += controller.handle_payload(text, RECEIVED)
        assert controller.stats.errors == len(BOOK_MUTATIONS) + 1
    for venue, kind, key, bad in (case.values for case in RECORD_CASES):
        cls, markets, ticker, trade = RECORDS[venue]
        controller = cls(markets, sink=writer.submit, channels=ALL, env={})
        controller.handle_payload(with_field(ticker[0] if kind == "ticker" else trade[0], key, bad),
                                  RECEIVED)
        assert controller.stats.errors == 1
    for venue, (cls, markets, ticker, trade) in RECORDS.items():
        controller = cls(markets, sink=writer.submit, channels=ALL, env={})
        handed += controller.handle_payload(ticker[0], RECEIVED) + controller.handle_payload(
            trade[0], RECEIVED)
    writer.stop()
    conn = sqlite3.connect(db)
    levels = conn.execute("SELECT price, volume FROM orderbook").fetchall()
    books = conn.execute("SELECT count(DISTINCT snapshot_id) FROM orderbook").fetchone()[0]
    tickers = conn.execute("SELECT last, open, high, low, prev_close, base_volume, quote_volume "
                           "FROM ticker").fetchall()
    trades = conn.execute("SELECT price, volume FROM trade").fetchall()
    assert books >= len(FULL_BOOKS)
    assert len(tickers) == len(RECORDS) and len(trades) >= len(RECORDS)
    assert books + len(tickers) + len(trades) == handed
    for price, volume in levels + trades:
        assert 0 < price < math.inf and 0 < volume < math.inf, (price, volume)
    for last, *prices_then_volumes in tickers:
        assert 0 < last < math.inf
        for value in prices_then_volumes[:4]:
            assert value is None or 0 < value < math.inf
        for value in prices_then_volumes[4:]:
            assert value is None or 0 <= value < math.inf


# --- one message, several markets: the others' records are kept ---------------------------------

def test_a_bithumb_poll_keeps_the_other_markets_books_when_one_is_refused(caplog):
    sink = Sink()
    bithumb = BithumbController([Market("BTC", "KRW"), Market("ETH", "KRW")], sink=sink, depth=15)
    [btc] = json.loads(fixture_text("bithumb/rest_orderbook_v1_recorded_2025-08.json"))
    eth = json.loads(with_level(json.dumps(dict(btc, market="KRW-ETH")), "price", "NaN"))
    assert bithumb.handle_payload(json.dumps([eth, btc]), RECEIVED) == 1
    assert [b.tag for b in sink.records] == ["BITHUMB-BTC-KRW"] and bithumb.stats.errors == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.tag == "BITHUMB-ETH-KRW" and "bid_price" not in warning.getMessage()


def test_a_gopax_ticker_event_keeps_the_other_markets_tickers_when_one_is_refused(caplog):
    sink = Sink()
    gopax = GopaxController([Market("WOORI", "KRW"), Market("BTC", "KRW")], sink=sink, env={},
                            channels=ALL)
    event = json.loads(fixture_text("gopax/ws_ticker_event_wire_2026-09.json"))
    woori = event["o"]["WOORI-KRW"]
    event["o"]["BTC-KRW"] = dict(woori, tradingPairName="BTC-KRW", last="inf")
    assert gopax.handle_payload(json.dumps(event), RECEIVED) == 1
    assert [t.tag for t in sink.records] == ["GOPAX-WOORI-KRW"] and gopax.stats.errors == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.tag == "GOPAX-BTC-KRW" and "last is 'inf', not a finite number" in warning.getMessage()
