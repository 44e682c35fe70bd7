"""Book sync of the eight snapshot + delta venues without sockets or threads: each venue's
recorded frames, the ones its loopback server streams in the recorded-session tests, go one by
one through the controller's data path (``handle_payload``, as the connection thread calls it),
and the last book handed on for each market must be the fixture oracle's.

Where the venue takes its snapshot from REST (Binance spot and USD-M, Gate.io, KuCoin), the
recorded snapshot is loaded as the snapshot worker loads it (``_request_snapshot``): the
controller's own ``fetch_snapshot`` asks for it, and ``responses`` answers with the recorded body
(no socket). It comes after the market's first delta, as it does on the wire (the request goes
out on connect; the deltas already stream while it is on its way), so the buffered delta is
replayed through the sequence rule and the later ones go straight through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from core.model import Market
from collector.simulator.recorded import (BinanceRecordedServer, BitmexRecordedServer,
                                          BybitRecordedServer, GateioRecordedServer,
                                          KrakenRecordedServer, KucoinRecordedServer,
                                          OkxRecordedServer, RecordedBookServer)
from controllers.binance import BinanceController
from controllers.binance_futures import BinanceFuturesController
from controllers.bitmex import BitmexController
from controllers.bybit import BybitController
from controllers.deltabook import DeltaBookController
from controllers.gateio import GateioController
from controllers.kraken import KrakenController
from controllers.kucoin import KucoinController
from controllers.okx import OkxController
from tests.global_helpers import FIXTURES, fixture_lines, last_books, levels, oracle, resyncs

REST = "http://rest.test"


@dataclass
class Venue:
    """One recorded session: the controller, its markets by the exchange's name, the frames as
    the loopback server sends them, the recorded REST snapshots by name, and the oracle: the
    final ``(bids, asks)`` per name and, where the oracle counts them, the deltas applied and
    skipped per name."""

    cls: type[DeltaBookController]
    markets: dict[str, Market]
    frames: list[str]
    snapshots: dict[str, str]
    final: dict[str, tuple]
    applied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, int] = field(default_factory=dict)
    depth: int = 5


def book_frames(server_cls: type[RecordedBookServer], lines: list[str], names, **rules) -> list[str]:
    """The frames ``server_cls`` streams to a client subscribed to ``names``: the book frames of
    those markets, in recorded order, as re-spelled by the server (Kraken). The server's own
    rules are used, on an instance left uninitialised (``__init__`` opens a listening socket);
    ``rules`` are the attributes those rules read."""
    server = object.__new__(server_cls)
    server.__dict__.update(rules)
    if server_cls is KrakenRecordedServer:
        lines = [server._rewire(line) for line in lines]
    return [line for line in lines if server.book_frame(line) in names]


def top(book: dict, bids: str = "final_top5_bids", asks: str = "final_top5_asks") -> tuple:
    return levels(book[bids]), levels(book[asks])


BINANCE_PAIRS = {"BLZETH": Market("BLZ", "ETH"), "LRCBTC": Market("LRC", "BTC"),
                 "NKNUSDT": Market("NKN", "USDT"), "RUNEEUR": Market("RUNE", "EUR"),
                 "AKROUSDT": Market("AKRO", "USDT"), "CTKUSDT": Market("CTK", "USDT"),
                 "KEEPUSDT": Market("KEEP", "USDT"), "SUSHIUSDT": Market("SUSHI", "USDT"),
                 "BTCUSDT": Market("BTC", "USDT")}
BINANCE = {"binance_spot": (BinanceController, "20211012"),
           "binance_futures": (BinanceFuturesController, "20210722")}


def binance_cryptofeed(folder: str) -> Venue:
    cls, day = BINANCE[folder]
    expected = oracle(f"{folder}/expected_rec_cryptofeed_{day}_replay.json")["books"]
    lines = fixture_lines(f"{folder}/rec_cryptofeed_{day}_ws_recv.ndjson")
    return Venue(cls, {name: BINANCE_PAIRS[name] for name in expected},
                 book_frames(BinanceRecordedServer, lines, expected),
                 {name: (FIXTURES / folder / book["snapshot_file"]).read_text()
                  for name, book in expected.items()},
                 {name: top(book) for name, book in expected.items()},
                 applied={name: book["n_applied"] for name, book in expected.items()},
                 skipped={name: len(book["dropped_event_lines"]) for name, book in expected.items()})


def binance_btcusdt(folder: str) -> Venue:
    cls, _ = BINANCE[folder]
    expected = oracle(f"{folder}/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")
    lines = fixture_lines(f"{folder}/{expected['files']['depth']}")
    return Venue(cls, {"BTCUSDT": BINANCE_PAIRS["BTCUSDT"]},
                 book_frames(BinanceRecordedServer, lines, {"BTCUSDT"}),
                 {"BTCUSDT": (FIXTURES / folder / expected["files"]["snapshot"]).read_text()},
                 {"BTCUSDT": top(expected)}, applied={"BTCUSDT": expected["n_applied"]},
                 skipped={"BTCUSDT": len(expected["dropped_depth_lines"])})


def okx() -> Venue:
    books = oracle("okx/expected_rec_cryptofeed_20220513_replay.json")
    expected = books["final_top5"]
    markets = {"BTC-USD-220527": Market("BTC", "USD-220527"), "UNI-USD-SWAP": Market("UNI", "USD-SWAP"),
               "BTC-USDT": Market("BTC", "USDT")}
    lines = fixture_lines("okx/rec_cryptofeed_20220513_ws_recv.ndjson")
    return Venue(OkxController, markets, book_frames(OkxRecordedServer, lines, markets), {},
                 {name: top(book, "bids", "asks") for name, book in expected.items()},
                 checksums=books["checksum_matches"])


def bybit() -> Venue:
    expected = oracle("bybit/expected_rec_bybit-archive_20241201_replay.json")
    lines = fixture_lines("bybit/rec_bybit-archive_20241201_XRPUSDT_orderbook500_linear.ndjson")
    return Venue(BybitController, {"XRPUSDT": Market("XRP", "USDT")},
                 book_frames(BybitRecordedServer, lines, {"XRPUSDT"}), {},
                 {"XRPUSDT": top(expected)}, applied={"XRPUSDT": expected["n_messages"] - 1},
                 skipped={"XRPUSDT": 0})


def gateio() -> Venue:
    expected = oracle("gateio/expected_rec_cryptofeed_20210422_replay.json")["books"]
    lines = fixture_lines("gateio/rec_cryptofeed_20210422_ws_recv.ndjson")
    return Venue(GateioController, {name: Market(*name.split("_")) for name in expected},
                 book_frames(GateioRecordedServer, lines, expected),
                 {name: (FIXTURES / f"gateio/rec_cryptofeed_20210422_rest_snapshot_{name}.json").read_text()
                  for name in expected},
                 {name: top(book) for name, book in expected.items()},
                 applied={name: book["applied_msgs"] for name, book in expected.items()},
                 skipped={name: book["dropped_msgs"] for name, book in expected.items()})


def kucoin() -> Venue:
    expected = oracle("kucoin/expected_rec_cryptofeed_20210425_replay.json")["books"]
    lines = fixture_lines("kucoin/rec_cryptofeed_20210425_ws_recv.ndjson")
    return Venue(KucoinController, {name: Market(*name.split("-")) for name in expected},
                 book_frames(KucoinRecordedServer, lines, expected),
                 {name: (FIXTURES / f"kucoin/rec_cryptofeed_20210425_rest_snapshot_{name}.json").read_text()
                  for name in expected},
                 {name: top(book) for name, book in expected.items()},
                 applied={name: book["applied_msgs"] for name, book in expected.items()},
                 skipped={name: book["skipped_msgs"] for name, book in expected.items()})


def kraken() -> Venue:
    expected = oracle("kraken/expected_rec_python-kraken-sdk_20230730_replay.json")
    lines = fixture_lines("kraken/rec_python-kraken-sdk_20230730_BTCUSD_book10_v2.ndjson")
    frames = book_frames(KrakenRecordedServer, lines, {"BTC/USD"}, precision=(1, 8))
    return Venue(KrakenController, {"BTC/USD": Market("BTC", "USD")}, frames, {},
                 {"BTC/USD": top(expected, "final_top10_bids", "final_top10_asks")},
                 applied={"BTC/USD": len(frames) - 1},
                 checksums={"BTC/USD": expected["checksum_matches"]}, depth=10)


def bitmex() -> Venue:
    expected = oracle("bitmex/expected_rec_cryptofeed_20210722_replay.json")["final_books"]
    markets = {"XRPU21": Market("XRP", "U21"), "UNIUSDT": Market("UNI", "USDT"),
               "XBTUSD": Market("BTC", "USD"), "ADAUSDT": Market("ADA", "USDT"),
               "SOLUSDT": Market("SOL", "USDT"), "TRXU21": Market("TRX", "U21"),
               "EOSUSDT": Market("EOS", "USDT"), "TRXUSDT": Market("TRX", "USDT"),
               "BCHUSD": Market("BCH", "USD"), "MATICUSDT": Market("MATIC", "USDT")}
    lines = fixture_lines("bitmex/rec_cryptofeed_20210722_ws_recv.ndjson")
    return Venue(BitmexController, markets, book_frames(BitmexRecordedServer, lines, markets), {},
                 {name: top(book, "top5_bids", "top5_asks") for name, book in expected.items()})


VENUES = {
    "binance_spot": lambda: binance_cryptofeed("binance_spot"),
    "binance_spot-BTCUSDT": lambda: binance_btcusdt("binance_spot"),
    "binance_futures": lambda: binance_cryptofeed("binance_futures"),
    "binance_futures-BTCUSDT": lambda: binance_btcusdt("binance_futures"),
    "okx": okx,
    "bybit": bybit,
    "gateio": gateio,
    "kucoin": kucoin,
    "kraken": kraken,
    "bitmex": bitmex,
}


def controller_for(venue: Venue, stored: list, events: list) -> DeltaBookController:
    """``venue``'s controller handing its records to ``stored`` and its events to ``events``,
    its REST snapshots asked of ``REST`` (answered by :func:`replay`)."""
    return venue.cls(list(venue.markets.values()), sink=lambda b: stored.append(b) or True,
                     events=events.append, env={venue.cls.rest_url_env: REST}, depth=venue.depth)


def replay(controller: DeltaBookController, venue: Venue,
           before: Callable[[int, str], None] | None = None) -> list[str]:
    """Feed ``venue``'s frames to ``controller`` through ``handle_payload``, loading each
    market's recorded REST snapshot as the snapshot worker does, after its first delta; calls
    ``before(position, frame)`` before each frame. Returns the names whose snapshot was asked."""
    asked: list[str] = []

    def snapshot_reply(request):
        query = parse_qs(urlsplit(request.url).query)
        [wanted] = [v[0] for v in query.values() if v[0] in venue.snapshots]
        asked.append(wanted)
        return 200, {}, venue.snapshots[wanted]

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rest:
        rest.add_callback(responses.GET, re.compile(re.escape(REST) + "/.*"), callback=snapshot_reply)
        controller.on_connect(controller.markets)  # what a new connection does: books from snapshots
        loaded = set()
        for position, frame in enumerate(venue.frames):
            if before is not None:
                before(position, frame)
            controller.handle_payload(frame, 1_000_000 + position)
            if controller.rest_snapshots:
                for market in controller.markets:
                    if market not in loaded and controller.sync[market].buffered:
                        assert controller._request_snapshot(market) is None  # done, no failure
                        loaded.add(market)
        for market in controller.markets:  # a market that got no delta gets its snapshot too
            if controller.rest_snapshots and market not in loaded:
                assert controller._request_snapshot(market) is None
    return asked


@pytest.mark.parametrize("session", VENUES)
def test_recorded_frames_without_sockets_end_at_the_oracle_book(session):
    venue = VENUES[session]()
    assert venue.final.keys() == venue.markets.keys() and venue.frames
    stored, events = [], []
    controller = controller_for(venue, stored, events)
    assert controller.rest_snapshots == bool(venue.snapshots)
    asked = replay(controller, venue)
    assert sorted(asked) == sorted(venue.snapshots)  # one REST snapshot per market, if any
    final = last_books(stored)
    for name, market in venue.markets.items():
        stats = controller.sync[market]
        assert final[market.base + market.quote] == venue.final[name], name
        assert (stats.snapshots, stats.resyncs) == (1, 0), name
        if name in venue.applied:
            assert stats.applied == venue.applied[name], name
        if name in venue.skipped:
            assert stats.skipped == venue.skipped[name], name
        if name in venue.checksums:
            assert (stats.checksums, stats.checksum_failures) == (venue.checksums[name], 0), name
    assert controller.stats.errors == 0 and resyncs(events) == []
    assert all(b.bids[0][0] < b.asks[0][0] for b in stored)  # no crossed book was handed on
