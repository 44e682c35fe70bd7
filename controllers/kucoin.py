"""KuCoin spot order books: ``/market/level2`` deltas on a REST snapshot, over a token connection.

Protocol (github.com/Kucoin/kucoin-api-docs ``index.html.md`` "Apply connect token", "Create
connection", "Ping", "Subscribe", "Level-2 Market Data"; kucoin.com/docs-new "Level2 - Market
Data"; the recording in ``tests/fixtures/kucoin``):

* connect: ``POST https://api.kucoin.com/api/v1/bullet-public`` → ``{"code": "200000", "data":
  {"token", "instanceServers": [{"endpoint", "pingInterval": <ms>, …}]}}``, then
  ``wss://<endpoint>?token=<token>&connectId=<id>``; wait for ``{"id", "type": "welcome"}``
  before subscribing. A new token is fetched for every connection. ``KUCOIN_REST_URL``
  overrides the REST base, ``KUCOIN_WS_URL`` the endpoint the token names;
* subscribe ``{"id", "type": "subscribe", "topic": "/market/level2:BTC-USDT,ETH-USDT",
  "privateChannel": false, "response": true}`` (at most 100 topics a request, 300 a
  connection), answered by ``{"id", "type": "ack"}``; errors ``{"type": "error", "code",
  "data"}``;
* updates ``{"type": "message", "topic", "subject": "trade.l2update", "data": {"symbol",
  "sequenceStart", "sequenceEnd", "time": <ms> (since 2022), "changes": {"asks": [["price",
  "size", "sequence"]], "bids": […]}}}``; size ``"0"`` deletes, price ``"0"`` changes nothing
  (it only advances the sequence);
* snapshot ``GET /api/v1/market/orderbook/level2_100?symbol=BTC-USDT`` → ``{"code": "200000",
  "data": {"sequence", "time", "bids", "asks"}}``: the public top 100 a side (the full book needs
  an API key). Levels below the top 100 at snapshot time stay unknown until a delta sets them;
* sequence: skip updates with ``sequenceEnd <= sequence``; the first applied one bridges the
  snapshot (``sequenceStart <= sequence + 1``), and only its changes whose own sequence is above
  the snapshot's are applied; then ``sequenceStart <= previous sequenceEnd + 1`` (the base's
  default rule). No checksum;
* keepalive ``{"id": "<ms>", "type": "ping"}`` every ``pingInterval`` (18 s), answered by
  ``{"id", "type": "pong"}``;
* ``--channels``: ``/market/match:<symbols>`` (``trade.l3match``: ``tradeId``, ``price``,
  ``size``, ``side`` of the taker order, ``time`` in ns) and ``/market/ticker:<symbols>``
  (``trade.ticker``: the last ``price``, ``time`` in ms; no window figures), 100 symbols per
  subscribe like the books.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import urlencode

import msgspec

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade, now_ms
from core.venue import Endpoint, Venue
from controllers.base import json_object
from controllers.deltabook import Delta, DeltaBookController, TextLevel, text_levels

TOPICS_PER_REQUEST = 100


@dataclass
class KucoinDelta(Delta):
    """A level 2 update with each change's own sequence (``bid_sequences[i]`` is that of
    ``bids[i]``)."""

    bid_sequences: tuple[int, ...] = ()
    ask_sequences: tuple[int, ...] = ()


VENUE = Venue(
    name="kucoin", label="KuCoin", region="global", quote="USDT",
    taker_fee=0.001, fee_source="kucoin.com/vip/level: spot LV0 0.1 %",
    endpoints=(Endpoint("ws", "wss://ws-api-spot.kucoin.com/", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://api.kucoin.com")),
    max_markets_per_connection=100,  # one subscribe request a connection
    connect_interval=2.0)  # at most 30 connections a minute


class KucoinController(DeltaBookController):
    """KuCoin spot books for ``markets`` (``Market("BTC", "USDT")`` is ``BTC-USDT``)."""

    venue = VENUE
    name_separator = "-"
    keepalive_interval = 18.0  # the token's pingInterval
    await_welcome = True
    rest_snapshots = True
    snapshot_interval = 0.2
    snapshot_path = "/api/v1/market/orderbook/level2_100"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tokens: list[str] = []

    @property
    def keepalive_message(self) -> str:  # type: ignore[override]
        return json.dumps({"id": str(now_ms()), "type": "ping"})

    def connect_url(self) -> str:
        """A new connect token from ``bullet-public`` and the endpoint it names.

        Raises:
            ExchangeError, MalformedMessage: the token request failed (the connection retries).
        """
        body = self.post_json(self.env, "/api/v1/bullet-public")
        try:
            data = body["data"]  # type: ignore[index]
            token = str(data["token"])
            server = data["instanceServers"][0]
            endpoint = self.env.get(self.ws_url_env) or str(server["endpoint"])
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedMessage(f"bullet-public reply without a token or server: {exc!r}") from None
        self._tokens = [*self._tokens[-3:], token]
        query = urlencode({"token": token, "connectId": uuid.uuid4().hex})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def secrets(self) -> list[str]:
        return list(self._tokens)

    def is_welcome(self, payload: bytes | str) -> bool:
        try:
            message = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return False
        return isinstance(message, dict) and message.get("type") == "welcome"

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        names = [self.market_name(m) for m in markets]
        topics = ["/market/level2:"] + self.channel_names(ticker="/market/ticker:",
                                                          trade="/market/match:")
        return [json.dumps({"id": str(now_ms() + n), "type": "subscribe",
                            "topic": topic + ",".join(names[i:i + TOPICS_PER_REQUEST]),
                            "privateChannel": False, "response": True})
                for n, (topic, i) in enumerate((t, i) for t in topics
                                               for i in range(0, len(names), TOPICS_PER_REQUEST))]

    def decode(self, payload: bytes | str) -> list[Delta]:
        message = json_object(payload)
        kind = message.get("type")
        if kind == "error":
            raise ExchangeError(f"{message.get('code')}: {message.get('data')}")
        if kind != "message":
            return []  # welcome, ack, pong
        data = message.get("data")
        if message.get("subject") in ("trade.l3match", "trade.ticker") and isinstance(data, dict):
            return [self._match_or_ticker(message, data)]
        if message.get("subject") != "trade.l2update" or not isinstance(data, dict):
            raise MalformedMessage(f"unexpected subject {message.get('subject')!r}")
        market = self.market_of(data.get("symbol"))
        tag = market.tag(self.exchange)
        changes = data.get("changes")
        try:
            first, last = int(data["sequenceStart"]), int(data["sequenceEnd"])
            timestamp = int(data["time"]) if "time" in data else None
            bids, bid_sequences = self._changes(changes["bids"], tag)  # type: ignore[index]
            asks, ask_sequences = self._changes(changes["asks"], tag)  # type: ignore[index]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad sequence, time or changes: {exc!r}", tag) from None
        return [KucoinDelta(market, bids, asks, first=first, last=last, timestamp=timestamp,
                            bid_sequences=bid_sequences, ask_sequences=ask_sequences)]

    def _match_or_ticker(self, message: dict, data: dict) -> Ticker | Trade:
        """``trade.l3match`` (``tradeId``, ``price``, ``size``, ``side`` of the taker, ``time``
        in ns) or ``trade.ticker`` (``price`` of the last trade, ``time`` in ms; the market is
        the topic's suffix)."""
        if message["subject"] == "trade.l3match":
            market = self.market_of(data.get("symbol"))
            return self.trade(market.base, market.quote, data.get("time"), self.received_at,
                              trade_id=data.get("tradeId"), price=data.get("price"),
                              volume=data.get("size"), side=str(data.get("side")))
        market = self.market_of(str(message.get("topic", "")).rpartition(":")[2])
        return self.ticker(market.base, market.quote, data.get("time"), self.received_at,
                           last=data.get("price"))

    @staticmethod
    def _changes(changes: object, tag: str) -> tuple[list[TextLevel], tuple[int, ...]]:
        levels = text_levels(changes, tag)
        sequences = tuple(int(change[2]) for change in changes)  # type: ignore[union-attr]
        kept = [i for i, (price, _) in enumerate(levels) if price != "0"]
        return [levels[i] for i in kept], tuple(sequences[i] for i in kept)

    def bridge(self, delta: Delta, last: int | None) -> Delta:
        if not isinstance(delta, KucoinDelta) or last is None:
            return delta
        bids = [level for level, seq in zip(delta.bids, delta.bid_sequences) if seq > last]
        asks = [level for level, seq in zip(delta.asks, delta.ask_sequences) if seq > last]
        return Delta(delta.market, bids, asks, first=delta.first, last=delta.last,
                     timestamp=delta.timestamp)

    def fetch_snapshot(self, market: Market) -> Delta:
        body = self.rest_client.get_json(self.snapshot_path, {"symbol": self.market_name(market)})
        return self.snapshot_delta(market, body.get("data") if isinstance(body, dict) else body,
                                   "sequence", ("time",))

    @classmethod
    def check_body(cls, body: object) -> None:
        if isinstance(body, dict) and "code" in body and str(body["code"]) != "200000":
            raise ExchangeError(f"{body['code']}: {body.get('msg')}")
