"""The WebSocket controller base, on websocket-client's ``WebSocketApp``.

The base owns all of the I/O; a subclass gives only its endpoint, its subscribe message(s), an
optional text keepalive, and the pure :meth:`~controllers.base.Controller.parse`.

The reconnect loop is ours, not ``run_forever(reconnect=…)`` (a fixed delay that ``close()``
cannot interrupt): one ``run_forever`` per connection attempt, then a wait on the stop event with
exponential backoff and full jitter (capped at ``backoff_cap`` seconds, reset after a connection
that stayed up ``healthy_after`` seconds). There is no retry limit. ``stop()`` closes the socket
and ends any wait at once.

A housekeeping thread per controller sends the keepalive message every ``keepalive_interval``
seconds while connected, and warns about markets that get no book within ``subscribe_timeout``
seconds of subscribing (Upbit and Bithumb ignore unknown codes silently).
"""

from __future__ import annotations

import abc
import socket
import threading
import time
from typing import Any, ClassVar, Iterable

import websocket

from collector.model import OrderBookSnapshot
from controllers.base import Controller


class WSController(Controller):
    """Base of the WebSocket controllers.

    Class attributes a subclass sets:
        ws_url_env: the environment variable that overrides the endpoint (``UPBIT_WS_URL``).
        default_ws_url: the exchange's public endpoint.
        keepalive_message: text sent every ``keepalive_interval`` seconds, or ``None``.
        keepalive_interval: seconds between keepalives; well inside the exchange's idle limit.
    """

    ws_url_env: ClassVar[str]
    default_ws_url: ClassVar[str]
    keepalive_message: ClassVar[str | None] = None
    keepalive_interval: ClassVar[float] = 20.0
    subscribe_timeout: ClassVar[float] = 10.0
    connect_timeout: ClassVar[float] = 10.0
    healthy_after: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = self.endpoint(self.ws_url_env, self.default_ws_url)
        self.connected_since: float | None = None
        self._app: websocket.WebSocketApp | None = None
        self._awaiting: dict[str, float] = {}

    @abc.abstractmethod
    def subscribe_messages(self) -> list[str | bytes]:
        """The frames to send after every (re)connect: ``str`` as text, ``bytes`` as binary."""

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Close the connection and end any wait at once.

        ``WebSocketApp.close()`` would wait up to 3 s for the server's close reply (which the
        reading thread may take first) and does not wake the reading thread's ``select``; so the
        close frame is sent without waiting and the TCP socket shut down, which wakes the reader.
        """
        super().stop()
        app = self._app
        if app is None:
            return
        app.keep_running = False
        ws = app.sock
        if ws is None:
            return
        try:
            ws.send_close()
        except Exception:  # already closed or never connected
            pass
        raw = ws.sock
        if raw is not None:
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def run(self) -> None:
        websocket.setdefaulttimeout(self.connect_timeout)  # connect and handshake timeout
        housekeeping = threading.Thread(target=self._housekeeping, daemon=True,
                                        name=f"{self.exchange}-housekeeping")
        housekeeping.start()
        attempt = 0
        try:
            while not self.stopping:
                self.state = "connecting"
                started = time.monotonic()
                self._app = websocket.WebSocketApp(
                    self.url,
                    on_open=self._on_open,
                    on_message=self._on_message,
                    on_error=self._on_error,
                    on_close=self._on_close,
                )
                if self.stopping:
                    break
                self._app.run_forever(skip_utf8_validation=True)
                self._app = None
                self.connected_since = None
                self._awaiting.clear()
                if self.stopping:
                    break
                attempt = 0 if time.monotonic() - started >= self.healthy_after else attempt + 1
                delay = self.backoff_delay(attempt)
                self.state = "reconnecting"
                self.stats.reconnects += 1
                self.log.warning("reconnecting in %.1f s (attempt %d)", delay, attempt)
                if self.wait(delay):
                    break
        finally:
            self._app = None
            housekeeping.join(2.0)

    # --- websocket-client callbacks (run in the controller's thread) ---------------------------

    def _on_open(self, app: websocket.WebSocketApp) -> None:
        self.state = "connected"
        self.connected_since = time.monotonic()
        self.log.info("connected to %s", self.url)
        deadline = time.monotonic() + self.subscribe_timeout
        for market in self.markets:
            self._awaiting[market.tag(self.exchange)] = deadline
        for message in self.subscribe_messages():
            if isinstance(message, bytes):
                app.send(message, websocket.ABNF.OPCODE_BINARY)
            else:
                app.send(message)
        self.log.info("subscribed to %d market(s)", len(self.markets))

    def _on_message(self, app: websocket.WebSocketApp, payload: bytes | str) -> None:
        self.handle_payload(payload)

    def _on_error(self, app: websocket.WebSocketApp, error: Exception) -> None:
        if self.stopping:
            return
        self.report_error("connection error", f"{type(error).__name__}: {error}")

    def _on_close(self, app: websocket.WebSocketApp, code: int | None, reason: str | None) -> None:
        if self.stopping:
            self.log.info("connection closed (stopping)")
        else:
            self.log.warning("connection closed (code %s%s)", code, f", {reason}" if reason else "")

    def handle_books(self, books: Iterable[OrderBookSnapshot]) -> int:
        books = list(books)
        for book in books:
            self._awaiting.pop(book.tag, None)
        return super().handle_books(books)

    # --- housekeeping thread ------------------------------------------------------------------

    def _housekeeping(self) -> None:
        next_keepalive = None
        while not self.wait(0.5):
            app, since = self._app, self.connected_since
            now = time.monotonic()
            if app is None or since is None:
                next_keepalive = None
                continue
            if self.keepalive_message is not None:
                if next_keepalive is None:
                    next_keepalive = since + self.keepalive_interval
                if now >= next_keepalive:
                    next_keepalive = now + self.keepalive_interval
                    try:
                        app.send(self.keepalive_message)
                    except Exception as exc:  # the connection loop sees the failure too
                        self.log.debug("keepalive not sent: %s", exc)
            for tag, deadline in list(self._awaiting.items()):
                if now >= deadline and self._awaiting.pop(tag, None) is not None:
                    self.report_error(
                        "no data",
                        f"no book within {self.subscribe_timeout:g} s of subscribing "
                        "(unknown or inactive market?)",
                        market=tag,
                    )
