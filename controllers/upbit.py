"""Upbit order books over WebSocket.

Protocol (docs.upbit.com/kr/reference/websocket-orderbook, websocket-guide; the wire facts are
from captures of 2026-09, see ``tests/fixtures/SOURCES.md``):

* endpoint ``wss://api.upbit.com/websocket/v1``; override with ``UPBIT_WS_URL``;
* one subscribe array per connection, all codes in it (a second subscribe replaces the first)::

    [{"ticket": "<uuid>"}, {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]},
     {"format": "DEFAULT"}]

* frames are **binary** (UTF-8 JSON); each is a full book of up to 30 units, first
  ``"stream_type": "SNAPSHOT"`` then ``"REALTIME"``; ``timestamp`` is ms;
* unknown codes get no frame and no error (the base warns when no book comes);
* idle sockets are closed after about 60 s on the wire, so a text ``PING`` goes every 20 s
  (answered by ``{"status": "UP"}``);
* errors: ``{"error": {"name": "NO_TICKET", "message": "…"}}``, then the server closes.
"""

from __future__ import annotations

import json
import uuid

from collector.errors import MalformedMessage
from collector.model import OrderBookSnapshot
from controllers.units import raise_error_message, units_book
from controllers.ws import WSController


class UpbitController(WSController):
    """Collects Upbit order books for ``markets`` over one WebSocket connection."""

    exchange = "UPBIT"
    ws_url_env = "UPBIT_WS_URL"
    default_ws_url = "wss://api.upbit.com/websocket/v1"
    keepalive_message = "PING"
    keepalive_interval = 20.0

    def codes(self) -> list[str]:
        """Upbit market codes, quote first and upper case: ``["KRW-BTC", "KRW-ETH"]``."""
        return [f"{m.currency}-{m.symbol}" for m in self.markets]

    def subscribe_messages(self) -> list[str]:
        return [json.dumps([
            {"ticket": str(uuid.uuid4())},
            {"type": "orderbook", "codes": self.codes()},
            {"format": "DEFAULT"},
        ])]

    def parse(self, payload: bytes | str, received_at: int) -> list[OrderBookSnapshot]:
        """Books from one Upbit frame (DEFAULT format); ``[]`` for ``{"status": "UP"}``.

        Raises:
            ExchangeError: an ``{"error": …}`` frame.
            MalformedMessage: anything else that is not an order book of a subscribed market.
        """
        message = json.loads(payload)
        if not isinstance(message, dict):
            raise MalformedMessage(f"expected an object, got {type(message).__name__}")
        raise_error_message(message)
        kind = message.get("type")
        if kind is None and message.get("status") == "UP":
            return []
        if kind != "orderbook":
            raise MalformedMessage(f"unexpected message type {kind!r}")
        return [units_book(self, message.get("code"), message.get("timestamp"),
                           message.get("orderbook_units"), received_at)]
