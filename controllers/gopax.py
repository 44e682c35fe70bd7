"""GOPAX order books over WebSocket: a snapshot, then deltas kept in a local book.

Protocol (gopax.github.io/wsapi, English and Korean pages; wire facts from captures of 2026-09,
see ``tests/fixtures/SOURCES.md``):

* endpoint ``wss://wsapi.gopax.co.kr``; override with ``GOPAX_WS_URL``. Public books need no auth.
  When ``GOPAX_API_KEY`` and ``GOPAX_SECRET_KEY`` are both set the connect is signed, with the
  query ``apiKey``, ``timestamp`` (ms, within 5 s of server time) and ``signature`` =
  base64(HMAC-SHA512(key=base64decode(secret), msg="t" + timestamp)); key, secret and signature
  never reach a log line;
* one subscribe per market; ``i`` is echoed in the reply, so the pair name is used as ``i`` and
  error replies name their market::

    {"i": "BTC-KRW", "n": "SubscribeToOrderBook", "o": {"tradingPairName": "BTC-KRW"}}

* the reply is the **whole book**: ``{"n": "SubscribeToOrderBook", "o": {"ask": [{"entryId",
  "price", "volume", "updatedAt"}], "bid": […], "tradingPairName", "maxEntryId"}}``;
* deltas ``{"i": -1, "n": "OrderBookEvent", "o": {"ask": […], "bid": […], "tradingPairName"}}``
  replace the level at each price; ``volume: 0`` deletes it. A delta may arrive before its
  snapshot: deltas are buffered until the snapshot, and entries with ``entryId`` at or below the
  snapshot's ``maxEntryId`` are skipped (``entryId`` is one counter across all pairs, so gaps
  cannot be detected). Per price, an entry applies only if its ``(updatedAt, entryId)`` is newer.
  The book is kept by the shared synchroniser (:mod:`controllers.booksync`): a crossed book
  resyncs; a second subscribe is refused (10325 "already subscribed"), so a resync reopens the
  market's connection;
* ``updatedAt`` is Unix **seconds** with a ms fraction; the book time stored is the newest
  ``updatedAt`` among the entries of the event (of the whole book for the snapshot);
* the server sends the text frame ``"primus::ping::<ms>"`` (double quotes included) every 30 s and
  closes the connection 30 s later unless it gets ``"primus::pong::<ms>"`` back: answered at once;
* at most 50 books per connection (error 10321): markets are split over as many connections as
  needed; at most 20 connection attempts per second (paced here to 10);
* ``--channels``: ``SubscribeToTickers`` (``TickerEvent``: every pair about once a second; ours
  are kept) and, per market, ``SubscribeToTradingPair`` for ``PublicTradeEvent`` trades (its
  reply is not documented and is taken as an ack; with trades a connection carries 25 markets);
* errors ``{"i": …, "n": …, "o": {"result": false, "errCode": 10058, "errData": "…"}}``;
* markets: ``GET https://api.gopax.co.kr/trading-pairs``; 24 h traded value from
  ``GET /trading-pairs/stats`` (``close`` × ``volume``); override with ``GOPAX_REST_URL``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence
from urllib.parse import urlencode

from core.errors import ConfigError, ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade, level_kept, market_tag, now_ms, to_ms
from core.venue import Endpoint, Venue
from controllers.base import json_value
from controllers.book import LocalBook
from controllers.deltabook import Delta, DeltaBookController, Verdict

PING_PREFIX = '"primus::ping::'
PONG_PREFIX = '"primus::pong::'


def sign_connect(secret: str, timestamp: int) -> str:
    """The ``signature`` of a signed GOPAX connect: base64(HMAC-SHA512(base64decode(secret),
    "t" + timestamp)), ``timestamp`` in ms.

    Raises:
        binascii.Error: ``secret`` is not base64.
    """
    key = base64.b64decode(secret, validate=True)
    digest = hmac.new(key, f"t{timestamp}".encode(), hashlib.sha512).digest()
    return base64.b64encode(digest).decode()


@dataclass
class GopaxDelta(Delta):
    """A GOPAX book message: ``entries`` are ``(side, price, volume, updatedAt in s, entryId)``;
    a snapshot's ``last`` is its ``maxEntryId``."""

    entries: list[tuple] = field(default_factory=list)


VENUE = Venue(
    name="gopax", label="GOPAX", region="korea", quote="KRW",
    taker_fee=0.002, fee_source="gopax.co.kr/feeinfo: 0.2 % base level",
    endpoints=(Endpoint("ws", "wss://wsapi.gopax.co.kr", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.gopax.co.kr")),
    max_markets_per_connection=50,
    connect_interval=0.1,  # documented: at most 20 connection attempts per second
    subscribe_interval=0.02)  # no published limit; 50 subscribes take 1 s


class GopaxController(DeltaBookController):
    """Collects GOPAX order books for ``markets``, 50 per connection, keeping each book locally.

    Raises:
        ConfigError: only one of ``GOPAX_API_KEY``/``GOPAX_SECRET_KEY`` is set, or the secret is
            not base64.
    """

    venue = VENUE
    name_separator = "-"
    replay_after_ws_snapshot = True
    resync_by_reconnect = True
    resync_quiet = False  # a resync reopens a connection of 50 books: never for a quiet market
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "trade" in kwargs.get("channels", ()):
            # SubscribeToTradingPair carries the pair's book too: if it counts against the 50
            # books of a connection (undocumented), 25 markets still fit
            self.max_markets_per_connection = 25
        super().__init__(*args, **kwargs)
        self._api_key = self.env.get("GOPAX_API_KEY") or ""
        self._secret = self.env.get("GOPAX_SECRET_KEY") or ""
        if bool(self._api_key) != bool(self._secret):
            raise ConfigError("set both GOPAX_API_KEY and GOPAX_SECRET_KEY, or neither")
        if self._secret:
            try:
                base64.b64decode(self._secret, validate=True)
            except binascii.Error:
                raise ConfigError("GOPAX_SECRET_KEY is not base64 (use the secret GOPAX "
                                  "issued with a 64-character API key)") from None
        self._signatures: list[str] = []

    @property
    def signed(self) -> bool:
        """Whether connects are signed with the API key."""
        return bool(self._api_key)

    # --- connection hooks ----------------------------------------------------------------------

    def connect_url(self) -> str:
        if not self.signed:
            return self.url
        timestamp = now_ms()
        signature = sign_connect(self._secret, timestamp)
        self._signatures = [*self._signatures[-3:], signature]
        query = urlencode({"apiKey": self._api_key, "timestamp": timestamp,
                           "signature": signature})
        return f"{self.url}{'&' if '?' in self.url else '?'}{query}"

    def secrets(self) -> list[str]:
        return [self._api_key, self._secret, *self._signatures]

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        books = [json.dumps({"i": self.market_name(m), "n": "SubscribeToOrderBook",
                             "o": {"tradingPairName": self.market_name(m)}}) for m in markets]
        if "trade" in self.channels:  # the pair's book and PublicTradeEvent; the book we have
            books += [json.dumps({"i": f"trades-{self.market_name(m)}", "n": "SubscribeToTradingPair",
                                  "o": {"tradingPairName": self.market_name(m)}}) for m in markets]
        if "ticker" in self.channels:  # one subscription for every pair; ours are kept
            books.append(json.dumps({"i": "tickers", "n": "SubscribeToTickers", "o": {}}))
        return books

    def reply_to(self, payload: bytes | str) -> str | None:
        """``"primus::pong::<ms>"`` for the server's ``"primus::ping::<ms>"``."""
        if isinstance(payload, bytes):
            if not payload.startswith(PING_PREFIX.encode()):
                return None
            payload = payload.decode("utf-8", "replace")
        if payload.startswith(PING_PREFIX):
            return PONG_PREFIX + payload[len(PING_PREFIX):]
        return None

    # --- parsing and the local books -----------------------------------------------------------

    def decode(self, payload: bytes | str) -> list[GopaxDelta | Ticker | Trade]:
        """The snapshot (``SubscribeToOrderBook`` reply) or delta (``OrderBookEvent``) of one
        market, the tickers of the subscribed markets in a ``TickerEvent``, or a trade.

        Raises:
            ExchangeError: an error reply (``"result": false``), named after the market in ``i``.
            MalformedMessage: anything else that is not a book or delta of a subscribed market.
        """
        message = json_value(payload)
        if not isinstance(message, dict) or not isinstance(message.get("o"), dict):
            raise MalformedMessage("expected an object with an 'o' object")
        name, body = message.get("n"), message["o"]
        if body.get("result") is False:
            pair = message.get("i")
            market = self._names.get(pair) if isinstance(pair, str) else None
            raise ExchangeError(f"{name} failed: {body.get('errCode')} {body.get('errData')}",
                                market.tag(self.exchange) if market is not None else None)
        if name in ("TickerEvent", "SubscribeToTickers"):
            return self._tickers(body, self.received_at)
        if name == "PublicTradeEvent":
            return [self._trade(body, self.received_at)]
        if name == "SubscribeToTradingPair":
            return []  # its reply: an ack (the book comes from SubscribeToOrderBook)
        if name not in ("SubscribeToOrderBook", "OrderBookEvent"):
            raise MalformedMessage(f"unexpected message {name!r}")
        market = self.market_of(body.get("tradingPairName"))
        tag = market.tag(self.exchange)
        entries = self._entries(body, tag)
        if name == "OrderBookEvent":
            return [GopaxDelta(market, [], [], entries=entries)]
        try:
            max_entry_id = int(body["maxEntryId"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"snapshot without a maxEntryId: {exc!r}", tag) from None
        return [GopaxDelta(market, [], [], snapshot=True, last=max_entry_id, entries=entries)]

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        """GOPAX has no per-market sequence (``entryId`` counts across all pairs): every delta
        applies, entry by entry (:meth:`apply_levels`)."""
        return Verdict.APPLY

    def apply_levels(self, book: LocalBook, delta: Delta, last: int | None) -> bool:
        """Apply the entries of a snapshot, or of a delta skipping those at or below the
        snapshot's ``maxEntryId`` (``last``); per price only an entry newer by
        ``(updatedAt, entryId)`` applies. Sets ``delta.timestamp`` to the newest ``updatedAt``
        applied (ms); ``False`` if no entry applied (a snapshot always counts)."""
        assert isinstance(delta, GopaxDelta)
        newest = 0.0
        for side, price, volume, updated_at, entry_id in delta.entries:
            if not delta.snapshot and last is not None and entry_id <= last:
                continue
            if book.apply(side, price, volume, (updated_at, entry_id)):
                newest = max(newest, updated_at)
        delta.timestamp = to_ms(newest) if newest else None
        return delta.snapshot or newest > 0

    def _trade(self, body: dict, received_at: int) -> Trade:
        """A ``PublicTradeEvent`` (``tradeId``, ``price``, ``baseAmount`` in the base currency,
        ``isBuy`` true when the taker bought, ``occurredAt`` in seconds, ``tradingPairName``;
        gopax.github.io/wsapi)."""
        pair = body.get("tradingPairName")
        if not isinstance(pair, str) or pair.count("-") != 1 or not isinstance(body.get("isBuy"), bool):
            raise MalformedMessage(f"bad PublicTradeEvent for {pair!r}")
        symbol, currency = pair.split("-")
        return self.trade(symbol, currency, body.get("occurredAt"), received_at,
                          trade_id=body.get("tradeId"), price=body.get("price"),
                          volume=body.get("baseAmount"), side="buy" if body["isBuy"] else "sell")

    def _tickers(self, body: dict, received_at: int) -> list[Ticker]:
        """The tickers of our markets in a ``TickerEvent`` (``{"BTC-KRW": {"last", "open",
        "high", "low", "baseVolume", "quoteVolume", "lastTraded": ms, …}, …}``, every pair of the
        exchange about once a second; wire capture of 2026-09). The subscribe reply, whose shape
        is not documented, is read the same way; an entry that is not a pair's object is skipped."""
        if "ticker" not in self.channels:
            raise MalformedMessage("a TickerEvent came, but the ticker channel is not collected")
        ours = []
        for pair, row in body.items():
            if not isinstance(row, dict) or not isinstance(pair, str) or pair.count("-") != 1:
                continue
            symbol, currency = pair.split("-")
            if self.market_for(symbol, currency) is not None:  # else another pair of the feed
                ours.append((symbol, currency, row))
        # one market's ticker refused (a NaN price…) is counted and logged; the others are kept
        return self.records_of(ours, lambda pair: self._ticker(*pair, received_at))

    def _ticker(self, symbol: str, currency: str, row: dict, received_at: int) -> Ticker:
        return self.ticker(symbol, currency, row.get("lastTraded") or received_at, received_at,
                           last=row.get("last"), open=row.get("open"), high=row.get("high"),
                           low=row.get("low"), base_volume=row.get("baseVolume"),
                           quote_volume=row.get("quoteVolume"))

    @staticmethod
    def _entries(body: dict, tag: str) -> list[tuple]:
        """``[(side, price, volume, updatedAt, entryId), …]`` of a snapshot or a delta, checked
        before any of it is applied: a NaN, infinite or negative price or volume, or a volume at
        price 0 (:func:`core.model.level_kept`), refuses the message whole."""
        entries = []
        try:
            for key in ("bid", "ask"):
                for entry in body.get(key) or ():
                    price, volume = float(entry["price"]), float(entry["volume"])
                    level_kept(price, volume)
                    entries.append((key, price, volume, float(entry["updatedAt"]),
                                    int(entry["entryId"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad book entry: {type(exc).__name__}: {exc}", tag) from None
        return entries

    # --- market discovery ----------------------------------------------------------------------

    @classmethod
    def check_body(cls, body: object) -> None:
        if isinstance(body, dict) and "errorCode" in body:
            raise ExchangeError(f"{body.get('errorCode')}: {body.get('errorMessage')}")

    @classmethod
    def list_markets(cls, env: Mapping[str, str], currency: str) -> list[Market]:
        rows = cls.get_rows(env, "/trading-pairs")
        return [Market(str(row["baseAsset"]).upper(), str(row["quoteAsset"]).upper())
                for row in rows if str(row.get("quoteAsset", "")).upper() == currency]

    @classmethod
    def traded_values(cls, env: Mapping[str, str], markets: Sequence[Market]) -> dict[Market, float]:
        by_name = {cls.market_name(m): m for m in markets}
        rows = cls.get_rows(env, "/trading-pairs/stats")
        return {by_name[row["name"]]: float(row["close"]) * float(row["volume"])
                for row in rows if row.get("name") in by_name}
