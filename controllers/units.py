"""The ``orderbook_units`` book shape shared by Upbit and Bithumb (the "Upbit-compatible" API).

Unit ``i`` pairs the i-th ask with the i-th bid::

    {"ask_price": 137002000, "bid_price": 137001000, "ask_size": 0.106, "bid_size": 0.036}

Thin books are padded with price-0/size-0 slots, and Bithumb shows dust as ``size: 0`` at a live
price; both are dropped. Sources: docs.upbit.com/kr/reference/websocket-orderbook,
apidocs.bithumb.com/reference/호가-정보-조회 (fixtures ``upbit/ws_orderbook_default_docs.json``,
``bithumb/rest_orderbook_v1_recorded_2025-08.json``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

import msgspec

from core.errors import ExchangeError, MalformedMessage
from core.model import (INF, Level, Market, OrderBookSnapshot, Ticker, Trade, check_padding,
                        market_tag)

if TYPE_CHECKING:
    from controllers.base import Controller


class Unit(msgspec.Struct):
    """One ``orderbook_units`` entry: prices in quote units, sizes in base units."""

    ask_price: float
    bid_price: float
    ask_size: float
    bid_size: float


class UnitsBook(msgspec.Struct):
    """One book of the ``orderbook_units`` shape as typed decoding reads it.

    ``market`` is Bithumb's name for the code; Upbit frames are read by
    :class:`controllers.upbit.UpbitFrame`. The code and the timestamp stay untyped here and are
    checked by :func:`units_book`, so a string timestamp (Bithumb sometimes sends one) is accepted.
    """

    market: Any
    timestamp: Any
    orderbook_units: list[Unit]


def to_units(units: object, market: str) -> list[Unit]:
    """Typed units from an already decoded ``orderbook_units`` value (numbers or numeric strings).

    The slow path, for frames the typed decoders refused.

    Raises:
        MalformedMessage: ``units`` is not a list of objects with the four numeric keys.
    """
    if not isinstance(units, list):
        raise MalformedMessage(f"orderbook_units is {type(units).__name__}, not a list", market)
    try:
        return msgspec.convert(units, list[Unit], strict=False)
    except msgspec.ValidationError as exc:
        raise MalformedMessage(f"bad orderbook unit: {exc}", market) from exc


def split_units(units: list[Unit], depth: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
    """``(bids, asks)``, best first, at most ``depth`` levels each, from typed units.

    Padding slots (size 0, see :func:`core.model.check_padding`) are dropped.

    Raises:
        ValueError: a NaN, infinite or negative price or size, or a positive size at price 0.
    """
    # One pass over the units for both sides (the same rules as best_first, written out: this is
    # the hottest loop of the collector, 2 x 30 levels per Upbit frame).
    bids: list[Level] = []
    asks: list[Level] = []
    for unit in units:
        price, size = unit.bid_price, unit.bid_size
        if 0 < price < INF and 0 < size < INF:
            bids.append((price, size))
        else:
            check_padding(price, size)
        price, size = unit.ask_price, unit.ask_size
        if 0 < price < INF and 0 < size < INF:
            asks.append((price, size))
        else:
            check_padding(price, size)
    bids.sort(reverse=True)
    asks.sort()
    return tuple(bids[:depth]), tuple(asks[:depth])


def split_code(code: object) -> tuple[str, str]:
    """``("BTC", "KRW")`` from an Upbit/Bithumb market code ``"KRW-BTC"`` (quote first).

    Raises:
        MalformedMessage: ``code`` is not a ``QUOTE-BASE`` string.
    """
    if not isinstance(code, str) or code.count("-") != 1:
        raise MalformedMessage(f"bad market code {code!r}")
    currency, symbol = code.upper().split("-")
    return symbol, currency


def raise_error_message(message: dict) -> None:
    """Raise if ``message`` is an error reply ``{"error": {"name": …, "message": …}}``.

    Upbit names are strings (``"NO_TICKET"``), Bithumb's are numbers (``404``); both are kept.

    Raises:
        ExchangeError: ``message`` has an ``error`` key; the text is ``"<name>: <message>"``.
    """
    if "error" not in message:
        return
    error = message["error"]
    if isinstance(error, dict):
        raise ExchangeError(f"{error.get('name')}: {error.get('message')}")
    raise ExchangeError(str(error))


def units_book(controller: Controller, code: object, timestamp: object, units: object,
               received_at: int) -> OrderBookSnapshot:
    """The normalized book of one ``orderbook_units`` object of ``controller``'s markets.

    ``code`` is the market code (``"KRW-BTC"``), ``timestamp`` the exchange's time in any unit
    :func:`core.model.to_ms` recognizes, ``units`` typed :class:`Unit` s or the decoded JSON
    list.

    Raises:
        MalformedMessage: a bad code, a market the controller does not collect, a bad timestamp,
            bad units (NaN, infinite or negative, a size at price 0) or a crossed book.
    """
    symbol, currency = split_code(code)
    tag = market_tag(controller.exchange, symbol, currency)
    if not (isinstance(units, list) and (not units or isinstance(units[0], Unit))):
        units = to_units(units, tag)
    try:
        bids, asks = split_units(units, controller.depth)
    except ValueError as exc:
        raise MalformedMessage(f"bad orderbook unit: {exc}", tag) from None
    return controller.book(symbol, currency, timestamp, bids, asks, received_at)


def units_ticker(controller: Controller, message: dict, received_at: int) -> Ticker:
    """The :class:`~core.model.Ticker` of one ``"type": "ticker"`` message (DEFAULT format).

    Fields (docs.upbit.com/kr/reference/websocket-ticker; apidocs.bithumb.com 현재가 WebSocket):
    ``trade_price`` (last), ``opening_price``, ``high_price``, ``low_price``,
    ``prev_closing_price``, ``acc_trade_volume_24h`` (base) and ``acc_trade_price_24h`` (quote),
    ``market_warning`` (``NONE``/``CAUTION``), ``timestamp`` (ms). Bithumb's wire ticker may omit
    all but the price; absent fields are ``None``.

    Raises:
        MalformedMessage: a bad code or market, timestamp or number.
    """
    symbol, currency = split_code(message.get("code"))
    return controller.ticker(
        symbol, currency, message.get("timestamp"), received_at, last=message.get("trade_price"),
        open=message.get("opening_price"), high=message.get("high_price"),
        low=message.get("low_price"), prev_close=message.get("prev_closing_price"),
        base_volume=message.get("acc_trade_volume_24h"),
        quote_volume=message.get("acc_trade_price_24h"),
        market_warning=message.get("market_warning"))


TAKER_SIDE = {"BID": "buy", "ASK": "sell"}
"""``ask_bid`` of a trade message: the side of the order that took liquidity (Upbit docs:
"매수/매도 구분"; a ``BID`` trade was a buy order hitting the asks)."""


def units_trade(controller: Controller, message: dict, received_at: int) -> Trade:
    """The :class:`~core.model.Trade` of one ``"type": "trade"`` message (DEFAULT format).

    Fields (docs.upbit.com/kr/reference/websocket-trade; Bithumb 체결 WebSocket):
    ``sequential_id`` (the trade id; above 2**53, kept as text), ``trade_price``,
    ``trade_volume``, ``ask_bid`` (the taker's side), ``trade_timestamp`` (ms, UTC; the KST
    ``trade_date``/``trade_time`` of Bithumb are not used).

    Raises:
        MalformedMessage: a bad code or market, timestamp, number or side.
    """
    symbol, currency = split_code(message.get("code"))
    side = TAKER_SIDE.get(message.get("ask_bid"))  # type: ignore[arg-type]
    if side is None:
        raise MalformedMessage(f"bad ask_bid {message.get('ask_bid')!r}",
                               market_tag(controller.exchange, symbol, currency))
    return controller.trade(
        symbol, currency, message.get("trade_timestamp") or message.get("timestamp"), received_at,
        trade_id=message.get("sequential_id"), price=message.get("trade_price"),
        volume=message.get("trade_volume"), side=side)


UNITS_CHANNELS = {"ticker": units_ticker, "trade": units_trade}
"""The parser of each non-book message ``type`` of the Upbit-compatible API."""


def units_subscribe(controller: Controller, markets: Sequence[Market], ticket: str) -> str:
    """The one subscribe array of the Upbit-compatible API for ``markets`` and the controller's
    channels (a second array on the same socket replaces the first)::

        [{"ticket": "<uuid>"}, {"type": "orderbook", "codes": ["KRW-BTC"]},
         {"type": "ticker", "codes": ["KRW-BTC"]}, {"format": "DEFAULT"}]

    A controller that does not collect books (Bithumb's stream: its books come by REST) leaves
    the order book out.
    """
    codes = [f"{m.quote}-{m.base}" for m in markets]
    kinds = (["orderbook"] if controller.collects_books else []) + controller.channel_names(
        ticker="ticker", trade="trade")
    request: list[dict] = [{"ticket": ticket}] + [{"type": kind, "codes": codes} for kind in kinds]
    request.append({"format": "DEFAULT"})
    return json.dumps(request)


class UnitsMarkets:
    """Market discovery shared by Upbit and Bithumb, whose REST APIs have the same shape.

    * ``GET /v1/market/all`` → ``[{"market": "KRW-BTC", "korean_name": …, "english_name": …}]``
      (docs.upbit.com/kr/reference/list-trading-pairs; apidocs.bithumb.com 마켓 코드 조회);
    * ``GET /v1/ticker?markets=KRW-BTC,…`` → ``[{"market": "KRW-BTC",
      "acc_trade_price_24h": <KRW traded in 24 h>, …}]``, asked for ``ticker_batch`` markets at a
      time (Bithumb rejects more than 200 from 2026-10-13).
    """

    ticker_batch = 100

    @classmethod
    def list_markets(cls, env, currency):
        markets = []
        for row in cls.get_rows(env, "/v1/market/all"):
            symbol, quote = split_code(row.get("market") if isinstance(row, dict) else row)
            if quote == currency:
                markets.append(Market(symbol, quote))
        return markets

    @classmethod
    def traded_values(cls, env, markets):
        by_code = {f"{m.quote}-{m.base}": m for m in markets}
        codes = list(by_code)
        values = {}
        for start in range(0, len(codes), cls.ticker_batch):
            rows = cls.get_rows(env, "/v1/ticker",
                                {"markets": ",".join(codes[start:start + cls.ticker_batch])})
            for row in rows:
                market = by_code.get(row.get("market")) if isinstance(row, dict) else None
                if market is not None:
                    values[market] = float(row["acc_trade_price_24h"])
        return values

    @classmethod
    def check_body(cls, body):
        if isinstance(body, dict):
            raise_error_message(body)
