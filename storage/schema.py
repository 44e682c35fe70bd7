"""The SQLite schema (version recorded in ``PRAGMA user_version``).

``orderbook`` holds one row per price level::

    snapshot_id  INTEGER  all rows of one stored book share it; grows with arrival order
    exchange     TEXT     'UPBIT'
    symbol       TEXT     base currency, 'BTC'
    currency     TEXT     quote currency, 'KRW'
    timestamp    INTEGER  exchange event time of the book, ms since the Unix epoch (UTC)
    received_at  INTEGER  local receive time, ms since the Unix epoch (UTC)
    side         TEXT     'bid' or 'ask'
    level        INTEGER  0 = best price of that side
    price        REAL     quote currency per base unit
    volume       REAL     base currency

Prices and volumes are IEEE doubles: exact for values of up to 15 significant digits.

``feed_event`` marks the gaps (version 2)::

    event_id          INTEGER  grows with the order events happened in
    exchange          TEXT     'UPBIT'
    symbol, currency  TEXT     the market; NULL for an event of the whole exchange
    timestamp         INTEGER  local time of the event, ms since the Unix epoch (UTC)
    kind              TEXT     connected | disconnected | stale | resync | subscribe_failed | dropped
    detail            TEXT     the cause, e.g. 'connection closed (code 1006)', '12 books dropped'
    next_snapshot_id  INTEGER  the snapshot_id the first book submitted after the event got (or
                               will get): books of the market with snapshot_id >= it came after it

``feed_status`` holds one row per exchange, replaced every few seconds while the collector runs
(and once more at exit): state, connected_since, counters, last message/data times (ms).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from collector.errors import StorageError

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS orderbook (
    snapshot_id INTEGER NOT NULL,
    exchange    TEXT    NOT NULL,
    symbol      TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    side        TEXT    NOT NULL CHECK (side IN ('bid', 'ask')),
    level       INTEGER NOT NULL,
    price       REAL    NOT NULL,
    volume      REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS orderbook_market_time
    ON orderbook (exchange, symbol, currency, timestamp);
CREATE TABLE IF NOT EXISTS feed_event (
    event_id         INTEGER PRIMARY KEY,
    exchange         TEXT    NOT NULL,
    symbol           TEXT,
    currency         TEXT,
    timestamp        INTEGER NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('connected', 'disconnected', 'stale',
                                                      'resync', 'subscribe_failed', 'dropped')),
    detail           TEXT    NOT NULL,
    next_snapshot_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_event_market_time
    ON feed_event (exchange, symbol, currency, timestamp);
CREATE TABLE IF NOT EXISTS feed_status (
    exchange        TEXT    PRIMARY KEY,
    state           TEXT    NOT NULL,
    connected_since INTEGER,
    messages        INTEGER NOT NULL,
    heartbeats      INTEGER NOT NULL,
    books           INTEGER NOT NULL,
    stored_books    INTEGER NOT NULL,
    stored_rows     INTEGER NOT NULL,
    duplicates      INTEGER NOT NULL,
    stale           INTEGER NOT NULL,
    errors          INTEGER NOT NULL,
    dropped         INTEGER NOT NULL,
    lost            INTEGER NOT NULL,
    reconnects      INTEGER NOT NULL,
    stalls          INTEGER NOT NULL,
    last_message_at INTEGER,
    last_data_at    INTEGER,
    updated_at      INTEGER NOT NULL
);
"""

STATUS_COLUMNS = ("exchange", "state", "connected_since", "messages", "heartbeats", "books",
                  "stored_books", "stored_rows", "duplicates", "stale", "errors", "dropped", "lost",
                  "reconnects", "stalls", "last_message_at", "last_data_at", "updated_at")
"""The columns of ``feed_status``, in order."""


def connect(path: Path, *, busy_timeout_ms: int = 5000,
            check_same_thread: bool = True) -> sqlite3.Connection:
    """Open ``path`` for writing in WAL mode with a busy timeout; no schema work.

    ``check_same_thread=False`` lets a connection opened in one thread be handed to another
    (the writer opens it in ``start`` and its thread is its only user after that).

    Raises:
        StorageError: the file cannot be opened or is not a SQLite database.
    """
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=check_same_thread)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    return conn


def open_database(path: Path, *, busy_timeout_ms: int = 5000,
                  check_same_thread: bool = True) -> sqlite3.Connection:
    """Open (creating it and its folder if missing) the database at ``path``, with the schema.

    Raises:
        StorageError: the folder or file cannot be created or written, the file is not a SQLite
            database, or it was written by a newer schema version.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create folder {path.parent}: {exc.strerror or exc}") from exc
    conn = connect(path, busy_timeout_ms=busy_timeout_ms, check_same_thread=check_same_thread)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database {path} has schema version {version}; this collector knows {SCHEMA_VERSION}"
            )
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"cannot write database {path}: {exc}") from exc
    except StorageError:
        conn.close()
        raise
    return conn
