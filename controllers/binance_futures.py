"""Binance USD-M futures order books: the diff depth stream on a REST snapshot.

Protocol (developers.binance.com derivatives/usds-margined-futures websocket-market-streams
"How to manage a local order book correctly" and the 2026 "Base URL Split" notice; the
recordings in ``tests/fixtures/binance_futures``). As :mod:`controllers.binance`, except:

* endpoint ``wss://fstream.binance.com/public/stream``: since 2026-04-23 depth streams live on
  the ``/public`` path (``/market`` carries trades); override with ``BINANCE_FUTURES_WS_URL``;
* events carry ``pu``, the previous event's ``u``, and ``T``, the transaction time (stored);
* snapshot ``GET https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000``; override
  with ``BINANCE_FUTURES_REST_URL``;
* sequence: drop events with ``u < lastUpdateId``; the first applied has
  ``U <= lastUpdateId <= u``; then each event's ``pu`` equals the previous ``u`` (``U`` does not
  follow on from ``u`` on futures);
* tickers and trades (``--channels``) are on another path, ``/market`` (the venue's
  ``market_ws`` endpoint, read by this class bound to it, named ``BINANCE_FUTURES_STREAM``),
  ``<symbol>@trade`` (``X`` the order type,
  ``MARKET`` for normal trades; the others, liquidation and ADL fills, are trades too and are
  kept) and ``<symbol>@ticker``; override its endpoint with ``BINANCE_FUTURES_MARKET_WS_URL``.
"""

from __future__ import annotations

from core.venue import Endpoint, Venue
from controllers.binance import BinanceController
from controllers.deltabook import Delta, Verdict


VENUE = Venue(
    name="binance_futures", label="Binance USD-M futures", region="global", quote="USDT",
    kind="derivative",
    taker_fee=0.0005, fee_source="binance.com/en/fee/futureFee: USDⓈ-M regular user taker 0.05 %",
    endpoints=(Endpoint("ws", "wss://fstream.binance.com/public/stream", ("orderbook",)),
               Endpoint("market_ws", "wss://fstream.binance.com/market/stream", ("ticker", "trade")),
               Endpoint("rest", "https://fapi.binance.com")),
    max_markets_per_connection=200,
    connect_interval=1.0)


class BinanceFuturesController(BinanceController):
    """Binance USD-M futures books for ``markets`` (``Market("BTC", "USDT")`` is ``BTCUSDT``)."""

    venue = VENUE
    depth_path = "/fapi/v1/depth"
    snapshot_interval = 0.5  # weight 20 of 2,400 per minute

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        assert last is not None and delta.first is not None and delta.last is not None
        if delta.prev == last:
            return Verdict.APPLY
        if delta.last < last or (not bridging and delta.last <= last):
            return Verdict.SKIP
        if bridging and delta.first <= last <= delta.last:
            return Verdict.APPLY
        return Verdict.GAP

