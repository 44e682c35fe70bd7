"""The SQLite schema (version recorded in ``PRAGMA user_version``).

Books are stored compactly (version 3) in three tables — ``market`` (one row per exchange and
market), ``book`` (one row per stored book) and ``book_level`` (one row per level, ``WITHOUT
ROWID``, keyed by ``(snapshot_id, side, level)``, ``side`` 0 = bid, 1 = ask) — and read through
the view ``orderbook``, one row per price level::

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

Prices and volumes are IEEE doubles: exact for values of up to 15 significant digits. (SQLite
writes integral prices, as most KRW prices are, as small integers on disk.) A file of version 1
or 2 (``orderbook`` a plain table) is converted in place the first time the collector opens it.

``feed_event`` marks the gaps (version 2)::

    event_id          INTEGER  grows with the order events happened in
    exchange          TEXT     'UPBIT'
    symbol, currency  TEXT     the market; NULL for an event of the whole exchange
    timestamp         INTEGER  local time of the event, ms since the Unix epoch (UTC)
    kind              TEXT     connected | disconnected | stale | resync | subscribe_failed | dropped
                               | failed | restarted (version 5; :data:`core.model.EVENT_KINDS`)
    detail            TEXT     the cause, e.g. 'connection closed (code 1006)', '12 books dropped'
    next_snapshot_id  INTEGER  the snapshot_id the first book submitted after the event got (or
                               will get): books of the market with snapshot_id >= it came after it

``feed_status`` holds one row per exchange, replaced every few seconds while the collector runs
(and once more at exit): state, connected_since, counters, last message/data times (ms).

Version 4 adds the other channels and the signals (``docs/storage.md`` and ``docs/signals.md``
show the SQL to read each):

* ``ticker`` — one row per ticker message (``--channels ticker``): last, open, high, low,
  prev_close (quote currency), base_volume (base), quote_volume (quote), market_warning;
* ``trade`` — one row per public trade (``--channels trade``), unique per (exchange, symbol,
  currency, trade_id), so a trade received twice (a reconnect's snapshot) is stored once; ``side``
  is the taker's side, 'buy' or 'sell';
* ``quote`` (view) — one row per stored book: best_bid, best_ask, spread, mid, bid_volume and
  ask_volume (summed over the stored depth);
* ``taker_volume`` (view) — per exchange, market and minute of the trade time: buy, sell and total
  volume (base), their values (quote), trade count and buy_ratio; a view, so always consistent
  with ``trade`` and idempotent across restarts;
* ``kimchi_premium`` — per minute, asset, KRW exchange and global USDT exchange: both prices and
  the premium against the live Upbit KRW-USDT price and against the user's USD/KRW rate;
* ``arbitrage`` — per minute, asset, notional size and (buy exchange, sell exchange): the
  quantity, average fill prices and the edge in basis points net of both taker fees.

Version 5 adds the ``failed`` and ``restarted`` event kinds, ``feed_status.rejected`` (records
the database refused for their values) and ``run`` — one row per collector run: ``started_at``,
``ended_at`` (ms), ``clean`` (1 after a clean stop, 0 once a later start found it unfinished,
``NULL`` while running or killed), ``pid``, ``markets`` (JSON ``[[exchange, base, quote], …]``).
An older file is migrated in place when it is opened (:func:`open_database`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.errors import StorageError
from core.model import EVENT_KINDS

SCHEMA_VERSION = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS market (
    market_id   INTEGER PRIMARY KEY,
    exchange    TEXT    NOT NULL,
    symbol      TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    UNIQUE (exchange, symbol, currency)
);
CREATE TABLE IF NOT EXISTS book (
    snapshot_id INTEGER PRIMARY KEY,
    market_id   INTEGER NOT NULL REFERENCES market,
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS book_market_time ON book (market_id, timestamp);
CREATE TABLE IF NOT EXISTS book_level (
    snapshot_id INTEGER NOT NULL,
    side        INTEGER NOT NULL CHECK (side IN (0, 1)),
    level       INTEGER NOT NULL,
    price       REAL    NOT NULL,
    volume      REAL    NOT NULL,
    PRIMARY KEY (snapshot_id, side, level)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS orderbook AS
    SELECT b.snapshot_id, m.exchange, m.symbol, m.currency, b.timestamp, b.received_at,
           CASE l.side WHEN 0 THEN 'bid' ELSE 'ask' END AS side, l.level, l.price, l.volume
    FROM book b JOIN market m ON m.market_id = b.market_id
                JOIN book_level l ON l.snapshot_id = b.snapshot_id;
{feed_event}CREATE INDEX IF NOT EXISTS feed_event_market_time
    ON feed_event (exchange, symbol, currency, timestamp);
CREATE TABLE IF NOT EXISTS run (
    run_id     INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    clean      INTEGER,
    pid        INTEGER NOT NULL,
    markets    TEXT    NOT NULL
);
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
    rejected        INTEGER NOT NULL DEFAULT 0,
    reconnects      INTEGER NOT NULL,
    stalls          INTEGER NOT NULL,
    last_message_at INTEGER,
    last_data_at    INTEGER,
    updated_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ticker (
    exchange       TEXT    NOT NULL,
    symbol         TEXT    NOT NULL,
    currency       TEXT    NOT NULL,
    timestamp      INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    last           REAL    NOT NULL,
    open           REAL,
    high           REAL,
    low            REAL,
    prev_close     REAL,
    base_volume    REAL,
    quote_volume   REAL,
    market_warning TEXT
);
CREATE INDEX IF NOT EXISTS ticker_market_time ON ticker (exchange, symbol, currency, timestamp);
CREATE TABLE IF NOT EXISTS trade (
    exchange    TEXT    NOT NULL,
    symbol      TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    trade_id    TEXT    NOT NULL,
    price       REAL    NOT NULL,
    volume      REAL    NOT NULL,
    side        TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    UNIQUE (exchange, symbol, currency, trade_id)
);
CREATE INDEX IF NOT EXISTS trade_market_time ON trade (exchange, symbol, currency, timestamp);
CREATE VIEW IF NOT EXISTS quote AS
    SELECT b.snapshot_id, m.exchange, m.symbol, m.currency, b.timestamp, b.received_at,
           bb.price AS best_bid, ba.price AS best_ask, ba.price - bb.price AS spread,
           (ba.price + bb.price) / 2 AS mid,
           (SELECT SUM(volume) FROM book_level WHERE snapshot_id = b.snapshot_id AND side = 0)
               AS bid_volume,
           (SELECT SUM(volume) FROM book_level WHERE snapshot_id = b.snapshot_id AND side = 1)
               AS ask_volume
    FROM book b JOIN market m ON m.market_id = b.market_id
    LEFT JOIN book_level bb ON bb.snapshot_id = b.snapshot_id AND bb.side = 0 AND bb.level = 0
    LEFT JOIN book_level ba ON ba.snapshot_id = b.snapshot_id AND ba.side = 1 AND ba.level = 0;
CREATE VIEW IF NOT EXISTS taker_volume AS
    SELECT exchange, symbol, currency, timestamp / 60000 * 60000 AS minute,
           SUM(CASE side WHEN 'buy' THEN volume ELSE 0 END) AS buy_volume,
           SUM(CASE side WHEN 'sell' THEN volume ELSE 0 END) AS sell_volume,
           SUM(volume) AS total_volume,
           SUM(CASE side WHEN 'buy' THEN price * volume ELSE 0 END) AS buy_value,
           SUM(CASE side WHEN 'sell' THEN price * volume ELSE 0 END) AS sell_value,
           COUNT(*) AS trades,
           SUM(CASE side WHEN 'buy' THEN volume ELSE 0 END) / SUM(volume) AS buy_ratio
    FROM trade GROUP BY exchange, symbol, currency, minute;
CREATE TABLE IF NOT EXISTS kimchi_premium (
    minute           INTEGER NOT NULL,
    symbol           TEXT    NOT NULL,
    krw_exchange     TEXT    NOT NULL,
    krw_price        REAL    NOT NULL,
    global_exchange  TEXT    NOT NULL,
    global_price     REAL    NOT NULL,
    usdt_krw         REAL,
    premium_usdt_pct REAL,
    usd_krw          REAL,
    premium_usd_pct  REAL,
    computed_at      INTEGER NOT NULL,
    PRIMARY KEY (minute, symbol, krw_exchange, global_exchange)
);
CREATE TABLE IF NOT EXISTS arbitrage (
    minute         INTEGER NOT NULL,
    symbol         TEXT    NOT NULL,
    notional_krw   REAL    NOT NULL,
    buy_exchange   TEXT    NOT NULL,
    buy_currency   TEXT    NOT NULL,
    sell_exchange  TEXT    NOT NULL,
    sell_currency  TEXT    NOT NULL,
    quantity       REAL    NOT NULL,
    buy_price      REAL    NOT NULL,
    sell_price     REAL    NOT NULL,
    buy_fx         REAL    NOT NULL,
    sell_fx        REAL    NOT NULL,
    buy_fee        REAL    NOT NULL,
    sell_fee       REAL    NOT NULL,
    gross_bps      REAL    NOT NULL,
    net_bps        REAL    NOT NULL,
    computed_at    INTEGER NOT NULL,
    PRIMARY KEY (minute, symbol, notional_krw, buy_exchange, sell_exchange)
);
"""

FEED_EVENT_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    event_id         INTEGER PRIMARY KEY,
    exchange         TEXT    NOT NULL,
    symbol           TEXT,
    currency         TEXT,
    timestamp        INTEGER NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ({kinds})),
    detail           TEXT    NOT NULL,
    next_snapshot_id INTEGER NOT NULL
);
"""
"""``feed_event``; its ``kind`` check lists :data:`core.model.EVENT_KINDS`."""


def _feed_event_table(name: str = "feed_event") -> str:
    return FEED_EVENT_TABLE.format(name=name, kinds=", ".join(f"'{k}'" for k in EVENT_KINDS))


SCHEMA = SCHEMA.replace("{feed_event}", _feed_event_table())

TICKER_COLUMNS = ("exchange", "symbol", "currency", "timestamp", "received_at", "last", "open",
                  "high", "low", "prev_close", "base_volume", "quote_volume", "market_warning")
TRADE_COLUMNS = ("exchange", "symbol", "currency", "timestamp", "received_at", "trade_id", "price",
                 "volume", "side")
PREMIUM_COLUMNS = ("minute", "symbol", "krw_exchange", "krw_price", "global_exchange",
                   "global_price", "usdt_krw", "premium_usdt_pct", "usd_krw", "premium_usd_pct",
                   "computed_at")
ARBITRAGE_COLUMNS = ("minute", "symbol", "notional_krw", "buy_exchange", "buy_currency",
                     "sell_exchange", "sell_currency", "quantity", "buy_price", "sell_price",
                     "buy_fx", "sell_fx", "buy_fee", "sell_fee", "gross_bps", "net_bps",
                     "computed_at")
"""The columns of the version 4 tables, in the order of their row tuples
(:class:`core.model.Ticker`, :class:`core.model.Trade`,
:class:`analytics.signals.Premium`, :class:`analytics.signals.Arbitrage`)."""

STATUS_COLUMNS = ("exchange", "state", "connected_since", "messages", "heartbeats", "books",
                  "stored_books", "stored_rows", "duplicates", "stale", "errors", "dropped", "lost",
                  "rejected", "reconnects", "stalls", "last_message_at", "last_data_at", "updated_at")
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


_CONVERT_FLAT_ORDERBOOK = """
BEGIN IMMEDIATE;
ALTER TABLE orderbook RENAME TO orderbook_flat;
DROP INDEX IF EXISTS orderbook_market_time;
{schema}
INSERT OR IGNORE INTO market (exchange, symbol, currency)
    SELECT exchange, symbol, currency FROM orderbook_flat
    GROUP BY exchange, symbol, currency ORDER BY MIN(snapshot_id);
INSERT INTO book (snapshot_id, market_id, timestamp, received_at)
    SELECT f.snapshot_id, m.market_id, MIN(f.timestamp), MIN(f.received_at)
    FROM orderbook_flat f JOIN market m USING (exchange, symbol, currency)
    GROUP BY f.snapshot_id;
INSERT INTO book_level (snapshot_id, side, level, price, volume)
    SELECT snapshot_id, side = 'ask', level, price, volume FROM orderbook_flat;
DROP TABLE orderbook_flat;
COMMIT;
"""


def _convert_flat_orderbook(conn: sqlite3.Connection) -> None:
    """Move the rows of a version 1/2 ``orderbook`` table into the version 3 tables, in one
    transaction (rolled back on any error)."""
    try:
        conn.executescript(_CONVERT_FLAT_ORDERBOOK.format(schema=SCHEMA))
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the tables of an older file to this version in place, in one transaction: the
    ``feed_event`` kind check rebuilt when it lacks a kind of :data:`core.model.EVENT_KINDS`
    (its rows copied), ``feed_status.rejected`` added (version 5)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'feed_event' AND type = 'table'"
                       ).fetchone()
    columns = [r[1] for r in conn.execute("PRAGMA table_info(feed_status)")]
    rebuild = row is not None and any(f"'{kind}'" not in row[0] for kind in EVENT_KINDS)
    add_rejected = bool(columns) and "rejected" not in columns
    if not (rebuild or add_rejected):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rebuild:
            conn.execute(_feed_event_table("feed_event_new"))
            conn.execute("INSERT INTO feed_event_new SELECT event_id, exchange, symbol, currency, "
                         "timestamp, kind, detail, next_snapshot_id FROM feed_event")
            conn.execute("DROP TABLE feed_event")
            conn.execute("ALTER TABLE feed_event_new RENAME TO feed_event")
        if add_rejected:
            conn.execute("ALTER TABLE feed_status ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0")
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise


def open_database(path: Path, *, busy_timeout_ms: int = 5000,
                  check_same_thread: bool = True) -> sqlite3.Connection:
    """Open (creating it and its folder if missing) the database at ``path``, with the schema;
    an older file is converted or migrated in place.

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
        flat = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'orderbook' AND type = 'table'"
                            ).fetchone()
        if flat:
            _convert_flat_orderbook(conn)
        _migrate(conn)
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"cannot write database {path}: {exc}") from exc
    except StorageError:
        conn.close()
        raise
    return conn
