"""The WebSocket controller base, on websocket-client's ``WebSocketApp``.

The base owns all of the I/O; a subclass gives only its endpoint, its subscribe message(s), an
optional text keepalive, optional replies to the server's heartbeats, and the
:meth:`~controllers.base.Controller.parse` of one frame.

**Connections.** The controller's markets are split into groups of at most
``max_markets_per_connection`` (GOPAX serves 50 books per connection); each group has its own
connection, in its own thread. Connection attempts of one controller are paced to at most one
per ``connect_interval`` seconds (Upbit allows 5 connects per second), and subscribe messages of
all its connections together to one per ``subscribe_interval`` seconds (:class:`Pacer`), so a
reconnect of every connection at once stays inside the exchange's documented rates.

**Reconnect.** The loop is ours, not ``run_forever(reconnect=…)`` (a fixed delay that ``close()``
cannot interrupt): one ``run_forever`` per connection attempt, then a wait on the stop event with
exponential backoff and full jitter (the REST client's formula,
:meth:`controllers.http.RetryPolicy.backoff`: capped at ``backoff_cap`` seconds, reset after a
connection that delivered data, or stayed up ``healthy_after`` seconds: a server that drops
every connection after a few books is reconnected to at the backoff's first step, not after ever
longer waits). There is no retry limit. A handshake (or a
connect token request, KuCoin) refused with HTTP 429 waits what ``Retry-After`` says; HTTP 418 (a
temporary ban) waits ``Retry-After`` or ``ban_delay`` (5 minutes). ``stop()`` closes every socket
and ends any wait at once. After every (re)connect :meth:`WSController.on_connect` lets the
subclass forget per-market state (a snapshot + delta book must start again from a snapshot).

**Gap markers.** Every open records a ``connected`` event for each market of the connection, every
close (or stop) a ``disconnected`` event with its cause, so a book stored after a reconnect can be
told apart from a continuous stream (see :class:`core.model.FeedEvent`).

**Housekeeping.** One thread per controller sends the keepalive message every
``keepalive_interval`` seconds on every open connection; warns about markets that get no book
within ``subscribe_timeout`` seconds of subscribing (Upbit and Bithumb ignore unknown codes
silently) and records ``subscribe_failed`` for them; and is the **watchdog**: a connection that
delivered no data (a frame carrying a book; heartbeats, pongs and acks do not count) for
``idle_timeout`` seconds gets a ``stale`` event and is closed, and the reconnect loop opens it
again. The **market watchdog** looks at each market of an open connection
(:class:`controllers.booksync.Freshness`): a market whose updates come but are skipped (judged
older than its book, buffered with no snapshot on its way, books older than the last) without any
progress for ``stall_timeout`` seconds is recovered with a ``resync`` event and its cause
(:meth:`WSController.recover_market`: a full-book feed reopens the market's connection; a
snapshot + delta controller resyncs that one market). Silence alone is no desync (nobody trades
the market): only where a resync is one market's snapshot (``resync_quiet``, the snapshot +
delta controllers) is a market that sent nothing for
:data:`~controllers.booksync.QUIET_FACTOR` times as long, while its connection delivers data,
resynced; a full-book feed never reopens a connection for a quiet market.

**Frame size.** websocket-client has no size limit: it reads a frame's whole payload before
anything can look at it (a 51 MB frame cost about 320 MB). Each connection's frame reader is
replaced on open by :class:`BoundedFrameBuffer`, which reads the length from the frame header and
refuses a frame (or a message of continuation frames) longer than ``max_frame_bytes`` (16 MiB by
default, per venue) before reading its payload: a :class:`FrameTooLarge` error, logged with the
exchange and counted, and the connection is closed and opened again by the reconnect loop.

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
from typing import Any, Callable, ClassVar, Iterable, Sequence

import websocket

from core.errors import HTTPStatusError, MessageError
from core.model import Market, OrderBookSnapshot, now_ms
from controllers.base import Controller

_QUERY_SECRET = re.compile(r"(?i)\b(apikey|api_key|signature|timestamp|token)=[^&\s'\"]+")


MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The default largest WebSocket frame (or fragmented message) accepted, in bytes."""


class FrameTooLarge(websocket.WebSocketException):
    """A frame's header announced more payload than the connection accepts."""


class BoundedFrameBuffer(websocket._abnf.frame_buffer):
    """websocket-client's frame reader, refusing a frame (or a message of continuation frames)
    of more than ``limit`` payload bytes as soon as its header has given the length, before the
    payload is read.

    Raises (from ``recv_frame``):
        FrameTooLarge: the frame or message is larger than ``limit`` bytes.
    """

    def __init__(self, recv_fn: Callable[[int], bytes], skip_utf8_validation: bool,
                 limit: int) -> None:
        super().__init__(recv_fn, skip_utf8_validation)
        self.limit = limit
        self._message_bytes = 0
        self._refused: FrameTooLarge | None = None

    def recv_frame(self) -> websocket.ABNF:
        # Once refused, the stream is mid-payload: every later read (the library's close
        # handshake reads until the server's close frame) fails at once instead of reading it.
        if self._refused is not None:
            raise self._refused
        return super().recv_frame()

    def recv_length(self) -> None:
        super().recv_length()
        fin, _, _, _, opcode = self.header[:5]
        if opcode >= websocket.ABNF.OPCODE_CLOSE:
            return  # a control frame: at most 125 bytes, checked by the library
        total = self._message_bytes + self.length
        if total > self.limit:
            self._refused = FrameTooLarge(
                f"frame of {self.length} bytes ({total} in the message) exceeds the limit of "
                f"{self.limit} bytes; closing the connection")
            raise self._refused
        self._message_bytes = 0 if fin else total


class Pacer:
    """Hands out turns at least ``interval`` seconds apart, to any number of threads.

    The next turn is counted from the moment the last one was taken, not from when it was due:
    a thread that wakes late (a busy CPU, the GIL) does not bring the next turn closer.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._next_at = 0.0

    def wait_turn(self, wait: Callable[[float], bool]) -> bool:
        """``wait(seconds)`` until the next turn comes and take it; returns what ``wait`` returns
        (``True``: stop was requested, no turn taken). One thread waits at a time, the others
        queue for the turn after."""
        with self._lock:
            if wait(max(0.0, self._next_at - time.monotonic())):
                return True
            self._next_at = time.monotonic() + self.interval
            return False


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
        self.last_data_at: float | None = None
        self.close_reason: str | None = None
        """Why the current connection ended (the watchdog, an error, the server's close)."""
        self.down_since: float | None = None
        """``time.monotonic()`` when the last open connection closed (``None``: never opened)."""
        self.retry_wait: float | None = None
        self.app: websocket.WebSocketApp | None = None
        self.thread: threading.Thread | None = None
        self.subscribed = False
        """Whether this connection's subscribe frames were sent (after the welcome, if awaited)."""

    def label(self) -> str:
        """``""`` for a controller's only connection, else ``" (connection 2/3)"``."""
        total = len(self.controller.connections)
        return "" if total == 1 else f" (connection {self.index}/{total})"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.controller.supervised(self.run), daemon=True,
                                       name=f"{self.name}-ws")
        self.thread.start()

    def run(self) -> None:
        """Connect, read until the connection ends, back off, and again, until stop."""
        c = self.controller
        attempt = 0
        while not c.stopping:
            if c.connect_pacer.wait_turn(c.wait):
                break
            self.state = "connecting"
            c.refresh_state()
            started = time.monotonic()
            self.close_reason = self.retry_wait = None
            try:
                url = c.connect_url()
            except MessageError as exc:  # a connect token that failed
                self.close_reason = c.redact(str(exc))
                c.report_error("connect failed", self.close_reason + self.label())
                if isinstance(exc, HTTPStatusError):  # 429/418: Retry-After, or the ban delay
                    self.retry_wait = c.retry_policy().rate_limit_delay(exc.status,
                                                                        exc.retry_after, 0)
                url = None
            if url is not None:
                self.app = websocket.WebSocketApp(
                    url,
                    on_open=self._on_open,
                    on_message=self._on_message,
                    on_error=self._on_error,
                    on_close=self._on_close,
                )
                if c.stopping:
                    break
                self.app.run_forever(skip_utf8_validation=True)
            self.app = None
            was_open = self.connected_since is not None
            self.connected_since = None
            c.forget_awaiting(self.markets)
            if was_open:
                self.down_since = time.monotonic()
                c.stream_closed(self.index, self.markets,
                                c.stop_detail() if c.stopping
                                else self.close_reason or "connection closed",
                                "" if c.stopping else self.label())
            if c.stopping:
                break
            # a connection that delivered data worked: the next attempt starts the backoff again
            delivered = self.last_data_at is not None and self.last_data_at >= started
            attempt = 0 if delivered or time.monotonic() - started >= c.healthy_after else attempt + 1
            delay = self.retry_wait if self.retry_wait is not None else c.backoff_delay(attempt)
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
        self.controller.record(self.index, "out", message)
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
        reader = app.sock.frame_buffer  # nothing read yet: the handshake reads the socket itself
        app.sock.frame_buffer = BoundedFrameBuffer(reader.recv, reader.skip_utf8_validation,
                                                   c.max_frame_bytes)
        self.state = "connected"
        self.connected_since = time.monotonic()
        self.last_data_at = None
        c.refresh_state()
        c.log.info("connected to %s%s", c.url, self.label())
        gap = ("first connection" if self.down_since is None
               else f"reconnected after {time.monotonic() - self.down_since:.1f} s")
        c.stream_opened(self.index, self.markets, c.url, f"{gap}{self.label()}")
        c.on_connect(self.markets)
        c.expect_books(self.markets)
        self.subscribed = False
        if not c.await_welcome:
            self._subscribe()

    def _subscribe(self) -> None:
        c = self.controller
        self.subscribed = True
        for message in c.subscribe_messages(self.markets):
            if c.subscribe_interval and c.subscribe_pacer.wait_turn(c.wait):
                return
            self.send(message)
        c.log.info("subscribed to %d market(s)%s", len(self.markets), self.label())

    def _on_message(self, app: websocket.WebSocketApp, payload: bytes | str) -> None:
        c = self.controller
        received_at = now_ms()
        c.record(self.index, "in", payload, received_at)
        if not self.subscribed and c.is_welcome(payload):
            self._subscribe()
            return
        reply = c.reply_to(payload)
        if reply is not None:
            c.count_heartbeat()
            try:
                self.send(reply)
            except Exception as exc:  # the reconnect loop sees the failure too
                c.log.debug("heartbeat reply not sent: %s", exc)
            return
        if c.handle_payload(payload, received_at):
            self.last_data_at = time.monotonic()

    def _on_error(self, app: websocket.WebSocketApp, error: Exception) -> None:
        c = self.controller
        if c.stopping or self.close_reason is not None:  # stopping, or closed by the watchdog
            return
        text = c.redact(f"{type(error).__name__}: {error}")
        status = getattr(error, "status_code", None)
        if isinstance(error, websocket.WebSocketBadStatusException) and status is not None:
            headers = {k.lower(): v for k, v in (error.resp_headers or {}).items()}
            self.retry_wait = c.rate_limit_delay(status, headers.get("retry-after"), 0)
            if self.retry_wait is not None:
                text = f"handshake refused with HTTP {status}: rate limited, waiting {self.retry_wait:.1f} s"
        self.close_reason = text
        c.report_error("connection error", text + self.label())

    def _on_close(self, app: websocket.WebSocketApp, code: int | None, reason: str | None) -> None:
        c = self.controller
        if c.stopping:
            c.log.info("connection closed (stopping)%s", self.label())
        else:
            why = f"connection closed (code {code}{f', {c.redact(str(reason))}' if reason else ''})"
            self.close_reason = self.close_reason or why
            c.log.warning("%s%s", why, self.label())


class WSController(Controller):
    """Base of the WebSocket controllers.

    Class attributes a subclass sets:
        ws_url_env: the environment variable that overrides the endpoint (``UPBIT_WS_URL``).
        default_ws_url: the exchange's public endpoint.
        keepalive_message: text sent every ``keepalive_interval`` seconds, or ``None``.
        keepalive_interval: seconds between keepalives; well inside the exchange's idle limit.
        idle_timeout: seconds without data after which the watchdog reopens a connection
            (``None``: no watchdog); the run's ``--idle-timeout`` overrides it.
        stall_timeout: seconds a market may skip updates without progress before the market
            watchdog recovers it (silence: :data:`~controllers.booksync.QUIET_FACTOR` times as
            long; ``None``: no market watchdog); the run's ``--stall-timeout`` overrides it.
        resync_quiet: whether a market silent that long while its connection delivers data is
            recovered too (``False`` here: a full-book feed would reopen the connection of
            every other market for a market nobody trades).
        max_markets_per_connection: markets per connection (``None``: all on one).
        connect_interval: least seconds between two connection attempts of this controller.
        subscribe_interval: least seconds between two subscribe messages of this controller (all
            its connections together).
        await_welcome: subscribe only after the server's welcome frame (:meth:`is_welcome`),
            not as soon as the connection opens (KuCoin).
        max_frame_bytes: the largest frame (or fragmented message) accepted; a larger one
            closes the connection (:class:`BoundedFrameBuffer`).
    """

    ws_url_env: ClassVar[str]
    default_ws_url: ClassVar[str]
    keepalive_message: ClassVar[str | None] = None
    keepalive_interval: ClassVar[float] = 20.0
    idle_timeout: ClassVar[float | None] = 60.0
    subscribe_timeout: ClassVar[float] = 10.0
    connect_timeout: ClassVar[float] = 10.0
    stall_timeout: ClassVar[float | None] = 60.0
    resync_quiet: ClassVar[bool] = False
    healthy_after: ClassVar[float] = 30.0
    max_markets_per_connection: ClassVar[int | None] = None
    connect_interval: ClassVar[float] = 0.2
    subscribe_interval: ClassVar[float] = 0.0
    await_welcome: ClassVar[bool] = False
    max_frame_bytes: ClassVar[int] = MAX_FRAME_BYTES

    def __init__(self, *args: Any, idle_timeout: float | None = None,
                 stall_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if idle_timeout is not None:
            self.idle_timeout = idle_timeout
        if stall_timeout is not None:
            self.stall_timeout = stall_timeout
        self.url = self.endpoint(self.ws_url_env, self.default_ws_url)
        size = self.max_markets_per_connection or len(self.markets)
        self.connections = [WSConnection(self, i + 1, self.markets[start:start + size])
                            for i, start in enumerate(range(0, len(self.markets), size))]
        self._awaiting: dict[str, float] = {}
        self.connect_pacer = Pacer(self.connect_interval)
        self.subscribe_pacer = Pacer(self.subscribe_interval)

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

    def is_welcome(self, payload: bytes | str) -> bool:
        """Whether ``payload`` is the server's welcome (only asked with ``await_welcome``)."""
        return False

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
        housekeeping = threading.Thread(target=self.supervised(self._housekeeping), daemon=True,
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
            if self.state != "connected":
                self.connected_since = now_ms()
            self.state = "connected"
            return
        self.connected_since = None
        if up:
            self.state = f"connected {up}/{len(states)}"
        else:
            self.state = "reconnecting" if "reconnecting" in states else "connecting"

    def count_heartbeat(self) -> None:
        """Count a server heartbeat that was answered (not a data message)."""
        with self._lock:
            self.stats.heartbeats += 1
            self.stats.messages += 1
            self.stats.last_message_at = time.monotonic()

    # --- markets that have not sent a book yet ---------------------------------------------------

    def expect_books(self, markets: Iterable[Market]) -> None:
        if not self.collects_books:
            return  # tickers and trades only: a quiet market may rightly send nothing
        now = time.monotonic()
        deadline = now + self.subscribe_timeout
        with self._lock:
            for market in markets:
                self._awaiting[market.tag(self.exchange)] = deadline
                self.freshness[market].start(now)

    def forget_awaiting(self, markets: Iterable[Market]) -> None:
        with self._lock:
            for market in markets:
                self._awaiting.pop(market.tag(self.exchange), None)

    def handle_books(self, books: Iterable[OrderBookSnapshot]) -> int:
        books = list(books)
        with self._lock:
            for book in books:  # a ticker or trade does not show that the book subscription works
                if type(book) is OrderBookSnapshot:
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
                detail = (f"no book within {self.subscribe_timeout:g} s of subscribing "
                          "(unknown or inactive market?)")
                self.report_error("no data", detail, market=tag)
                self.record_event("subscribe_failed", [self._markets_by_tag[tag]], detail)
            self._watch(now)
            self._watch_markets(now)

    def _watch(self, now: float) -> None:
        """The watchdog: close every open connection that delivered no data for
        ``idle_timeout`` seconds (the reconnect loop opens it again)."""
        if not self.idle_timeout:
            return
        for connection in self.connections:
            since = connection.connected_since
            if connection.app is None or since is None or connection.close_reason is not None:
                continue
            quiet = now - (connection.last_data_at or since)  # reset to None on every open
            if quiet < self.idle_timeout:
                continue
            detail = f"no data for {quiet:.1f} s (idle timeout {self.idle_timeout:g} s); reconnecting"
            with self._lock:
                self.stats.stalls += 1
            self.log.warning("stale feed: %s%s", detail, connection.label())
            self.record_event("stale", connection.markets, detail + connection.label())
            connection.close_reason = f"closed by the watchdog: {detail}"
            connection.close()

    def _watch_markets(self, now: float) -> None:
        """The market watchdog: recover every market of an open, subscribed connection whose
        :class:`~controllers.booksync.Freshness` gives a cause (see the module text)."""
        if not self.stall_timeout or not self.collects_books:
            return
        for connection in self.connections:
            if (connection.app is None or connection.connected_since is None
                    or connection.close_reason is not None or not connection.subscribed):
                continue
            data_at = connection.last_data_at if self.resync_quiet else None
            with self._lock:  # once per connection, not per market: the data path waits on it
                for market in connection.markets:
                    fresh = self.freshness[market]
                    cause = fresh.verdict(now, stall_after=self.stall_timeout, data_at=data_at)
                    if cause is None:
                        continue
                    fresh.start(now)  # one recovery per window: no resync storm
                    if self.recover_market(connection, market, cause):
                        break  # the connection is being reopened: its markets start again

    def recover_market(self, connection: WSConnection, market: Market, cause: str) -> bool:
        """Recover ``market`` (on ``connection``) that the market watchdog found stalled: a
        ``resync`` event with ``cause``; a full-book feed cannot ask one market's book again, so
        its connection is reopened (its other markets get their books again on the new one).
        Returns whether the connection is being reopened. The market's last book order
        (:attr:`~core.model.OrderBookSnapshot.sequence`) is forgotten: books skipped as older than
        it (an exchange whose ids started again lower) are taken again after the reopen."""
        tag = market.tag(self.exchange)
        with self._lock:
            self._last_sequence.pop((market.base, market.quote), None)
        self.log.warning("resync: %s; reopening the connection%s", cause, connection.label(),
                         market=tag)
        self.record_event("resync", [market], f"{cause}; connection reopened{connection.label()}")
        connection.close_reason = f"reopened to resync {tag}: {cause}"
        connection.close()
        return True
