"""The ``orderbook_units`` book shape shared by Upbit and Bithumb (the "Upbit-compatible" API).

Unit ``i`` pairs the i-th ask with the i-th bid::

    {"ask_price": 137002000, "bid_price": 137001000, "ask_size": 0.106, "bid_size": 0.036}

Thin books are padded with price-0/size-0 slots, and Bithumb shows dust as ``size: 0`` at a live
price; both are dropped. Sources: docs.upbit.com/kr/reference/websocket-orderbook,
apidocs.bithumb.com/reference/호가-정보-조회 (fixtures ``upbit/ws_orderbook_default_docs.json``,
``bithumb/rest_orderbook_v1_recorded_2025-08.json``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector.errors import ExchangeError, MalformedMessage
from collector.model import Level, OrderBookSnapshot, best_first, to_ms

if TYPE_CHECKING:
    from controllers.base import Controller


def split_units(units: object, depth: int, market: str) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
    """``(bids, asks)``, best first, at most ``depth`` levels each, from ``orderbook_units``.

    Raises:
        MalformedMessage: ``units`` is not a list of objects with the four numeric keys.
    """
    if not isinstance(units, list):
        raise MalformedMessage(f"orderbook_units is {type(units).__name__}, not a list", market)
    try:
        bids = best_first(((u["bid_price"], u["bid_size"]) for u in units), True, depth)
        asks = best_first(((u["ask_price"], u["ask_size"]) for u in units), False, depth)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"bad orderbook unit: {type(exc).__name__}: {exc}", market) from exc
    return bids, asks


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
    :func:`collector.model.to_ms` recognizes.

    Raises:
        MalformedMessage: a bad code, a market the controller does not collect, a bad timestamp
            or bad units.
    """
    symbol, currency = split_code(code)
    market = controller.market_for(symbol, currency)
    if market is None:
        raise MalformedMessage(f"book for a market not subscribed: {code!r}")
    tag = market.tag(controller.exchange)
    try:
        ms = to_ms(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"bad timestamp {timestamp!r}: {exc}", tag) from exc
    bids, asks = split_units(units, controller.depth, tag)
    return OrderBookSnapshot(controller.exchange, symbol, currency, ms, received_at, bids, asks)
