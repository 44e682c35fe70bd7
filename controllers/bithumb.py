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

Tickers and trades only stream, on Bithumb's WebSocket (:class:`BithumbStreamController`, run
beside the polled books when ``--channels`` asks; ``BITHUMB_STREAM`` in ``feed_status``, the
stats lines and the summary; rows stored under ``BITHUMB``). Protocol (apidocs.bithumb.com
WebSocket 현재가/체결, v2.1.5; wire captures of 2026-09): the Upbit-compatible API —

* endpoint ``wss://ws-api.bithumb.com/websocket/v1``; override with ``BITHUMB_WS_URL``;
* one subscribe array ``[{"ticket": …}, {"type": "ticker", "codes": ["KRW-BTC"]},
  {"type": "trade", "codes": […]}, {"format": "DEFAULT"}]``; binary frames;
* ``ticker`` and ``trade`` messages as Upbit's (:func:`controllers.units.units_ticker`,
  :func:`controllers.units.units_trade`); ``trade_date``/``trade_time`` are KST on Bithumb, so
  the UTC ``trade_timestamp`` (ms) is what is stored; the wire ticker may carry only the price;
* text ``PING`` every 20 s (answered by ``{"status": "UP"}``): idle sockets close at 60 s;
* unknown codes are silent; errors ``{"error": {"name": "WRONG_FORMAT", "message": …}}``.
"""

from __future__ import annotations

import msgspec

from core.errors import MalformedMessage
from core.model import OrderBookSnapshot
from core.venue import Endpoint, Venue
from controllers.base import json_value
from controllers.rest import RestPollingController
from controllers.units import UnitsBook, UnitsMarkets, raise_error_message, units_book
from controllers.upbit import UpbitController

_decode_body = msgspec.json.Decoder(list[UnitsBook]).decode

VENUE = Venue(
    name="bithumb", label="Bithumb", region="korea", quote="KRW",
    taker_fee=0.0004, fee_source="bithumb.com/react/info/fee/inout: 0.04 % standard rate",
    endpoints=(Endpoint("rest", "https://api.bithumb.com", ("orderbook",)),
               Endpoint("ws", "wss://ws-api.bithumb.com/websocket/v1", ("ticker", "trade"))),
    connect_interval=0.1)  # 10 WebSocket connection requests per second per IP


class BithumbStreamController(UpbitController):
    """Bithumb tickers and trades of ``markets`` (``Market("BTC", "KRW")`` is ``KRW-BTC``) on the
    Upbit-compatible WebSocket; the subscribe array leaves the order book out."""

    venue = VENUE
    endpoint_role = "ws"


class BithumbController(UnitsMarkets, RestPollingController):
    """Polls the Bithumb order books of ``markets`` with one request per poll."""

    venue = VENUE
    endpoint_role = "rest"
    endpoint_classes = {"ws": BithumbStreamController}

    def request(self) -> tuple[str, dict[str, str]]:
        return "/v1/orderbook", {"markets": ",".join(f"{m.quote}-{m.base}" for m in self.markets)}

    def parse(self, payload: bytes | str, received_at: int) -> list[OrderBookSnapshot]:
        """Books from one ``/v1/orderbook`` body.

        Raises:
            ExchangeError: the body is ``{"error": …}`` (whatever the HTTP status).
            MalformedMessage: the body is not a list of order books of the requested markets.
                A market's book refused for its values (NaN, a crossed book…) is counted and
                logged as that market's error and left out: the other markets' books are kept.
        """
        try:
            items = _decode_body(payload)
        except msgspec.ValidationError:  # an error body, or malformed: the slow path says which
            pass
        else:
            return self.records_of(items, lambda item: units_book(
                self, item.market, item.timestamp, item.orderbook_units, received_at))
        body = json_value(payload)
        if isinstance(body, dict):
            raise_error_message(body)
        if not isinstance(body, list):
            raise MalformedMessage(f"expected a list of books, got {type(body).__name__}")
        return self.records_of(body, lambda item: self._book(item, received_at))

    def _book(self, item: object, received_at: int) -> OrderBookSnapshot:
        if not isinstance(item, dict):
            raise MalformedMessage(f"expected a book object, got {type(item).__name__}")
        return units_book(self, item.get("market"), item.get("timestamp"),
                          item.get("orderbook_units"), received_at)
