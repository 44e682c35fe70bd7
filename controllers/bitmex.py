"""BitMEX order books: the ``orderBookL2`` table (a partial, then inserts, updates and deletes by
level id).

Protocol (www.bitmex.com/app/wsAPI "Subscriptions", "Table diffs"; blog.bitmex.com "Changes to
Order Book Level 2 Data" (2022); the recording in ``tests/fixtures/bitmex``):

* endpoint ``wss://ws.bitmex.com/realtime``; override with ``BITMEX_WS_URL``. On connect the
  server sends ``{"info": "Welcome to the BitMEX Realtime API.", …}``. Subscribe ``{"op":
  "subscribe", "args": ["orderBookL2:XBTUSD", …]}``, answered per topic by ``{"success": true,
  "subscribe": "orderBookL2:XBTUSD", …}``; errors ``{"status": 400, "error": "…"}``;
* table diffs ``{"table": "orderBookL2", "action": "partial"|"insert"|"update"|"delete", "data":
  [{"symbol", "id", "side": "Buy"|"Sell", "size", "price", "timestamp"?}]}``: ``partial`` is the
  whole book (``keys: ["symbol", "id", "side"]``), ``insert`` adds levels, ``update`` changes the
  size of a level known by its ``id`` (2021 updates carry no ``price``: it is looked up by id),
  ``delete`` removes it. Since 2022-02 each row carries its ``timestamp`` (ISO 8601, UTC);
* sizes are in contracts (XBTUSD: USD; linear ``…USDT`` contracts: a fraction of the base),
  stored as sent. ``Market("BTC", "USD")`` is ``XBTUSD``; a futures contract keeps its
  expiry code as the quote (``Market("XRP", "U21")`` is ``XRPU21``);
* there are no sequence numbers and no checksum. What shows a lost or reordered message is an
  update or delete of an id the book does not hold, an insert of one it does, or a crossed
  book: each resyncs the market (unsubscribe and subscribe again for a new partial);
* keepalive: a text ``ping`` when nothing came for 5 s, answered by ``pong``;
* ``--channels trade``: the ``trade`` table (``trade:XBTUSD``), rows ``{"timestamp", "symbol",
  "side": taker side "Buy"/"Sell", "size": contracts, "price", "trdMatchID", …}``; the
  ``partial`` on subscribe repeats the last trades;
* ``--channels ticker``: the ``instrument`` table (``instrument:XBTUSD``; www.bitmex.com/api/
  explorer, model Instrument): a ``partial`` with the whole row, then ``update`` rows holding
  only the fields that changed (mark and fair prices about every second), merged into it.
  Stored: ``lastPrice``; ``prevPrice24h`` (the price 24 hours ago) as the open; ``highPrice``
  and ``lowPrice`` of the last 24 hours; ``prevClosePrice``; ``homeNotional24h`` (base
  currency) and ``foreignNotional24h`` (quote currency) as the 24-hour volumes; the row's
  ``timestamp``. Updates before the partial are dropped: they have nothing to merge into.
"""

from __future__ import annotations

import json
from typing import Sequence

import msgspec

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade, iso_us, level_kept
from core.venue import Endpoint, Venue
from controllers.base import json_object
from controllers.deltabook import Delta, DeltaBookController, TextLevel, Verdict

_decoder = msgspec.json.Decoder(float_hook=str)  # prices as spelled
SIDES = {"Buy": "bid", "Sell": "ask"}
ALIASES = {"BTC": "XBT"}
"""Our base currency names that BitMEX spells its own way."""


VENUE = Venue(
    name="bitmex", label="BitMEX", region="global", quote="USDT", kind="derivative",
    taker_fee=0.00075, fee_source="bitmex.com/wallet/fees: perpetual contracts taker 0.075 %",
    endpoints=(Endpoint("ws", "wss://ws.bitmex.com/realtime", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://www.bitmex.com")),
    max_markets_per_connection=20,
    connect_interval=1.0)  # the welcome's limit.remaining counts connects


class BitmexController(DeltaBookController):
    """BitMEX ``orderBookL2`` books for ``markets``."""

    venue = VENUE
    keepalive_message = "ping"
    keepalive_interval = 5.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._levels: dict[Market, dict[int, tuple[str, str]]] = {m: {} for m in self.markets}
        """Per market, level id -> (side, price text) of the levels the book holds."""

    @classmethod
    def market_name(cls, market: Market) -> str:
        return ALIASES.get(market.base, market.base) + market.quote

    def _request(self, op: str, markets: Sequence[Market]) -> str:
        return json.dumps({"op": op, "args": [f"orderBookL2:{self.market_name(m)}" for m in markets]})

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        others = [prefix + self.market_name(m) for m in markets
                  for prefix in self.channel_names(ticker="instrument:", trade="trade:")]
        return [self._request("subscribe", markets),
                *([json.dumps({"op": "subscribe", "args": others})] if others else [])]

    def resubscribe_messages(self, market: Market) -> list[str]:
        return [self._request("unsubscribe", [market]), self._request("subscribe", [market])]

    def _trade(self, row: object) -> Trade:
        """One ``trade`` row: ``trdMatchID``, ``price``, ``size`` in **contracts** (stored as
        sent, like the book sizes), ``side`` of the taker (``Buy``/``Sell``), ISO ``timestamp``.
        The ``partial`` on subscribe repeats the last trades; they are stored once by id."""
        if not isinstance(row, dict):
            raise MalformedMessage(f"a trade row is {type(row).__name__}, not an object")
        market = self.market_of(row.get("symbol"))
        return self.trade(market.base, market.quote, row.get("timestamp"), self.received_at,
                          trade_id=row.get("trdMatchID"), price=row.get("price"),
                          volume=row.get("size"), side=str(row.get("side")).lower())

    def _ticker(self, row: object, whole: bool) -> Ticker | None:
        """One ``instrument`` row merged into the market's last one (``whole``: a ``partial`` or
        ``insert`` row replaces it); ``None`` for an update before the partial."""
        if not isinstance(row, dict):
            raise MalformedMessage(f"an instrument row is {type(row).__name__}, not an object")
        market = self.market_of(row.get("symbol"))
        fields = self.merged_ticker_fields(market, row, whole=whole)
        if fields is None:
            return None
        return self.ticker(market.base, market.quote, fields.get("timestamp"),
                           self.received_at, last=fields.get("lastPrice"),
                           open=fields.get("prevPrice24h"), high=fields.get("highPrice"),
                           low=fields.get("lowPrice"), prev_close=fields.get("prevClosePrice"),
                           base_volume=fields.get("homeNotional24h"),
                           quote_volume=fields.get("foreignNotional24h"))

    def decode(self, payload: bytes | str) -> list[Delta]:
        if payload in ("pong", b"pong"):
            return []
        message = json_object(payload, _decoder.decode)
        if "error" in message:
            raise ExchangeError(f"{message.get('status')}: {message['error']}")
        table = message.get("table")
        if table is None:
            return []  # the welcome, subscribe and unsubscribe acks
        action, rows = message.get("action"), message.get("data")
        if table == "trade" and action in ("partial", "insert") and isinstance(rows, list):
            return [self._trade(row) for row in rows]
        if table == "instrument" and action in ("partial", "insert", "update", "delete") \
                and isinstance(rows, list):
            if action == "delete":
                return []  # a delisted contract: its last ticker stays as stored
            tickers = (self._ticker(row, whole=action != "update") for row in rows)
            return [ticker for ticker in tickers if ticker is not None]
        if table != "orderBookL2" or action not in ("partial", "insert", "update", "delete") \
                or not isinstance(rows, list):
            raise MalformedMessage(f"unexpected {action!r} on table {table!r}")
        by_market: dict[Market, list[dict]] = {}
        for row in rows:
            if not isinstance(row, dict):
                raise MalformedMessage(f"a row is {type(row).__name__}, not an object")
            by_market.setdefault(self.market_of(row.get("symbol")), []).append(row)
        if action == "partial" and not rows:  # an empty book: the filter names the market
            by_market[self.market_of((message.get("filter") or {}).get("symbol"))] = []
        deltas = []
        for market, market_rows in by_market.items():
            delta = self._delta(market, action, market_rows)
            if delta is not None:
                deltas.append(delta)
        return deltas

    def _delta(self, market: Market, action: str, rows: list[dict]) -> Delta | None:
        """One market's rows as a delta of prices; ``None`` when they show the book is out of
        step (the market is resynced) or the book is awaited (they are older than it)."""
        tag = market.tag(self.exchange)
        levels = self._levels[market]
        if action == "partial":
            levels.clear()
        bids: list[TextLevel] = []
        asks: list[TextLevel] = []
        stamps = []
        try:
            for row in rows:  # the values first: a refused message leaves the ids as they were
                if action != "delete":
                    level_kept(float(row["price"]) if action != "update" else 1.0,
                               float(row["size"]))
            for row in rows:
                level_id, side = int(row["id"]), SIDES[row["side"]]
                if "timestamp" in row:
                    stamps.append(row["timestamp"])
                if action in ("partial", "insert"):
                    if level_id in levels and action == "insert":
                        return self._out_of_step(market, f"insert of id {level_id}, already in the book")
                    price, size = str(row["price"]), str(row["size"])
                    levels[level_id] = (side, price)
                    (bids if side == "bid" else asks).append((price, size))
                    continue
                known = levels.get(level_id)
                if known is None:
                    return self._out_of_step(market, f"{action} of id {level_id}, not in the book")
                price = known[1]
                if action == "delete":
                    del levels[level_id]
                    size = "0"
                else:
                    size = str(row["size"])
                (bids if known[0] == "bid" else asks).append((price, size))
            timestamp = max(iso_us(stamp) for stamp in stamps) // 1000 if stamps else None
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad {action} row: {exc!r}", tag) from None
        return Delta(market, bids, asks, snapshot=action == "partial", timestamp=timestamp)

    def _out_of_step(self, market: Market, reason: str) -> None:
        if self.has_book(market):
            self.resync(market, f"out of step: {reason}")
        return None  # without a book the rows are older than the partial on its way

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        return Verdict.APPLY  # no sequence numbers: ids and the crossed-book check are the checks

