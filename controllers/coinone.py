"""Coinone order books over WebSocket.

Protocol (docs.coinone.co.kr/reference/public-websocket-1, public-websocket-orderbook,
public-websocket-ping; wire facts from captures of 2026-09, see ``tests/fixtures/SOURCES.md``):

* endpoint ``wss://stream.coinone.co.kr``; override with ``COINONE_WS_URL``; on open the server
  sends ``{"response_type": "CONNECTED", "data": {"session_id": …}}``;
* one subscribe per market, answered by ``SUBSCRIBED``::

    {"request_type": "SUBSCRIBE", "channel": "ORDERBOOK",
     "topic": {"quote_currency": "KRW", "target_currency": "BTC"}}

* every ``DATA`` frame is a full 16/16 book, prices and sizes as strings; **asks arrive worst
  first** (descending) and bids best first — both sides are sorted here;
* ``data.id`` is ``"<ms><3-digit counter>"`` and only grows ("larger id = newer book"): it is the
  book's sequence, so a frame with an id at or below the last one is dropped and counted (a
  resubscribe repeats the last book with the same id);
* the book time is the millisecond part of ``id``: ``data.timestamp`` of the first frame after
  subscribing is the same cache time for every market, up to 10 s off the book's version;
* keepalive ``{"request_type": "PING"}`` → ``{"response_type": "PONG"}``, sent every 20 s (the
  server closes sessions that never send a request after about 60 s);
* errors ``{"response_type": "ERROR", "error_code": 160012, "message": "Invalid Topic"}`` do not
  name the topic; an unknown pair's error comes right after its ``SUBSCRIBED`` ack, so it is
  attributed to the market acked last; the socket stays open;
* at most 20 connections per IP: all markets share one connection;
* markets: ``GET https://api.coinone.co.kr/public/v2/markets/KRW``; 24 h traded value:
  ``GET /public/v2/ticker_new/KRW`` (``quote_volume``); override with ``COINONE_REST_URL``.
  REST errors come with HTTP 200 as ``{"result": "error", "error_code": "108", …}``.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, market_tag
from core.venue import Endpoint, Venue
from controllers.base import Record, json_object
from controllers.levels import keyed_levels
from controllers.ws import WSController


VENUE = Venue(
    name="coinone", label="Coinone", region="korea", quote="KRW",
    taker_fee=0.002, fee_source="coinone.co.kr/support/fee: 0.2 % base taker rate",
    endpoints=(Endpoint("ws", "wss://stream.coinone.co.kr", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.coinone.co.kr")),
    subscribe_interval=0.02)  # no published limit; 50 per second at most


class CoinoneController(WSController):
    """Collects Coinone order books for ``markets``, one subscribe per market on one connection."""

    venue = VENUE
    keepalive_message = '{"request_type":"PING"}'
    keepalive_interval = 20.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_acked: str | None = None

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        channels = ["ORDERBOOK"] + self.channel_names(ticker="TICKER", trade="TRADE")
        return [json.dumps({"request_type": "SUBSCRIBE", "channel": channel,
                            "topic": {"quote_currency": m.quote, "target_currency": m.base}},
                           separators=(",", ":"))
                for m in markets for channel in channels]

    def on_connect(self, markets: Sequence[Market]) -> None:
        self._last_acked = None

    def parse(self, payload: bytes | str, received_at: int) -> list[Record]:
        """The book of one ``DATA``/``ORDERBOOK`` frame (or the ticker or trade of a
        ``TICKER``/``TRADE`` one); ``[]`` for ``CONNECTED``, ``SUBSCRIBED``, ``UNSUBSCRIBED`` and
        ``PONG``.

        Raises:
            ExchangeError: an ``ERROR`` frame (attributed to the market acked last).
            MalformedMessage: anything else that is not an order book of a subscribed market.
        """
        message = json_object(payload)
        kind = message.get("response_type")
        if kind in ("CONNECTED", "PONG", "UNSUBSCRIBED"):
            return []
        if kind == "SUBSCRIBED":
            topic = message.get("data") or {}
            if isinstance(topic, dict) and topic.get("target_currency"):
                self._last_acked = market_tag(self.exchange, str(topic["target_currency"]).upper(),
                                              str(topic.get("quote_currency") or "").upper())
            return []
        if kind == "ERROR":
            code, text = message.get("error_code"), message.get("message")
            field = f" (field {message['field']})" if "field" in message else ""
            if code == 160012 and self._last_acked:
                raise ExchangeError(f"{code} {text}{field}: right after the subscribe ack of "
                                    f"{self._last_acked}, which is probably not listed",
                                    self._last_acked)
            raise ExchangeError(f"{code} {text}{field}")
        channel = message.get("channel")
        if kind != "DATA" or channel not in ("ORDERBOOK", "TICKER", "TRADE"):
            raise MalformedMessage(f"unexpected message {kind!r} on channel {channel!r}")
        data = message.get("data")
        if not isinstance(data, dict):
            raise MalformedMessage("DATA frame without a data object")
        symbol = str(data.get("target_currency") or "").upper()
        currency = str(data.get("quote_currency") or "").upper()
        tag = market_tag(self.exchange, symbol, currency)
        if channel == "TRADE":
            # is_seller_maker: the seller's order was resting, so the taker bought
            seller_maker = data.get("is_seller_maker")
            if not isinstance(seller_maker, bool):
                raise MalformedMessage(f"trade without a boolean is_seller_maker: {seller_maker!r}", tag)
            return [self.trade(symbol, currency, data.get("timestamp"), received_at,
                               trade_id=data.get("id"), price=data.get("price"),
                               volume=data.get("qty"), side="buy" if seller_maker else "sell")]
        if channel == "TICKER":
            return [self.ticker(symbol, currency, data.get("timestamp"), received_at,
                                last=data.get("last"), open=data.get("first"), high=data.get("high"),
                                low=data.get("low"), prev_close=data.get("yesterday_last"),
                                base_volume=data.get("target_volume"),
                                quote_volume=data.get("quote_volume"))]
        ident = data.get("id")
        if not isinstance(ident, str) or not ident.isdigit() or len(ident) < 14:
            raise MalformedMessage(f"bad book id {ident!r}", tag)
        bids = keyed_levels(data.get("bids"), True, self.depth, tag)
        asks = keyed_levels(data.get("asks"), False, self.depth, tag)
        return [self.book(symbol, currency, int(ident[:13]), bids, asks, received_at,
                          sequence=int(ident))]

    # --- market discovery ----------------------------------------------------------------------

    @classmethod
    def check_body(cls, body: object) -> None:
        if isinstance(body, dict) and body.get("result") == "error":
            raise ExchangeError(f"{body.get('error_code')}: {body.get('error_msg')}")

    @classmethod
    def list_markets(cls, env: Mapping[str, str], currency: str) -> list[Market]:
        rows = cls.get_rows(env, f"/public/v2/markets/{currency}", key="markets")
        return [Market(str(row["target_currency"]).upper(), str(row["quote_currency"]).upper())
                for row in rows
                if str(row.get("quote_currency", "")).upper() == currency]

    @classmethod
    def traded_values(cls, env: Mapping[str, str], markets: Sequence[Market]) -> dict[Market, float]:
        wanted = set(markets)
        values: dict[Market, float] = {}
        for currency in sorted({m.quote for m in markets}):
            for row in cls.get_rows(env, f"/public/v2/ticker_new/{currency}", key="tickers"):
                market = Market(str(row["target_currency"]).upper(), str(row["quote_currency"]).upper())
                if market in wanted:
                    values[market] = float(row["quote_volume"])
        return values
