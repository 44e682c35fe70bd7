"""Kraken spot order books: the WebSocket v2 ``book`` channel (a snapshot, then updates, each with
a CRC32 checksum of the top 10).

Protocol (docs.kraken.com/api/docs/websocket-v2/book, guides "Spot Websockets (v2) book
checksum", websocket-v2 ping and heartbeat; the recordings in ``tests/fixtures/kraken``):

* endpoint ``wss://ws.kraken.com/v2``; override with ``KRAKEN_WS_URL``. Subscribe
  ``{"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10,
  "snapshot": true}, "req_id": 1}``, answered per symbol by ``{"method": "subscribe", "result":
  {…}, "success": true}``; a refusal has ``"success": false, "error"``;
* messages ``{"channel": "book", "type": "snapshot"|"update", "data": [{"symbol", "bids":
  [{"price": 29430.2, "qty": 0.18967538}], "asks": […], "checksum": <uint32>, "timestamp":
  "<RFC 3339>"}]}``, prices and quantities as JSON numbers spelled to the pair's precision;
  quantity 0 deletes. After each message the book is cut to the subscribed depth (levels pushed
  out are not deleted by a message);
* no sequence numbers: the checksum is the check (an update stamped before the book's last
  message is older than the book and skipped; the µs timestamp stands in as the update id). CRC32 (unsigned) of the top 10 asks (low to
  high) then the top 10 bids (high to low), each level its price then its quantity, as spelled
  with the ``.`` removed and leading zeros stripped. A mismatch resyncs the pair: unsubscribe
  and subscribe again for a new snapshot;
* the server sends ``{"channel": "heartbeat"}`` about once a second; ``{"method": "ping"}`` is
  answered by ``{"method": "pong"}``;
* ``--channels trade``: the ``trade`` channel (``{"channel": "trade", "type": "snapshot"|"update",
  "data": [{"symbol", "side": taker side, "price", "qty", "ord_type", "trade_id",
  "timestamp"}]}``; docs.kraken.com spot-websocket-v2 trade);
* ``--channels ticker``: the ``ticker`` channel (docs.kraken.com spot-websocket-v2 ticker),
  subscribed ``{"method": "subscribe", "params": {"channel": "ticker", "symbol": […]}}``: a
  snapshot, then an update on every trade, both whole: ``{"channel": "ticker", "type":
  "snapshot"|"update", "data": [{"symbol", "bid", "bid_qty", "ask", "ask_qty", "last", "volume",
  "vwap", "low", "high", "change", "change_pct", "timestamp"}]}``, all over the last 24 hours.
  Kraken sends no open and no quote volume: the open is ``last − change`` (``change`` is the
  24-hour price change in the quote currency) and the quote volume ``vwap × volume``, both in
  exact decimal arithmetic on the numbers as spelled.
"""

from __future__ import annotations

import json
import operator
import zlib
from decimal import Decimal, InvalidOperation
from typing import Callable, Sequence

import msgspec

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade, iso_us
from core.venue import Endpoint, Venue
from controllers.base import json_object
from controllers.book import LocalBook
from controllers.deltabook import Delta, DeltaBookController, TextLevel, Verdict

CHECKSUM_DEPTH = 10
DEPTHS = (10, 25, 100, 500, 1000)
"""The book depths Kraken offers a subscription."""

_decoder = msgspec.json.Decoder(float_hook=str)  # numbers as spelled: the checksum needs them


def kraken_checksum(book: LocalBook) -> int:
    """Kraken's v2 checksum of ``book`` (levels kept as spelled): unsigned CRC32 of the top 10
    asks then bids, each price and quantity without its ``.`` and leading zeros."""
    bids, asks = book.top_text(CHECKSUM_DEPTH)
    text = "".join(part.replace(".", "").lstrip("0")
                   for level in (*asks, *bids) for part in level)
    return zlib.crc32(text.encode())


VENUE = Venue(
    name="kraken", label="Kraken", region="global", quote="USDT",
    taker_fee=0.004, fee_source="kraken.com/features/fee-schedule: Kraken Pro lowest tier taker 0.40 %",
    endpoints=(Endpoint("ws", "wss://ws.kraken.com/v2", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.kraken.com")),
    max_markets_per_connection=50)


class KrakenController(DeltaBookController):
    """Kraken v2 books for ``markets`` (``Market("BTC", "USD")`` is ``BTC/USD``), subscribed at the
    smallest offered depth that covers ``depth`` (at least 10, the checksum's)."""

    venue = VENUE
    name_separator = "/"
    keepalive_message = json.dumps({"method": "ping"})
    keepalive_interval = 30.0
    snapshot_interval = 0.2
    keep_text = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        wanted = max(self.depth, CHECKSUM_DEPTH)
        self.book_depth = next((d for d in DEPTHS if d >= wanted), DEPTHS[-1])

    def _request(self, method: str, markets: Sequence[Market]) -> str:
        return json.dumps({"method": method, "params": {
            "channel": "book", "symbol": [self.market_name(m) for m in markets],
            "depth": self.book_depth, **({"snapshot": True} if method == "subscribe" else {})}})

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        symbols = [self.market_name(m) for m in markets]
        return [self._request("subscribe", markets), *(
            json.dumps({"method": "subscribe", "params": {"channel": channel, "symbol": symbols}})
            for channel in self.channel_names(ticker="ticker", trade="trade"))]

    def resubscribe_messages(self, market: Market) -> list[str]:
        return [self._request("unsubscribe", [market]), self._request("subscribe", [market])]

    def _trade(self, row: object) -> Trade:
        """One ``trade`` row (``symbol``, ``side`` of the taker, ``price``, ``qty``,
        ``trade_id``, RFC 3339 ``timestamp``); the recent trades of the subscribe snapshot come
        the same way and are stored once by ``trade_id``."""
        if not isinstance(row, dict):
            raise MalformedMessage(f"bad trade row {row!r}")
        market = self.market_of(row.get("symbol"))
        return self.trade(market.base, market.quote, row.get("timestamp"), self.received_at,
                          trade_id=row.get("trade_id"), price=row.get("price"),
                          volume=row.get("qty"), side=str(row.get("side")))

    def _ticker(self, row: object) -> Ticker:
        """One ``ticker`` row (``symbol``, ``last``, ``high``, ``low``, ``change``, ``vwap``,
        ``volume`` in the base currency, RFC 3339 ``timestamp``, the receive time where absent);
        the open and the quote volume are derived (see the module's docstring)."""
        if not isinstance(row, dict):
            raise MalformedMessage(f"bad ticker row {row!r}")
        market = self.market_of(row.get("symbol"))
        tag = market.tag(self.exchange)
        last, volume = row.get("last"), row.get("volume")
        return self.ticker(market.base, market.quote, row.get("timestamp", self.received_at),
                           self.received_at, last=last, high=row.get("high"), low=row.get("low"),
                           open=_exact(operator.sub, last, row.get("change"), "last - change", tag),
                           base_volume=volume,
                           quote_volume=_exact(operator.mul, row.get("vwap"), volume,
                                               "vwap * volume", tag))

    def decode(self, payload: bytes | str) -> list[Delta]:
        message = json_object(payload, _decoder.decode)
        if "method" in message:
            if message.get("success") is False:
                raise ExchangeError(f"{message['method']} failed: {message.get('error')}")
            return []  # acks and pongs
        channel = message.get("channel")
        if channel in ("trade", "ticker") and isinstance(message.get("data"), list):
            parse = self._trade if channel == "trade" else self._ticker
            return [parse(row) for row in message["data"]]
        if channel != "book":
            if channel in ("heartbeat", "status"):
                return []
            raise MalformedMessage(f"unexpected channel {channel!r}")
        kind = message.get("type")
        data = message.get("data")
        if kind not in ("snapshot", "update") or not isinstance(data, list):
            raise MalformedMessage(f"unexpected book message type {kind!r}")
        deltas = []
        for part in data:
            if not isinstance(part, dict):
                raise MalformedMessage(f"book data is {type(part).__name__}, not an object")
            market = self.market_of(part.get("symbol"))
            tag = market.tag(self.exchange)
            try:
                checksum = int(part["checksum"])
                stamp = iso_us(part["timestamp"]) if "timestamp" in part else None
                bids, asks = self._levels(part["bids"]), self._levels(part["asks"])
            except (KeyError, TypeError, ValueError) as exc:
                raise MalformedMessage(f"bad book data: {exc!r}", tag) from None
            deltas.append(Delta(market, bids, asks, snapshot=kind == "snapshot", last=stamp,
                                timestamp=stamp // 1000 if stamp is not None else None,
                                checksum=checksum))
        return deltas

    @staticmethod
    def _levels(levels: list) -> list[TextLevel]:
        """``[{"price", "qty"}]`` (numbers decoded as spelled) as ``(price, qty)`` strings."""
        return [(str(level["price"]), str(level["qty"])) for level in levels]

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        """No sequence numbers: the checksum after each update is the check. An update stamped
        before the book's last message (in µs) is older than the book and skipped."""
        if last is not None and delta.last is not None and delta.last < last:
            return Verdict.SKIP
        return Verdict.APPLY

    def checksum(self, book: LocalBook) -> int:
        return kraken_checksum(book)


def _exact(operation: Callable[[Decimal, Decimal], Decimal], left: object, right: object,
           what: str, market: str) -> float | None:
    """``operation`` on two numbers as spelled (decoded as text), in exact decimal arithmetic;
    ``None`` when either is absent.

    Raises:
        MalformedMessage: either is not a number.
    """
    if left is None or right is None:
        return None
    try:
        result = operation(Decimal(str(left)), Decimal(str(right)))
    except (InvalidOperation, ValueError):
        result = None
    if result is None or not result.is_finite():
        raise MalformedMessage(f"{what}: {left!r} and {right!r} are not both numbers", market)
    return float(result)
