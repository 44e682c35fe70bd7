"""Upbit order books over WebSocket.

Protocol (docs.upbit.com/kr/reference/websocket-orderbook, websocket-guide; the wire facts are
from captures of 2026-09, see ``tests/fixtures/SOURCES.md``):

* endpoint ``wss://api.upbit.com/websocket/v1``; override with ``UPBIT_WS_URL``;
* one subscribe array per connection, all codes in it (a second subscribe replaces the first)::

    [{"ticket": "<uuid>"}, {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]},
     {"format": "DEFAULT"}]

* frames are **binary** (UTF-8 JSON); each is a full book of up to 30 units, first
  ``"stream_type": "SNAPSHOT"`` then ``"REALTIME"``; ``timestamp`` is ms;
* market list ``GET https://api.upbit.com/v1/market/all``, 24 h traded value from ``GET
  /v1/ticker`` (override the base URL with ``UPBIT_REST_URL``); connects are paced to 5 per second;
* unknown codes get no frame and no error (the base warns when no book comes);
* idle sockets are closed after about 60 s on the wire, so a text ``PING`` goes every 20 s
  (answered by ``{"status": "UP"}``);
* errors: ``{"error": {"name": "NO_TICKET", "message": "…"}}``, then the server closes;
* ``--channels ticker,trade`` add ``ticker`` and ``trade`` objects with the same codes to the one
  subscribe array (docs.upbit.com/kr/reference/websocket-ticker, websocket-trade; see
  :func:`controllers.units.units_ticker`, :func:`controllers.units.units_trade`).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, Sequence

import msgspec

from core.errors import MalformedMessage
from core.model import Market
from core.venue import Endpoint, Venue
from controllers.base import Record, json_object
from controllers.units import (UNITS_CHANNELS, Unit, UnitsMarkets, raise_error_message, units_book,
                               units_subscribe)


class UpbitFrame(msgspec.Struct):
    """An Upbit order book frame as typed decoding reads it (other keys are ignored)."""

    type: Literal["orderbook"]
    code: Any
    timestamp: Any
    orderbook_units: list[Unit]


_decode_frame = msgspec.json.Decoder(UpbitFrame).decode
from controllers.ws import WSController


VENUE = Venue(
    name="upbit", label="Upbit", region="korea", quote="KRW",
    taker_fee=0.0005, fee_source="upbit.com/service_center/guide: KRW market 0.05 %",
    endpoints=(Endpoint("ws", "wss://api.upbit.com/websocket/v1", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.upbit.com")),
    connect_interval=0.2,  # websocket-connect: 5 per second per IP
    usdt_krw_rate=True)


class UpbitController(UnitsMarkets, WSController):
    """Collects Upbit order books for ``markets`` over one WebSocket connection."""

    venue = VENUE
    keepalive_message = "PING"
    keepalive_interval = 20.0

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        """One subscribe array for every market and channel: Upbit codes, quote first and upper
        case."""
        return [units_subscribe(self, markets, str(uuid.uuid4()))]

    def parse(self, payload: bytes | str, received_at: int) -> list[Record]:
        """Books (and tickers and trades) from one Upbit frame (DEFAULT format); ``[]`` for
        ``{"status": "UP"}``.

        Raises:
            ExchangeError: an ``{"error": …}`` frame.
            MalformedMessage: anything else that is not an order book of a subscribed market.
        """
        try:
            frame = _decode_frame(payload)
        except msgspec.ValidationError:  # not a well-formed book: a status, an error, or malformed
            return self._parse_other(payload, received_at)
        return [units_book(self, frame.code, frame.timestamp, frame.orderbook_units, received_at)]

    def _parse_other(self, payload: bytes | str, received_at: int) -> list[Record]:
        """The slow path of :meth:`parse`, for frames the typed decoder refused."""
        message = json_object(payload)
        raise_error_message(message)
        kind = message.get("type")
        if kind is None and message.get("status") == "UP":
            return []
        if kind in UNITS_CHANNELS:
            return [UNITS_CHANNELS[kind](self, message, received_at)]
        if kind != "orderbook":
            raise MalformedMessage(f"unexpected message type {kind!r}")
        return [units_book(self, message.get("code"), message.get("timestamp"),
                           message.get("orderbook_units"), received_at)]
