"""Bithumb tickers and trades over WebSocket, beside the REST-polled books.

Bithumb's books come by REST polling (:class:`controllers.bithumb.BithumbController`); its
tickers and trades only stream. With ``--channels ticker`` or ``trade`` the collector runs this
controller too, with the same markets; it shows up as ``BITHUMB_STREAM`` in ``feed_status``, the
stats lines and the summary, and stores its rows under the exchange ``BITHUMB``.

Protocol (apidocs.bithumb.com WebSocket 현재가/체결, v2.1.5; wire captures of 2026-09, see
``tests/fixtures/SOURCES.md``): the Upbit-compatible API —

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

from controllers.upbit import UpbitController


class BithumbStreamController(UpbitController):
    """Bithumb tickers and trades of ``markets`` (``Market("BTC", "KRW")`` is ``KRW-BTC``)."""

    exchange = "BITHUMB"
    feed_name = "BITHUMB_STREAM"
    ws_url_env = "BITHUMB_WS_URL"
    default_ws_url = "wss://ws-api.bithumb.com/websocket/v1"
    rest_url_env = "BITHUMB_REST_URL"
    default_rest_url = "https://api.bithumb.com"
    connect_interval = 0.1  # 10 connection requests per second per IP
    offered_channels = ("ticker", "trade")
    collects_books = False  # the subscribe array then leaves the order book out
