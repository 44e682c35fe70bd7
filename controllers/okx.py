"""OKX order books: the ``books`` channel (a WS snapshot, then 100 ms increments).

Protocol (okx.com/docs-v5 "WebSocket order book channel", "Sequence ID", "Checksum" and the
2026 changelog; the recording in ``tests/fixtures/okx``):

* endpoint ``wss://ws.okx.com:8443/ws/v5/public``; override with ``OKX_WS_URL``. Subscribe
  ``{"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}, …]}``, answered by
  ``{"event": "subscribe", "arg": {…}}``; errors ``{"event": "error", "code": "60012", "msg"}``;
* pushes ``{"arg": {"channel": "books", "instId"}, "action": "snapshot"|"update", "data": [{"asks":
  [["price", "size", "0", "orders"]], "bids": […], "ts": "<ms>", "checksum": <int>,
  "prevSeqId": <int>, "seqId": <int>}]}``; size ``"0"`` deletes;
* sequence: a snapshot has ``prevSeqId = -1``; each update's ``prevSeqId`` equals the previous
  ``seqId`` (a heartbeat update repeats it; ``seqId`` may go down after maintenance, which is
  fine while ``prevSeqId`` follows: ``(15→3)`` resets the sequence, ``(3→5)`` follows it).
  When the message that carries the reset is lost, every later update has a ``seqId`` below the
  book's and would be skipped as old for ever; two skipped updates that chain on each other
  (``prevSeqId`` = the previous skipped ``seqId``) on a book past its first update are that lost
  reset, and resync the market (``chained_skips_reset``). Recordings from before 2023 carry no
  ids: the checksum is then the only check;
* checksum: CRC32 (signed 32-bit) of ``bid1px:bid1sz:ask1px:ask1sz:…`` over the top 25 levels of
  each side (continuing with the longer side), strings as received. Since 2026-06-23 OKX sends
  ``checksum: 0`` (no checksum); the check runs whenever it is not 0;
* snapshots: OKX announced (changelog 2026-02, "Delist initial snapshot and checksum field in
  order book channels") that the WS snapshot goes. ``OKX_SNAPSHOTS=auto`` (the default) uses the
  WS snapshot while OKX sends one, and switches to REST snapshots when an update comes first on
  a new subscription; ``rest`` always uses REST: ``GET /api/v5/market/books?instId=…&sz=400`` →
  ``{"code": "0", "data": [{"asks", "bids", "ts", "seqId"}]}`` (40 requests per 2 s). Buffered
  updates with ``seqId`` at or below the snapshot's are dropped, the first applied one has
  ``prevSeqId <= snapshot seqId < seqId``;
* the connection is dropped after 30 s without traffic: a text ``ping`` goes every 20 s,
  answered by ``pong``; 3 connects per second per IP; at most 30 books per connection is advised;
* instrument ids are ``BASE-QUOTE`` (``BTC-USDT``); derivatives carry a suffix, which this
  collector keeps in the quote (``Market("UNI", "USD-SWAP")`` is ``UNI-USD-SWAP``);
* ``--channels``: ``trades`` (``{"instId", "tradeId", "px", "sz", "side": taker side, "ts"}``;
  ``sz`` is base currency on spot, contracts on derivatives, stored as sent) and ``tickers``
  (``last``, ``open24h``, ``high24h``, ``low24h``, ``vol24h`` base on spot / contracts,
  ``volCcy24h`` quote on spot / base coin on derivatives, ``ts``) (docs-v5 "Trades channel",
  "Tickers channel").
"""

from __future__ import annotations

import json
import zlib
from typing import Sequence

from core.errors import ConfigError, ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade
from core.venue import Endpoint, Venue
from controllers.base import json_object
from controllers.book import LocalBook
from controllers.deltabook import Delta, DeltaBookController, Verdict, text_levels

CHECKSUM_DEPTH = 25


def okx_checksum(book: LocalBook) -> int:
    """OKX's checksum of ``book``: signed CRC32 of the interleaved top 25 levels, as spelled."""
    bids, asks = book.top_text(CHECKSUM_DEPTH)
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


VENUE = Venue(
    name="okx", label="OKX", region="global", quote="USDT",
    taker_fee=0.001, fee_source="okx.com/fees: spot regular user taker 0.10 %",
    endpoints=(Endpoint("ws", "wss://ws.okx.com:8443/ws/v5/public", ("orderbook", "ticker", "trade")),
               Endpoint("rest", "https://www.okx.com")),
    max_markets_per_connection=30,
    connect_interval=0.4)  # 3 connects per second per IP


class OkxController(DeltaBookController):
    """OKX ``books`` for ``markets`` (``Market("BTC", "USDT")`` is ``BTC-USDT``), 30 per
    connection."""

    venue = VENUE
    keepalive_message = "ping"
    keepalive_interval = 20.0  # the server drops a connection silent for 30 s
    snapshot_interval = 0.1  # GET /api/v5/market/books: 40 requests per 2 s per IP
    keep_text = True
    name_separator = "-"
    rest_fallback = True
    chained_skips_reset = 2  # a lost seqId reset (see the module text)
    snapshots_env = "OKX_SNAPSHOTS"
    rest_depth = 400

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        source = (self.env.get(self.snapshots_env) or "auto").strip().lower()
        if source not in ("auto", "rest"):
            raise ConfigError(f"{self.snapshots_env} must be 'auto' or 'rest', got {source!r}")
        self.rest_snapshots = source == "rest"

    def _args(self, markets: Sequence[Market]) -> list[dict]:
        return [{"channel": "books", "instId": self.market_name(m)} for m in markets]

    def subscribe_messages(self, markets: Sequence[Market]) -> list[str]:
        others = [{"channel": channel, "instId": self.market_name(m)} for m in markets
                  for channel in self.channel_names(ticker="tickers", trade="trades")]
        return [json.dumps({"op": "subscribe", "args": self._args(markets) + others})]

    def resubscribe_messages(self, market: Market) -> list[str]:
        """Unsubscribe, then subscribe the book: OKX sends a new snapshot on the subscribe."""
        return [json.dumps({"op": "unsubscribe", "args": self._args([market])}),
                json.dumps({"op": "subscribe", "args": self._args([market])})]

    def decode(self, payload: bytes | str) -> list[Delta]:
        if payload in ("pong", b"pong"):
            return []
        message = json_object(payload)
        event = message.get("event")
        if event == "error":
            raise ExchangeError(f"{message.get('code')}: {message.get('msg')}")
        if event is not None:
            return []  # subscribe / unsubscribe acks
        arg = message.get("arg")
        if isinstance(arg, dict) and arg.get("channel") in ("trades", "tickers"):
            return self._trades_or_tickers(arg["channel"], self.market_of(arg.get("instId")),
                                           message.get("data"))
        if not isinstance(arg, dict) or arg.get("channel") != "books":
            raise MalformedMessage(f"unexpected push {repr(arg)[:100]}")
        market = self.market_of(arg.get("instId"))
        tag = market.tag(self.exchange)
        action = message.get("action")
        if action not in ("snapshot", "update"):
            raise MalformedMessage(f"unexpected action {action!r}", tag)
        deltas = []
        for data in message.get("data") or ():
            try:
                seq = data.get("seqId")
                prev = data.get("prevSeqId")
                deltas.append(Delta(
                    market, text_levels(data.get("bids"), tag), text_levels(data.get("asks"), tag),
                    snapshot=action == "snapshot",
                    last=int(seq) if seq is not None else None,
                    prev=int(prev) if prev is not None else None,
                    timestamp=int(data["ts"]), checksum=int(data.get("checksum") or 0)))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise MalformedMessage(f"bad book data: {exc!r}", tag) from None
        return deltas

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        """``prevSeqId`` chains on the book's ``seqId``; on a REST snapshot at ``last`` the first
        update has ``prevSeqId <= last < seqId`` (older ones are skipped)."""
        if last is None or delta.prev is None:  # no ids (before 2023): the checksum decides
            return Verdict.APPLY
        if delta.prev == last:
            return Verdict.APPLY
        if delta.last is not None and delta.last <= last:
            return Verdict.SKIP
        if bridging and delta.prev < last:
            return Verdict.APPLY
        return Verdict.GAP

    def _trades_or_tickers(self, channel: str, market: Market, data: object) -> list[Ticker | Trade]:
        tag = market.tag(self.exchange)
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise MalformedMessage(f"{channel} push without a data list", tag)
        if channel == "tickers":
            return [self.ticker(market.base, market.quote, row.get("ts"), self.received_at,
                                last=row.get("last"), open=row.get("open24h"),
                                high=row.get("high24h"), low=row.get("low24h"),
                                base_volume=row.get("vol24h"), quote_volume=row.get("volCcy24h"))
                    for row in data]
        return [self.trade(market.base, market.quote, row.get("ts"), self.received_at,
                           trade_id=row.get("tradeId"), price=row.get("px"), volume=row.get("sz"),
                           side=str(row.get("side"))) for row in data]

    def fetch_snapshot(self, market: Market) -> Delta:
        body = self.rest_client.get_json("/api/v5/market/books",
                                         {"instId": self.market_name(market),
                                          "sz": str(self.rest_depth)})
        data = body.get("data") if isinstance(body, dict) else None
        book = data[0] if isinstance(data, list) and data else body
        return self.snapshot_delta(market, book, "seqId", ("ts",))

    @classmethod
    def check_body(cls, body: object) -> None:
        if isinstance(body, dict) and str(body.get("code", "0")) != "0":
            raise ExchangeError(f"{body['code']}: {body.get('msg')}")

    def checksum(self, book: LocalBook) -> int:
        return okx_checksum(book)
