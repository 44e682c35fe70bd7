"""Korbit (Digital X) order books over WebSocket.

Protocol (docs.korbit.co.kr, Open API v2 WebSocket section; wire facts from captures of 2026-09,
see ``tests/fixtures/SOURCES.md``):

* endpoint ``wss://ws-api.korbit.co.kr/v2/public`` (the same API as
  ``ws-api.digitalx.miraeasset.com``); override with ``KORBIT_WS_URL``;
* the subscribe must be a JSON **array**, symbols lower case (``BTC_KRW`` is refused)::

    [{"method": "subscribe", "type": "orderbook", "symbols": ["btc_krw", "eth_krw"],
      "requestId": 1}]

* with a ``requestId`` the server acks ``{"status": "success", "requestId": 1}``; failures are
  ``{"status": "fail", "code": "INVALID_SYMBOL", "message": "The symbol does not exist
  (nope_krw)", …}`` — logged with the exchange's message; the other symbols keep streaming;
* every orderbook frame is the full top-30 book (the first has ``"snapshot": true``, later ones
  omit the key); ``data.timestamp`` (ms) is the book time, the envelope ``timestamp`` the send
  time; prices and sizes are strings;
* a stopped pair gets one book with empty sides and an old time: logged, not stored;
* the server sends a WebSocket protocol ping every 30 s, which websocket-client answers; no client
  keepalive is needed;
* markets: ``GET https://api.korbit.co.kr/v2/currencyPairs`` (rows with ``status`` ``launched`` or
  ``stopped``); 24 h traded value: ``GET /v2/tickers?symbol=…`` (``quoteVolume``); override with
  ``KORBIT_REST_URL``. REST errors: ``{"success": false, "error": {"code": 400, "message": …}}``.
"""

from __future__ import annotations

import json
import re
from typing import Mapping, Sequence

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Trade, market_tag
from core.venue import Endpoint, Venue
from controllers.base import Record, json_object
from controllers.levels import keyed_levels
from controllers.ws import WSController

_SYMBOL_IN_MESSAGE = re.compile(r"\(([a-z0-9]+)_([a-z0-9]+)\)")


def korbit_symbol(market: Market) -> str:
    """Korbit's name of a market: ``"btc_krw"``."""
    return f"{market.base}_{market.quote}".lower()


def split_korbit_symbol(name: object) -> tuple[str, str]:
    """``("BTC", "KRW")`` from ``"btc_krw"``.

    Raises:
        MalformedMessage: ``name`` is not ``base_quote``.
    """
    if not isinstance(name, str) or name.count("_") != 1:
        raise MalformedMessage(f"bad symbol {name!r}")
    symbol, currency = name.upper().split("_")
    return symbol, currency


VENUE = Venue(
    name="korbit", label="Korbit", region="korea", quote="KRW",
    taker_fee=0.002, fee_source="korbit.co.kr (수수료 안내): 0.2 % base taker rate",
    endpoints=(Endpoint("ws", "wss://ws-api.korbit.co.kr/v2/public", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.korbit.co.kr")))


class KorbitController(WSController):
    """Collects Korbit order books for ``markets`` with one subscribe array on one connection."""

    venue = VENUE
    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        symbols = [korbit_symbol(m) for m in markets]
        kinds = ["orderbook"] + self.channel_names(ticker="ticker", trade="trade")
        return [json.dumps([{"method": "subscribe", "type": kind, "symbols": symbols,
                             "requestId": i} for i, kind in enumerate(kinds, 1)])]

    def parse(self, payload: bytes | str, received_at: int) -> list[Record]:
        """The book of one ``orderbook`` frame, the ticker of a ``ticker`` frame, the trades of a
        ``trade`` frame; ``[]`` for a ``success`` control message.

        Raises:
            ExchangeError: a ``fail`` control message (named after the market it mentions).
            MalformedMessage: anything else that is not an order book of a subscribed market.
        """
        message = json_object(payload)
        status = message.get("status")
        if status == "success":
            return []
        if status is not None:
            text = message.get("message")
            named = _SYMBOL_IN_MESSAGE.search(str(text))
            market = None
            if named and self.market_for(named.group(1).upper(), named.group(2).upper()):
                market = market_tag(self.exchange, named.group(1).upper(), named.group(2).upper())
            raise ExchangeError(f"{status} {message.get('code') or ''} {text}".replace("  ", " "),
                                market)
        kind = message.get("type")
        if kind not in ("orderbook", "ticker", "trade"):
            raise MalformedMessage(f"unexpected message type {kind!r}")
        symbol, currency = split_korbit_symbol(message.get("symbol"))
        tag = market_tag(self.exchange, symbol, currency)
        data = message.get("data")
        if kind == "trade":
            if not isinstance(data, list):
                raise MalformedMessage("trade frame without a data list", tag)
            return [self._trade(symbol, currency, row, received_at, tag) for row in data]
        if not isinstance(data, dict):
            raise MalformedMessage("orderbook frame without a data object", tag)
        if kind == "ticker":
            return [self.ticker(symbol, currency, message.get("timestamp"), received_at,
                                last=data.get("close"), open=data.get("open"),
                                high=data.get("high"), low=data.get("low"),
                                prev_close=data.get("prevClose"), base_volume=data.get("volume"),
                                quote_volume=data.get("quoteVolume"))]
        bids = keyed_levels(data.get("bids"), True, self.depth, tag)
        asks = keyed_levels(data.get("asks"), False, self.depth, tag)
        return [self.book(symbol, currency, data.get("timestamp"), bids, asks, received_at)]

    def _trade(self, symbol: str, currency: str, row: object, received_at: int, tag: str) -> Trade:
        """One row of a ``trade`` frame: ``{"timestamp": ms, "price", "qty", "isBuyerTaker",
        "tradeId"}``."""
        if not isinstance(row, dict) or not isinstance(row.get("isBuyerTaker"), bool):
            raise MalformedMessage(f"bad trade row {row!r}", tag)
        return self.trade(symbol, currency, row.get("timestamp"), received_at,
                          trade_id=row.get("tradeId"), price=row.get("price"),
                          volume=row.get("qty"), side="buy" if row["isBuyerTaker"] else "sell")

    # --- market discovery ----------------------------------------------------------------------

    @classmethod
    def check_body(cls, body: object) -> None:
        if isinstance(body, dict) and body.get("success") is False:
            error = body.get("error") or {}
            raise ExchangeError(f"{error.get('code')}: {error.get('message')}")

    @classmethod
    def list_markets(cls, env: Mapping[str, str], currency: str) -> list[Market]:
        markets = []
        for row in cls.get_rows(env, "/v2/currencyPairs", key="data"):
            symbol, quote = split_korbit_symbol(row.get("symbol"))
            if quote == currency and row.get("status", "launched") == "launched":
                markets.append(Market(symbol, quote))
        return markets

    @classmethod
    def traded_values(cls, env: Mapping[str, str], markets: Sequence[Market]) -> dict[Market, float]:
        by_symbol = {korbit_symbol(m): m for m in markets}
        rows = cls.get_rows(env, "/v2/tickers", {"symbol": ",".join(by_symbol)}, key="data")
        return {by_symbol[row["symbol"]]: float(row["quoteVolume"])
                for row in rows if row.get("symbol") in by_symbol}
