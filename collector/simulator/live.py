"""The thirteen exchanges on loopback with live, coherent prices (``python -m collector.simulator``).

Every server speaks its exchange's protocol (the servers of :mod:`collector.simulator.upbit`,
``bithumb``, ``coinone``, ``korbit``, ``gopax`` and :mod:`collector.simulator.recorded`) and sends
books, tickers and trades made when they are sent: stamped with the time of now, priced from one
:class:`~collector.simulator.world.World`, in the shape of the exchange's real messages
(``messages/``). The Korean exchanges send whole books (Upbit, Coinone and Korbit on WebSocket,
Bithumb on REST polling), GOPAX a snapshot and deltas with its entry ids; the eight global
exchanges a snapshot (WebSocket or REST) and deltas that follow each one's sequence rule (update
ids, ``pu``/``prevSeqId`` chains, per-change sequences, Kraken's CRC32 of the top ten, BitMEX's
level ids).

Which names, endpoint variables and market names an exchange uses comes from its controller
class (:data:`controllers.CONTROLLERS`).
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from controllers import CONTROLLERS, KOREAN
from core.model import Market
from collector.simulator.bithumb import BithumbServer
from collector.simulator.coinone import CoinoneServer
from collector.simulator.frames import data_json, data_text
from collector.simulator.gopax import GopaxServer, GopaxTruth
from collector.simulator.http import Reply
from collector.simulator.korbit import KorbitServer
from collector.simulator.markets import MarketListServer
from collector.simulator.recorded import (_NUMBER, BinanceRecordedServer, BitmexRecordedServer,
                                          BybitRecordedServer, GateioRecordedServer,
                                          KrakenRecordedServer, KucoinRecordedServer,
                                          OkxRecordedServer, TruthBook, _unquote_numbers)
from collector.simulator.upbit import UpbitServer
from collector.simulator.world import LiveBook, World, number

EXCHANGES = tuple(CONTROLLERS)
"""The lower-case names of every exchange the collector knows, Korean first."""
GLOBAL = tuple(name for name in EXCHANGES if name not in KOREAN)

_COMPACT = (",", ":")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """``ms`` since the epoch as ISO 8601 with milliseconds (BitMEX)."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_us(us: int) -> str:
    """``us`` since the epoch as RFC 3339 with microseconds (Kraken)."""
    return datetime.fromtimestamp(us // 1_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") \
        + f".{us % 1_000_000:06d}Z"


def unit_size(world: World, symbol: str) -> float:
    """The base quantity worth about 10,000 USD."""
    return 10_000.0 / (world.usd_krw if symbol == "USDT" else world.usd(symbol))


class LiveFrames(Sequence):
    """An endless list of frames, each made (by ``make(index)``) when first asked for, so it
    carries the time and the price of the moment it is sent. Successive indexes only (as
    :class:`~collector.simulator.ws.BookStreamServer` and the Bithumb server ask)."""

    def __init__(self, make: Callable[[int], object]) -> None:
        self.make = make
        self.made = 0
        self._last: tuple[int, object] = (-1, None)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, index):  # type: ignore[override]
        with self._lock:
            if index != self._last[0]:
                self._last = (index, self.make(index))
                self.made += 1
            return self._last[1]


class Ticking:
    """24-hour figures of one market that follow its trades: open, high, low, volumes."""

    def __init__(self, book: LiveBook, value: float) -> None:
        self.book = book
        self.open = book.mid * 0.99
        self.high = max(book.mid * 1.012, self.open)
        self.low = min(book.mid * 0.985, self.open)
        self.quote_volume = value
        self.volume = value / book.mid

    def trade(self, qty: float, price: float) -> None:
        self.high, self.low = max(self.high, price), min(self.low, price)
        self.volume += qty
        self.quote_volume += qty * price

    def text(self, value: float) -> str:
        return f"{value:.{self.book.price_decimals}f}"


# --- the Korean exchanges ----------------------------------------------------------------------

def _locked(method):
    """Run ``method`` holding the instance's ``_lock``."""
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    run.__name__, run.__doc__ = method.__name__, method.__doc__
    return run


class KoreanFeeds:
    """Books, trades and tickers of the Korean exchanges in their wire shapes (the templates are
    real messages in ``messages/``)."""

    def __init__(self, world: World, levels: int = 15) -> None:
        self.world = world
        self.levels = levels
        self.books: dict[tuple[str, str], LiveBook] = {}
        self.ticking: dict[tuple[str, str], Ticking] = {}
        self.upbit_docs = data_json("upbit/ws_orderbook_default_docs.json")
        self.coinone_docs = data_json("coinone/ws_orderbook_docs.json")
        self.korbit_wire = data_json("korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json")
        self.templates = {
            ("upbit", "trade"): json.loads(data_text("upbit/ws_trade_default_docs.jsonl").splitlines()[0]),
            ("upbit", "ticker"): data_json("upbit/ws_ticker_default_docs.json"),
            ("bithumb", "trade"): data_json("bithumb/ws_trade_wire_2026-09_trimmed.json"),
            ("bithumb", "ticker"): data_json("bithumb/ws_ticker_wire_2026-09_trimmed.json"),
            ("coinone", "trade"): data_json("coinone/ws_trade_wire_2026-09.json"),
            ("coinone", "ticker"): data_json("coinone/ws_ticker_wire_2026-09.json"),
            ("korbit", "trade"): data_json("korbit/ws_trade_snapshot_wire_2026-09.json"),
            ("korbit", "ticker"): data_json("korbit/ws_ticker_snapshot_wire_2026-09.json"),
            ("gopax", "trade"): data_json("gopax/ws_public_trade_event_docs.json"),
            ("gopax", "ticker"): data_json("gopax/ws_ticker_event_wire_2026-09.json"),
        }
        self.trade_ids: dict[tuple[str, str], int] = {}
        self._lock = threading.RLock()  # one book may serve two servers (Bithumb REST and WS)

    @_locked
    def book(self, exchange: str, symbol: str, levels: int | None = None) -> LiveBook:
        with self._lock:
            key = (exchange, symbol)
            if key not in self.books:
                self.books[key] = LiveBook(
                    lambda: self.world.price(exchange.upper(), symbol, "KRW"), "KRW",
                    unit_size(self.world, symbol), levels=levels or self.levels,
                    rng=random.Random(f"{self.world.seed}:{exchange}:{symbol}"))
                self.ticking[key] = Ticking(self.books[key], self.world.traded_value(
                    exchange.upper(), symbol, "KRW"))
            return self.books[key]

    def _pairs(self, exchange: str, symbol: str):
        book = self.book(exchange, symbol)
        book.step()
        bids, asks = book.top(self.levels)
        return list(zip(bids, asks))

    @_locked
    def upbit_book(self, code: str, index: int) -> str:
        units = [{"ask_price": number(a[0]), "bid_price": number(b[0]), "ask_size": float(a[1]),
                  "bid_size": float(b[1])} for b, a in self._pairs("upbit", code.split("-")[1])]
        return json.dumps(dict(
            self.upbit_docs, code=code, timestamp=now_ms(),
            total_ask_size=round(sum(u["ask_size"] for u in units), 8),
            total_bid_size=round(sum(u["bid_size"] for u in units), 8),
            orderbook_units=units, stream_type="SNAPSHOT" if index == 0 else "REALTIME"))

    @_locked
    def bithumb_book(self, market: str, index: int) -> dict:
        units = [{"ask_price": number(a[0]), "bid_price": number(b[0]), "ask_size": float(a[1]),
                  "bid_size": float(b[1])} for b, a in self._pairs("bithumb", market.split("-")[1])]
        return {"market": market, "timestamp": time.time_ns() // 1000,
                "total_ask_size": round(sum(u["ask_size"] for u in units), 8),
                "total_bid_size": round(sum(u["bid_size"] for u in units), 8),
                "orderbook_units": units}

    @_locked
    def coinone_book(self, symbol: str, index: int) -> str:
        pairs = self._pairs("coinone", symbol)
        ms = now_ms()
        data = dict(self.coinone_docs["data"], target_currency=symbol, timestamp=ms,
                    id=f"{ms}{index % 1000:03d}",
                    asks=[{"price": a[0], "qty": a[1]} for _, a in reversed(pairs)],  # worst first
                    bids=[{"price": b[0], "qty": b[1]} for b, _ in pairs])
        return json.dumps(dict(self.coinone_docs, data=data), separators=_COMPACT)

    @_locked
    def korbit_book(self, symbol: str, index: int) -> str:
        pairs = self._pairs("korbit", symbol)
        ms = now_ms()
        frame = {"symbol": f"{symbol.lower()}_krw", "timestamp": ms + 14, "type": "orderbook"}
        if index == 0:
            frame["snapshot"] = True
        frame["data"] = {"timestamp": ms, "asks": [{"price": a[0], "qty": a[1]} for _, a in pairs],
                         "bids": [{"price": b[0], "qty": b[1]} for b, _ in pairs]}
        return json.dumps(frame, separators=_COMPACT)

    @_locked
    def draw_trade(self, exchange: str, symbol: str) -> tuple[str, float, str, int]:
        """``(price text, quantity, taker side "buy"/"sell", trade id)`` of a new trade."""
        book = self.book(exchange, symbol)
        with self._lock:
            side = book.rng.choice(("buy", "sell"))
            price = book.price_text(min(book.asks) if side == "buy" else max(book.bids))
            volume = round(book.unit_size * book.rng.uniform(0.001, 0.3), 8)
            self.ticking[(exchange, symbol)].trade(volume, float(price))
            key = (exchange, symbol)
            self.trade_ids[key] = self.trade_ids.get(key, book.rng.randrange(10**7, 9 * 10**7)) + 1
            return price, volume, side, self.trade_ids[key]

    @_locked
    def trade(self, exchange: str, code: str, index: int) -> str:
        """An Upbit-protocol ``trade`` frame (Upbit, and Bithumb's WebSocket)."""
        symbol = code.split("-")[1]
        price, volume, side, _ = self.draw_trade(exchange, symbol)
        ms = now_ms()
        return json.dumps(dict(
            self.templates[(exchange, "trade")], code=code, timestamp=ms + 35, trade_timestamp=ms,
            trade_date=time.strftime("%Y-%m-%d", time.gmtime(ms / 1000)),
            trade_time=time.strftime("%H:%M:%S", time.gmtime(ms / 1000)),
            trade_price=number(price), trade_volume=volume, ask_bid="BID" if side == "buy" else "ASK",
            sequential_id=ms * 1000 + index % 1000, stream_type="SNAPSHOT" if index == 0 else "REALTIME"))

    @_locked
    def coinone_trade(self, symbol: str, index: int) -> str:
        price, volume, side, _ = self.draw_trade("coinone", symbol)
        ms = now_ms()
        template = self.templates[("coinone", "trade")]
        data = dict(template["data"], target_currency=symbol, id=f"{ms}{index % 1000:03d}",
                    timestamp=ms, price=price, qty=f"{volume:.8f}", is_seller_maker=side == "buy")
        return json.dumps(dict(template, data=data), separators=_COMPACT)

    @_locked
    def coinone_ticker(self, symbol: str, index: int) -> str:
        book = self.book("coinone", symbol)
        day = self.ticking[("coinone", symbol)]
        ms = now_ms()
        template = self.templates[("coinone", "ticker")]
        best_bid, best_ask = max(book.bids), min(book.asks)
        data = dict(template["data"], target_currency=symbol, timestamp=ms,
                    quote_volume=f"{day.quote_volume:.4f}", target_volume=f"{day.volume:.8f}",
                    high=day.text(day.high), low=day.text(day.low), first=day.text(day.open),
                    last=book.last_price(), ask_best_price=book.price_text(best_ask),
                    ask_best_qty=book.asks[best_ask], bid_best_price=book.price_text(best_bid),
                    bid_best_qty=book.bids[best_bid], id=f"{ms}{index % 1000:03d}",
                    yesterday_last=day.text(day.open))
        return json.dumps(dict(template, data=data), separators=_COMPACT)

    @_locked
    def korbit_trade(self, symbol: str, index: int) -> str:
        price, volume, side, trade_id = self.draw_trade("korbit", symbol)
        ms = now_ms()
        template = self.templates[("korbit", "trade")]
        row = dict(template["data"][0], timestamp=ms - 10, price=price, qty=f"{volume:.8f}",
                   isBuyerTaker=side == "buy", tradeId=trade_id)
        return json.dumps(dict(template, symbol=f"{symbol.lower()}_krw", timestamp=ms,
                               snapshot=index == 0, data=[row]), separators=_COMPACT)

    @_locked
    def korbit_ticker(self, symbol: str, index: int) -> str:
        book = self.book("korbit", symbol)
        day = self.ticking[("korbit", symbol)]
        ms = now_ms()
        template = self.templates[("korbit", "ticker")]
        last = float(book.last_price())
        data = dict(template["data"], open=day.text(day.open), high=day.text(day.high),
                    low=day.text(day.low), close=day.text(last), prevClose=day.text(day.open),
                    priceChange=day.text(last - day.open),
                    priceChangePercent=f"{(last / day.open - 1) * 100:.2f}",
                    volume=f"{day.volume:.8f}", quoteVolume=f"{day.quote_volume:.5f}",
                    bestAskPrice=book.price_text(min(book.asks)),
                    bestBidPrice=book.price_text(max(book.bids)), lastTradedAt=ms - 50)
        return json.dumps(dict(template, symbol=f"{symbol.lower()}_krw", timestamp=ms,
                               snapshot=index == 0, data=data), separators=_COMPACT)

    @_locked
    def gopax_trade(self, pair: str) -> dict:
        price, volume, side, trade_id = self.draw_trade("gopax", pair.split("-")[0])
        template = self.templates[("gopax", "trade")]
        return dict(template, o=dict(template["o"], tradeId=trade_id, baseAmount=volume,
                                     quoteAmount=round(volume * float(price), 4), price=number(price),
                                     isBuy=side == "buy", occurredAt=int(time.time()),
                                     tradingPairName=pair))

    @_locked
    def gopax_tickers(self, pairs: list[str]) -> dict:
        template = self.templates[("gopax", "ticker")]
        row = next(iter(template["o"].values()))
        rows = {}
        for pair in pairs:
            book = self.book("gopax", pair.split("-")[0])
            day = self.ticking[("gopax", pair.split("-")[0])]
            rows[pair] = dict(row, lastTraded=now_ms() - 30, high=number(day.text(day.high)),
                              low=number(day.text(day.low)), open=number(day.text(day.open)),
                              last=number(book.last_price()),
                              lowestAsk=number(book.price_text(min(book.asks))),
                              highestBid=number(book.price_text(max(book.bids))),
                              baseVolume=round(day.volume, 8), quoteVolume=round(day.quote_volume, 8),
                              tradingPairName=pair)
        return dict(template, o=rows)

    @_locked
    def ticker(self, exchange: str, code: str, index: int) -> str:
        """An Upbit-protocol ``ticker`` frame (Upbit, and Bithumb's WebSocket)."""
        symbol = code.split("-")[1]
        book = self.book(exchange, symbol)
        day = self.ticking[(exchange, symbol)]
        price = book.last_price()
        last = float(price)
        ms = now_ms()
        frame = dict(self.templates[(exchange, "ticker")], code=code, trade_price=number(price),
                     timestamp=ms, trade_timestamp=ms - 40,
                     trade_date=time.strftime("%Y%m%d", time.gmtime(ms / 1000)),
                     trade_time=time.strftime("%H%M%S", time.gmtime(ms / 1000)),
                     stream_type="SNAPSHOT" if index == 0 else "REALTIME")
        if "opening_price" in frame:  # Upbit's full ticker
            change = last - day.open
            frame.update(opening_price=round(day.open, book.price_decimals),
                         high_price=round(day.high, book.price_decimals),
                         low_price=round(day.low, book.price_decimals),
                         prev_closing_price=round(day.open, book.price_decimals),
                         change="RISE" if change > 0 else "FALL" if change < 0 else "EVEN",
                         change_price=abs(round(change, book.price_decimals)),
                         signed_change_price=round(change, book.price_decimals),
                         change_rate=abs(round(change / day.open, 10)),
                         signed_change_rate=round(change / day.open, 10),
                         acc_trade_price=round(day.quote_volume / 2, 4),
                         acc_trade_volume=round(day.volume / 2, 8),
                         acc_trade_price_24h=round(day.quote_volume, 4),
                         acc_trade_volume_24h=round(day.volume, 8))
        return json.dumps(frame)


class _Bounded(dict):
    """``sent`` of a live stream server: the last frames per key only (an endless stream)."""

    def __missing__(self, key):
        self[key] = value = collections.deque(maxlen=100)
        return value


def _bounded_sent(server) -> None:
    server.sent = _Bounded({key: collections.deque(maxlen=100) for key in server.frames})


class LiveBithumbServer(BithumbServer):
    """Bithumb's REST polling with live books, and its market list and tickers."""

    def __init__(self, books: dict, lists: MarketListServer) -> None:
        super().__init__(books)
        self.lists = lists
        self.served = collections.deque(maxlen=1000)
        self.polled = 0

    def respond(self, path: str, query: dict[str, list[str]]) -> Reply:
        if path in ("/v1/market/all", "/v1/ticker"):
            return self.lists.respond("/bithumb" + path, query)
        reply = super().respond(path, query)
        if reply.status == 200 and path == "/v1/orderbook":
            with self.lock:
                self.polled += 1
        return reply


class _LiveGopaxTruth(GopaxTruth):
    """A GOPAX market kept by a :class:`LiveBook`: (side, price) -> (volume, entryId, updatedAt);
    its top and entries as the fixture-based server's truth
    (:class:`collector.simulator.gopax.GopaxTruth`)."""

    def __init__(self, pair: str, book: LiveBook, next_id: Callable[[], int], clock: float) -> None:
        self.pair = pair
        self.book = book
        self.tick = book.tick * book.ticks_per_gap
        self.levels: dict[tuple[str, float], tuple[float, int, float]] = {}
        bids, asks = book.top()
        for side, levels in (("bid", bids), ("ask", asks)):
            for price, size in levels:
                self.levels[(side, number(price))] = (float(size), next_id(), round(clock, 3))

    def change(self, next_id, clock: float) -> list[tuple[str, dict]]:
        bids, asks = self.book.step()
        changes = []
        for side, levels in (("bid", bids), ("ask", asks)):
            for price, size in levels:
                entry = {"entryId": next_id(), "price": number(price), "volume": float(size),
                         "updatedAt": round(clock, 3)}
                if entry["volume"] == 0:
                    self.levels.pop((side, entry["price"]), None)
                else:
                    self.levels[(side, entry["price"])] = (entry["volume"], entry["entryId"],
                                                           entry["updatedAt"])
                changes.append((side, entry))
        return changes


class LiveGopaxServer(GopaxServer):
    """GOPAX with live books: the true book of each pair follows the world's price."""

    def __init__(self, pairs: list[str], feeds: KoreanFeeds, *, interval: float) -> None:
        super().__init__({pair: 1 << 62 for pair in pairs}, interval=interval)
        self._clock = time.time()
        self.truth = {pair: _LiveGopaxTruth(pair, feeds.book("gopax", pair.split("-")[0]),
                                            self._next_id, self._clock) for pair in pairs}
        self.deltas_sent = 0
        self.feeds = feeds
        self._wants: dict[ServerConnection, dict] = {}

    def _tick_clock(self) -> float:
        self._clock = max(time.time(), self._clock + 0.001)
        return self._clock

    def other_request(self, connection: ServerConnection, request: dict, closed: threading.Event) -> None:
        """``SubscribeToTickers``: a ``TickerEvent`` of every pair about once a second;
        ``SubscribeToTradingPair``: that pair's ``PublicTradeEvent`` trades. Both from one thread
        per connection."""
        with self.lock:
            wants = self._wants.get(connection)
            if wants is None:
                wants = self._wants[connection] = {"tickers": False, "trades": set()}
                threading.Thread(target=self._events, args=(connection, wants, closed),
                                 daemon=True).start()
            if request.get("n") == "SubscribeToTickers":
                wants["tickers"] = True
            elif request.get("n") == "SubscribeToTradingPair":
                pair = (request.get("o") or {}).get("tradingPairName")
                if pair in self.truth:
                    wants["trades"].add(pair)

    def _events(self, connection: ServerConnection, wants: dict, closed: threading.Event) -> None:
        steps = 0
        try:
            while not closed.wait(0.2):
                with self.lock:  # the books change under this lock too
                    out = [self.feeds.gopax_trade(p) for p in sorted(wants["trades"])
                           if random.random() < 0.5]
                    if wants["tickers"] and steps % 5 == 0:
                        out.append(self.feeds.gopax_tickers(list(self.truth)))
                for message in out:
                    connection.send(json.dumps(message, separators=_COMPACT))
                steps += 1
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self.lock:
                self._wants.pop(connection, None)

    def _send(self, connection: ServerConnection, pair: str, messages: list[dict]) -> None:
        with self.lock:
            self.deltas_sent += sum(1 for m in messages if m.get("n") == "OrderBookEvent")
        for message in messages:
            connection.send(json.dumps(message, separators=_COMPACT))


# --- the global exchanges ----------------------------------------------------------------------

class _Connection:
    """What one client connection subscribed."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.channels: set[tuple[str, str]] = set()  # (kind "trade"/"ticker", market name)
        self.steps = 0
        self.partials: set[str] = set()  # BitMEX: instrument partial sent


class LiveFeed:
    """Live books for a :class:`~collector.simulator.recorded.RecordedBookServer` subclass (put
    first among the bases): every ``interval`` seconds each subscribed market's book moves to the
    price of now and the change goes out as the exchange's delta; the truth the REST snapshots
    come from follows it. A subclass gives the exchange's messages: :meth:`live_delta`,
    :meth:`live_snapshot` (``ws_snapshots``: the exchange sends the book on subscribe),
    :meth:`live_trade`, :meth:`live_ticker`, and :meth:`channel_keys`."""

    ws_snapshots = False
    book_levels = 20

    def live_init(self, world: World, exchange: str, markets: list[Market], interval: float) -> None:
        self.world = world
        self.exchange = exchange
        self.controller = CONTROLLERS[exchange]
        self.interval = interval
        self.live: dict[str, LiveBook] = {}
        self.ticking: dict[str, Ticking] = {}
        self.market_of_name: dict[str, Market] = {}
        self.seq: dict[str, int] = {}
        self.trade_ids: dict[str, int] = {}
        self.owner: dict[str, _Connection] = {}
        upper = self.controller.exchange
        for market in markets:
            name = self.controller.market_name(market)
            rng = random.Random(f"{world.seed}:{exchange}:{name}")
            book = LiveBook(lambda m=market: world.price(upper, m.base, m.quote), market.quote,
                            unit_size(world, market.base), levels=self.book_levels, rng=rng)
            self.live[name] = book
            self.ticking[name] = Ticking(book, world.traded_value(upper, market.base, market.quote))
            self.market_of_name[name] = market
            self.seq[name] = rng.randrange(10_000_000, 90_000_000)
            self.trade_ids[name] = rng.randrange(100_000_000, 900_000_000)
            self.truth[name] = self.start_truth(name)

    def start_truth(self, name: str) -> TruthBook:
        truth = TruthBook()
        bids, asks = self.live[name].top()
        truth.set(bids, asks)
        truth.last = self.seq[name]
        return truth

    # --- what a subclass gives ---------------------------------------------------------------

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        """The ``(kind, market name)`` of the trade/ticker streams a client frame subscribes."""
        return set()

    def live_delta(self, name: str, bids, asks) -> list[str]:
        raise NotImplementedError

    def live_snapshot(self, name: str) -> str:
        """The WS snapshot of ``name``'s live book (:meth:`snapshot_line`); the truth follows it."""
        bids, asks = self.live[name].top()
        line = self.snapshot_line(name, bids, asks)
        self.advance(self.truth[name], line)
        return line

    def snapshot_line(self, name: str, bids, asks) -> str:
        raise NotImplementedError

    def live_trade(self, name: str, connection: _Connection) -> str:
        raise NotImplementedError

    def live_ticker(self, name: str, connection: _Connection) -> str:
        raise NotImplementedError

    # --- helpers -----------------------------------------------------------------------------

    def next_seq(self, name: str, count: int = 1) -> tuple[int, int]:
        """``(previous, new)`` update id of ``name`` after ``count`` more updates."""
        previous = self.seq[name]
        self.seq[name] = previous + count
        return previous, previous + count

    def draw_trade(self, name: str) -> tuple[str, float, str, int]:
        """``(price text, quantity, taker side "buy"/"sell", trade id)`` of a new trade."""
        book = self.live[name]
        side = book.rng.choice(("buy", "sell"))
        price = book.price_text(min(book.asks) if side == "buy" else max(book.bids))
        qty = round(book.unit_size * book.rng.uniform(0.001, 0.3), book.size_decimals) \
            or 10 ** -book.size_decimals
        self.ticking[name].trade(qty, float(price))
        self.trade_ids[name] += 1
        return price, qty, side, self.trade_ids[name]

    def qty_text(self, name: str, qty: float) -> str:
        return f"{qty:.{self.live[name].size_decimals}f}"

    # --- serving -------------------------------------------------------------------------------

    def handle(self, connection: ServerConnection) -> None:
        state = _Connection()
        closed = threading.Event()
        self.opened(connection)
        sender = threading.Thread(target=self._live_stream, args=(connection, state, closed),
                                  daemon=True)
        sender.start()
        try:
            for text in self.requests(connection):
                try:
                    names, replies = self.subscribed(text)
                    keys = self.channel_keys(text)
                except (ValueError, AttributeError, TypeError, KeyError, IndexError):
                    continue  # not a request this server knows: no answer
                with self.lock:
                    for reply in replies:
                        connection.send(reply)
                    for name in sorted(names):
                        if name not in self.live:
                            continue
                        self.owner[name] = state
                        if self.ws_snapshots:
                            connection.send(self.live_snapshot(name))
                        state.names.add(name)
                    state.channels |= {key for key in keys if key[1] in self.live}
        except ConnectionClosed:
            pass
        closed.set()
        sender.join(5)

    def _live_stream(self, connection: ServerConnection, state: _Connection,
                     closed: threading.Event) -> None:
        ticker_every = max(1, round(1.0 / self.interval)) if self.interval else 10
        next_at = time.monotonic()
        while True:
            next_at = max(next_at + self.interval, time.monotonic() - 1.0)
            if closed.wait(max(0.0, next_at - time.monotonic())):
                return
            with self.lock:
                out: list[str] = []
                for name in sorted(state.names):
                    if self.owner.get(name) is not state:
                        continue
                    bids, asks = self.live[name].step()
                    for line in self.live_delta(name, bids, asks):
                        self.advance(self.truth[name], line)
                        out.append(line)
                    self.served += 1
                books = len(out)
                for kind, name in sorted(state.channels):
                    if kind == "trade" and self.live[name].rng.random() < 0.5:
                        out.append(self.live_trade(name, state))
                    elif kind == "ticker" and state.steps % ticker_every == 0:
                        out.append(self.live_ticker(name, state))
                self.channel_sent += len(out) - books
                state.steps += 1
                try:
                    for line in out:
                        connection.send(line)
                except (ConnectionClosed, OSError):
                    return

    def snapshot_times(self, body: dict) -> dict:
        """A REST snapshot body with its time fields set to now (a subclass sets its own)."""
        return body

    def snapshot_body(self, name: str, truth: TruthBook) -> str:
        return json.dumps(self.snapshot_times(json.loads(super().snapshot_body(name, truth))))


def _levels(levels) -> list[list[str]]:
    return [list(level) for level in levels]


class LiveBinanceServer(LiveFeed, BinanceRecordedServer):
    """Binance spot (``futures=False``) or USD-M futures: ``depthUpdate`` events with ``U``/``u``
    (and ``pu`` on futures) on the REST snapshot; ``@trade`` and ``@ticker`` streams (for futures
    on the same server, which the ``/market`` endpoint's variable also points at)."""

    def __init__(self, world: World, markets: list[Market], *, futures: bool, interval: float) -> None:
        BinanceRecordedServer.__init__(self, [], futures=futures, interval=interval)
        self.live_init(world, "binance_futures" if futures else "binance", markets, interval)
        self.trade_template = data_json("binance_spot/doc_ws_trade.json")
        self.ticker_template = data_json(("binance_futures" if futures else "binance_spot")
                                         + "/doc_ws_24hrTicker.json")

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        if request.get("method") != "SUBSCRIBE":
            return set(), []
        names = {stream.split("@")[0].upper() for stream in request.get("params", []) if "@depth" in stream}
        return names, [json.dumps({"result": None, "id": request.get("id")})]

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        request = json.loads(message)
        if request.get("method") != "SUBSCRIBE":
            return set()
        return {(stream.split("@")[1], stream.split("@")[0].upper())
                for stream in request.get("params", []) if stream.endswith(("@trade", "@ticker"))}

    def live_delta(self, name: str, bids, asks) -> list[str]:
        previous, last = self.next_seq(name, len(bids) + len(asks))
        ms = now_ms()
        if self.futures:
            data = {"e": "depthUpdate", "E": ms, "T": ms - 3, "s": name, "U": previous + 1,
                    "u": last, "pu": previous, "b": _levels(bids), "a": _levels(asks)}
            stream = f"{name.lower()}@depth"
        else:
            data = {"e": "depthUpdate", "E": ms, "s": name, "U": previous + 1, "u": last,
                    "b": _levels(bids), "a": _levels(asks)}
            stream = f"{name.lower()}@depth@100ms"
        return [json.dumps({"stream": stream, "data": data}, separators=_COMPACT)]

    def snapshot_times(self, body: dict) -> dict:
        if self.futures:
            body.update(E=now_ms(), T=now_ms() - 3)
        return body

    def live_trade(self, name: str, connection: _Connection) -> str:
        price, qty, side, trade_id = self.draw_trade(name)
        ms = now_ms()
        if self.futures:
            data = {"e": "trade", "E": ms, "T": ms - 2, "s": name, "t": trade_id, "p": price,
                    "q": self.qty_text(name, qty), "X": "MARKET", "m": side == "sell"}
        else:
            data = dict(self.trade_template, E=ms, s=name, t=trade_id, p=price,
                        q=self.qty_text(name, qty), T=ms - 2, m=side == "sell")
        return json.dumps({"stream": f"{name.lower()}@trade", "data": data}, separators=_COMPACT)

    def live_ticker(self, name: str, connection: _Connection) -> str:
        book, day = self.live[name], self.ticking[name]
        last = float(book.last_price())
        ms = now_ms()
        data = dict(self.ticker_template, E=ms, s=name, c=day.text(last), o=day.text(day.open),
                    h=day.text(day.high), l=day.text(day.low), p=day.text(last - day.open),
                    P=f"{(last / day.open - 1) * 100:.3f}",
                    w=day.text(day.quote_volume / day.volume),
                    v=f"{day.volume:.{book.size_decimals}f}", q=f"{day.quote_volume:.4f}",
                    O=ms - 86_400_000, C=ms)
        if "x" in data:
            data.update(x=day.text(day.open), b=book.price_text(max(book.bids)),
                        a=book.price_text(min(book.asks)),
                        B=book.bids[max(book.bids)], A=book.asks[min(book.asks)])
        return json.dumps({"stream": f"{name.lower()}@ticker", "data": data}, separators=_COMPACT)

    def env(self) -> dict[str, str]:
        env = super().env()
        for feed in self.controller.feeds(("ticker", "trade")):  # USD-M's /market endpoint
            env.setdefault(feed.ws_url_env, self.url)
        return env


class LiveOkxServer(LiveFeed, OkxRecordedServer):
    """OKX ``books``: a snapshot on subscribe (``prevSeqId`` -1), then updates whose
    ``prevSeqId`` is the previous ``seqId``, ``checksum`` 0 (as OKX sends since 2026-06);
    ``trades`` and ``tickers``."""

    ws_snapshots = True

    def __init__(self, world: World, markets: list[Market], *, interval: float) -> None:
        OkxRecordedServer.__init__(self, [], interval=interval)
        self.live_init(world, "okx", markets, interval)

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        if message == "ping":
            return set(), ["pong"]
        request = json.loads(message)
        op, args = request.get("op"), request.get("args", [])
        replies = [json.dumps({"event": op, "arg": arg, "connId": "a4d3ae55"}) for arg in args]
        names = {a["instId"] for a in args if a.get("channel") == "books"} if op == "subscribe" else set()
        return names, replies

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        if message == "ping":
            return set()
        request = json.loads(message)
        if request.get("op") != "subscribe":
            return set()
        kinds = {"trades": "trade", "tickers": "ticker"}
        return {(kinds[a["channel"]], a["instId"]) for a in request.get("args", [])
                if a.get("channel") in kinds}

    @staticmethod
    def _rows(levels, rng: random.Random) -> list[list[str]]:
        return [[p, s, "0", "0" if s == "0" else str(rng.randint(1, 9))] for p, s in levels]

    def _push(self, name: str, action: str, bids, asks, previous: int, seq: int) -> str:
        rng = self.live[name].rng
        data = {"asks": self._rows(asks, rng), "bids": self._rows(bids, rng), "ts": str(now_ms()),
                "checksum": 0, "prevSeqId": previous, "seqId": seq}
        return json.dumps({"arg": {"channel": "books", "instId": name}, "action": action,
                           "data": [data]}, separators=_COMPACT)

    def snapshot_line(self, name: str, bids, asks) -> str:
        return self._push(name, "snapshot", bids, asks, -1, self.seq[name])

    def live_delta(self, name: str, bids, asks) -> list[str]:
        previous, seq = self.next_seq(name)
        return [self._push(name, "update", bids, asks, previous, seq)]

    def snapshot_times(self, body: dict) -> dict:
        for data in body.get("data", []):
            data["ts"] = str(now_ms())
        return body

    def live_trade(self, name: str, connection: _Connection) -> str:
        price, qty, side, trade_id = self.draw_trade(name)
        return json.dumps({"arg": {"channel": "trades", "instId": name}, "data": [{
            "instId": name, "tradeId": str(trade_id), "px": price, "sz": self.qty_text(name, qty),
            "side": side, "ts": str(now_ms()), "count": "1"}]}, separators=_COMPACT)

    def live_ticker(self, name: str, connection: _Connection) -> str:
        book, day = self.live[name], self.ticking[name]
        ms = now_ms()
        best_bid, best_ask = max(book.bids), min(book.asks)
        return json.dumps({"arg": {"channel": "tickers", "instId": name}, "data": [{
            "instType": "SPOT", "instId": name, "last": book.last_price(), "lastSz": "0.1",
            "askPx": book.price_text(best_ask), "askSz": book.asks[best_ask],
            "bidPx": book.price_text(best_bid), "bidSz": book.bids[best_bid],
            "open24h": day.text(day.open), "high24h": day.text(day.high), "low24h": day.text(day.low),
            "volCcy24h": f"{day.quote_volume:.4f}", "vol24h": f"{day.volume:.{book.size_decimals}f}",
            "ts": str(ms), "sodUtc0": day.text(day.open), "sodUtc8": day.text(day.open)}]},
            separators=_COMPACT)


class LiveBybitServer(LiveFeed, BybitRecordedServer):
    """Bybit ``orderbook.50``: a snapshot on subscribe, deltas with ``u`` + 1; ``publicTrade`` and
    spot ``tickers`` (snapshots)."""

    ws_snapshots = True

    def __init__(self, world: World, markets: list[Market], *, interval: float) -> None:
        BybitRecordedServer.__init__(self, [], interval=interval)
        self.live_init(world, "bybit", markets, interval)
        self.trade_template = data_json("bybit/doc_ws_publicTrade_linear.json")["data"][0]
        self.ticker_template = data_json("bybit/doc_ws_tickers_spot_snapshot.json")
        self.message_seq = random.Random(world.seed).randrange(10**9, 2 * 10**9)

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        op = request.get("op")
        reply = json.dumps({"success": True, "ret_msg": "pong" if op == "ping" else "",
                            "conn_id": "d30fdpfoi6o9k3ddv0g0-4ozuc", "req_id": request.get("req_id", ""),
                            "op": op})
        names = ({t.split(".")[-1] for t in request.get("args", []) if t.startswith("orderbook.")}
                 if op == "subscribe" else set())
        return names, [reply]

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        request = json.loads(message)
        if request.get("op") != "subscribe":
            return set()
        kinds = {"publicTrade": "trade", "tickers": "ticker"}
        return {(kinds[t.split(".")[0]], t.split(".")[-1]) for t in request.get("args", [])
                if t.split(".")[0] in kinds}

    def _message(self, name: str, kind: str, bids, asks) -> str:
        ms = now_ms()
        self.message_seq += 1
        return json.dumps({"topic": f"orderbook.50.{name}", "type": kind, "ts": ms, "data": {
            "s": name, "b": _levels(bids), "a": _levels(asks), "u": self.seq[name],
            "seq": self.message_seq}, "cts": ms - 2}, separators=_COMPACT)

    def snapshot_line(self, name: str, bids, asks) -> str:
        return self._message(name, "snapshot", bids, asks)

    def live_delta(self, name: str, bids, asks) -> list[str]:
        self.next_seq(name)
        return [self._message(name, "delta", bids, asks)]

    def live_trade(self, name: str, connection: _Connection) -> str:
        price, qty, side, trade_id = self.draw_trade(name)
        ms = now_ms()
        row = dict(self.trade_template, T=ms - 2, s=name, S=side.capitalize(),
                   v=self.qty_text(name, qty), p=price, i=str(trade_id), seq=trade_id)
        return json.dumps({"topic": f"publicTrade.{name}", "type": "snapshot", "ts": ms,
                           "data": [row]}, separators=_COMPACT)

    def live_ticker(self, name: str, connection: _Connection) -> str:
        book, day = self.live[name], self.ticking[name]
        last = float(book.last_price())
        data = dict(self.ticker_template["data"], symbol=name, lastPrice=day.text(last),
                    highPrice24h=day.text(day.high), lowPrice24h=day.text(day.low),
                    prevPrice24h=day.text(day.open), volume24h=f"{day.volume:.{book.size_decimals}f}",
                    turnover24h=f"{day.quote_volume:.8f}",
                    price24hPcnt=f"{last / day.open - 1:.4f}", usdIndexPrice=day.text(book.mid))
        return json.dumps(dict(self.ticker_template, topic=f"tickers.{name}", ts=now_ms(),
                               cs=self.message_seq, data=data), separators=_COMPACT)


class LiveGateioServer(LiveFeed, GateioRecordedServer):
    """Gate.io ``spot.order_book_update`` (``U``/``u``) on the REST snapshot; ``spot.trades`` and
    ``spot.tickers``."""

    def __init__(self, world: World, markets: list[Market], *, interval: float) -> None:
        GateioRecordedServer.__init__(self, [], interval=interval)
        self.live_init(world, "gateio", markets, interval)
        self.trade_template = data_json("gateio/doc_ws_trades_update.json")

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        channel = request.get("channel")
        if channel == "spot.ping":
            return super().subscribed(message)
        if request.get("event") != "subscribe":
            return set(), []
        ms = now_ms()
        reply = json.dumps({"time": ms // 1000, "time_ms": ms, "id": request.get("id"),
                            "channel": channel, "event": "subscribe",
                            "payload": request.get("payload"), "result": {"status": "success"}})
        names = {request["payload"][0]} if channel == "spot.order_book_update" else set()
        return names, [reply]

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        request = json.loads(message)
        kinds = {"spot.trades": "trade", "spot.tickers": "ticker"}
        if request.get("event") != "subscribe" or request.get("channel") not in kinds:
            return set()
        return {(kinds[request["channel"]], name) for name in request.get("payload", [])}

    def live_delta(self, name: str, bids, asks) -> list[str]:
        previous, last = self.next_seq(name, len(bids) + len(asks))
        ms = now_ms()
        return [json.dumps({"time": ms // 1000, "time_ms": ms, "channel": "spot.order_book_update",
                            "event": "update", "result": {
                                "t": ms, "e": "update", "E": ms // 1000, "s": name,
                                "U": previous + 1, "u": last, "b": _levels(bids),
                                "a": _levels(asks)}}, separators=_COMPACT)]

    def snapshot_times(self, body: dict) -> dict:
        body.update(current=now_ms(), update=now_ms() - 5)
        return body

    def live_trade(self, name: str, connection: _Connection) -> str:
        price, qty, side, trade_id = self.draw_trade(name)
        ms = now_ms()
        result = dict(self.trade_template["result"], id=trade_id, create_time=ms // 1000,
                      create_time_ms=f"{ms}.{random.Random(trade_id).randrange(10000):04d}",
                      side=side, currency_pair=name, amount=self.qty_text(name, qty), price=price)
        return json.dumps(dict(self.trade_template, time=ms // 1000, time_ms=ms, result=result),
                          separators=_COMPACT)

    def live_ticker(self, name: str, connection: _Connection) -> str:
        book, day = self.live[name], self.ticking[name]
        last = float(book.last_price())
        ms = now_ms()
        return json.dumps({"time": ms // 1000, "time_ms": ms, "channel": "spot.tickers",
                           "event": "update", "result": {
                               "currency_pair": name, "last": day.text(last),
                               "lowest_ask": book.price_text(min(book.asks)),
                               "highest_bid": book.price_text(max(book.bids)),
                               "change_percentage": f"{(last / day.open - 1) * 100:.4f}",
                               "base_volume": f"{day.volume:.{book.size_decimals}f}",
                               "quote_volume": f"{day.quote_volume:.4f}",
                               "high_24h": day.text(day.high), "low_24h": day.text(day.low)}},
                          separators=_COMPACT)


class LiveKucoinServer(LiveFeed, KucoinRecordedServer):
    """KuCoin ``/market/level2`` deltas (a sequence per change) on the REST snapshot, behind the
    ``bullet-public`` token; ``/market/match`` and ``/market/ticker``."""

    def __init__(self, world: World, markets: list[Market], *, interval: float) -> None:
        KucoinRecordedServer.__init__(self, [], interval=interval)
        self.live_init(world, "kucoin", markets, interval)
        self.match_template = data_json("kucoin/doc_ws_match.json")
        self.ticker_template = data_json("kucoin/doc_ws_ticker.json")

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        request = json.loads(message)
        if request.get("type") != "subscribe":
            return set()
        topic, _, names = str(request.get("topic", "")).partition(":")
        kinds = {"/market/match": "trade", "/market/ticker": "ticker"}
        return {(kinds[topic], name) for name in names.split(",")} if topic in kinds else set()

    def live_delta(self, name: str, bids, asks) -> list[str]:
        previous, last = self.next_seq(name, len(bids) + len(asks))
        numbered = iter(range(previous + 1, last + 1))
        changes = {"asks": [[p, s, str(next(numbered))] for p, s in asks],
                   "bids": [[p, s, str(next(numbered))] for p, s in bids]}
        return [json.dumps({"type": "message", "topic": f"/market/level2:{name}",
                            "subject": "trade.l2update", "data": {
                                "changes": changes, "sequenceEnd": last,
                                "sequenceStart": previous + 1, "symbol": name,
                                "time": now_ms()}}, separators=_COMPACT)]

    def snapshot_times(self, body: dict) -> dict:
        body["data"]["time"] = now_ms()
        return body

    def live_trade(self, name: str, connection: _Connection) -> str:
        price, qty, side, trade_id = self.draw_trade(name)
        rng = self.live[name].rng
        data = dict(self.match_template["data"], sequence=str(self.seq[name]), symbol=name,
                    side=side, price=price, size=self.qty_text(name, qty),
                    tradeId=f"{trade_id:024x}", takerOrderId=f"{rng.getrandbits(96):024x}",
                    makerOrderId=f"{rng.getrandbits(96):024x}", time=str(time.time_ns()))
        return json.dumps(dict(self.match_template, topic=f"/market/match:{name}", data=data),
                          separators=_COMPACT)

    def env(self) -> dict[str, str]:
        return {**super().env(), self.controller.ws_url_env: self.url}

    def live_ticker(self, name: str, connection: _Connection) -> str:
        book = self.live[name]
        best_bid, best_ask = max(book.bids), min(book.asks)
        data = dict(self.ticker_template["data"], sequence=str(self.seq[name]),
                    price=book.last_price(), size="0.1", bestAsk=book.price_text(best_ask),
                    bestAskSize=book.asks[best_ask], bestBid=book.price_text(best_bid),
                    bestBidSize=book.bids[best_bid], time=now_ms())
        return json.dumps(dict(self.ticker_template, topic=f"/market/ticker:{name}", data=data),
                          separators=_COMPACT)


class LiveKrakenServer(LiveFeed, KrakenRecordedServer):
    """Kraken v2 ``book``: a snapshot on subscribe, then updates, each with the CRC32 of the top
    ten and a µs timestamp; ten levels a side, so the book never needs cutting; ``trade`` and
    ``ticker``. Prices and quantities are JSON numbers spelled to the pair's precision."""

    ws_snapshots = True
    book_levels = 10

    def __init__(self, world: World, markets: list[Market], *, interval: float) -> None:
        KrakenRecordedServer.__init__(self, [], precision=(1, 8), interval=interval)
        self._stamp = 0
        self.live_init(world, "kraken", markets, interval)
        self.trade_template = data_json("kraken/doc_ws_v2_trade_snapshot.json")["data"][0]
        self.ticker_template = data_json("kraken/doc_ws_v2_ticker_snapshot.json")["data"][0]

    def start_truth(self, name: str) -> TruthBook:
        truth = super().start_truth(name)
        truth.last = None
        return truth

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        return {tuple(stream.split(":", 1)) for stream in self.channel_streams(message)}

    def _stamp_now(self) -> str:
        self._stamp = max(time.time_ns() // 1000, self._stamp + 1)
        return iso_us(self._stamp)

    @staticmethod
    def _qty(size: str) -> str:
        return f"{Decimal(size):.8f}"

    def _spelled(self, levels) -> list[dict]:
        return [{"price": _NUMBER + p, "qty": _NUMBER + self._qty(s)} for p, s in levels]

    def _checksum(self, name: str) -> int:
        bids, asks = self.live[name].top(10)
        text = "".join(part.replace(".", "").lstrip("0") for price, size in (*asks, *bids)
                       for part in (price, self._qty(size)))
        return zlib.crc32(text.encode())

    def _message(self, name: str, kind: str, bids, asks) -> str:
        message = {"channel": "book", "type": kind, "data": [{
            "symbol": name, "bids": self._spelled(bids), "asks": self._spelled(asks),
            "checksum": self._checksum(name), "timestamp": self._stamp_now()}]}
        return _unquote_numbers(json.dumps(message, separators=_COMPACT))

    def snapshot_line(self, name: str, bids, asks) -> str:
        return self._message(name, "snapshot", bids, asks)

    def live_delta(self, name: str, bids, asks) -> list[str]:
        return [self._message(name, "update", bids, asks)]

    def live_trade(self, name: str, connection: _Connection) -> str:
        price, qty, side, trade_id = self.draw_trade(name)
        row = dict(self.trade_template, symbol=name, side=side, price=_NUMBER + price,
                   qty=_NUMBER + f"{qty:.8f}", ord_type="market", trade_id=trade_id,
                   timestamp=self._stamp_now())
        return _unquote_numbers(json.dumps({"channel": "trade", "type": "update", "data": [row]},
                                           separators=_COMPACT))

    def live_ticker(self, name: str, connection: _Connection) -> str:
        book, day = self.live[name], self.ticking[name]
        last = Decimal(book.last_price())
        best_bid, best_ask = max(book.bids), min(book.asks)
        change = last - Decimal(day.text(day.open))
        vwap = Decimal(day.text(day.quote_volume / day.volume))

        def spelled(value) -> str:
            return _NUMBER + str(value)

        row = dict(self.ticker_template, symbol=name,
                   bid=spelled(book.price_text(best_bid)), bid_qty=spelled(self._qty(book.bids[best_bid])),
                   ask=spelled(book.price_text(best_ask)), ask_qty=spelled(self._qty(book.asks[best_ask])),
                   last=spelled(last), volume=spelled(f"{day.volume:.8f}"), vwap=spelled(vwap),
                   low=spelled(day.text(day.low)), high=spelled(day.text(day.high)),
                   change=spelled(change), change_pct=spelled(f"{change / last * 100:.2f}"),
                   timestamp=self._stamp_now())
        return _unquote_numbers(json.dumps({"channel": "ticker", "type": "update", "data": [row]},
                                           separators=_COMPACT))


class LiveBitmexServer(LiveFeed, BitmexRecordedServer):
    """BitMEX ``orderBookL2``: a ``partial`` on subscribe, then ``delete``, ``update`` and
    ``insert`` diffs by level id (in that order, so the book never crosses between two); sizes in
    contracts (1 contract = 0.000001 of the base, as on the linear USDT contracts); the ``trade``
    and ``instrument`` tables."""

    ws_snapshots = True
    contracts_per_unit = 1_000_000

    def __init__(self, world: World, markets: list[Market], *, interval: float) -> None:
        BitmexRecordedServer.__init__(self, [], interval=interval)
        self.live_init(world, "bitmex", markets, interval)
        lines = data_text("bitmex/instrument_XBTUSD_assembled.ndjson").splitlines()
        self.instrument_partial = json.loads(lines[0])

    def start_truth(self, name: str) -> TruthBook:
        self.ids[name] = {}
        return TruthBook()

    def channel_keys(self, message: str) -> set[tuple[str, str]]:
        kinds = {"trade": "trade", "instrument": "ticker"}
        return {(kinds[stream.split(":", 1)[0]], stream.split(":", 1)[1])
                for stream in self.channel_streams(message)}

    def level_id(self, name: str, price: str) -> int:
        book = self.live[name]
        return 8_800_000_000 - round(float(price) / book.tick)

    def _size(self, size: str) -> int:
        return max(1, round(float(size) * self.contracts_per_unit))

    def _row(self, name: str, side: str, price: str, size: str | None, stamp: str) -> dict:
        row = {"symbol": name, "id": self.level_id(name, price), "side": side}
        if size is not None:
            row["size"] = self._size(size)
        row.update(price=_NUMBER + price, timestamp=stamp)
        return row

    def _table(self, action: str, rows: list[dict], **extra) -> str:
        return _unquote_numbers(json.dumps({"table": "orderBookL2", "action": action, **extra,
                                            "data": rows}, separators=_COMPACT))

    def live_snapshot(self, name: str) -> str:
        bids, asks = self.live[name].top()
        stamp = iso(now_ms())
        rows = [self._row(name, "Sell", p, s, stamp) for p, s in reversed(asks)] + \
               [self._row(name, "Buy", p, s, stamp) for p, s in bids]
        line = self._table("partial", rows, keys=["symbol", "id", "side"], types={
            "symbol": "symbol", "id": "long", "side": "symbol", "size": "long", "price": "float",
            "timestamp": "timestamp"}, filter={"symbol": name})
        self.advance(self.truth[name], line)
        return line

    def live_delta(self, name: str, bids, asks) -> list[str]:
        known = self.ids.setdefault(name, {})
        stamp = iso(now_ms())
        deleted, updated, inserted = [], [], []
        for side, levels in (("Buy", bids), ("Sell", asks)):
            truth_side = "bids" if side == "Buy" else "asks"
            for price, size in levels:
                level = known.get(self.level_id(name, price))
                if size == "0":
                    deleted.append(self._row(name, side, price, None, stamp))
                elif level is not None and level[0] == truth_side:
                    updated.append(self._row(name, side, price, size, stamp))
                else:
                    inserted.append(self._row(name, side, price, size, stamp))
        return [self._table(action, rows) for action, rows in
                (("delete", deleted), ("update", updated), ("insert", inserted)) if rows]

    def live_trade(self, name: str, connection: _Connection) -> str:
        price, qty, side, trade_id = self.draw_trade(name)
        contracts = self._size(str(qty))
        row = {"timestamp": iso(now_ms()), "symbol": name, "side": side.capitalize(),
               "size": contracts, "price": _NUMBER + price,
               "tickDirection": "PlusTick" if side == "buy" else "MinusTick",
               "trdMatchID": str(uuid.UUID(int=random.Random(trade_id).getrandbits(128))),
               "grossValue": round(contracts * float(price) * 100),
               "homeNotional": _NUMBER + f"{contracts / self.contracts_per_unit:.6f}",
               "foreignNotional": _NUMBER + f"{contracts / self.contracts_per_unit * float(price):.4f}",
               "trdType": "Regular"}
        return _unquote_numbers(json.dumps({"table": "trade", "action": "insert", "data": [row]},
                                           separators=_COMPACT))

    def live_ticker(self, name: str, connection: _Connection) -> str:
        book, day = self.live[name], self.ticking[name]
        market = self.market_of_name[name]
        last = float(book.last_price())
        stamp = iso(now_ms())
        fields = {"symbol": name, "lastPrice": last, "markPrice": round(book.mid, 2),
                  "fairPrice": round(book.mid, 2), "timestamp": stamp}
        if name in connection.partials:
            return json.dumps({"table": "instrument", "action": "update", "data": [fields]},
                              separators=_COMPACT)
        connection.partials.add(name)
        row = dict(self.instrument_partial["data"][0], **fields)
        base = name[:-len(market.quote)]
        row.update(rootSymbol=base, underlying=base, quoteCurrency=market.quote,
                   positionCurrency=base, settlCurrency="USDt", isInverse=False,
                   underlyingSymbol=f"{base}=", referenceSymbol=f".B{base}T",
                   tickSize=book.tick, prevPrice24h=round(day.open, book.price_decimals),
                   highPrice=round(day.high, book.price_decimals),
                   lowPrice=round(day.low, book.price_decimals),
                   prevClosePrice=round(day.open, book.price_decimals),
                   homeNotional24h=round(day.volume, 6), foreignNotional24h=round(day.quote_volume, 2))
        return json.dumps(dict(self.instrument_partial, filter={"symbol": name}, data=[row]),
                          separators=_COMPACT)


GLOBAL_SERVERS = {
    "binance": lambda world, markets, interval: LiveBinanceServer(world, markets, futures=False,
                                                                  interval=interval),
    "binance_futures": lambda world, markets, interval: LiveBinanceServer(world, markets, futures=True,
                                                                          interval=interval),
    "okx": lambda world, markets, interval: LiveOkxServer(world, markets, interval=interval),
    "bybit": lambda world, markets, interval: LiveBybitServer(world, markets, interval=interval),
    "gateio": lambda world, markets, interval: LiveGateioServer(world, markets, interval=interval),
    "kraken": lambda world, markets, interval: LiveKrakenServer(world, markets, interval=interval),
    "kucoin": lambda world, markets, interval: LiveKucoinServer(world, markets, interval=interval),
    "bitmex": lambda world, markets, interval: LiveBitmexServer(world, markets, interval=interval),
}


# --- all of them -------------------------------------------------------------------------------

class LiveVenues:
    """The servers of ``exchanges`` (lower-case names) for the base currencies ``symbols``, in
    KRW on the Korean exchanges (Upbit also ``KRW-USDT``) and in each global exchange's default
    quote (USDT), one frame every ``interval`` seconds per stream, prices from ``world``. The
    Korean exchanges' market lists and 24-hour tickers (``--symbols ALL``, ``--top N``) list the
    same symbols. Use as a context manager; :meth:`env` gives the endpoint variables.

    The Korean servers are the attributes ``upbit``, ``bithumb``, ``coinone``, ``korbit``,
    ``gopax`` (as :class:`~collector.simulator.faults.Injector` expects); the global ones are in
    ``globals`` by name.
    """

    def __init__(self, symbols: list[str], *, world: World | None = None,
                 exchanges: list[str] | tuple[str, ...] = EXCHANGES, interval: float = 0.1) -> None:
        self.world = world or World()
        self.symbols = list(symbols)
        self.exchanges = list(exchanges)
        self.interval = interval
        feeds = self.feeds = KoreanFeeds(self.world)
        korean = [n for n in self.exchanges if n in KOREAN]
        every = interval / max(1, len(self.symbols))  # GOPAX sends one pair's delta at a time
        self.lists = MarketListServer({n: self.symbols for n in KOREAN}, values={
            n: {s: self.world.traded_value(n.upper(), s, "KRW") for s in self.symbols} for n in KOREAN})
        self.servers: dict[str, object] = {}
        self.counters: dict[str, list[LiveFrames]] = {n: [] for n in self.exchanges}
        self.upbit = self.bithumb = self.coinone = self.korbit = self.gopax = None
        self.bithumb_ws = None
        if "upbit" in korean:
            frames = self._upbit_protocol("upbit", [*self.symbols, "USDT"], books=feeds.upbit_book)
            self.upbit = self.servers["upbit"] = UpbitServer(frames, interval=every)
        if "bithumb" in korean:
            books = {f"KRW-{s}": self._count("bithumb", LiveFrames(
                lambda i, m=f"KRW-{s}": feeds.bithumb_book(m, i))) for s in self.symbols}
            self.bithumb = self.servers["bithumb"] = LiveBithumbServer(books, self.lists)
            self.bithumb_ws = UpbitServer(self._upbit_protocol("bithumb", self.symbols, books=None),
                                          interval=every)
        if "coinone" in korean:
            frames = {s: self._count("coinone", LiveFrames(lambda i, s=s: feeds.coinone_book(s, i)))
                      for s in self.symbols}
            for s in self.symbols:
                frames[f"trade:{s}"] = LiveFrames(lambda i, s=s: feeds.coinone_trade(s, i))
                frames[f"ticker:{s}"] = LiveFrames(lambda i, s=s: feeds.coinone_ticker(s, i))
            self.coinone = self.servers["coinone"] = CoinoneServer(frames, interval=every)
        if "korbit" in korean:
            frames = {f"{s.lower()}_krw": self._count("korbit", LiveFrames(
                lambda i, s=s: feeds.korbit_book(s, i))) for s in self.symbols}
            for s in self.symbols:
                frames[f"trade:{s.lower()}_krw"] = LiveFrames(lambda i, s=s: feeds.korbit_trade(s, i))
                frames[f"ticker:{s.lower()}_krw"] = LiveFrames(lambda i, s=s: feeds.korbit_ticker(s, i))
            self.korbit = self.servers["korbit"] = KorbitServer(frames, interval=every)
        if "gopax" in korean:
            self.gopax = self.servers["gopax"] = LiveGopaxServer(
                [f"{s}-KRW" for s in self.symbols], feeds, interval=every)
        for server in (self.upbit, self.bithumb_ws, self.coinone, self.korbit):
            if server is not None:
                _bounded_sent(server)
                # one frame at a time, across the keys (books, trades, tickers): each key's
                # frames come every ``interval`` seconds
                server.interval = interval / len(server.frames)
        self.globals: dict[str, object] = {}
        for name in self.exchanges:
            if name in GLOBAL_SERVERS:
                currency = CONTROLLERS[name].default_currency
                self.globals[name] = self.servers[name] = GLOBAL_SERVERS[name](
                    self.world, [Market(s, currency) for s in self.symbols], interval)

    def _count(self, exchange: str, frames: LiveFrames) -> LiveFrames:
        self.counters[exchange].append(frames)
        return frames

    def _upbit_protocol(self, exchange: str, symbols: list[str], books) -> dict[str, LiveFrames]:
        feeds = self.feeds
        frames: dict[str, LiveFrames] = {}
        for s in symbols:
            code = f"KRW-{s}"
            if books is not None:
                frames[code] = self._count(exchange, LiveFrames(lambda i, c=code: books(c, i)))
            if s != "USDT":
                frames[f"trade:{code}"] = LiveFrames(lambda i, c=code: feeds.trade(exchange, c, i))
                frames[f"ticker:{code}"] = LiveFrames(lambda i, c=code: feeds.ticker(exchange, c, i))
        return frames

    def all(self) -> list:
        return [s for s in (*self.servers.values(), self.bithumb_ws, self.lists) if s is not None]

    def __enter__(self):
        for server in self.all():
            server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for server in self.all():
            server.__exit__(*exc)

    def env(self) -> dict[str, str]:
        """The endpoint variables that point the collector at these servers."""
        env: dict[str, str] = {}
        for name in self.exchanges:
            cls = CONTROLLERS[name]
            server = self.servers[name]
            if name in self.globals:
                env.update(server.env())
                continue
            if name == "bithumb":
                env[cls.rest_url_env] = server.url
                for feed in cls.feeds(("ticker", "trade")):
                    env[feed.ws_url_env] = self.bithumb_ws.url
                continue
            env[cls.ws_url_env] = server.url
            env[cls.rest_url_env] = self.lists.base(name)
        return env

    def books_sent(self, name: str) -> int:
        """Book frames (Bithumb: book objects; GOPAX and the global exchanges: snapshots left
        out, deltas) the server of ``name`` has sent."""
        if name == "gopax":
            return self.gopax.deltas_sent
        if name in self.globals:
            return self.globals[name].served
        return sum(frames.made for frames in self.counters[name])
