"""Bybit v5 order books: the ``orderbook.{depth}.{symbol}`` topic (a snapshot, then deltas).

Protocol (github.com/bybit-exchange/docs v5/websocket/public/orderbook.mdx,
wss-authentication.mdx, changelog; the recording in ``tests/fixtures/bybit``):

* endpoint ``wss://stream.bybit.com/v5/public/spot`` (``/linear`` for USDT perpetuals); override
  with ``BYBIT_WS_URL``. Subscribe ``{"req_id": "1", "op": "subscribe", "args":
  ["orderbook.50.BTCUSDT"]}`` (spot takes at most 10 args a request), answered by
  ``{"success": true, "op": "subscribe", …}``;
* messages ``{"topic", "type": "snapshot"|"delta", "ts": <ms>, "data": {"s", "b": [["price",
  "size"]], "a": […], "u", "seq"}, "cts"}``; size ``"0"`` deletes; a snapshot at any time replaces
  the book, and so does ``u == 1`` (a service restart);
* sequence: each delta's ``u`` is the previous ``u`` + 1 (depth 50 and more); no checksum;
* keepalive ``{"req_id": "ping", "op": "ping"}`` every 20 s, answered by ``{"op": "ping",
  "ret_msg": "pong"}`` (or ``{"op": "pong"}``); without it the connection is cut after 10 min;
* a new snapshot is asked for by unsubscribing and subscribing again.
"""

from __future__ import annotations

import json
from typing import Sequence

from collector.errors import ExchangeError, MalformedMessage
from collector.model import Market
from controllers.base import json_object
from controllers.deltabook import Delta, DeltaBookController, Verdict, text_levels

SUBSCRIBE_BATCH = 10


class BybitController(DeltaBookController):
    """Bybit ``orderbook.50`` books for ``markets`` (``Market("BTC", "USDT")`` is ``BTCUSDT``)."""

    exchange = "BYBIT"
    ws_url_env = "BYBIT_WS_URL"
    default_ws_url = "wss://stream.bybit.com/v5/public/spot"
    rest_url_env = "BYBIT_REST_URL"
    default_rest_url = "https://api.bybit.com"
    keepalive_message = json.dumps({"req_id": "ping", "op": "ping"})
    keepalive_interval = 20.0
    max_markets_per_connection = 100
    connect_interval = 0.6  # 500 connections per 5 minutes per domain
    topic_depth = 50

    def _requests(self, op: str, markets: Sequence[Market]) -> list[str]:
        topics = [f"orderbook.{self.topic_depth}.{self.market_name(m)}" for m in markets]
        return [json.dumps({"req_id": op, "op": op, "args": topics[i:i + SUBSCRIBE_BATCH]})
                for i in range(0, len(topics), SUBSCRIBE_BATCH)]

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        return self._requests("subscribe", markets)

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
                      snapshot=kind == "snapshot" or update == 1, last=update, timestamp=timestamp)]

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        assert last is not None and delta.last is not None
        if delta.last == last + 1:
            return Verdict.APPLY
        if delta.last <= last:
            return Verdict.SKIP
        return Verdict.GAP
