"""The WebSocket controller base, on websocket-client's ``WebSocketApp``.

The base owns all of the I/O; a subclass gives only its endpoint, its subscribe message(s), an
optional text keepalive, optional replies to the server's heartbeats, and the
:meth:`~controllers.base.Controller.parse` of one frame.

**Connections.** The controller's markets are split into groups of at most
``max_markets_per_connection`` (GOPAX serves 50 books per connection); each group has its own
connection, in its own thread. Connection attempts of one controller are paced to at most one
per ``connect_interval`` seconds (Upbit allows 5 connects per second), and subscribe messages on
a connection to one per ``subscribe_interval`` seconds.

**Reconnect.** The loop is ours, not ``run_forever(reconnect=…)`` (a fixed delay that ``close()``
cannot interrupt): one ``run_forever`` per connection attempt, then a wait on the stop event with
exponential backoff and full jitter (capped at ``backoff_cap`` seconds, reset after a connection
that stayed up ``healthy_after`` seconds). There is no retry limit. ``stop()`` closes every socket
and ends any wait at once. After every (re)connect :meth:`WSController.on_connect` lets the
subclass forget per-market state (a snapshot + delta book must start again from a snapshot).

**Housekeeping.** One thread per controller sends the keepalive message every
``keepalive_interval`` seconds on every open connection, and warns about markets that get no book
within ``subscribe_timeout`` seconds of subscribing (Upbit and Bithumb ignore unknown codes
silently).

**Secrets.** :meth:`WSController.connect_url` may add credentials to the URL (GOPAX signs the
connect); log lines only ever show :attr:`WSController.url`, and connection errors pass through
:meth:`WSController.redact`.
"""

from __future__ import annotations

import abc
import re
import socket
import threading
import time
from typing import Any, ClassVar, Iterable, Sequence

import websocket

from collector.model import Market, OrderBookSnapshot
from controllers.base import Controller

_QUERY_SECRET = re.compile(r"(?i)\b(apikey|api_key|signature|timestamp|token)=[^&\s'\"]+")


class WSConnection:
    """One WebSocket connection of a controller: its markets, its reconnect loop, its thread.

    ``index`` counts from 1; ``name`` (``"UPBIT#1"``) appears in log lines when the controller has
    more than one connection.
    """

    def __init__(self, controller: WSController, index: int, markets: Sequence[Market]) -> None:
        self.controller = controller
        self.index = index
        self.markets = tuple(markets)
        self.name = f"{controller.exchange}#{index}"
        self.state = "new"
        self.connected_since: float | None = None
        self.app: websocket.WebSocketApp | None = None
        self.thread: threading.Thread | None = None

    def label(self) -> str:
        """``""`` for a controller's only connection, else ``" (connection 2/3)"``."""
        total = len(self.controller.connections)
        return "" if total == 1 else f" (connection {self.index}/{total})"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"{self.name}-ws")
        self.thread.start()

    def run(self) -> None:
        """Connect, read until the connection ends, back off, and again, until stop."""
        c = self.controller
        attempt = 0
        while not c.stopping:
            if c.pace_connect():
                break
            self.state = "connecting"
            c.refresh_state()
            started = time.monotonic()
            self.app = websocket.WebSocketApp(
                c.connect_url(),
                on_open=self._on_open,
                on_message=self._on_message,
                on_error=self._on_error,
                on_close=self._on_close,
            )
            if c.stopping:
                break
            self.app.run_forever(skip_utf8_validation=True)
            self.app = None
            self.connected_since = None
            c.forget_awaiting(self.markets)
            if c.stopping:
                break
            attempt = 0 if time.monotonic() - started >= c.healthy_after else attempt + 1
            delay = c.backoff_delay(attempt)
            self.state = "reconnecting"
            c.refresh_state()
            c.stats.reconnects += 1
            c.log.warning("reconnecting in %.1f s (attempt %d)%s", delay, attempt, self.label())
            if c.wait(delay):
                break
        self.app = None
        self.state = "stopped"

    def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) frame; raises if the socket is closed."""
        app = self.app
        if app is None:
            raise ConnectionError("not connected")
        if isinstance(message, bytes):
            app.send(message, websocket.ABNF.OPCODE_BINARY)
        else:
            app.send(message)

    def close(self) -> None:
        """Send a close frame without waiting, and shut the TCP socket down.

        ``WebSocketApp.close()`` would wait up to 3 s for the server's close reply (which the
        reading thread may take first) and does not wake the reading thread's ``select``; shutting
        the socket down does.
        """
        app = self.app
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

    # --- websocket-client callbacks (run in this connection's thread) --------------------------

    def _on_open(self, app: websocket.WebSocketApp) -> None:
        c = self.controller
        self.state = "connected"
        self.connected_since = time.monotonic()
        c.refresh_state()
        c.log.info("connected to %s%s", c.url, self.label())
        c.on_connect(self.markets)
        c.expect_books(self.markets)
        for i, message in enumerate(c.subscribe_messages(self.markets)):
            if i and c.subscribe_interval and c.wait(c.subscribe_interval):
                return
            self.send(message)
        c.log.info("subscribed to %d market(s)%s", len(self.markets), self.label())

    def _on_message(self, app: websocket.WebSocketApp, payload: bytes | str) -> None:
        c = self.controller
        reply = c.reply_to(payload)
        if reply is not None:
            c.count_heartbeat()
            try:
                self.send(reply)
            except Exception as exc:  # the reconnect loop sees the failure too
                c.log.debug("heartbeat reply not sent: %s", exc)
            return
        c.handle_payload(payload)

    def _on_error(self, app: websocket.WebSocketApp, error: Exception) -> None:
        c = self.controller
        if c.stopping:
            return
        c.report_error("connection error",
                       c.redact(f"{type(error).__name__}: {error}") + self.label())

    def _on_close(self, app: websocket.WebSocketApp, code: int | None, reason: str | None) -> None:
        c = self.controller
        if c.stopping:
            c.log.info("connection closed (stopping)%s", self.label())
        else:
            c.log.warning("connection closed (code %s%s)%s", code,
                          f", {c.redact(str(reason))}" if reason else "", self.label())


class WSController(Controller):
    """Base of the WebSocket controllers.

    Class attributes a subclass sets:
        ws_url_env: the environment variable that overrides the endpoint (``UPBIT_WS_URL``).
        default_ws_url: the exchange's public endpoint.
        keepalive_message: text sent every ``keepalive_interval`` seconds, or ``None``.
        keepalive_interval: seconds between keepalives; well inside the exchange's idle limit.
        max_markets_per_connection: markets per connection (``None``: all on one).
        connect_interval: least seconds between two connection attempts of this controller.
        subscribe_interval: least seconds between two subscribe messages on one connection.
    """

    ws_url_env: ClassVar[str]
    default_ws_url: ClassVar[str]
    keepalive_message: ClassVar[str | None] = None
    keepalive_interval: ClassVar[float] = 20.0
    subscribe_timeout: ClassVar[float] = 10.0
    connect_timeout: ClassVar[float] = 10.0
    healthy_after: ClassVar[float] = 30.0
    max_markets_per_connection: ClassVar[int | None] = None
    connect_interval: ClassVar[float] = 0.2
    subscribe_interval: ClassVar[float] = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = self.endpoint(self.ws_url_env, self.default_ws_url)
        size = self.max_markets_per_connection or len(self.markets)
        self.connections = [WSConnection(self, i + 1, self.markets[start:start + size])
                            for i, start in enumerate(range(0, len(self.markets), size))]
        self.heartbeats = 0
        self._awaiting: dict[str, float] = {}
        self._pace_lock = threading.Lock()
        self._next_connect_at = 0.0

    # --- protocol hooks --------------------------------------------------------------------------

    @abc.abstractmethod
    def subscribe_messages(self, markets: Sequence[Market]) -> list[str | bytes]:
        """The frames that subscribe ``markets`` on a new connection: ``str`` as text, ``bytes``
        as binary; sent in order, ``subscribe_interval`` apart."""

    def connect_url(self) -> str:
        """The URL of the next connection attempt; by default :attr:`url`. May carry credentials
        (never logged)."""
        return self.url

    def on_connect(self, markets: Sequence[Market]) -> None:
        """Called on every (re)connect before subscribing ``markets``; the default does nothing."""

    def reply_to(self, payload: bytes | str) -> str | bytes | None:
        """The answer to a server heartbeat frame, sent at once on the same connection; ``None``
        for every other frame (the default), which then goes to :meth:`parse`."""
        return None

    def secrets(self) -> list[str]:
        """Strings that must never reach a log line (API keys); the default has none."""
        return []

    def redact(self, text: str) -> str:
        """``text`` with credentials in URL queries and every :meth:`secrets` string masked."""
        text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}=***", text)
        for secret in self.secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Close every connection and end any wait at once."""
        super().stop()
        for connection in self.connections:
            connection.close()

    def run(self) -> None:
        websocket.setdefaulttimeout(self.connect_timeout)  # connect and handshake timeout
        if len(self.connections) > 1:
            self.log.info("%d markets over %d connections (at most %d per connection)",
                          len(self.markets), len(self.connections), self.max_markets_per_connection)
        housekeeping = threading.Thread(target=self._housekeeping, daemon=True,
                                        name=f"{self.exchange}-housekeeping")
        housekeeping.start()
        try:
            for connection in self.connections:
                connection.start()
            self._stop.wait()
        finally:
            for connection in self.connections:
                connection.close()
            for connection in self.connections:
                if connection.thread is not None:
                    connection.thread.join(5.0)
            housekeeping.join(2.0)

    def refresh_state(self) -> None:
        """``state`` from the connections': ``connected``, ``connected 2/3``, ``reconnecting``…"""
        if self.stopping:
            return
        states = [c.state for c in self.connections]
        up = states.count("connected")
        if up == len(states):
            self.state = "connected"
        elif up:
            self.state = f"connected {up}/{len(states)}"
        else:
            self.state = "reconnecting" if "reconnecting" in states else "connecting"

    def pace_connect(self) -> bool:
        """Wait for this controller's next connect slot; ``True`` if stop was requested."""
        with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_connect_at)
            self._next_connect_at = slot + self.connect_interval
        return self.wait(slot - now)

    def count_heartbeat(self) -> None:
        """Count a server heartbeat that was answered (not a data message)."""
        with self._lock:
            self.heartbeats += 1
            self.stats.messages += 1
            self.stats.last_message_at = time.monotonic()

    # --- markets that have not sent a book yet ---------------------------------------------------

    def expect_books(self, markets: Iterable[Market]) -> None:
        deadline = time.monotonic() + self.subscribe_timeout
        with self._lock:
            for market in markets:
                self._awaiting[market.tag(self.exchange)] = deadline

    def forget_awaiting(self, markets: Iterable[Market]) -> None:
        with self._lock:
            for market in markets:
                self._awaiting.pop(market.tag(self.exchange), None)

    def handle_books(self, books: Iterable[OrderBookSnapshot]) -> int:
        books = list(books)
        with self._lock:
            for book in books:
                self._awaiting.pop(book.tag, None)
            return super().handle_books(books)

    # --- housekeeping thread ------------------------------------------------------------------

    def _housekeeping(self) -> None:
        next_keepalive: dict[int, float] = {}
        while not self.wait(0.5):
            now = time.monotonic()
            if self.keepalive_message is not None:
                for connection in self.connections:
                    since = connection.connected_since
                    if connection.app is None or since is None:
                        next_keepalive.pop(connection.index, None)
                        continue
                    due = next_keepalive.setdefault(connection.index,
                                                    since + self.keepalive_interval)
                    if now >= due:
                        next_keepalive[connection.index] = now + self.keepalive_interval
                        try:
                            connection.send(self.keepalive_message)
                        except Exception as exc:  # the connection loop sees the failure too
                            self.log.debug("keepalive not sent: %s", exc)
            with self._lock:
                late = [tag for tag, deadline in self._awaiting.items() if now >= deadline]
                for tag in late:
                    del self._awaiting[tag]
            for tag in late:
                self.report_error(
                    "no data",
                    f"no book within {self.subscribe_timeout:g} s of subscribing "
                    "(unknown or inactive market?)",
                    market=tag,
                )
