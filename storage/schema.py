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
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from collector.errors import StorageError

SCHEMA_VERSION = 1

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
"""


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
