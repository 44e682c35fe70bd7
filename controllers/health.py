"""A controller's health: its counters, its throttled error log, its gap markers and its status.

A :class:`Health` belongs to one controller, which owns it and delegates to it (``stats``,
``state``, ``connected_since``, ``last_error``, ``recent_events``, ``report_error``,
``record_event``, ``status``). It keeps:

* the counters (:class:`ControllerStats`), which the controller's data path and connections
  increment;
* the error reporting (:meth:`Health.report_error`): every error counted, but logged at most once
  per interval per kind and market, the next line saying how many were not logged;
* the gap markers (:meth:`Health.record_event`): :class:`core.model.FeedEvent` objects kept in
  :attr:`Health.recent_events` and handed to the event sink;
* the status row of ``feed_status`` (:meth:`Health.status`).

Thread safety: :meth:`Health.report_error` and :meth:`Health.record_event` run under the lock
given, the controller's, which its data path also holds.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from core.logs import FeedLogger
from core.model import FeedEvent, Market, now_ms

EventSink = Callable[[FeedEvent], None]
"""Receives a gap marker to store (``SQLiteWriter.submit_event``)."""

RECENT_EVENTS = 1000
"""How many events :attr:`Health.recent_events` keeps."""


@dataclass
class ControllerStats:
    """Counters of one controller since it started (monotonic, never reset).

    ``messages``: payloads received (frames or HTTP bodies); ``books``: books handed to the writer;
    ``tickers``/``trades``: tickers and trades handed to the writer;
    ``duplicates``: books skipped because identical to the market's previous one; ``dropped``:
    books the writer refused (queue full); ``stale``: books older (by the exchange's sequence)
    than the market's last one, dropped; ``errors``: bad payloads, exchange errors, HTTP and
    connection failures; ``reconnects``: connections (or polls) retried after a failure;
    ``stalls``: connections the watchdog closed because no data came; ``heartbeats``: server
    heartbeats answered; ``events``: :class:`~core.model.FeedEvent` counts by kind.
    ``last_message_at``: ``time.monotonic()`` of the last payload (heartbeats included),
    ``last_data_at``: of the last payload that carried a book; ``None`` before the first.
    """

    messages: int = 0
    books: int = 0
    tickers: int = 0
    trades: int = 0
    duplicates: int = 0
    dropped: int = 0
    stale: int = 0
    errors: int = 0
    reconnects: int = 0
    stalls: int = 0
    heartbeats: int = 0
    last_message_at: float | None = None
    last_data_at: float | None = None
    events: collections.Counter = field(default_factory=collections.Counter)


def wall_ms(monotonic: float | None) -> int | None:
    """A ``time.monotonic()`` reading as ms since the Unix epoch (UTC); ``None`` stays ``None``."""
    if monotonic is None:
        return None
    return now_ms() - round((time.monotonic() - monotonic) * 1000)


class Health:
    """The counters, error log, gap markers and status of one controller.

    Args:
        exchange: the upper case exchange name, stored in every event.
        name: the name in the status row (the controller's ``name``: the exchange's, or
            ``<EXCHANGE>_STREAM`` for a feed without books).
        log: where errors are logged (the controller's :class:`~core.logs.FeedLogger`).
        lock: held while an error is counted or an event recorded; the controller's, so that
            its data path and these never interleave. A new re-entrant lock if ``None``.
        events: where gap markers go, normally ``SQLiteWriter.submit_event``; ``None``: kept only
            in :attr:`recent_events`.
        error_log_interval: seconds during which repeats of the same error are counted but not
            logged again.
        clock: the monotonic clock in seconds the throttling reads (``time.monotonic``).
    """

    def __init__(self, exchange: str, name: str, log: FeedLogger, *,
                 lock: threading.RLock | None = None, events: EventSink | None = None,
                 error_log_interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.exchange = exchange
        self.name = name
        self.log = log
        self.lock = lock if lock is not None else threading.RLock()
        self.event_sink = events
        self.error_log_interval = error_log_interval
        self.clock = clock
        self.stats = ControllerStats()
        self.recent_events: collections.deque[FeedEvent] = collections.deque(maxlen=RECENT_EVENTS)
        """The last :data:`RECENT_EVENTS` events recorded, oldest first."""
        self.state = "new"
        """What the controller is doing: ``new``, ``running``, ``connected``, ``polling``,
        ``reconnecting``, ``stopped``, ``failed``… (set by the controller)."""
        self.connected_since: int | None = None
        """ms since the epoch since when every connection (or poll) has been delivering."""
        self.last_error: str | None = None
        """``"<kind>: <detail>"`` of the last error reported."""
        self._error_logged_at: dict[tuple[str | None, str], tuple[float, int]] = {}

    def report_error(self, kind: str, detail: str, *, market: str | None = None,
                     key: str | None = None) -> None:
        """Count an error and log it (a warning ``"<kind>: <detail>"``), at most once per
        :attr:`error_log_interval` per ``kind`` and ``market`` (a tag; ``None``: the whole
        exchange) and ``key`` (``detail`` when ``None``).

        Repeats inside the interval are counted, and the next line logged for the same kind,
        market and key ends with ``" (N more like it not logged)"``.
        """
        with self.lock:
            self.stats.errors += 1
            self.last_error = f"{kind}: {detail}"
            now = self.clock()
            slot = (market, f"{kind}:{key or detail}")
            logged_at, suppressed = self._error_logged_at.get(slot, (float("-inf"), 0))
            if now - logged_at < self.error_log_interval:
                self._error_logged_at[slot] = (logged_at, suppressed + 1)
                return
            self._error_logged_at[slot] = (now, 0)
            more = f" ({suppressed} more like it not logged)" if suppressed else ""
            self.log.warning("%s: %s%s", kind, detail, more, market=market)

    def record_event(self, kind: str, markets: Iterable[Market] | None, detail: str) -> None:
        """Record a :class:`FeedEvent` of ``kind`` for each of ``markets`` (``None``: one event
        for the whole exchange, base and quote ``None``), timestamped now, and hand it to the
        event sink. Does not log: callers do."""
        at = now_ms()
        targets: list[Market | None] = list(markets) if markets is not None else [None]
        with self.lock:
            self.stats.events[kind] += len(targets)
            for market in targets:
                event = FeedEvent(self.exchange, market and market.base,
                                  market and market.quote, at, kind, detail)
                self.recent_events.append(event)
                if self.event_sink is not None:
                    self.event_sink(event)

    def status(self) -> dict:
        """The ``feed_status`` row: ``exchange`` (:attr:`name`), ``state``,
        ``connected_since``/``last_message_at``/``last_data_at`` in ms since the epoch (or
        ``None``), and every counter of :class:`ControllerStats` except ``events``, ``tickers``
        and ``trades``."""
        s = self.stats
        return {
            "exchange": self.name, "state": self.state, "connected_since": self.connected_since,
            "messages": s.messages, "heartbeats": s.heartbeats, "books": s.books,
            "duplicates": s.duplicates, "stale": s.stale, "errors": s.errors,
            "dropped": s.dropped, "reconnects": s.reconnects, "stalls": s.stalls,
            "last_message_at": wall_ms(s.last_message_at), "last_data_at": wall_ms(s.last_data_at),
        }
