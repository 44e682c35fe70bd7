"""The shared SQLite writer: one thread, one connection, batched inserts.

Controllers call :meth:`SQLiteWriter.submit` (books, tickers, trades) and :meth:`SQLiteWriter.submit_event` (gap
markers) from their own threads; neither blocks. Books wait in a bounded queue; the writer thread
takes everything that is waiting (up to ``batch_size`` books), with every event and the latest
``feed_status`` rows, and writes them in one transaction.

**Order.** A book's ``snapshot_id`` is fixed when it is submitted (the database's largest id + 1 +
its place in the submit order), and an event records the ``snapshot_id`` the next submitted book
gets; so "books of this market after this event" is exact however the writer batches.

**Tickers and trades** share the books' queue (and its bound); a trade already stored (same
exchange, market and trade id) is ignored, so a reconnect that repeats recent trades stores them
once. **Signal rows** (:meth:`SQLiteWriter.submit_signals`: kimchi premium, arbitrage) replace
the row of the same minute and key.

**Stress.** A failing write (``SQLITE_BUSY`` from another process holding the lock, ``SQLITE_FULL``
on a full disk) is retried with the same batch, with growing waits (capped at 5 s), logged at
ERROR on the first attempt and every tenth. Meanwhile at most ``queue_size`` books wait in memory;
a book submitted to a full queue is dropped, counted per exchange, logged, and recorded as a
``dropped`` event of its market once the database takes writes again. On :meth:`SQLiteWriter.stop`
the thread drains the queue and commits before it exits; a batch the database still refuses after
``stop_retry_seconds`` is counted as ``lost`` and logged — never silently.
"""

from __future__ import annotations

import collections
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from core.errors import StorageError
from core.model import FeedEvent, OrderBookSnapshot, Record, Ticker, Trade, now_ms
from storage.schema import (ARBITRAGE_COLUMNS, PREMIUM_COLUMNS, STATUS_COLUMNS, TICKER_COLUMNS,
                            TRADE_COLUMNS, open_database)

INSERT_BOOK = "INSERT INTO book (snapshot_id, market_id, timestamp, received_at) VALUES (?, ?, ?, ?)"
INSERT_LEVEL = "INSERT INTO book_level (snapshot_id, side, level, price, volume) VALUES (?, ?, ?, ?, ?)"
INSERT_EVENT = (
    "INSERT INTO feed_event (exchange, symbol, currency, timestamp, kind, detail, next_snapshot_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _insert(verb: str, table: str, columns: Sequence[str]) -> str:
    """``<verb> INTO <table> (<columns>) VALUES (?, …)``."""
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


REPLACE_STATUS = _insert("INSERT OR REPLACE", "feed_status", STATUS_COLUMNS)
INSERT_TICKER = _insert("INSERT", "ticker", TICKER_COLUMNS)
INSERT_TRADE = _insert("INSERT OR IGNORE", "trade", TRADE_COLUMNS)
SIGNAL_TABLES = {
    "kimchi_premium": _insert("INSERT OR REPLACE", "kimchi_premium", PREMIUM_COLUMNS),
    "arbitrage": _insert("INSERT OR REPLACE", "arbitrage", ARBITRAGE_COLUMNS),
}
"""The statement storing the rows of each signal table (a row is a tuple in column order)."""
NO_PAGE_LIMIT = 4294967294
"""SQLite's default ``max_page_count``."""

log = logging.getLogger("collector.writer")
_TAG = {"tag": "WRITER"}


@dataclass
class WriterStats:
    """Counters of the writer, per exchange name (``Counter`` objects).

    ``stored_books``/``stored_rows``: committed to the database. ``dropped``: refused because the
    queue was full. ``lost``: could not be written before shutdown (the database kept failing).
    ``stored_events``/``lost_events``: ``feed_event`` rows; ``write_errors``: failed attempts.
    ``stored_tickers``/``stored_trades``: rows committed (a trade already stored is not counted
    again); ``stored_signals``: signal rows per table.
    """

    stored_books: Counter = field(default_factory=Counter)
    stored_rows: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    lost: Counter = field(default_factory=Counter)
    stored_tickers: Counter = field(default_factory=Counter)
    stored_trades: Counter = field(default_factory=Counter)
    stored_signals: Counter = field(default_factory=Counter)
    stored_events: int = 0
    lost_events: int = 0
    batches: int = 0
    write_errors: int = 0


@dataclass
class _Drops:
    """Books of one market dropped since the last write: a pending ``dropped`` event."""

    count: int
    first_at: int
    last_at: int
    next_seq: int


class SQLiteWriter:
    """Owns the only connection to the SQLite file and stores what controllers submit.

    Args:
        path: the database file; created with its folder and schema if missing.
        queue_size: books that may wait to be written; beyond it ``submit`` drops and counts.
        batch_size: the most books written in one transaction.
        busy_timeout_ms: how long SQLite waits on a lock held by another connection before an
            attempt fails (and is retried).
        retry_delay: seconds before retrying a failed batch (doubles, capped at 5 s).
        stop_retry_seconds: how long a failing batch is retried once stop was requested, before
            its books are logged as lost.
        max_events: events that may wait to be written; beyond it they are counted as lost.

    Raises:
        StorageError (from ``start``): the database cannot be opened or created.
    """

    def __init__(
        self,
        path: Path,
        *,
        queue_size: int = 10_000,
        batch_size: int = 1_000,
        busy_timeout_ms: int = 5_000,
        retry_delay: float = 0.5,
        stop_retry_seconds: float = 10.0,
        max_events: int = 100_000,
    ) -> None:
        self.path = Path(path)
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.busy_timeout_ms = busy_timeout_ms
        self.retry_delay = retry_delay
        self.stop_retry_seconds = stop_retry_seconds
        self.max_events = max_events
        self.stats = WriterStats()
        self._queue: queue.Queue[tuple[int, Record]] = queue.Queue(maxsize=queue_size)
        self._signals: collections.deque[tuple[str, tuple]] = collections.deque()
        self._seq = 0  # submit order of the next book; snapshot_id = base + seq
        self._events: collections.deque[tuple[int, FeedEvent]] = collections.deque()
        self._drops: dict[tuple[str, str, str], _Drops] = {}
        self._status: list[dict] | None = None
        self._last_status: list[dict] | None = None
        self._max_pages: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._drop_logged_at: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._market_ids: dict[tuple[str, str, str], int] = {}

    # --- called from controller threads -------------------------------------------------------

    def submit(self, book: Record) -> bool:
        """Queue a book (or a :class:`~core.model.Ticker` or
        :class:`~core.model.Trade`) for writing; ``False`` (dropped, counted, logged, and
        recorded as a ``dropped`` event) if the queue is full."""
        with self._lock:
            is_book = type(book) is OrderBookSnapshot
            try:
                self._queue.put_nowait((self._seq if is_book else -1, book))
            except queue.Full:
                self._count_drop(book)
                return False
            if is_book:
                self._seq += 1
            return True

    def submit_signals(self, table: str, rows: Sequence[tuple]) -> None:
        """Store ``rows`` (tuples in the column order of ``table``, one of
        :data:`SIGNAL_TABLES`) at the next write, replacing rows with the same key.

        Raises:
            ValueError: an unknown table.
        """
        if table not in SIGNAL_TABLES:
            raise ValueError(f"unknown signal table {table!r}")
        with self._lock:
            self._signals.extend((table, tuple(row)) for row in rows)

    def submit_event(self, event: FeedEvent) -> None:
        """Queue a ``feed_event`` row; it records the ``snapshot_id`` of the next book submitted."""
        with self._lock:
            if len(self._events) >= self.max_events:
                self.stats.lost_events += 1
                if self.stats.lost_events == 1:
                    log.error("%d events waiting: event not stored: %s", self.max_events, event,
                              extra=_TAG)
                return
            self._events.append((self._seq, event))

    def submit_status(self, rows: Sequence[dict]) -> None:
        """Replace the ``feed_status`` rows at the next write; only the latest rows submitted
        are kept, and written once more when the writer stops (with its final counts).

        Each row is a dict with the keys of :data:`storage.schema.STATUS_COLUMNS` except
        ``stored_books``, ``stored_rows``, ``dropped``, ``lost`` and ``updated_at``, which the
        writer fills in from its own counters at write time.
        """
        with self._lock:
            self._status = list(rows)
            self._last_status = self._status

    def set_max_page_count(self, pages: int | None) -> None:
        """Cap the database at ``pages`` pages from the next write on (``None``: no cap). A write
        beyond the cap fails like a full disk (``SQLITE_FULL``); used to test that path."""
        self._max_pages = NO_PAGE_LIMIT if pages is None else pages

    @property
    def pending(self) -> int:
        """Books waiting in the queue."""
        return self._queue.qsize()

    def _count_drop(self, book: OrderBookSnapshot) -> None:
        """Called with the lock held."""
        self.stats.dropped[book.exchange] += 1
        now = now_ms()
        key = (book.exchange, book.base, book.quote)
        drops = self._drops.get(key)
        if drops is None:
            self._drops[key] = _Drops(1, now, now, self._seq)
        else:
            drops.count += 1
            drops.last_at = now
        last = self._drop_logged_at.get(book.exchange, 0.0)
        if time.monotonic() - last >= 10.0:
            self._drop_logged_at[book.exchange] = time.monotonic()
            log.error("queue full (%d books waiting): dropped a %s book; %d dropped so far for %s",
                      self.queue_size, book.tag, self.stats.dropped[book.exchange],
                      book.exchange, extra=_TAG)

    def _take_extras(self) -> tuple[list[tuple[int, FeedEvent]], list[dict] | None,
                                    list[tuple[str, tuple]]]:
        """Everything waiting besides the queue: events (pending drops turned into ``dropped``
        events), the latest status rows and signal rows."""
        with self._lock:
            signals = list(self._signals)
            self._signals.clear()
            events = list(self._events)
            self._events.clear()
            for (exchange, symbol, currency), d in self._drops.items():
                events.append((d.next_seq, FeedEvent(
                    exchange, symbol, currency, d.first_at, "dropped",
                    f"{d.count} book(s) dropped between {d.first_at} and {d.last_at} "
                    f"(writer queue full, {self.queue_size} books waiting)")))
            self._drops.clear()
            status, self._status = self._status, None
        return events, status, signals

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the database (creating the schema) and start the writer thread.

        Raises:
            StorageError: the database cannot be opened or created.
        """
        conn = open_database(self.path, busy_timeout_ms=self.busy_timeout_ms, check_same_thread=False)
        try:
            base = (conn.execute("SELECT MAX(snapshot_id) FROM book").fetchone()[0] or 0) + 1
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot read database {self.path}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, args=(conn, base), name="sqlite-writer",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> bool:
        """Write everything queued, commit, close. ``True`` if the thread finished in time."""
        self._stopping.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("writer did not finish within %.0f s; %d books still queued",
                      timeout, self.pending, extra=_TAG)
            return False
        return True

    # --- the writer thread --------------------------------------------------------------------

    def _has_extras(self) -> bool:
        with self._lock:
            return bool(self._events or self._drops or self._status or self._signals)

    def _run(self, conn: sqlite3.Connection, base: int) -> None:
        try:
            while True:
                batch: list[tuple[int, Record]] = []
                try:
                    batch.append(self._queue.get(timeout=0.2))
                except queue.Empty:
                    if not self._has_extras():
                        if self._stopping.is_set():
                            if self._last_status:  # the final counts
                                self._status = self._last_status
                                self._write(conn, [], base)
                            break
                        continue
                while batch and len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._write(conn, batch, base)
        except Exception:  # a bug here must be loud: nothing is stored after it
            log.exception("writer thread failed; %d books still queued", self.pending, extra=_TAG)
            raise
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, queued: list[tuple[int, Record]],
               base: int) -> None:
        """Write ``queued`` with the waiting events, status and signals in one transaction,
        retrying until it commits (or, once stopping, until ``stop_retry_seconds`` pass: then
        count it lost)."""
        rows = []
        batch: list[tuple[int, OrderBookSnapshot]] = []
        tickers: list[Ticker] = []
        trades: list[Trade] = []
        for seq, item in queued:
            kind = type(item)
            if kind is OrderBookSnapshot:
                batch.append((seq, item))
                sid = base + seq
                rows.extend((sid, 0, i, price, volume) for i, (price, volume) in enumerate(item.bids))
                rows.extend((sid, 1, i, price, volume) for i, (price, volume) in enumerate(item.asks))
            elif kind is Trade:
                trades.append(item)
            else:
                tickers.append(item)
        events, status, signals = self._take_extras()
        new_trades: Counter = Counter()
        attempt = 0
        give_up_at = None
        while True:
            if self._max_pages is not None:
                conn.execute(f"PRAGMA max_page_count = {int(self._max_pages)}")
                self._max_pages = None
            try:
                conn.execute("BEGIN IMMEDIATE")
                ids = self._market_ids_for(conn, batch)
                conn.executemany(INSERT_BOOK, [
                    (base + seq, ids[(b.exchange, b.base, b.quote)], b.timestamp, b.received_at)
                    for seq, b in batch])
                conn.executemany(INSERT_LEVEL, rows)
                conn.executemany(INSERT_TICKER, tickers)
                new_trades.clear()
                for exchange, rows_of in _by_exchange(trades).items():
                    before = conn.total_changes  # a trade already stored is not a change
                    conn.executemany(INSERT_TRADE, rows_of)
                    new_trades[exchange] = conn.total_changes - before
                for table, row in signals:
                    conn.execute(SIGNAL_TABLES[table], row)
                conn.executemany(INSERT_EVENT, [
                    (e.exchange, e.base, e.quote, e.timestamp, e.kind, e.detail, base + seq)
                    for seq, e in events])
                if status:
                    conn.executemany(REPLACE_STATUS, self._status_rows(status, batch))
                conn.execute("COMMIT")
                self._market_ids = ids
                break
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                attempt += 1
                self.stats.write_errors += 1
                now = time.monotonic()
                if self._stopping.is_set() and give_up_at is None:
                    give_up_at = now + self.stop_retry_seconds
                if give_up_at is not None and now >= give_up_at:
                    self._count_lost(queued, len(events), exc)
                    return
                if attempt == 1 or attempt % 10 == 0:
                    log.error("cannot write %d books (%d rows), %d tickers, %d trades and %d "
                              "events, attempt %d, retrying; %d waiting in the queue (at most "
                              "%d): %s", len(batch), len(rows), len(tickers), len(trades),
                              len(events), attempt, self.pending,
                              self.queue_size, exc, extra=_TAG)
                time.sleep(min(5.0, self.retry_delay * 2 ** min(attempt - 1, 4)))
        if attempt:
            log.warning("wrote %d books after %d failed attempts", len(batch), attempt, extra=_TAG)
        self.stats.batches += 1
        self.stats.stored_events += len(events)
        self.stats.stored_trades.update(new_trades)
        for ticker in tickers:
            self.stats.stored_tickers[ticker.exchange] += 1
        for table, _ in signals:
            self.stats.stored_signals[table] += 1
        for _, book in batch:
            self.stats.stored_books[book.exchange] += 1
            self.stats.stored_rows[book.exchange] += len(book.bids) + len(book.asks)

    def _market_ids_for(self, conn: sqlite3.Connection,
                        batch: list[tuple[int, OrderBookSnapshot]]) -> dict[tuple[str, str, str], int]:
        """``market_id`` of every market in ``batch``, adding missing ``market`` rows inside the
        open transaction; the cache is only updated after the commit (a rollback undoes them)."""
        ids = self._market_ids
        for _, book in batch:
            key = (book.exchange, book.base, book.quote)
            if key not in ids:
                ids = dict(ids) if ids is self._market_ids else ids
                conn.execute("INSERT OR IGNORE INTO market (exchange, symbol, currency) VALUES (?, ?, ?)", key)
                ids[key] = conn.execute("SELECT market_id FROM market WHERE exchange = ? AND symbol = ?"
                                        " AND currency = ?", key).fetchone()[0]
        return ids

    def _status_rows(self, status: list[dict], batch: list[tuple[int, OrderBookSnapshot]]
                     ) -> list[tuple]:
        """``feed_status`` rows with the writer's counts as they will be after ``batch``."""
        books: Counter = Counter()
        rows: Counter = Counter()
        for _, book in batch:
            books[book.exchange] += 1
            rows[book.exchange] += len(book.bids) + len(book.asks)
        st, now = self.stats, now_ms()
        result = []
        for row in status:
            ex = row["exchange"]
            full = dict(row, stored_books=st.stored_books[ex] + books[ex],
                        stored_rows=st.stored_rows[ex] + rows[ex], dropped=st.dropped[ex],
                        lost=st.lost[ex], updated_at=now)
            result.append(tuple(full[column] for column in STATUS_COLUMNS))
        return result

    def _count_lost(self, batch: list[tuple[int, Record]], events: int,
                    exc: Exception) -> None:
        lost = Counter(book.exchange for _, book in batch)
        self.stats.lost.update(lost)
        self.stats.lost_events += events
        log.error("database still failing at shutdown (%s): %d books NOT stored (tickers and "
                  "trades among them): %s (and %d events)", exc, len(batch), dict(lost), events, extra=_TAG)


def _by_exchange(trades: list[Trade]) -> dict[str, list[Trade]]:
    """``trades`` grouped by exchange, in their order."""
    groups: dict[str, list[Trade]] = {}
    for trade in trades:
        groups.setdefault(trade.exchange, []).append(trade)
    return groups
