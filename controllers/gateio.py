"""Gate.io spot order books: ``spot.order_book_update`` on a REST snapshot.

Protocol (gate.com/docs/developers/apiv4/ws/en "Changed order book levels", the local order book
example in gateio/gatews ``local_order_book.py``, Gate announcement 44678 on ``full`` pushes; the
recording in ``tests/fixtures/gateio``):

* endpoint ``wss://api.gateio.ws/ws/v4/``; override with ``GATEIO_WS_URL``. One subscribe per
  market: ``{"time": <s>, "channel": "spot.order_book_update", "event": "subscribe",
  "payload": ["BTC_USDT", "100ms"]}``, answered by ``{"channel", "event": "subscribe",
  "result": {"status": "success"}}``; errors carry ``{"error": {"code", "message"}}``;
* updates ``{"channel": "spot.order_book_update", "event": "update", "result": {"t": <ms>,
  "s": "BTC_USDT", "U": first, "u": last, "b": [["price", "amount"]], "a": […]}}``; amount
  ``"0"`` deletes; a result with ``"full": true`` is the whole book (it replaces the local one);
* snapshot ``GET https://api.gateio.ws/api/v4/spot/order_book?currency_pair=BTC_USDT&limit=100
  &with_id=true`` → ``{"id", "current", "update", "asks", "bids"}``; override with
  ``GATEIO_REST_URL``; public endpoints allow 200 requests per 10 s;
* sequence: drop updates with ``u <= id``; the first applied has ``U <= id + 1 <= u``; then each
  ``U == previous u + 1`` (the base's default rule);
* keepalive ``{"time": <s>, "channel": "spot.ping"}`` every 10 s, answered on ``spot.pong``;
* ``--channels``: ``spot.trades`` (``{"id", "create_time_ms": "<ms>.<fraction>", "side": taker
  side, "currency_pair", "amount", "price"}``) and ``spot.tickers`` (``last``, ``high_24h``,
  ``low_24h``, ``base_volume``, ``quote_volume``; no open), one subscribe each with every pair
  (gate.com/docs/developers/apiv4/ws "Public trades channel", "Tickers channel").
"""

from __future__ import annotations

import json
import time
from typing import Sequence

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade
from core.venue import Endpoint, Venue
from controllers.base import json_object
from controllers.deltabook import Delta, DeltaBookController, text_levels


VENUE = Venue(
    name="gateio", label="Gate.io", region="global", quote="USDT",
    taker_fee=0.002, fee_source="gate.io/fee: spot VIP 0 0.2 %",
    endpoints=(Endpoint("ws", "wss://api.gateio.ws/ws/v4/", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.gateio.ws")),
    max_markets_per_connection=100)


class GateioController(DeltaBookController):
    """Gate.io spot books for ``markets`` (``Market("BTC", "USDT")`` is ``BTC_USDT``)."""

    venue = VENUE
    name_separator = "_"
    keepalive_interval = 10.0
    rest_snapshots = True
    snapshot_interval = 0.1  # 200 requests per 10 s on public endpoints: half of it
    snapshot_limit = 100
    update_interval = "100ms"

    @property
    def keepalive_message(self) -> str:  # type: ignore[override]
        return json.dumps({"time": int(time.time()), "channel": "spot.ping"})

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        now = int(time.time())
        books = [json.dumps({"time": now, "channel": "spot.order_book_update", "event": "subscribe",
                             "payload": [self.market_name(m), self.update_interval]})
                 for m in markets]
        names = [self.market_name(m) for m in markets]
        return books + [json.dumps({"time": now, "channel": channel, "event": "subscribe",
                                    "payload": names})
                        for channel in self.channel_names(ticker="spot.tickers", trade="spot.trades")]

    def decode(self, payload: bytes | str) -> list[Delta]:
        message = json_object(payload)
        error = message.get("error")
        if error:
            detail = (f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict)
                      else str(error))
            raise ExchangeError(f"{message.get('channel')} {message.get('event')}: {detail}")
        if message.get("event") != "update":
            return []  # subscribe acks and spot.pong
        result = message.get("result")
        if message.get("channel") in ("spot.trades", "spot.tickers") and isinstance(result, dict):
            return [self._trade_or_ticker(message, result)]
        if message.get("channel") != "spot.order_book_update" or not isinstance(result, dict):
            raise MalformedMessage(f"unexpected update on {message.get('channel')!r}")
        market = self.market_of(result.get("s"))
        tag = market.tag(self.exchange)
        try:
            first, last, timestamp = int(result["U"]), int(result["u"]), int(result["t"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad update ids or time: {exc!r}", tag) from None
        return [Delta(market, text_levels(result.get("b"), tag), text_levels(result.get("a"), tag),
                      snapshot=result.get("full") is True, first=first, last=last,
                      timestamp=timestamp)]

    def _trade_or_ticker(self, message: dict, result: dict) -> Ticker | Trade:
        market = self.market_of(result.get("currency_pair"))
        if message["channel"] == "spot.trades":
            return self.trade(market.base, market.quote, result.get("create_time_ms"),
                              self.received_at, trade_id=result.get("id"),
                              price=result.get("price"), volume=result.get("amount"),
                              side=str(result.get("side")))
        return self.ticker(market.base, market.quote,
                           message.get("time_ms") or message.get("time"), self.received_at,
                           last=result.get("last"), high=result.get("high_24h"),
                           low=result.get("low_24h"), base_volume=result.get("base_volume"),
                           quote_volume=result.get("quote_volume"))

    def fetch_snapshot(self, market: Market) -> Delta:
        body = self.rest_client.get_json("/api/v4/spot/order_book",
                                         {"currency_pair": self.market_name(market),
                                          "limit": str(self.snapshot_limit), "with_id": "true"})
        return self.snapshot_delta(market, body, "id", ("current",))

    @classmethod
    def check_body(cls, body: object) -> None:
        if isinstance(body, dict) and "label" in body and "message" in body:
            raise ExchangeError(f"{body['label']}: {body['message']}")
