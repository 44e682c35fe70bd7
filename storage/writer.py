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
the thread drains the queue and commits before it exits, within one deadline: if the database
still refuses writes when it passes, the batch in hand, everything still queued and any record
submitted later are counted as ``lost`` and logged — never silently.

**Bad values.** A record the database refuses for its values (:data:`DATA_ERRORS`: a NOT NULL or
CHECK violation such as a NaN stored as NULL, a number SQLite cannot hold) does not block the
others: the transaction is written again one record at a time, each in a savepoint, and the
refused record is set aside, logged with its market and counted as ``rejected``.

**Runs.** The first transaction writes this run's ``run`` row and, for every earlier run not
stopped cleanly, a ``restarted`` event per market; the last one of a clean stop marks the row
clean.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from core.errors import StorageError
from core.model import FeedEvent, OrderBookSnapshot, Record, Trade, market_tag, now_ms
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
INSERT_TRADE = _insert("INSERT", "trade", TRADE_COLUMNS) + " ON CONFLICT DO NOTHING"
"""A trade already stored is skipped; a NULL where none may be still fails (and is rejected)."""
SIGNAL_TABLES = {
    "kimchi_premium": _insert("INSERT OR REPLACE", "kimchi_premium", PREMIUM_COLUMNS),
    "arbitrage": _insert("INSERT OR REPLACE", "arbitrage", ARBITRAGE_COLUMNS),
}
"""The statement storing the rows of each signal table (a row is a tuple in column order)."""
NO_PAGE_LIMIT = 4294967294
"""SQLite's default ``max_page_count``."""

DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError,
               sqlite3.ProgrammingError, OverflowError, TypeError, ValueError)
"""Errors of one record's values (a NULL where none may be, a NaN stored as NULL, a number
SQLite cannot hold, a value it cannot bind), as opposed to the database's state."""

log = logging.getLogger("collector.writer")
_TAG = {"tag": "WRITER"}


@dataclass
class WriterStats:
    """Counters of the writer, per exchange name (``Counter`` objects).

    ``stored_books``/``stored_rows``: committed to the database. ``dropped``: refused because the
    queue was full. ``lost``: books, tickers and trades not written because the stop deadline
    passed while the database kept failing (the batch in hand and everything still queued), or
    submitted after the writer ended. ``rejected``: records the database refused for their data
    (set aside, the rest of their batch stored).
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
    rejected: Counter = field(default_factory=Counter)
    stored_events: int = 0
    lost_events: int = 0
    batches: int = 0
    write_errors: int = 0


@dataclass
class _Written:
    """What one transaction stored (and set aside), counted once it commits."""

    books: list[OrderBookSnapshot] = field(default_factory=list)
    tickers: Counter = field(default_factory=Counter)
    trades: Counter = field(default_factory=Counter)
    rejected: list[tuple[Record, Exception]] = field(default_factory=list)
    refused: list[tuple[tuple, Exception]] = field(default_factory=list)
    market_ids: dict[tuple[str, str, str], int] = field(default_factory=dict)
    run_id: int | None = None
    unclean_runs: int = 0
    clean: bool = False


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
        path: the database file; created with its folder and schema if missing. A path with
            ``strftime`` fields (``data/orderbook-%Y%m%d.db``) rotates: the writer moves to a
            new file when the formatted name (UTC) changes, between two transactions (the old
            file's run is closed as clean; snapshot ids go on increasing across files).
        keep: with a rotating ``path``, how many files matching it to keep (the newest by
            name, the current one included); older ones are deleted at each rotation. ``None``:
            all kept.
        clock: seconds since the epoch, for the rotating name (tests pass their own).
        queue_size: books that may wait to be written; beyond it ``submit`` drops and counts.
        batch_size: the most books written in one transaction.
        busy_timeout_ms: how long SQLite waits on a lock held by another connection before an
            attempt fails (and is retried).
        retry_delay: seconds before retrying a failed batch (doubles, capped at 5 s).
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
        max_events: int = 100_000,
        keep: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pattern = Path(path)
        self.keep = keep
        self._clock = clock
        self.path = dated_path(self.pattern, clock())
        """The file written now (``pattern`` formatted for the current UTC time)."""
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.busy_timeout_ms = busy_timeout_ms
        self.retry_delay = retry_delay
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
        self._deadline: float | None = None  # monotonic time the stop gives up at
        self._closed = False  # the thread ended: a record submitted now is counted lost
        self._finishing = False  # the last write of a stop: marks the run clean
        self._run_markets: list[tuple[str, str, str]] | None = None
        self._run_id: int | None = None
        self._run_closed = False
        self.unclean_runs = 0
        """Earlier runs on this file found not stopped cleanly (each gave ``restarted`` events)."""

    # --- called from controller threads -------------------------------------------------------

    def submit(self, book: Record) -> bool:
        """Queue a book (or a :class:`~core.model.Ticker` or
        :class:`~core.model.Trade`) for writing; ``False`` (dropped, counted, logged, and
        recorded as a ``dropped`` event) if the queue is full. Once the writer has ended
        (stopped, or given up at the stop deadline) a record is counted as ``lost``."""
        with self._lock:
            is_book = type(book) is OrderBookSnapshot
            if self._closed:  # after the writer ended: nothing will store it
                self.stats.lost[book.exchange] += 1
                return True
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

    def start(self, markets: Sequence[tuple[str, str, str]] = ()) -> None:
        """Open the database (creating the schema) and start the writer thread.

        ``markets`` (exchange, base, quote) are this run's, kept in its ``run`` row: should the
        run end without a clean stop (killed), the next start records a ``restarted`` event
        for each of them. At its first write the thread also records those events for every
        earlier run of the file that did not stop cleanly.

        Raises:
            StorageError: the database cannot be opened or created.
        """
        conn = open_database(self.path, busy_timeout_ms=self.busy_timeout_ms, check_same_thread=False)
        try:
            base = (conn.execute("SELECT MAX(snapshot_id) FROM book").fetchone()[0] or 0) + 1
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot read database {self.path}: {exc}") from exc
        self._run_markets = list(dict.fromkeys(markets))
        self._thread = threading.Thread(target=self._run, args=(conn, base), name="sqlite-writer",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> bool:
        """Write everything queued, commit, close, within ``timeout`` seconds: ``True`` if the
        thread finished in time. If the database still refuses writes when ``timeout`` has
        passed, the batch in hand and everything still queued are counted as ``lost`` (and
        logged); a record submitted after that is counted lost at once."""
        if self._deadline is None:
            self._deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._thread is None:
            return True
        # an attempt's busy wait ends with the deadline; a little grace for the last one
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 1.0)
        if self._thread.is_alive():
            log.error("writer did not finish within %.0f s; %d records still queued",
                      timeout, self.pending, extra=_TAG)
            self._count_lost([], 0, "writer did not finish in time")
            return False
        return True

    # --- the writer thread --------------------------------------------------------------------

    def _has_extras(self) -> bool:
        with self._lock:
            return bool(self._events or self._drops or self._status or self._signals
                        or (self._run_markets is not None and self._run_id is None))

    def _run(self, conn: sqlite3.Connection, base: int) -> None:
        try:
            while True:
                batch: list[tuple[int, Record]] = []
                try:
                    batch.append(self._queue.get(timeout=0.2))
                except queue.Empty:
                    if not self._has_extras():
                        if self._stopping.is_set():
                            self._finishing = True
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
                conn = self._rotated(conn)
                if not self._write(conn, batch, base):
                    break  # the stop deadline passed: all counted lost
        except Exception as exc:  # a bug here must be loud: nothing is stored after it
            log.exception("writer thread failed; %d records still queued", self.pending, extra=_TAG)
            self._count_lost([], 0, f"writer thread failed: {exc!r}")
            raise
        finally:
            with self._lock:
                self._closed = True
            conn.close()
            if self._stopping.is_set() and not self._run_closed:
                log.error("the run could not be marked as stopped cleanly; the next start will "
                          "record a restarted event for its markets", extra=_TAG)

    def _rotated(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """The connection to write the next transaction to: a new file's when the rotating name
        changed (the old file's run closed as clean, files beyond ``keep`` deleted)."""
        path = dated_path(self.pattern, self._clock())
        if path == self.path:
            return conn
        try:
            fresh = open_database(path, busy_timeout_ms=self.busy_timeout_ms,
                                  check_same_thread=False)
        except StorageError as exc:  # keep writing the old file; try again next batch
            log.error("cannot rotate to %s: %s; still writing %s", path, exc, self.path, extra=_TAG)
            return conn
        if self._run_id is not None:
            try:
                with conn:
                    conn.execute("UPDATE run SET ended_at = ?, clean = 1 WHERE run_id = ?",
                                 (now_ms(), self._run_id))
            except sqlite3.Error as exc:
                log.error("could not close the run of %s (%s): a later start on that file will "
                          "record restarted events", self.path, exc, extra=_TAG)
        conn.close()
        log.info("rotated from %s to %s", self.path, path, extra=_TAG)
        self.path = path
        self._market_ids.clear()
        self._run_id, self._run_closed = None, False
        if self._last_status:  # the new file's feed_status starts with the current counts
            with self._lock:
                self._status = self._status or self._last_status
        if self.keep:
            self._prune(path)
        return fresh

    def _prune(self, current: Path) -> None:
        """Delete the rotated files older than the newest ``keep`` (never ``current``); a file
        that cannot be deleted is logged and left."""
        for old in rotated_files(self.pattern)[:-self.keep]:
            if old == current:
                continue
            try:
                for part in (old, *(old.with_name(old.name + end) for end in ("-wal", "-shm"))):
                    part.unlink(missing_ok=True)
            except OSError as exc:
                log.error("could not delete %s (--keep %d): %s", old, self.keep, exc, extra=_TAG)
                continue
            log.info("deleted %s (--keep %d)", old, self.keep, extra=_TAG)

    def _begin_run(self, conn: sqlite3.Connection, base: int, done: _Written) -> None:
        """At the first write: ``restarted`` events for the markets of every earlier run not
        stopped cleanly (marked unclean now), and this run's ``run`` row (inside the caller's
        transaction)."""
        if self._run_markets is None or self._run_id is not None:
            return
        now = now_ms()
        unclean = conn.execute("SELECT run_id, started_at, pid, markets FROM run WHERE clean IS NULL"
                               " ORDER BY run_id").fetchall()
        for run_id, started_at, pid, markets in unclean:
            detail = (f"the previous run (pid {pid}, started at {started_at}) ended without a "
                      f"clean stop: books between its last stored one and this start are missing")
            conn.executemany(INSERT_EVENT, [(exchange, symbol, currency, now, "restarted", detail, base)
                                            for exchange, symbol, currency in json.loads(markets)])
            conn.execute("UPDATE run SET clean = 0 WHERE run_id = ?", (run_id,))
        cursor = conn.execute("INSERT INTO run (started_at, pid, markets) VALUES (?, ?, ?)",
                              (now, os.getpid(), json.dumps(self._run_markets)))
        done.run_id = cursor.lastrowid
        done.unclean_runs = len(unclean)
        if unclean:
            log.warning("%d earlier run(s) of %s did not stop cleanly: restarted events recorded "
                        "for their markets", len(unclean), self.path, extra=_TAG)

    def _write(self, conn: sqlite3.Connection, queued: list[tuple[int, Record]],
               base: int) -> bool:
        """Write ``queued`` with the waiting events, status and signals in one transaction,
        retrying until it commits; ``False`` when it gave up because the stop deadline passed
        (everything it held is then counted as lost).

        A record the database refuses for its data (a NOT NULL or CHECK violation, a value
        SQLite cannot bind) does not hold the others back: the batch is written again one
        record at a time, and the refused records are set aside, logged and counted as
        ``rejected``. Operational errors (locked, disk full) retry the whole batch."""
        events, status, signals = self._take_extras()
        careful = False
        attempt = 0
        while True:
            self._apply_limits(conn)
            try:
                conn.execute("BEGIN IMMEDIATE")
                done = self._put(conn, base, queued, events, signals, status, careful)
                conn.execute("COMMIT")
                break
            except DATA_ERRORS as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if careful:  # refused outside any one record: nothing can be set aside
                    raise
                careful = True
                log.warning("the database refused a record of this batch (%s: %s); writing its "
                            "%d records one at a time", type(exc).__name__, exc, len(queued),
                            extra=_TAG)
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                attempt += 1
                self.stats.write_errors += 1
                left = self._time_left()
                if left is not None and left <= 0:
                    self._count_lost(queued, len(events), exc)
                    return False
                if attempt == 1 or attempt % 10 == 0:
                    books = sum(type(item) is OrderBookSnapshot for _, item in queued)
                    log.error("cannot write %d books, %d tickers and trades and %d events, attempt "
                              "%d, retrying; %d waiting in the queue (at most %d): %s", books,
                              len(queued) - books, len(events), attempt, self.pending,
                              self.queue_size, exc, extra=_TAG)
                delay = min(5.0, self.retry_delay * 2 ** min(attempt - 1, 4))
                if left is None:  # a stop asked meanwhile shortens the wait
                    self._stopping.wait(delay)
                    left = self._time_left()
                time.sleep(max(0.0, min(delay, left if left is not None else delay)))
        if attempt:
            log.warning("wrote %d records after %d failed attempts", len(queued), attempt, extra=_TAG)
        self._count_stored(done, events, signals)
        return True

    def _time_left(self) -> float | None:
        """Seconds until the stop deadline (``None`` while not stopping)."""
        deadline = self._deadline
        return None if deadline is None else deadline - time.monotonic()

    def _apply_limits(self, conn: sqlite3.Connection) -> None:
        """The page cap asked by :meth:`set_max_page_count`, and, once stopping, a busy timeout
        that ends with the stop deadline (so one attempt never outlasts it)."""
        if self._max_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {int(self._max_pages)}")
            self._max_pages = None
        left = self._time_left()
        if left is not None:
            ms = max(0, min(self.busy_timeout_ms, int(left * 1000)))
            conn.execute(f"PRAGMA busy_timeout = {ms}")

    def _put(self, conn: sqlite3.Connection, base: int, queued: list[tuple[int, Record]],
             events: list[tuple[int, FeedEvent]], signals: list[tuple[str, tuple]],
             status: list[dict] | None, careful: bool) -> _Written:
        """The inserts of one transaction (opened by the caller). ``careful``: each record in a
        savepoint of its own, a record refused for its data rolled back and set aside; else all
        at once (a data error then aborts the whole transaction)."""
        done = _Written()
        ids = dict(self._market_ids)
        self._begin_run(conn, base, done)
        for seq, item in queued:
            if careful:
                conn.execute("SAVEPOINT record")
            try:
                self._put_record(conn, base, seq, item, ids, done)
            except DATA_ERRORS as exc:
                if not careful:
                    raise
                conn.execute("ROLLBACK TO record")
                done.rejected.append((item, exc))
            if careful:
                conn.execute("RELEASE record")
        for table, row in signals:
            self._careful(conn, careful, done.refused, ("signal", table, row),
                          lambda: conn.execute(SIGNAL_TABLES[table], row))
        for seq, e in events:
            self._careful(conn, careful, done.refused, ("event", e), lambda: conn.execute(
                INSERT_EVENT, (e.exchange, e.base, e.quote, e.timestamp, e.kind, e.detail, base + seq)))
        if status:
            rows = self._status_rows(status, done)
            self._careful(conn, careful, done.refused, ("status",),
                          lambda: conn.executemany(REPLACE_STATUS, rows))
        run_id = done.run_id or self._run_id
        if self._finishing and run_id is not None:
            conn.execute("UPDATE run SET ended_at = ?, clean = 1 WHERE run_id = ?", (now_ms(), run_id))
            done.clean = True
        done.market_ids = ids
        return done

    @staticmethod
    def _careful(conn: sqlite3.Connection, careful: bool, refused: list, what: tuple,
                 insert) -> None:
        """Run ``insert``; when ``careful``, in a savepoint, a data error rolled back and
        ``what`` appended to ``refused``."""
        if not careful:
            insert()
            return
        conn.execute("SAVEPOINT row")
        try:
            insert()
        except DATA_ERRORS as exc:
            conn.execute("ROLLBACK TO row")
            refused.append((what, exc))
        conn.execute("RELEASE row")

    def _put_record(self, conn: sqlite3.Connection, base: int, seq: int, item: Record,
                    ids: dict[tuple[str, str, str], int], done: _Written) -> None:
        """Insert one book, ticker or trade; ``ids`` gains its market if new (and loses it again
        if the insert fails)."""
        kind = type(item)
        if kind is OrderBookSnapshot:
            key = (item.exchange, item.base, item.quote)
            added = key not in ids
            market_id = ids[key] if not added else self._market_id(conn, key)
            sid = base + seq
            conn.execute(INSERT_BOOK, (sid, market_id, item.timestamp, item.received_at))
            conn.executemany(INSERT_LEVEL, [
                *((sid, 0, i, price, volume) for i, (price, volume) in enumerate(item.bids)),
                *((sid, 1, i, price, volume) for i, (price, volume) in enumerate(item.asks))])
            if added:
                ids[key] = market_id
            done.books.append(item)
        elif kind is Trade:
            before = conn.total_changes  # a trade already stored is not a change
            conn.execute(INSERT_TRADE, item)
            if conn.total_changes != before:
                done.trades[item.exchange] += 1
        else:
            conn.execute(INSERT_TICKER, item)
            done.tickers[item.exchange] += 1

    @staticmethod
    def _market_id(conn: sqlite3.Connection, key: tuple[str, str, str]) -> int:
        """The ``market_id`` of ``key`` (exchange, base, quote), adding its ``market`` row inside
        the open transaction.

        Raises:
            sqlite3.IntegrityError: a part of ``key`` is missing (``NULL``).
        """
        conn.execute("INSERT INTO market (exchange, symbol, currency) VALUES (?, ?, ?) "
                     "ON CONFLICT DO NOTHING", key)
        row = conn.execute("SELECT market_id FROM market WHERE exchange = ? AND symbol = ?"
                           " AND currency = ?", key).fetchone()
        if row is None:
            raise sqlite3.IntegrityError(f"no market row for {key}")
        return row[0]

    def _count_stored(self, done: _Written, events: list[tuple[int, FeedEvent]],
                      signals: list[tuple[str, tuple]]) -> None:
        """Update the counters after a commit; log and count what was set aside."""
        self._market_ids = done.market_ids
        self.stats.batches += 1
        self.stats.stored_events += len(events)
        self.stats.stored_trades.update(done.trades)
        self.stats.stored_tickers.update(done.tickers)
        for table, _ in signals:
            self.stats.stored_signals[table] += 1
        for book in done.books:
            self.stats.stored_books[book.exchange] += 1
            self.stats.stored_rows[book.exchange] += len(book.bids) + len(book.asks)
        for item, exc in done.rejected:
            self.stats.rejected[item.exchange] += 1
            log.error("%s %s refused by the database, not stored (%s: %s); %d rejected so far "
                      "for %s", type(item).__name__, market_tag(item.exchange, item.base, item.quote),
                      type(exc).__name__, exc, self.stats.rejected[item.exchange], item.exchange,
                      extra=_TAG)
        for what, exc in done.refused:
            if what[0] == "event":
                self.stats.stored_events -= 1
                self.stats.lost_events += 1
            elif what[0] == "signal":
                self.stats.stored_signals[what[1]] -= 1
            log.error("%s row refused by the database, not stored (%s: %s): %s", what[0],
                      type(exc).__name__, exc, what[1:], extra=_TAG)
        if done.run_id is not None:
            self._run_id = done.run_id
            self.unclean_runs = done.unclean_runs
        if done.clean:
            self._run_closed = True

    def _status_rows(self, status: list[dict], done: _Written) -> list[tuple]:
        """``feed_status`` rows with the writer's counts as they will be after ``done``."""
        books: Counter = Counter()
        rows: Counter = Counter()
        for book in done.books:
            books[book.exchange] += 1
            rows[book.exchange] += len(book.bids) + len(book.asks)
        rejected = Counter(item.exchange for item, _ in done.rejected)
        st, now = self.stats, now_ms()
        result = []
        for row in status:
            ex = row["exchange"]
            full = dict(row, stored_books=st.stored_books[ex] + books[ex],
                        stored_rows=st.stored_rows[ex] + rows[ex], dropped=st.dropped[ex],
                        lost=st.lost[ex], rejected=st.rejected[ex] + rejected[ex], updated_at=now)
            result.append(tuple(full[column] for column in STATUS_COLUMNS))
        return result

    def _count_lost(self, batch: list[tuple[int, Record]], events: int,
                    exc: Exception | str) -> None:
        """Count ``batch`` (and ``events`` events) as lost, with everything still queued, and
        log it: the stop deadline passed while the database kept failing (or the writer
        ended)."""
        with self._lock:
            self._closed = True  # from now on a submitted record is counted lost at once
            left = []
            while True:
                try:
                    left.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events += len(self._events)
            self._events.clear()
        records = [*batch, *left]
        lost = Counter(item.exchange for _, item in records)
        self.stats.lost.update(lost)
        self.stats.lost_events += events
        if records or events:
            log.error("database still failing at shutdown (%s): %d records NOT stored (%d books, "
                      "the rest tickers and trades; %d of them were still queued): %s, and %d "
                      "events", exc, len(records),
                      sum(type(item) is OrderBookSnapshot for _, item in records), len(left),
                      dict(lost), events, extra=_TAG)


def dated_path(pattern: Path, when: float) -> Path:
    """``pattern`` with its ``strftime`` fields filled for ``when`` (seconds since the epoch,
    UTC); a pattern without ``%`` is returned as it is."""
    text = str(pattern)
    return Path(time.strftime(text, time.gmtime(when))) if "%" in text else pattern


def rotated_files(pattern: Path) -> list[Path]:
    """The files a rotating ``pattern`` has made, oldest first (by name: the fields are meant to
    sort, ``%Y%m%d``); ``[]`` for a pattern without ``%``."""
    if "%" not in pattern.name:
        return []
    return sorted(pattern.parent.glob(re.sub(r"(%.)+", "*", pattern.name)))


def _by_exchange(trades: list[Trade]) -> dict[str, list[Trade]]:
    """``trades`` grouped by exchange, in their order."""
    groups: dict[str, list[Trade]] = {}
    for trade in trades:
        groups.setdefault(trade.exchange, []).append(trade)
    return groups
