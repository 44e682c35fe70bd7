"""Bithumb order books by REST polling.

Protocol (apidocs.bithumb.com/reference/호가-정보-조회; wire facts from captures of 2025-08 and
2026-09, see ``tests/fixtures/SOURCES.md``):

* ``GET https://api.bithumb.com/v1/orderbook?markets=KRW-BTC,KRW-ETH`` — one request for every
  market; override the base URL with ``BITHUMB_REST_URL``;
* the reply is a JSON array, one object per market: ``market``, ``timestamp`` (**microseconds**,
  16 digits, sometimes a string), ``orderbook_units`` (up to 30, padded with zero slots);
* errors come as ``{"error": {"name": 404, "message": "Code not found"}}``, often with HTTP 200;
  one unknown code fails the whole request;
* public REST limit: 150 requests/s per IP (the default poll interval, 0.1 s, uses 10/s).
"""

from __future__ import annotations

import msgspec

from core.errors import MalformedMessage
from core.model import OrderBookSnapshot
from controllers.bithumb_stream import BithumbStreamController
from controllers.rest import RestPollingController
from controllers.units import UnitsBook, UnitsMarkets, raise_error_message, units_book

_decode_body = msgspec.json.Decoder(list[UnitsBook]).decode


class BithumbController(UnitsMarkets, RestPollingController):
    """Polls the Bithumb order books of ``markets`` with one request per poll."""

    exchange = "BITHUMB"
    companion = BithumbStreamController  # tickers and trades
    rest_url_env = "BITHUMB_REST_URL"
    default_rest_url = "https://api.bithumb.com"

    def request(self) -> tuple[str, dict[str, str]]:
        return "/v1/orderbook", {"markets": ",".join(f"{m.currency}-{m.symbol}" for m in self.markets)}

    def parse(self, payload: bytes | str, received_at: int) -> list[OrderBookSnapshot]:
        """Books from one ``/v1/orderbook`` body.

        Raises:
            ExchangeError: the body is ``{"error": …}`` (whatever the HTTP status).
            MalformedMessage: the body is not a list of order books of the requested markets.
        """
        try:
            return [units_book(self, item.market, item.timestamp, item.orderbook_units, received_at)
                    for item in _decode_body(payload)]
        except msgspec.ValidationError:  # an error body, or malformed: the slow path says which
            pass
        body = msgspec.json.decode(payload)
        if isinstance(body, dict):
            raise_error_message(body)
        if not isinstance(body, list):
            raise MalformedMessage(f"expected a list of books, got {type(body).__name__}")
        books = []
        for item in body:
            if not isinstance(item, dict):
                raise MalformedMessage(f"expected a book object, got {type(item).__name__}")
            books.append(units_book(self, item.get("market"), item.get("timestamp"),
                                    item.get("orderbook_units"), received_at))
        return books
