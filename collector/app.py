"""The collector process: controllers in their threads, one writer, stats, and a clean stop."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from collector.discovery import resolve_markets
from core.errors import ConfigError
from core.model import Market, now_ms
from collector.record import Recorder
from analytics.signals import DEFAULT_NOTIONALS, BookBoard, SignalEngine
from controllers import BY_EXCHANGE, CONTROLLERS, Controller
from controllers.deltabook import DeltaBookController
from controllers.rest import RestPollingController
from controllers.ws import WSController
from storage.writer import SQLiteWriter

log = logging.getLogger("collector.main")
_TAG = {"tag": "MAIN"}

EXIT_OK = 0
"""Every controller ran to the stop, something was stored, nothing was dropped or lost."""
EXIT_CONFIG = 2
"""A bad option, variable or market list, or a database that cannot be opened (one line on
stderr, before anything runs)."""
EXIT_FAILED = 3
"""A controller failed for good (``--restart-limit`` failures within ``--restart-window``)."""
EXIT_NOTHING_STORED = 4
"""The run stored no book, ticker or trade at all (no network, every exchange refusing)."""
EXIT_DATA_LOST = 5
"""Records were dropped (writer queue full), lost (the database still failing at the stop
deadline) or rejected (refused by the database for their values)."""


@dataclass
class CollectorConfig:
    """What to collect and where to put it (the command-line options of ``run_controller.py``).

    ``exchanges`` are lower-case names from :data:`controllers.CONTROLLERS`; ``symbols`` are base
    currencies and ``currency`` the quote currency, upper case (``None``: each exchange's own,
    KRW for the Korean exchanges and USDT for the global ones); ``symbols=None`` means every
    market each exchange lists (``--symbols ALL``); ``top`` keeps the N markets with the largest
    24-hour traded value. ``db_path`` may hold ``strftime`` fields (a new file each period,
    UTC), ``keep`` the number of such files kept (``None``: all). ``duration`` in seconds
    (``None``: until stopped); ``poll_interval``,
    ``stats_interval`` (the stats log lines) and ``status_interval`` (the ``feed_status`` table)
    in seconds; ``idle_timeout``: seconds without data before a WebSocket connection is reopened
    (``None``: each exchange's default, 60 s); ``stall_timeout``: seconds a market's updates may be
    skipped (or it may be missing from the polls) before it is resynced (``None``: 60 s);
    ``record_dir``: where raw traffic is recorded
    (``--record``; ``None``: not recorded); ``book_interval``: least seconds between two
    stored books of one market of a snapshot + delta exchange (0: after every update);
    ``markets``: per exchange (lower-case name), the exact markets to collect there, instead of
    ``symbols`` and ``currency`` (``--markets kraken:BTC/USD``); ``channels``: what to collect
    besides books (``--channels``). Signals (:mod:`analytics.signals`): ``signal_interval``
    seconds between computations (0: none), ``signal_max_age`` seconds after which a book is
    stale, ``arb_sizes`` in KRW, ``fees`` overriding the venues' declared taker fees,
    ``usd_krw`` / ``usd_krw_file`` the USD/KRW reference rate. ``stop_timeout``: seconds a
    stop may take in all (controllers, then the writer; what the database has not taken by then
    is counted as lost); ``restart_limit`` failures of a controller within ``restart_window``
    seconds leave it failed for good (:attr:`controllers.Controller.restart_limit`).
    """

    exchanges: list[str]
    symbols: list[str] | None = field(default_factory=lambda: ["BTC"])
    currency: str | None = None
    top: int | None = None
    depth: int = 15
    poll_interval: float = 0.1
    duration: float | None = None
    db_path: Path = Path("data/orderbook.db")
    keep: int | None = None
    stats_interval: float = 60.0
    status_interval: float = 5.0
    queue_size: int = 10_000
    idle_timeout: float | None = None
    stall_timeout: float | None = None
    record_dir: Path | None = None
    book_interval: float = 0.0
    markets: dict[str, list[Market]] = field(default_factory=dict)
    channels: tuple[str, ...] = ("orderbook",)
    signal_interval: float = 60.0
    signal_max_age: float = 10.0
    arb_sizes: tuple[float, ...] = DEFAULT_NOTIONALS
    fees: dict[str, float] = field(default_factory=dict)
    usd_krw: float | None = None
    usd_krw_file: Path | None = None
    stop_timeout: float = 15.0
    restart_limit: int = 5
    restart_window: float = 600.0


@dataclass
class ExchangeSummary:
    """Figures for one exchange at the end of a run (see :class:`controllers.ControllerStats`)."""

    exchange: str
    state: str
    messages: int
    books: int
    stored_books: int
    stored_rows: int
    duplicates: int
    errors: int
    dropped: int
    lost: int
    reconnects: int
    stale: int = 0
    stalls: int = 0
    tickers: int = 0
    trades: int = 0
    stored_tickers: int = 0
    stored_trades: int = 0
    rejected: int = 0
    failures: int = 0


class Collector:
    """Runs one controller thread per exchange and the shared SQLite writer.

    Args:
        config: what to collect.
        env: environment for endpoint overrides (``UPBIT_WS_URL``, ``BITHUMB_REST_URL``, …).

    Construction does no I/O. :meth:`prepare` finds the markets (asking the exchanges' REST APIs
    for ``--symbols ALL``/``--top N``) and builds the controllers; :meth:`run` (which prepares
    first if needed) blocks until ``duration`` passes or :meth:`request_stop` is called (from a
    signal handler or another thread), then stops the controllers, drains the writer and returns
    the per-exchange summary.

    Raises:
        ConfigError: an unknown exchange.
    """

    def __init__(self, config: CollectorConfig, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = dict(env)
        self.writer = SQLiteWriter(config.db_path, queue_size=config.queue_size, keep=config.keep)
        self.controllers: list[Controller] = []
        self._classes: list[type[Controller]] = []
        for name in config.exchanges:
            cls = CONTROLLERS.get(name)
            if cls is None:
                raise ConfigError(f"unknown exchange {name!r}; supported: {', '.join(sorted(CONTROLLERS))}")
            self._classes.append(cls)
        self.recorder: Recorder | None = None
        self.board = BookBoard()
        self.signals: SignalEngine | None = None
        if config.signal_interval > 0:
            fees = {exchange: v.taker_fee for exchange, v in BY_EXCHANGE.items()}
            fees.update(config.fees)
            self.signals = SignalEngine(
                self.board, self.writer.submit_signals, interval=config.signal_interval,
                max_age=config.signal_max_age, notionals=config.arb_sizes, fees=fees, venues=BY_EXCHANGE,
                usd_krw=config.usd_krw, usd_krw_file=config.usd_krw_file)
        self._prepared = False
        self._stop = threading.Event()
        self._stop_reason = "duration reached"
        self._last_messages: dict[str, int] = {}
        self._last_stats_at = time.monotonic()

    def prepare(self) -> None:
        """Resolve each exchange's markets and build its controller; idempotent.

        Raises:
            ConfigError: a market list or ticker request failed after retries, an exchange lists
                no market to collect, or a controller refused its configuration (e.g. only one of
                two GOPAX keys set).
        """
        if self._prepared:
            return
        config = self.config
        feeds: list[Controller] = []
        for name, cls in zip(config.exchanges, self._classes):
            markets = config.markets.get(name) or resolve_markets(
                cls, self.env, config.currency or cls.default_currency, config.symbols, config.top,
                wait=self._stop.wait)
            if cls.venue.usdt_krw_rate and self._wants_usdt_krw():
                usdt = Market("USDT", "KRW")
                if usdt not in markets:
                    markets = [*markets, usdt]
                    log.info("%s: KRW-USDT added: its mid is the live rate of the kimchi "
                             "premium and of KRW against USDT arbitrage", cls.exchange, extra=_TAG)
            self.controllers.append(cls(markets, **self._options(cls, config.channels)))
            others = tuple(c for c in config.channels if c != "orderbook")
            for feed in cls.feeds(others):
                feeds.append(feed(markets, **self._options(feed, others)))
        self.controllers += feeds  # after the exchanges' book feeds, which --record covers
        for controller in self.controllers:
            controller.restart_limit = config.restart_limit
            controller.restart_window = config.restart_window
        if config.record_dir is not None:
            self.recorder = Recorder(config.record_dir)
            for name, controller in zip(config.exchanges, self.controllers):
                controller.recorder = self.recorder
                self.recorder.meta(name, controller.exchange, controller.markets, controller.depth)
        self._last_messages = {c.name: 0 for c in self.controllers}
        self._prepared = True

    def _options(self, cls: type[Controller], channels: tuple[str, ...]) -> dict:
        """The keyword arguments of a ``cls`` controller of this run collecting ``channels``."""
        config = self.config
        options: dict = {"sink": self.writer.submit, "events": self.writer.submit_event,
                         "depth": config.depth, "env": self.env, "channels": channels,
                         "watcher": self.board.watch}
        if issubclass(cls, RestPollingController):
            options["poll_interval"] = config.poll_interval
        if issubclass(cls, WSController) and config.idle_timeout is not None:
            options["idle_timeout"] = config.idle_timeout
        if issubclass(cls, (WSController, RestPollingController)) and config.stall_timeout is not None:
            options["stall_timeout"] = config.stall_timeout
        if issubclass(cls, DeltaBookController):
            options["book_interval"] = config.book_interval
        return options

    def _wants_usdt_krw(self) -> bool:
        """Whether signals run and the run has a global exchange quoted in USDT next to Upbit."""
        if self.signals is None:
            return False
        return any(cls.default_currency == "USDT" and not cls.venue.derivative
                   for cls in self._classes)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask :meth:`run` to stop; safe to call from a signal handler."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    def run(self) -> list[ExchangeSummary]:
        """Collect until the duration passes or a stop is requested; return the summary.

        Raises:
            ConfigError: see :meth:`prepare`.
            StorageError: the database cannot be opened or created (before any thread starts).
        """
        self.prepare()
        self.writer.start([(c.exchange, m.base, m.quote) for c in self.controllers
                           for m in c.markets])
        if self.recorder is not None:
            self.recorder.start()
        started = time.monotonic()
        log.info("collecting %s (depth %d) into %s: %s", ",".join(self.config.exchanges),
                 self.config.depth, self.config.db_path,
                 "; ".join(f"{c.name} {len(c.markets)} market(s) quoted in "
                           f"{c.markets[0].quote}" for c in self.controllers),
                 extra=_TAG)
        for controller in self.controllers:
            controller.start()
        if self.signals is not None:
            self.signals.start()
        deadline = None if self.config.duration is None else started + self.config.duration
        next_stats = started + self.config.stats_interval
        next_status = started
        while True:
            now = time.monotonic()
            if now >= next_status:
                self.writer.submit_status(self.status_rows())
                next_status = now + self.config.status_interval
            if now >= next_stats:
                self.log_stats()
                next_stats = now + self.config.stats_interval
            timeout = min(next_stats, next_status) - now
            if deadline is not None:
                if now >= deadline:
                    break
                timeout = min(timeout, deadline - now)
            if self._stop.wait(max(0.0, timeout)):
                break
        log.info("stopping: %s", self._stop_reason, extra=_TAG)
        return self.shutdown(time.monotonic() - started)

    def shutdown(self, elapsed: float) -> list[ExchangeSummary]:
        """Stop and join the controllers, drain the writer, log and return the summary, within
        ``stop_timeout`` seconds: the controllers get at most a third of it (5 s at most), the
        writer what is left; a record the database has not taken by then is counted as lost."""
        started = time.monotonic()
        deadline = started + self.config.stop_timeout
        for controller in self.controllers:
            controller.stop()
        controllers_by = started + min(5.0, self.config.stop_timeout / 3)
        for controller in self.controllers:
            if not controller.join(max(0.0, controllers_by - time.monotonic())):
                log.error("%s controller did not stop in time", controller.name, extra=_TAG)
        if self.signals is not None:
            self.signals.stop()
        self.writer.submit_status(self.status_rows())  # the writer adds its final counts
        self.writer.stop(max(0.1, deadline - time.monotonic()))
        if self.recorder is not None:
            self.recorder.stop()
            log.info("recorded %d lines in %d file(s) in %s; dropped=%d (queue full)",
                     self.recorder.lines, len(self.recorder.files), self.recorder.folder,
                     self.recorder.dropped, extra=_TAG)
        summary = self.summary()
        for item in summary:
            log.info(
                "summary %s: messages=%d books=%d stored=%d rows=%d duplicates=%d errors=%d "
                "dropped=%d lost=%d rejected=%d reconnects=%d stale=%d stalls=%d failures=%d "
                "state=%s tickers=%d trades=%d", item.exchange, item.messages, item.books,
                item.stored_books, item.stored_rows, item.duplicates, item.errors, item.dropped,
                item.lost, item.rejected, item.reconnects, item.stale, item.stalls, item.failures,
                item.state, item.stored_tickers, item.stored_trades,
                extra=_TAG,
            )
        log.info("stopped after %.1f s (the stop took %.1f s)", elapsed,
                 time.monotonic() - started, extra=_TAG)
        return summary

    @staticmethod
    def exit_status(summary: list[ExchangeSummary]) -> tuple[int, str]:
        """The process exit status of a run that ended with ``summary``, and why: the first
        that applies of :data:`EXIT_FAILED`, :data:`EXIT_DATA_LOST`, :data:`EXIT_NOTHING_STORED`,
        else :data:`EXIT_OK`."""
        failed = [item.exchange for item in summary if item.state == "failed"]
        if failed:
            return EXIT_FAILED, f"controller(s) failed for good: {', '.join(failed)}"
        missing = {item.exchange: (item.dropped, item.lost, item.rejected) for item in summary
                   if item.dropped or item.lost or item.rejected}
        if missing:
            return EXIT_DATA_LOST, "records not stored: " + "; ".join(
                f"{ex} dropped={d} lost={l} rejected={r}" for ex, (d, l, r) in missing.items())
        if not any(item.stored_books or item.stored_tickers or item.stored_trades
                   for item in summary):
            return EXIT_NOTHING_STORED, "nothing was stored"
        return EXIT_OK, "ok"

    def summary(self) -> list[ExchangeSummary]:
        """Current figures per exchange."""
        writer = self.writer.stats
        return [
            ExchangeSummary(
                exchange=c.name, state=c.state, messages=c.stats.messages, books=c.stats.books,
                stored_books=writer.stored_books[c.name], stored_rows=writer.stored_rows[c.name],
                duplicates=c.stats.duplicates, errors=c.stats.errors,
                dropped=writer.dropped[c.name], lost=writer.lost[c.name],
                rejected=writer.rejected[c.name], failures=c.failures,
                reconnects=c.stats.reconnects, stale=c.stats.stale, stalls=c.stats.stalls,
                tickers=c.stats.tickers, trades=c.stats.trades,
                # an exchange's tickers and trades count for the feed that collects them
                stored_tickers=writer.stored_tickers[c.exchange] if "ticker" in c.channels else 0,
                stored_trades=writer.stored_trades[c.exchange] if "trade" in c.channels else 0,
            )
            for c in self.controllers
        ]

    def status_rows(self) -> list[dict]:
        """One :meth:`Controller.status` per controller, for ``feed_status``."""
        return [c.status() for c in self.controllers]

    def log_stats(self) -> None:
        """Log one stats line per exchange: state, time connected, counters, message rate, ages
        of the last message and of the last data (a message with a book)."""
        now = time.monotonic()
        interval = max(now - self._last_stats_at, 1e-9)
        self._last_stats_at = now
        for item, controller in zip(self.summary(), self.controllers):
            rate = (item.messages - self._last_messages[item.exchange]) / interval
            self._last_messages[item.exchange] = item.messages
            stats = controller.stats
            ages = ["never" if t is None else f"{now - t:.1f}s"
                    for t in (stats.last_message_at, stats.last_data_at)]
            since = controller.connected_since
            up = "-" if since is None else f"{(now_ms() - since) / 1000:.0f}s"
            controller.log.info(
                "stats: state=%s up=%s messages=%d books=%d stored=%d duplicates=%d errors=%d "
                "dropped=%d reconnects=%d stalls=%d stale=%d rate=%.1f msg/s last_message_age=%s "
                "last_data_age=%s queue=%d",
                item.state, up, item.messages, item.books, item.stored_books, item.duplicates,
                item.errors, item.dropped, item.reconnects, item.stalls, item.stale, rate, *ages,
                self.writer.pending,
            )
