"""Bybit v5 order books: the ``orderbook.{depth}.{symbol}`` topic (a snapshot, then deltas).

Protocol (github.com/bybit-exchange/docs v5/websocket/public/orderbook.mdx,
wss-authentication.mdx, changelog; the recording in ``tests/fixtures/bybit``):

* endpoint ``wss://stream.bybit.com/v5/public/spot`` (``/linear`` for USDT perpetuals); override
  with ``BYBIT_WS_URL``. Subscribe ``{"req_id": "1", "op": "subscribe", "args":
  ["orderbook.50.BTCUSDT"]}`` (spot takes at most 10 args a request), answered by
  ``{"success": true, "op": "subscribe", …}``;
* messages ``{"topic", "type": "snapshot"|"delta", "ts": <ms>, "data": {"s", "b": [["price",
  "size"]], "a": […], "u", "seq"}, "cts"}``; size ``"0"`` deletes; a snapshot at any time replaces
  the book; ``u == 1`` is a service restart, sent as a snapshot;
* sequence: each delta's ``u`` is the previous ``u`` + 1 (depth 50 and more); no checksum. A
  delta whose ``u`` is the book's again is a repeat (skipped); a delta whose ``u`` went back (a
  delta with ``u == 1``, or the deltas after a restart snapshot that was lost) cannot be applied
  to the book: the market is resynced;
* keepalive ``{"req_id": "ping", "op": "ping"}`` every 20 s, answered by ``{"op": "ping",
  "ret_msg": "pong"}`` (or ``{"op": "pong"}``); without it the connection is cut after 10 min;
* a new snapshot is asked for by unsubscribing and subscribing again;
* ``--channels``: ``publicTrade.{symbol}`` (rows ``{"T": ms, "s", "S": taker side "Buy"/"Sell",
  "v", "p", "i": id}``; always ``"type": "snapshot"``, live trades too) and ``tickers.{symbol}``
  (``lastPrice``, ``prevPrice24h`` stored as the open, ``highPrice24h``, ``lowPrice24h``,
  ``volume24h`` base, ``turnover24h`` quote; spot sends snapshots only, derivatives a snapshot
  and then deltas of the changed fields, merged) (v5/websocket/public/trade.mdx, ticker.mdx).
"""

from __future__ import annotations

import json
from typing import Sequence

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade
from core.venue import Endpoint, Venue
from controllers.base import json_object
from controllers.deltabook import Delta, DeltaBookController, Verdict, text_levels

SUBSCRIBE_BATCH = 10


VENUE = Venue(
    name="bybit", label="Bybit", region="global", quote="USDT",
    taker_fee=0.001, fee_source="bybit.com/en/help-center (trading fee structure): spot non-VIP 0.1 %",
    endpoints=(Endpoint("ws", "wss://stream.bybit.com/v5/public/spot", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.bybit.com")),
    max_markets_per_connection=100,
    connect_interval=0.6)  # 500 connections per 5 minutes per domain


class BybitController(DeltaBookController):
    """Bybit ``orderbook.50`` books for ``markets`` (``Market("BTC", "USDT")`` is ``BTCUSDT``)."""

    venue = VENUE
    keepalive_message = json.dumps({"req_id": "ping", "op": "ping"})
    keepalive_interval = 20.0
    topic_depth = 50

    def _requests(self, op: str, markets: Sequence[Market], others: bool = False) -> list[str]:
        prefixes = [f"orderbook.{self.topic_depth}."]
        if others:
            prefixes += self.channel_names(ticker="tickers.", trade="publicTrade.")
        topics = [prefix + self.market_name(m) for m in markets for prefix in prefixes]
        return [json.dumps({"req_id": op, "op": op, "args": topics[i:i + SUBSCRIBE_BATCH]})
                for i in range(0, len(topics), SUBSCRIBE_BATCH)]

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        return self._requests("subscribe", markets, others=True)

    def resubscribe_messages(self, market: Market) -> list[str]:
        return [*self._requests("unsubscribe", [market]), *self._requests("subscribe", [market])]

    def decode(self, payload: bytes | str) -> list[Delta]:
        message = json_object(payload)
        if "op" in message:
            if message.get("success") is False:
                raise ExchangeError(f"{message.get('op')} failed: {message.get('ret_msg')}")
            return []  # acks and pongs
        topic = message.get("topic")
        data = message.get("data")
        if isinstance(topic, str) and topic.startswith("publicTrade.") and isinstance(data, list):
            return [self._trade(row) for row in data]
        if isinstance(topic, str) and topic.startswith("tickers.") and isinstance(data, dict):
            ticker = self._ticker(message, data)
            return [] if ticker is None else [ticker]
        if not (isinstance(topic, str) and topic.startswith("orderbook.") and isinstance(data, dict)):
            raise MalformedMessage(f"unexpected message on topic {topic!r}")
        market = self.market_of(data.get("s"))
        tag = market.tag(self.exchange)
        kind = message.get("type")
        if kind not in ("snapshot", "delta"):
            raise MalformedMessage(f"unexpected type {kind!r}", tag)
        try:
            update = int(data["u"])
            timestamp = int(message["ts"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad update id or time: {exc!r}", tag) from None
        return [Delta(market, text_levels(data.get("b"), tag), text_levels(data.get("a"), tag),
                      snapshot=kind == "snapshot", last=update, timestamp=timestamp)]

    def _trade(self, row: object) -> Trade:
        """One ``publicTrade`` row: ``i`` id, ``p``, ``v``, ``S`` the taker side (``Buy``/``Sell``),
        ``T`` ms. Every message is ``"type": "snapshot"``, live trades too."""
        if not isinstance(row, dict):
            raise MalformedMessage(f"bad trade row {row!r}")
        market = self.market_of(row.get("s"))
        return self.trade(market.base, market.quote, row.get("T"), self.received_at,
                          trade_id=row.get("i"), price=row.get("p"), volume=row.get("v"),
                          side=str(row.get("S")).lower())

    def _ticker(self, message: dict, data: dict) -> Ticker | None:
        """A ``tickers`` push: spot sends whole snapshots; derivatives send a snapshot, then
        deltas holding only the fields that changed, merged into the last one (``None`` for a
        delta before the snapshot)."""
        market = self.market_of(data.get("symbol"))
        fields = self.merged_ticker_fields(market, data, whole=message.get("type") != "delta")
        if fields is None:
            return None
        return self.ticker(market.base, market.quote, message.get("ts"), self.received_at,
                           last=fields.get("lastPrice"), open=fields.get("prevPrice24h"),
                           high=fields.get("highPrice24h"), low=fields.get("lowPrice24h"),
                           base_volume=fields.get("volume24h"),
                           quote_volume=fields.get("turnover24h"))

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        """``u`` is the book's + 1 (APPLY); the book's again: a repeat (SKIP); below it: the
        sequence restarted without the snapshot that restarts the book (RESET); beyond: GAP."""
        assert last is not None and delta.last is not None
        if delta.last == last + 1:
            return Verdict.APPLY
        if delta.last == last:
            return Verdict.SKIP
        if delta.last < last:
            return Verdict.RESET
        return Verdict.GAP
