"""The shared SQLite writer: one thread, one connection, batched inserts.

Controllers call :meth:`SQLiteWriter.submit` from their own threads; it never blocks. Books wait
in a bounded queue; the writer thread takes everything that is waiting (up to ``batch_size``
books) and inserts it in one transaction. A full queue drops the book, counts it per exchange and
logs it. On :meth:`SQLiteWriter.stop` the thread drains the queue and commits before it exits.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from collector.errors import StorageError
from collector.model import OrderBookSnapshot
from storage.schema import open_database

INSERT = (
    "INSERT INTO orderbook (snapshot_id, exchange, symbol, currency, timestamp, received_at,"
    " side, level, price, volume) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

log = logging.getLogger("collector.writer")
_TAG = {"tag": "WRITER"}


@dataclass
class WriterStats:
    """Counters of the writer, per exchange name (``Counter`` objects).

    ``stored_books``/``stored_rows``: committed to the database. ``dropped``: refused because the
    queue was full. ``lost``: could not be written before shutdown (the database kept failing).
    """

    stored_books: Counter = field(default_factory=Counter)
    stored_rows: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    lost: Counter = field(default_factory=Counter)
    batches: int = 0
    write_errors: int = 0


class SQLiteWriter:
    """Owns the only connection to the SQLite file and stores what controllers submit.

    Args:
        path: the database file; created with its folder and schema if missing.
        queue_size: books that may wait to be written; beyond it ``submit`` drops and counts.
        batch_size: the most books written in one transaction.
        busy_timeout_ms: how long SQLite waits on a lock held by a reader before failing.
        retry_delay: seconds before retrying a failed batch (doubles, capped at 5 s).
        stop_retry_seconds: how long a failing batch is retried once stop was requested, before
            its books are logged as lost.

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
    ) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.busy_timeout_ms = busy_timeout_ms
        self.retry_delay = retry_delay
        self.stop_retry_seconds = stop_retry_seconds
        self.stats = WriterStats()
        self._queue: queue.Queue[OrderBookSnapshot] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._drop_logged_at: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    # --- called from controller threads -------------------------------------------------------

    def submit(self, book: OrderBookSnapshot) -> bool:
        """Queue ``book`` for writing; ``False`` (dropped, counted, logged) if the queue is full."""
        try:
            self._queue.put_nowait(book)
            return True
        except queue.Full:
            with self._lock:
                self.stats.dropped[book.exchange] += 1
                dropped = self.stats.dropped[book.exchange]
                last = self._drop_logged_at.get(book.exchange, 0.0)
                now = time.monotonic()
                if now - last >= 10.0:
                    self._drop_logged_at[book.exchange] = now
                    log.error(
                        "queue full (%d books waiting): dropped a %s book; %d dropped so far for %s",
                        self._queue.maxsize, book.tag, dropped, book.exchange, extra=_TAG,
                    )
            return False

    @property
    def pending(self) -> int:
        """Books waiting in the queue."""
        return self._queue.qsize()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the database (creating the schema) and start the writer thread.

        Raises:
            StorageError: the database cannot be opened or created.
        """
        conn = open_database(self.path, busy_timeout_ms=self.busy_timeout_ms, check_same_thread=False)
        try:
            next_id = (conn.execute("SELECT MAX(snapshot_id) FROM orderbook").fetchone()[0] or 0) + 1
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot read database {self.path}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, args=(conn, next_id), name="sqlite-writer",
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

    def _run(self, conn: sqlite3.Connection, next_id: int) -> None:
        try:
            while True:
                try:
                    batch = [self._queue.get(timeout=0.2)]
                except queue.Empty:
                    if self._stopping.is_set():
                        break
                    continue
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._write(conn, batch, next_id)
                next_id += len(batch)
        except Exception:  # a bug here must be loud: nothing is stored after it
            log.exception("writer thread failed; %d books still queued", self.pending, extra=_TAG)
            raise
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[OrderBookSnapshot], first_id: int) -> None:
        rows = []
        for snapshot_id, book in enumerate(batch, first_id):
            head = (snapshot_id, book.exchange, book.symbol, book.currency, book.timestamp,
                    book.received_at)
            rows.extend((*head, "bid", i, price, volume) for i, (price, volume) in enumerate(book.bids))
            rows.extend((*head, "ask", i, price, volume) for i, (price, volume) in enumerate(book.asks))
        attempt = 0
        give_up_at = None
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(INSERT, rows)
                conn.execute("COMMIT")
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
                    self._count_lost(batch, exc)
                    return
                if attempt == 1 or attempt % 10 == 0:
                    log.error("cannot write %d books (%d rows), attempt %d, retrying: %s",
                              len(batch), len(rows), attempt, exc, extra=_TAG)
                time.sleep(min(5.0, self.retry_delay * 2 ** min(attempt - 1, 4)))
        if attempt:
            log.warning("wrote %d books after %d failed attempts", len(batch), attempt, extra=_TAG)
        self.stats.batches += 1
        for book in batch:
            self.stats.stored_books[book.exchange] += 1
            self.stats.stored_rows[book.exchange] += len(book.bids) + len(book.asks)

    def _count_lost(self, batch: list[OrderBookSnapshot], exc: Exception) -> None:
        lost = Counter(book.exchange for book in batch)
        self.stats.lost.update(lost)
        log.error("database still failing at shutdown (%s): %d books NOT stored: %s",
                  exc, len(batch), dict(lost), extra=_TAG)
