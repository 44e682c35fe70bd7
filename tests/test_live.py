"""The simulator's live exchanges, one at a time: each controller takes its server's generated
snapshots and deltas (sequence ids, ``pu``/``prevSeqId`` chains, Kraken's checksums, BitMEX's
level ids, REST snapshots from the same truth) with no error and no resync, the books it builds
are the server's, and the prices follow one reference path."""

from __future__ import annotations

import time

import pytest

from controllers import CONTROLLERS
from controllers.deltabook import DeltaBookController
from core.model import Market, OrderBookSnapshot, Ticker, Trade
from collector.simulator.live import GLOBAL, LiveVenues
from collector.simulator.world import LiveBook, World, tick_size
from tests.helpers import fast

SYMBOLS = ["BTC", "ETH", "XRP"]


def run_controller(name: str, venues: LiveVenues, seconds: float):
    """A ``name`` controller on the book, ticker and trade channels against ``venues`` for
    ``seconds``; returns ``(controller, records, events, truth)``, ``truth`` the server's books
    (top 10) when it stopped sending: the stream is held (its lock) while the last frames
    arrive."""
    cls = CONTROLLERS[name]
    records: list = []
    events: list = []
    markets = [Market(s, cls.default_currency) for s in SYMBOLS]
    controller = fast(cls)(markets, sink=lambda r: records.append(r) or True, events=events.append,
                           env=venues.env(), depth=10, channels=("orderbook", "ticker", "trade"))
    controller.start()
    time.sleep(seconds)
    server = venues.globals[name]
    with server.lock:
        time.sleep(0.5)
        truth = {n: server.live[n].top(10) for n in server.live}
        stored = list(records)
    controller.stop()
    assert controller.join(5.0)
    return controller, stored, events, truth


def as_stored(levels, name: str) -> tuple:
    """A server's ``(price, size)`` texts as the collector stores them (BitMEX: sizes in
    contracts of a millionth of the base)."""
    if name == "bitmex":
        return tuple((float(p), float(round(float(s) * 1_000_000))) for p, s in levels)
    return tuple((float(p), float(s)) for p, s in levels)


@pytest.mark.parametrize("name", GLOBAL)
def test_each_global_exchange_takes_the_generated_stream_without_an_error(name):
    world = World(seed=5)
    with LiveVenues(SYMBOLS, world=world, exchanges=[name], interval=0.05) as venues:
        controller, records, events, truth = run_controller(name, venues, 2.5)
    assert controller.stats.errors == 0
    assert not [e for e in events if e.kind == "resync"], events
    books = [r for r in records if type(r) is OrderBookSnapshot]
    assert {b.base for b in books} == set(SYMBOLS) and len(books) >= 3 * 20
    sync = controller.sync if isinstance(controller, DeltaBookController) else {}
    assert all(s.resyncs == 0 and s.checksum_failures == 0 for s in sync.values())
    if name == "kraken":  # every update carries the CRC32 of the top ten
        assert all(s.checksums >= 20 for s in sync.values())
    for market in controller.markets:  # the last stored book is the server's book now
        last = [b for b in books if b.base == market.base][-1]
        bids, asks = truth[controller.market_name(market)]
        assert (last.bids, last.asks) == (as_stored(bids, name), as_stored(asks, name))
        assert abs(last.bids[0][0] / world.price(controller.exchange, market.base, "USDT") - 1) < 0.01
    if name != "binance_futures":  # its tickers and trades are its companion's
        assert any(type(r) is Ticker for r in records) and any(type(r) is Trade for r in records)


def test_kimchi_premium_and_rates():
    world = World(seed=2, usd_krw=1400.0, premium=0.02, start=1_000.0)
    for at in (1_000.0, 1_100.0, 1_400.0):
        usd = world.usd("BTC", at)
        for exchange in ("UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX"):
            ratio = world.price(exchange, "BTC", "KRW", at) / (usd * 1400.0) - 1
            assert 0.01 < ratio < 0.03  # 2 % +- the swing and the exchange's offset
        for exchange in ("BINANCE", "OKX", "KRAKEN"):
            assert abs(world.price(exchange, "BTC", "USDT", at) / usd - 1) < 0.0005
        assert 1400 < world.price("UPBIT", "USDT", "KRW", at) < 1400 * 1.003
    again = World(seed=2, usd_krw=1400.0, premium=0.02, start=1_000.0)
    assert [again.usd("ETH", t) for t in (1_000.0, 1_050.0)] == [world.usd("ETH", t) for t in (1_000.0, 1_050.0)]
    assert World(seed=3, start=1_000.0).usd("ETH", 1_050.0) != world.usd("ETH", 1_050.0)


def test_a_live_book_is_never_crossed_and_its_deltas_rebuild_it():
    prices = iter([100.0 * (1 + 0.001 * ((i * 7) % 13 - 6)) for i in range(500)])
    book = LiveBook(lambda: next(prices), "USDT", 50.0, levels=8)
    rebuilt = {"bid": dict(book.top()[0]), "ask": dict(book.top()[1])}
    for _ in range(400):
        bids, asks = book.step()
        for side, changes in (("bid", bids), ("ask", asks)):
            for price, size in changes:
                if size == "0":
                    rebuilt[side].pop(price)
                else:
                    rebuilt[side][price] = size
        top_bids, top_asks = book.top()
        assert float(top_bids[0][0]) < book.mid < float(top_asks[0][0])
        assert len(top_bids) == len(top_asks) == 8
        assert rebuilt == {"bid": dict(top_bids), "ask": dict(top_asks)}
    assert tick_size(95_000.0, "USDT") == 0.1 and tick_size(135_000_000.0, "KRW") == 1000.0
