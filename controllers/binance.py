"""Binance spot order books: the diff depth stream on a REST snapshot.

Protocol (github.com/binance/binance-spot-api-docs web-socket-streams.md "Diff. Depth Stream"
and "How to manage a local order book correctly", rest-api.md "Order book"; the recordings in
``tests/fixtures/binance_spot``):

* endpoint ``wss://stream.binance.com:9443/stream`` (combined streams: each event comes as
  ``{"stream": …, "data": …}``); override with ``BINANCE_WS_URL``. One subscribe per
  connection: ``{"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", …], "id": 1}``,
  answered by ``{"result": null, "id": 1}``;
* events ``{"e": "depthUpdate", "E": <ms>, "s": "BTCUSDT", "U": first, "u": last,
  "b": [["price", "qty"]], "a": […]}`` with absolute quantities, ``"0"`` deletes;
* snapshot ``GET https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000`` →
  ``{"lastUpdateId", "bids", "asks"}`` (weight 50); override with ``BINANCE_REST_URL``;
* sequence: drop events with ``u <= lastUpdateId``; the first applied has
  ``U <= lastUpdateId + 1 <= u``; then each ``U == previous u + 1`` (a larger ``U`` is a gap);
* the server pings every 20 s; websocket-client answers with a pong by itself;
* ``--channels trade`` adds ``<symbol>@trade`` (``{"e": "trade", "t": id, "p", "q", "T": ms,
  "m": buyer is maker}``: ``m`` true means the taker **sold**), ``--channels ticker`` adds
  ``<symbol>@ticker`` (``24hrTicker``: ``c`` last, ``o``/``h``/``l``, ``x`` the price before the
  window, ``v`` base and ``q`` quote volume, ``E`` ms) (web-socket-streams.md "Trade Streams",
  "Individual Symbol Ticker Streams").
"""

from __future__ import annotations

import json
from typing import Sequence

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade
from core.venue import Endpoint, Venue
from controllers.base import json_object
from controllers.deltabook import Delta, DeltaBookController, text_levels


VENUE = Venue(
    name="binance", label="Binance spot", region="global", quote="USDT",
    taker_fee=0.001, fee_source="binance.com/en/fee/schedule: spot regular user 0.1 %",
    endpoints=(Endpoint("ws", "wss://stream.binance.com:9443/stream", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.binance.com")),
    max_markets_per_connection=200,  # 1024 streams are allowed; a smaller group reconnects faster
    connect_interval=1.0)  # 300 connection attempts per 5 minutes per IP


class BinanceController(DeltaBookController):
    """Binance spot books for ``markets`` (``Market("BTC", "USDT")`` is ``BTCUSDT``)."""

    venue = VENUE
    depth_path = "/api/v3/depth"
    stream_suffix = "@depth@100ms"
    rest_snapshots = True
    snapshot_interval = 0.5  # weight 50 of 6,000 per minute: at most 120 a minute
    snapshot_limit = 1000


    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        suffixes = (([self.stream_suffix] if self.collects_books else [])
                    + self.channel_names(trade="@trade", ticker="@ticker"))
        streams = [self.market_name(m).lower() + suffix for m in markets for suffix in suffixes]
        return [json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1})]

    def decode(self, payload: bytes | str) -> list[Delta]:
        message = json_object(payload)
        if "id" in message and "result" in message:
            return []  # the subscribe ack
        if "error" in message or "code" in message:
            error = message.get("error", message)
            raise ExchangeError(f"{error.get('code')}: {error.get('msg')}" if isinstance(error, dict)
                                else str(error))
        data = message.get("data", message)
        if isinstance(data, dict) and data.get("e") in ("trade", "24hrTicker"):
            return [self._trade(data) if data["e"] == "trade" else self._ticker(data)]
        if not isinstance(data, dict) or data.get("e") != "depthUpdate":
            kind = data.get("e") if isinstance(data, dict) else type(data).__name__
            raise MalformedMessage(f"unexpected event {kind!r}")
        market = self.market_of(data.get("s"))
        tag = market.tag(self.exchange)
        try:
            first, last = int(data["U"]), int(data["u"])
            prev = int(data["pu"]) if "pu" in data else None
            timestamp = int(data.get("T") or data["E"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad update ids: {exc!r}", tag) from None
        return [Delta(market, text_levels(data.get("b"), tag), text_levels(data.get("a"), tag),
                      first=first, last=last, prev=prev, timestamp=timestamp)]

    def _trade(self, data: dict) -> Trade:
        market = self.market_of(data.get("s"))
        maker_buyer = data.get("m")
        if not isinstance(maker_buyer, bool):
            raise MalformedMessage(f"trade without a boolean m: {maker_buyer!r}",
                                   market.tag(self.exchange))
        return self.trade(market.base, market.quote, data.get("T") or data.get("E"),
                          self.received_at, trade_id=data.get("t"), price=data.get("p"),
                          volume=data.get("q"), side="sell" if maker_buyer else "buy")

    def _ticker(self, data: dict) -> Ticker:
        market = self.market_of(data.get("s"))
        return self.ticker(market.base, market.quote, data.get("E"), self.received_at,
                           last=data.get("c"), open=data.get("o"), high=data.get("h"),
                           low=data.get("l"), prev_close=data.get("x"), base_volume=data.get("v"),
                           quote_volume=data.get("q"))

    def fetch_snapshot(self, market: Market) -> Delta:
        body = self.rest_client.get_json(self.depth_path, {"symbol": self.market_name(market),
                                                           "limit": str(self.snapshot_limit)})
        return self.snapshot_delta(market, body, "lastUpdateId", ("T", "E"))

    @classmethod
    def check_body(cls, body: object) -> None:
        if isinstance(body, dict) and "code" in body and "msg" in body:
            raise ExchangeError(f"{body['code']}: {body['msg']}")
