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
  "timestamp"}]}``; docs.kraken.com spot-websocket-v2 trade). The ``ticker`` channel is not built.
"""

from __future__ import annotations

import json
import zlib
from typing import Sequence

import msgspec

from collector.errors import ExchangeError, MalformedMessage
from collector.model import Market, Trade, iso_us
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


class KrakenController(DeltaBookController):
    """Kraken v2 books for ``markets`` (``Market("BTC", "USD")`` is ``BTC/USD``), subscribed at the
    smallest offered depth that covers ``depth`` (at least 10, the checksum's)."""

    exchange = "KRAKEN"
    offered_channels = ("orderbook", "trade")  # no real v2 ticker message to test against
    ws_url_env = "KRAKEN_WS_URL"
    default_ws_url = "wss://ws.kraken.com/v2"
    rest_url_env = "KRAKEN_REST_URL"
    default_rest_url = "https://api.kraken.com"
    name_separator = "/"
    keepalive_message = json.dumps({"method": "ping"})
    keepalive_interval = 30.0
    max_markets_per_connection = 50
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
        books = [self._request("subscribe", markets)]
        if "trade" in self.channels:
            books.append(json.dumps({"method": "subscribe", "params": {
                "channel": "trade", "symbol": [self.market_name(m) for m in markets]}}))
        return books

    def resubscribe_messages(self, market: Market) -> list[str]:
        return [self._request("unsubscribe", [market]), self._request("subscribe", [market])]

    def _trade(self, row: object) -> Trade:
        """One ``trade`` row (``symbol``, ``side`` of the taker, ``price``, ``qty``,
        ``trade_id``, RFC 3339 ``timestamp``); the recent trades of the subscribe snapshot come
        the same way and are stored once by ``trade_id``."""
        if not isinstance(row, dict):
            raise MalformedMessage(f"bad trade row {row!r}")
        market = self.market_of(row.get("symbol"))
        return self.trade(market.symbol, market.currency, row.get("timestamp"), self.received_at,
                          trade_id=row.get("trade_id"), price=row.get("price"),
                          volume=row.get("qty"), side=str(row.get("side")))

    def decode(self, payload: bytes | str) -> list[Delta]:
        message = json_object(payload, _decoder.decode)
        if "method" in message:
            if message.get("success") is False:
                raise ExchangeError(f"{message['method']} failed: {message.get('error')}")
            return []  # acks and pongs
        channel = message.get("channel")
        if channel == "trade" and isinstance(message.get("data"), list):
            return [self._trade(row) for row in message["data"]]
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
