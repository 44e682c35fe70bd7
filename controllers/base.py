"""What every controller shares: its thread, its data path, and the parts it is composed of.

A controller collects the order books of several markets of one exchange. Subclasses (through
:class:`controllers.ws.WSController` or :class:`controllers.rest.RestPollingController`) supply
the exchange protocol; this base class supplies:

* the thread (``start``/``stop``/``join``), with a stop event every wait in the subclasses uses,
  so that stop is immediate, and its supervisor: a :meth:`run` that raises (or a thread of the
  controller started through :meth:`Controller.supervised` that dies) is logged with its
  traceback, recorded as a ``failed`` event, and run again after a backoff (a ``restarted``
  event); :attr:`Controller.restart_limit` failures within :attr:`Controller.restart_window`
  seconds leave the controller ``failed`` for good;
* :meth:`Controller.handle_payload`: run the subclass's pure ``parse`` on one raw payload, log and
  count what goes wrong (never raising), skip books identical to the previous one of the same
  market, and hand the rest to the sink (the shared writer);
* record building for the parsers (:attr:`Controller.records`, a
  :class:`controllers.records.RecordFactory`; ``book``, ``ticker``, ``trade``, ``market_for`` and
  ``merged_ticker_fields`` delegate to it);
* health (:attr:`Controller.health`, a :class:`controllers.health.Health`): the counters
  (:class:`~controllers.health.ControllerStats`) for the periodic stats line and ``feed_status``,
  the throttled error log (``report_error``), and the gap markers (``record_event`` hands
  :class:`core.model.FeedEvent` objects — ``connected``, ``disconnected``, ``stale``,
  ``subscribe_failed``… — to the event sink); ``stats``, ``state``, ``connected_since``,
  ``last_error``, ``recent_events``, ``event_sink`` and ``status()`` delegate to it;
* the retry policy of its REST requests and WebSocket reconnects
  (:meth:`Controller.retry_policy`, a :class:`controllers.http.RetryPolicy` from the class
  attributes): the backoff and the wait after HTTP 429/418;
* market discovery for ``--symbols ALL`` / ``--top N``: :meth:`Controller.list_markets` and
  :meth:`Controller.traded_values`, on the exchange's public REST API (:meth:`Controller.get_json`,
  through a :class:`controllers.http.RestClient`).
"""

from __future__ import annotations

import abc
import collections
import functools
import json
import logging
import threading
import time
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import msgspec

from core.errors import ConfigError, ExchangeError, MalformedMessage, MessageError
from core.logs import FeedLogger
from core.model import (CHANNELS, Level, Market, OrderBookSnapshot, Record, Ticker, Trade,
                        checked_channels, now_ms)
from core.venue import Venue
from controllers.booksync import Freshness
from controllers.health import EventSink, Health
from controllers.http import RestClient, RetryPolicy, parse_retry_after
from controllers.records import RecordFactory

Sink = Callable[[Record], bool]
"""Receives a book, ticker or trade to store; returns ``False`` when it had to drop it (queue
full)."""
BookWatcher = Callable[[OrderBookSnapshot], None]
"""Sees every current book of a market, repeats included (the signal engine's board)."""

RAW_LOG_LIMIT = 300
"""How many characters of a bad payload go into a log line."""


def describe_payload(payload: bytes | str) -> str:
    """The start of ``payload`` as text, cut to :data:`RAW_LOG_LIMIT` characters, for a log line."""
    if isinstance(payload, bytes):
        payload = payload[: RAW_LOG_LIMIT * 4].decode("utf-8", "replace")
    if len(payload) > RAW_LOG_LIMIT:
        return payload[:RAW_LOG_LIMIT] + f"… ({len(payload)} chars)"
    return payload


def json_value(payload: bytes | str,
               decode: Callable[[bytes | str], object] = msgspec.json.decode) -> object:
    """The JSON value a frame holds, decoded with ``decode`` (msgspec's by default). A number
    beyond a float's range (``1e999``), which msgspec refuses, is read as an infinity (by the
    standard library), so that the record checks refuse it naming its market.

    Raises:
        msgspec.DecodeError, ValueError: the payload is not JSON.
    """
    try:
        return decode(payload)
    except msgspec.ValidationError as exc:
        if "out of range" not in str(exc):
            raise
        return json.loads(payload)


def json_object(payload: bytes | str,
                decode: Callable[[bytes | str], object] = msgspec.json.decode) -> dict:
    """The JSON object a frame holds, decoded with ``decode`` (:func:`json_value`).

    Raises:
        msgspec.DecodeError: the payload is not JSON.
        MalformedMessage: it is JSON, but not an object.
    """
    message = json_value(payload, decode)
    if not isinstance(message, dict):
        raise MalformedMessage(f"expected an object, got {type(message).__name__}")
    return message


def _delegated(name: str) -> property:
    """A controller attribute that is its :class:`~controllers.health.Health`'s ``name``, read
    and written through."""
    return property(lambda self: getattr(self.health, name),
                    lambda self, value: setattr(self.health, name, value),
                    doc=f"The health's ``{name}`` (:class:`controllers.health.Health`).")


class Controller(abc.ABC):
    """Base of every exchange controller.

    Args:
        markets: the markets to collect (base and quote currency, upper case).
        sink: where books go, normally ``SQLiteWriter.submit``; ``None`` for parser-only use.
        depth: the most levels kept per side.
        env: where endpoint overrides (``<EXCHANGE>_WS_URL``/``_REST_URL``) are looked up.
        events: where gap markers go, normally ``SQLiteWriter.submit_event``; ``None``: kept
            only in :attr:`recent_events`.
        channels: what to collect, from :data:`core.model.CHANNELS`; ``orderbook`` is
            always collected, and a channel the exchange's class does not offer
            (:attr:`offered_channels`) is left out with a warning when the thread starts.
        watcher: called with every current book (repeats included), e.g. the signal board.

    Subclasses set ``exchange`` (upper case name) and implement :meth:`parse` and :meth:`run`;
    ``rest_url_env``/``default_rest_url`` name the exchange's public REST base URL (market lists,
    tickers, REST books). Constructing a controller does no I/O.

    Thread safety: payloads may arrive on several connection threads at once; the data path and
    the error counters run under one lock per controller.

    Raises:
        ConfigError: no markets, or a depth below 1.
    """

    venue: ClassVar[Venue]
    """The exchange's declaration (:class:`core.venue.Venue`): set once, in its own file, on the
    class of its book feed; the attributes below that come from it are filled in by
    :meth:`__init_subclass__`, never written by hand."""
    endpoint_role: ClassVar[str] = "ws"
    """The endpoint of :attr:`venue` this class reads (``"ws"``, ``"rest"`` for polling, or
    another WebSocket such as ``"market_ws"``)."""
    endpoint_classes: ClassVar[Mapping[str, type[Controller]]] = {}
    """The class that reads each other endpoint carrying channels, where it is not this one bound
    to that endpoint (Bithumb: books polled by REST, tickers and trades on an Upbit-like
    WebSocket)."""

    # filled in from the venue (see __init_subclass__)
    exchange: ClassVar[str]
    offered_channels: ClassVar[tuple[str, ...]] = ("orderbook",)
    """The channels this class collects: those its endpoint carries."""
    collects_books: ClassVar[bool] = True
    """``False`` for a feed of the other channels only (Bithumb's WebSocket)."""
    default_currency: ClassVar[str] = "KRW"
    """The quote currency of the markets when the run names none (``--currency``)."""
    rest_url_env: ClassVar[str]
    default_rest_url: ClassVar[str]
    feed_name: ClassVar[str | None] = None
    """The name in ``feed_status``, stats lines and the summary when it is not the exchange's:
    ``<EXCHANGE>_STREAM`` for a feed without books (``BITHUMB_STREAM``)."""

    error_log_interval: ClassVar[float] = 10.0
    """Seconds during which repeats of the same error are counted but not logged again."""
    backoff_initial: ClassVar[float] = 1.0
    backoff_cap: ClassVar[float] = 30.0
    """Seconds: the backoff's first ceiling and its cap (:meth:`retry_policy`)."""
    ban_delay: ClassVar[float] = 300.0
    """Seconds to wait after HTTP 418 (a temporary IP ban: Upbit, Binance) without Retry-After."""
    http_timeout: ClassVar[tuple[float, float]] = (3.05, 10.0)
    """(connect, read) timeouts in seconds of the REST requests (discovery, snapshots)."""
    restart_limit: int = 5
    """Failures (an unexpected exception ending :meth:`run` or a supervised thread) within
    :attr:`restart_window` seconds after which the controller is not restarted again: its state
    stays ``failed`` (``--restart-limit``; an instance may set its own)."""
    restart_window: float = 600.0
    """Seconds over which failures are counted against :attr:`restart_limit`
    (``--restart-window``)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Fill the class attributes that come from the venue when a class declares ``venue``
        or binds another ``endpoint_role``."""
        super().__init_subclass__(**kwargs)
        if "venue" not in cls.__dict__ and "endpoint_role" not in cls.__dict__:
            return
        venue = getattr(cls, "venue", None)
        if venue is None:
            return
        endpoint = venue.endpoint(cls.endpoint_role)
        cls.exchange = venue.exchange
        cls.default_currency = venue.quote
        cls.offered_channels = endpoint.channels
        cls.collects_books = "orderbook" in endpoint.channels
        cls.feed_name = None if cls.collects_books else f"{venue.exchange}_STREAM"
        if any(e.role == "rest" for e in venue.endpoints):
            cls.rest_url_env, cls.default_rest_url = venue.env_var("rest"), venue.endpoint("rest").url
        if cls.endpoint_role != "rest":
            cls.ws_url_env, cls.default_ws_url = venue.env_var(cls.endpoint_role), endpoint.url
        cls.max_markets_per_connection = venue.max_markets_per_connection
        cls.connect_interval = venue.connect_interval
        cls.subscribe_interval = venue.subscribe_interval

    @classmethod
    def feeds(cls, channels: Iterable[str]) -> list[type[Controller]]:
        """The classes to run for the venue's other endpoints that carry some of ``channels``
        (besides this class, the book feed): a class of :attr:`endpoint_classes`, else this class
        bound to that endpoint."""
        asked = set(channels)
        feeds = []
        for endpoint in cls.venue.endpoints:
            if endpoint.role == cls.endpoint_role or not asked & set(endpoint.channels):
                continue
            feeds.append(cls.endpoint_classes.get(endpoint.role) or _bound(cls, endpoint.role))
        return feeds

    @property
    def name(self) -> str:
        """:attr:`feed_name`, else the exchange."""
        return self.feed_name or self.exchange

    def __init__(
        self,
        markets: Sequence[Market],
        *,
        sink: Sink | None = None,
        depth: int = 15,
        env: Mapping[str, str] | None = None,
        events: EventSink | None = None,
        channels: Iterable[str] = ("orderbook",),
        watcher: BookWatcher | None = None,
    ) -> None:
        if not markets:
            raise ConfigError(f"{self.exchange}: no markets to collect")
        if depth < 1:
            raise ConfigError(f"depth must be at least 1, got {depth}")
        self.markets = tuple(markets)
        self._markets_by_tag = {m.tag(self.exchange): m for m in self.markets}
        self.depth = depth
        self.env = dict(env or {})
        self.sink = sink
        self.watcher = watcher
        asked = checked_channels({"orderbook", *channels} if self.collects_books else channels)
        self.channels = frozenset(asked & set(self.offered_channels))
        """The channels this controller collects: the ones asked for that it offers."""
        self.unoffered_channels = sorted(asked - set(self.venue.channels))
        """The channels asked for that no endpoint of the venue carries."""
        self.recorder = None
        """A :class:`collector.record.Recorder` (``--record``), or ``None``."""
        self.log = FeedLogger(self.exchange, (m.tag(self.exchange) for m in self.markets))
        self._lock = threading.RLock()
        self.records = RecordFactory(self.exchange, self.markets, self.channels)
        """Builds and checks the records the parser returns."""
        self.health = Health(self.exchange, self.name, self.log, lock=self._lock, events=events,
                             error_log_interval=self.error_log_interval)
        """Counters, error log, gap markers and status; shares the data path's lock."""
        self.stats = self.health.stats
        """The counters (the health's own object)."""
        self._stop = threading.Event()  # ends the current run (a stop, or a failure)
        self._halt = threading.Event()  # stop was asked: no restart
        self._life = threading.Lock()  # orders stop() against a restart clearing _stop
        self._fault: BaseException | None = None  # what ended a supervised thread
        self._thread: threading.Thread | None = None
        self.failures = 0
        """Unexpected exceptions that ended a run of the controller (each a ``failed`` event)."""
        self._last_levels: dict[tuple[str, str], tuple] = {}
        self._last_sequence: dict[tuple[str, str], int] = {}
        self.freshness = {m: Freshness(time.monotonic()) for m in self.markets}
        """Per market, when it last made progress (the market watchdog's, see
        :class:`controllers.booksync.Freshness`): a book arrived, or one older than the last."""

    state = _delegated("state")
    connected_since = _delegated("connected_since")
    last_error = _delegated("last_error")
    recent_events = _delegated("recent_events")
    event_sink = _delegated("event_sink")

    # --- protocol, supplied by subclasses ---------------------------------------------------

    @abc.abstractmethod
    def parse(self, payload: bytes | str, received_at: int) -> list[OrderBookSnapshot]:
        """Turn one raw payload into normalized books; no I/O, no logging. Protocol state a
        market needs (GOPAX's local book, Coinone's last acknowledged topic) may be kept.

        Returns an empty list for payloads that carry no book (acknowledgements, heartbeats).

        Raises:
            ExchangeError: the payload is an error message of the exchange.
            MalformedMessage (or any other exception): the payload is not what was expected.
        """

    @abc.abstractmethod
    def run(self) -> None:
        """The controller's loop, run in its own thread until :meth:`stop`; must not raise."""

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the controller's thread."""
        self._thread = threading.Thread(target=self._main, name=f"{self.exchange}-controller",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the controller to stop; returns at once (use :meth:`join` to wait)."""
        with self._life:
            self._halt.set()
            self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; ``True`` if it did within ``timeout`` seconds."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def supervised(self, target: Callable[[], None]) -> Callable[[], None]:
        """``target`` wrapped for a thread of this controller (a connection, a worker): an
        exception it raises ends the current run (as if :meth:`run` had raised it), so the
        supervisor logs it, records it and restarts the controller."""
        def body() -> None:
            try:
                target()
            except Exception as exc:
                with self._life:
                    if self._fault is None:
                        self._fault = exc
                    self._stop.set()
        return body

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop_detail(self) -> str:
        """Why the current run is ending, for a ``disconnected`` event: ``"collector
        stopping"``, or ``"controller restarting after a failure"``."""
        return "collector stopping" if self._halt.is_set() else "controller restarting after a failure"

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns ``True`` at once if stop was requested."""
        return self._stop.wait(max(0.0, seconds))

    @classmethod
    def retry_policy(cls) -> RetryPolicy:
        """The retry policy of this class's REST requests and reconnects, from its attributes
        (:attr:`http_timeout`, :attr:`backoff_initial`, :attr:`backoff_cap`, :attr:`ban_delay`)
        as they are now."""
        connect, read = cls.http_timeout
        return RetryPolicy(connect_timeout=connect, read_timeout=read,
                           backoff_initial=cls.backoff_initial, backoff_cap=cls.backoff_cap,
                           ban_delay=cls.ban_delay)

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (0 = the first retry after a healthy period):
        :meth:`RetryPolicy.backoff <controllers.http.RetryPolicy.backoff>`, full jitter between
        0.1 s and ``min(backoff_cap, backoff_initial * 2**attempt)``."""
        return self.retry_policy().backoff(attempt)

    def rate_limit_delay(self, status: int, retry_after: str | None, attempt: int) -> float | None:
        """Seconds to wait after an HTTP ``status`` answer (REST reply or WebSocket handshake)
        whose ``Retry-After`` header is ``retry_after``; ``None`` if ``status`` is not a rate
        limit (see :meth:`RetryPolicy.rate_limit_delay
        <controllers.http.RetryPolicy.rate_limit_delay>`)."""
        return self.retry_policy().rate_limit_delay(status, parse_retry_after(retry_after), attempt)

    # --- gap markers, health, recording ---------------------------------------------------------

    def record(self, connection: int, direction: str, payload: bytes | str,
               at: int | None = None, **extra: object) -> None:
        """Hand raw traffic to the recorder, if there is one (see :mod:`collector.record`)."""
        if self.recorder is not None:
            self.recorder.record(self.exchange, connection, direction, payload, at, **extra)

    def stream_opened(self, connection: int, markets: Iterable[Market], endpoint: str,
                      detail: str) -> None:
        """A connection (``connection`` 0: REST polling) started delivering ``markets``: the
        recorder's ``open`` line and a ``connected`` event."""
        self.record(connection, "open", endpoint)
        self.record_event("connected", markets, detail)

    def stream_closed(self, connection: int, markets: Iterable[Market], reason: str,
                      label: str = "") -> None:
        """The stream of ``markets`` ended for ``reason``: the recorder's ``close`` line and a
        ``disconnected`` event (its detail ends with ``label``, the connection's name)."""
        self.record(connection, "close", reason)
        self.record_event("disconnected", markets, reason + label)

    def record_event(self, kind: str, markets: Iterable[Market] | None, detail: str) -> None:
        """Record a gap marker: see :meth:`controllers.health.Health.record_event`."""
        self.health.record_event(kind, markets, detail)

    def status(self) -> dict:
        """The ``feed_status`` row: see :meth:`controllers.health.Health.status`."""
        return self.health.status()

    def _main(self) -> None:
        self.log.info("controller started for %d market(s): %s", len(self.markets),
                      ", ".join(f"{m.quote}-{m.base}" for m in self.markets))
        if self.unoffered_channels:
            self.log.warning("channel(s) %s not offered by this controller; collecting %s",
                             ", ".join(self.unoffered_channels),
                             ", ".join(c for c in CHANNELS if c in self.channels))
        recent: collections.deque[float] = collections.deque()
        while True:
            self.state = "running"
            fault: BaseException | None = None
            try:
                self.run()
            except Exception as exc:  # a bug: the other controllers go on
                fault = exc
            with self._life:
                fault = fault or self._fault
                self._fault = None
                halted = self._halt.is_set()
            if fault is None and not halted:
                fault = RuntimeError("run() returned before stop was asked")
            if fault is None:
                break
            if not self._failed(fault, recent, halted):
                return
            with self._life:
                if self._halt.is_set():
                    break
                self._stop.clear()
            self.record_event("restarted", self.markets,
                              f"controller restarted after failure {self.failures}: "
                              f"{type(fault).__name__}")
            self.log.warning("controller restarted (failure %d)", self.failures)
        self.state = "stopped"
        self.log.info("controller stopped")

    def _failed(self, fault: BaseException, recent: collections.deque, halted: bool) -> bool:
        """Log ``fault`` with its traceback and record a ``failed`` event; wait the backoff.
        ``True`` if the controller is to run again, ``False`` if it is failed for good (too many
        failures within :attr:`restart_window`) or stopped meanwhile."""
        self.failures += 1
        now = time.monotonic()
        recent.append(now)
        while recent and recent[0] < now - self.restart_window:
            recent.popleft()
        what = f"{type(fault).__name__}: {fault}"
        logger = logging.getLogger(f"collector.{self.exchange}")
        extra = {"tag": self.exchange, "exchange": self.exchange, "markets": self.log.markets}
        if halted:
            logger.error("controller failed while stopping: %s", what, exc_info=fault, extra=extra)
            self.state = "stopped"
            return False
        if len(recent) >= self.restart_limit:
            self.state = "failed"
            detail = (f"{what}; {len(recent)} failures within {self.restart_window:g} s: "
                      f"not restarted")
            logger.error("controller failed for good: %s", detail, exc_info=fault, extra=extra)
            self.record_event("failed", self.markets, detail)
            return False
        delay = self.backoff_delay(len(recent) - 1)
        self.state = "restarting"
        logger.error("controller failed (failure %d, %d within %g s); restarting in %.1f s: %s",
                     self.failures, len(recent), self.restart_window, delay, what, exc_info=fault,
                     extra=extra)
        self.record_event("failed", self.markets, f"{what}; restarting in {delay:.1f} s")
        return not self._halt.wait(delay)

    # --- the data path --------------------------------------------------------------------------

    def handle_payload(self, payload: bytes | str, received_at: int | None = None) -> int:
        """Parse one raw payload and hand its books to the sink; returns the books it carried
        (stored, repeated or stale alike: 0 means the payload was no data, e.g. an ack).

        Never raises: a bad payload or an exchange error is logged (with the payload cut to a few
        hundred characters) and counted, and the controller goes on. An exchange error naming one
        market is also recorded as a ``subscribe_failed`` event of that market.
        """
        if received_at is None:
            received_at = now_ms()
        with self._lock:
            return self._handle_payload(payload, received_at)

    def _handle_payload(self, payload: bytes | str, received_at: int) -> int:
        self.stats.messages += 1
        self.stats.last_message_at = time.monotonic()
        try:
            books = self.parse(payload, received_at)
        except ExchangeError as exc:
            self.report_error("exchange error", str(exc), market=exc.market)
            market = self._markets_by_tag.get(exc.market or "")
            if market is not None:
                self.record_event("subscribe_failed", [market], str(exc))
            return 0
        except Exception as exc:  # malformed payloads of every kind
            market = exc.market if isinstance(exc, MessageError) else None
            self.report_error("parse error",
                              f"{type(exc).__name__}: {exc}; payload: {describe_payload(payload)}",
                              market=market, key=type(exc).__name__)
            return 0
        if books:
            self.stats.last_data_at = self.stats.last_message_at
        self.handle_books(books)
        return len(books)

    def handle_books(self, books: Iterable[Record]) -> int:
        """Skip empty, stale and repeated books, hand the others to the sink; returns the books
        handed on. Tickers and trades among ``books`` go to the sink as they are.

        A book whose ``sequence`` is not above the market's last one is stale: dropped and counted.
        """
        handed = 0
        for book in books:
            if type(book) is not OrderBookSnapshot:
                self._hand_on(book)
                continue
            if not book.bids and not book.asks:
                self.report_error("empty book", "book has no levels; not stored", market=book.tag)
                continue
            key = (book.base, book.quote)
            if book.sequence is not None:
                last = self._last_sequence.get(key)
                if last is not None and book.sequence <= last:
                    self.stats.stale += 1
                    self._freshness_of(key).skip()
                    self.log.debug("stale book dropped: sequence %d after %d", book.sequence, last,
                                   market=book.tag)
                    continue
                self._last_sequence[key] = book.sequence
            self._freshness_of(key).progressed(time.monotonic())
            if self.watcher is not None:
                self.watcher(book)
            levels = (book.bids, book.asks)
            if self._last_levels.get(key) == levels:
                self.stats.duplicates += 1
                continue
            self._last_levels[key] = levels
            if self.sink is None or self.sink(book):
                self.stats.books += 1
                handed += 1
            else:
                self.stats.dropped += 1
        return handed

    def _freshness_of(self, key: tuple[str, str]) -> Freshness:
        """The :attr:`freshness` of the market ``(base, quote)`` (a detached one for a market not
        ours); looked up by the pair the data path already has, not by building its tag."""
        market = self.market_for(*key)
        return self.freshness[market] if market is not None else Freshness()

    def channel_names(self, **names: str) -> list[str]:
        """The exchange's names of the ticker and trade channels this controller collects, in
        the order given: ``channel_names(ticker="tickers.", trade="publicTrade.")``."""
        return [name for channel, name in names.items() if channel in self.channels]

    def merged_ticker_fields(self, market: Market, fields: dict, *, whole: bool) -> dict | None:
        """See :meth:`controllers.records.RecordFactory.merged_ticker_fields`."""
        return self.records.merged_ticker_fields(market, fields, whole=whole)

    def _hand_on(self, record: Ticker | Trade) -> None:
        """A ticker or a trade to the sink, counted."""
        if self.sink is None or self.sink(record):
            if type(record) is Trade:
                self.stats.trades += 1
            else:
                self.stats.tickers += 1
        else:
            self.stats.dropped += 1

    def records_of(self, items: Iterable, build: Callable[[Any], Record]) -> list[Record]:
        """``build(item)`` for each of ``items``, the markets of one message that carries several
        (Bithumb's books, GOPAX's tickers): one refused naming its market (a
        :class:`~core.errors.MalformedMessage` with a ``market``, e.g. a NaN price) is counted
        and logged as that market's parse error and left out; the other markets' are kept.

        Raises:
            MalformedMessage: one that names no market (the message itself is bad).
        """
        records = []
        for item in items:
            try:
                records.append(build(item))
            except MalformedMessage as exc:
                if exc.market is None:
                    raise
                self.report_error("parse error", f"{type(exc).__name__}: {exc}",
                                  market=exc.market, key=type(exc).__name__)
        return records

    def report_error(self, kind: str, detail: str, *, market: str | None = None,
                     key: str | None = None) -> None:
        """Count an error and log it, at most once per ``error_log_interval`` per kind and market:
        see :meth:`controllers.health.Health.report_error`."""
        self.health.report_error(kind, detail, market=market, key=key)

    # --- record building for the parsers: see controllers.records ------------------------------

    def market_for(self, base: str, quote: str) -> Market | None:
        """The configured market with this base and quote currency, or ``None``."""
        return self.records.market_for(base, quote)

    def book(self, base: str, quote: str, timestamp: object, bids: tuple[Level, ...],
             asks: tuple[Level, ...], received_at: int, sequence: int | None = None
             ) -> OrderBookSnapshot:
        """A normalized book: see :meth:`controllers.records.RecordFactory.book`.

        Raises:
            MalformedMessage: a market the controller does not collect, or a bad timestamp.
        """
        return self.records.book(base, quote, timestamp, bids, asks, received_at, sequence)

    def ticker(self, base: str, quote: str, timestamp: object, received_at: int,
               **fields: object) -> Ticker:
        """A normalized ticker; ``fields`` (``last``, ``open``, ``high``…) as
        :meth:`controllers.records.RecordFactory.ticker` takes them.

        Raises:
            MalformedMessage: the ticker channel is not collected, a market the controller does
                not collect, a bad timestamp, or a field that is not a number.
        """
        return self.records.ticker(base, quote, timestamp, received_at, **fields)

    def trade(self, base: str, quote: str, timestamp: object, received_at: int, *,
              trade_id: object, price: object, volume: object, side: str) -> Trade:
        """A normalized trade: see :meth:`controllers.records.RecordFactory.trade`.

        Raises:
            MalformedMessage: the trade channel is not collected, a market the controller does
                not collect, a bad timestamp, a missing trade id, a price or volume that is not a
                positive number, or a side other than ``"buy"``/``"sell"``.
        """
        return self.records.trade(base, quote, timestamp, received_at, trade_id=trade_id,
                                  price=price, volume=volume, side=side)

    # --- market discovery (``--symbols ALL``, ``--top N``); class methods, before any thread ----

    @classmethod
    def rest_base(cls, env: Mapping[str, str]) -> str:
        """The REST base URL: ``env[rest_url_env]`` if set, else ``default_rest_url``."""
        return (env.get(cls.rest_url_env) or cls.default_rest_url).rstrip("/")

    @classmethod
    def make_rest_client(cls, env: Mapping[str, str]) -> RestClient:
        """A new :class:`~controllers.http.RestClient` for the REST base URL, with
        :meth:`retry_policy`'s timeouts and :meth:`check_body`; close it after use."""
        return RestClient(cls.rest_base(env), cls.retry_policy(), check_body=cls.check_body)

    @functools.cached_property
    def rest_client(self) -> RestClient:
        """This controller's REST client (its connections kept between requests), made on first
        use, for one thread at a time: the poll loop, or the snapshot worker."""
        return self.make_rest_client(self.env)

    @classmethod
    def get_json(cls, env: Mapping[str, str], path: str,
                 params: Mapping[str, str] | None = None) -> object:
        """``GET <rest base><path>`` (one attempt, on a client of its own) and return the decoded
        JSON body.

        Raises:
            TransportError: a timeout, a refused or dropped connection.
            ExchangeError: an HTTP status of 400 or more (:class:`~core.errors.HTTPStatusError`),
                or an error body (see :meth:`check_body`); the message names the URL and the
                exchange's own error text.
            MalformedMessage: the body is not JSON.
        """
        with cls.make_rest_client(env) as client:
            return client.get_json(path, params)

    @classmethod
    def post_json(cls, env: Mapping[str, str], path: str) -> object:
        """``POST <rest base><path>`` with no body and return the decoded JSON body (KuCoin's
        connect token). Raises as :meth:`get_json`."""
        with cls.make_rest_client(env) as client:
            return client.post_json(path)

    @classmethod
    def get_rows(cls, env: Mapping[str, str], path: str, params: Mapping[str, str] | None = None,
                 key: str | None = None) -> list:
        """The list a REST reply holds: the body itself, or ``body[key]`` for a wrapped one.

        Raises:
            TransportError, ExchangeError: as :meth:`get_json`.
            MalformedMessage: the body is not JSON, or holds no such list.
        """
        body = cls.get_json(env, path, params)
        rows = body.get(key) if key is not None and isinstance(body, dict) else body
        if not isinstance(rows, list):
            where = f"{path} {key!r}" if key is not None else path
            raise MalformedMessage(f"GET {where}: expected a list, got {type(rows).__name__}")
        return rows

    @classmethod
    def check_body(cls, body: object) -> None:
        """Raise :class:`ExchangeError` if ``body`` is one of the exchange's error replies
        (several exchanges send those with HTTP 200). The default accepts every body."""

    @classmethod
    def list_markets(cls, env: Mapping[str, str], currency: str) -> list[Market]:
        """Every market the exchange lists with quote ``currency``, in the exchange's order.

        Raises:
            ExchangeError, MalformedMessage: the market list could not be fetched or read.
        """
        raise NotImplementedError(f"{cls.exchange}: no market list")

    @classmethod
    def traded_values(cls, env: Mapping[str, str], markets: Sequence[Market]) -> dict[Market, float]:
        """24-hour traded value of ``markets`` in the quote currency (KRW), from the exchange's
        ticker endpoint; markets it has no figure for are left out.

        Raises:
            ExchangeError, MalformedMessage: the tickers could not be fetched or read.
        """
        raise NotImplementedError(f"{cls.exchange}: no tickers")

    def endpoint(self, variable: str, default: str) -> str:
        """The endpoint from the environment override ``variable``, else ``default``."""
        return self.env.get(variable) or default


@functools.cache
def _bound(cls: type[Controller], role: str) -> type[Controller]:
    """``cls`` reading the ``role`` endpoint of its venue (one class per pair, made once)."""
    return type(f"{cls.__name__}_{role}", (cls,),
                {"endpoint_role": role, "__module__": cls.__module__,
                 "__doc__": f"{cls.__name__} reading the {role!r} endpoint of its venue."})
