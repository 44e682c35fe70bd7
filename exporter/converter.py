"""``DataConverter``: stream stored order books out of SQLite as JSON, one file per exchange.

Each exported book is::

    {"exchange": "UPBIT", "symbol": "BTC", "currency": "KRW",
     "timestamp": 1746601573804, "received_at": 1746601573810,
     "bids": [[137001000.0, 0.03656812], ...], "asks": [[137002000.0, 0.10623869], ...]}

Books come in time order (``timestamp``, then arrival order). Rows are read with one cursor and
written as they come, so memory does not grow with the table. All SQL is parameterized.

The other tables and views (``table=`` / ``--table``: ``ticker``, ``trade``, ``quote``,
``taker_volume``, ``kimchi_premium``, ``arbitrage``) export one object per row, its keys the
column names, in time order, to ``<EXCHANGE>.<table>.json`` (the exchange of a premium row is its
KRW exchange, of an arbitrage row its buy exchange).

What is written is strict JSON (RFC 8259): a NaN or an infinity, which the collector refuses before
storing (``controllers.records``) but an older database may hold, stops the export with a
:class:`~core.errors.StorageError` naming the row, and the file being written is removed.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from core.errors import ConfigError, StorageError

FORMATS = ("json", "ndjson")
ROW_TABLES = {  # table -> (its exchange column, its time column)
    "ticker": ("exchange", "timestamp"),
    "trade": ("exchange", "timestamp"),
    "quote": ("exchange", "timestamp"),
    "taker_volume": ("exchange", "minute"),
    "kimchi_premium": ("krw_exchange", "minute"),
    "arbitrage": ("buy_exchange", "minute"),
}
TABLES = ("book", *ROW_TABLES)
"""What can be exported: ``book`` (the order books, one object per book) and the row tables."""
_EXCHANGE_NAME = re.compile(r"^[A-Z0-9_]{1,32}$")

_SELECT = (
    "SELECT snapshot_id, exchange, symbol, currency, timestamp, received_at, side, price, volume"
    " FROM orderbook WHERE exchange = ?{filters}"
    " ORDER BY timestamp, snapshot_id, side, level"
)


def parse_time(text: str) -> int:
    """ms since the Unix epoch from ``text``: an integer of ms, or ISO-8601 (no zone = UTC).

    Raises:
        ConfigError: neither form.
    """
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"bad time {text!r}: give ms since the epoch or ISO-8601 "
                          "(2024-04-14T20:32:01Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


@dataclass
class ExportResult:
    """One written file: its exchange, path and the number of books in it."""

    exchange: str
    path: Path
    books: int


class DataConverter:
    """Reads order books from the collector's SQLite file (read-only).

    Raises:
        StorageError: the file does not exist or is not a collector database.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        if not self.db_path.is_file():
            raise StorageError(f"no database at {self.db_path}")
        try:
            self._conn = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True)
            self._conn.execute("SELECT 1 FROM orderbook LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read order books from {self.db_path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> DataConverter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exchanges(self, table: str = "book") -> list[str]:
        """The exchanges that have stored books (or rows of ``table``), sorted."""
        if table == "book":
            return [row[0] for row in self._conn.execute(
                "SELECT DISTINCT exchange FROM orderbook ORDER BY exchange")]
        column = ROW_TABLES[table][0]  # a fixed name from the table above, never user text
        return [row[0] for row in self._conn.execute(
            f"SELECT DISTINCT {column} FROM {table} ORDER BY {column}")]

    def iter_rows(self, table: str, exchange: str, *, symbol: str | None = None,
                  since: int | None = None, until: int | None = None) -> Iterator[dict]:
        """Rows of one of :data:`ROW_TABLES` for ``exchange`` (optionally one ``symbol``) with
        ``since <= time <= until`` (ms; the time is ``timestamp`` or ``minute``), oldest first,
        as dicts of column name to value.

        Raises:
            ConfigError: an unknown table.
            StorageError: the database has no such table (written by an older collector).
        """
        if table not in ROW_TABLES:
            raise ConfigError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
        column, time = ROW_TABLES[table]
        sql, params = f"SELECT * FROM {table} WHERE {column} = ?", [exchange]
        for condition, value in ((" AND symbol = ?", symbol), (f" AND {time} >= ?", since),
                                 (f" AND {time} <= ?", until)):
            if value is not None:
                sql += condition
                params.append(value)
        try:
            cursor = self._conn.execute(sql + f" ORDER BY {time}", params)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {table} from {self.db_path}: {exc}") from exc
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(names, row))

    def iter_books(self, exchange: str, *, symbol: str | None = None, since: int | None = None,
                   until: int | None = None) -> Iterator[dict]:
        """Books of ``exchange`` (optionally one ``symbol``) with ``since <= timestamp <= until``
        (ms), in time order, as export dicts."""
        filters, params = "", [exchange]
        if symbol is not None:
            filters += " AND symbol = ?"
            params.append(symbol)
        if since is not None:
            filters += " AND timestamp >= ?"
            params.append(since)
        if until is not None:
            filters += " AND timestamp <= ?"
            params.append(until)
        book: dict | None = None
        current = None
        for sid, exch, sym, cur, ts, recv, side, price, volume in self._conn.execute(
                _SELECT.format(filters=filters), params):
            if sid != current:
                if book is not None:
                    yield book
                current = sid
                book = {"exchange": exch, "symbol": sym, "currency": cur, "timestamp": ts,
                        "received_at": recv, "bids": [], "asks": []}
            book["bids" if side == "bid" else "asks"].append([price, volume])  # type: ignore[index]
        if book is not None:
            yield book

    def export(self, out_dir: Path, *, exchange: str | None = None, symbol: str | None = None,
               since: int | None = None, until: int | None = None,
               fmt: str = "json", table: str = "book") -> list[ExportResult]:
        """Write ``<out_dir>/<EXCHANGE>.json`` (a JSON array) or ``.ndjson`` (a book per line)
        for each exchange (or only ``exchange``); returns what was written (``books`` counts the
        objects written). Any other ``table`` writes ``<EXCHANGE>.<table>.json`` (or ``.ndjson``).

        Raises:
            ConfigError: an unknown format or table, or an exchange name that is not a plain name.
            StorageError: the database has no such table, or a row holds a NaN or an infinity
                (not JSON; the file of that exchange is removed, the ones written before it stay).
            OSError: the folder or a file cannot be written.
        """
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        if table not in TABLES:
            raise ConfigError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
        try:
            names = [exchange] if exchange else self.exchanges(table)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {table} from {self.db_path}: {exc}") from exc
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for name in names:
            if not _EXCHANGE_NAME.match(name):  # a name never makes a path outside out_dir
                raise ConfigError(f"bad exchange name {name!r}")
            path = out_dir / (f"{name}.{fmt}" if table == "book" else f"{name}.{table}.{fmt}")
            if path.is_symlink():  # would write wherever the link points
                raise ConfigError(f"{path} is a symbolic link; not writing through it")
            books = (self.iter_books(name, symbol=symbol, since=since, until=until)
                     if table == "book" else
                     self.iter_rows(table, name, symbol=symbol, since=since, until=until))
            try:
                with open(path, "w", encoding="utf-8") as out:
                    count = (_write_ndjson(out, books) if fmt == "ndjson"
                             else _write_json_array(out, books))
            except StorageError:
                path.unlink(missing_ok=True)  # half an array is no file to leave behind
                raise
            results.append(ExportResult(name, path, count))
        return results


def _json(row: dict) -> str:
    """``row`` as strict JSON.

    Raises:
        StorageError: a value is NaN or infinite; the error names the row by its exchange, market
            and time.
    """
    try:
        return json.dumps(row, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        named = {key: row[key] for key in row if key in _ROW_NAME}
        raise StorageError(f"row {named} holds a NaN or an infinity, which JSON cannot "
                           f"hold ({exc}); not exported") from None


_ROW_NAME = ("exchange", "krw_exchange", "buy_exchange", "symbol", "currency", "timestamp",
             "minute", "trade_id")


def _write_json_array(out, books: Iterator[dict]) -> int:
    count = 0
    out.write("[")
    for book in books:
        out.write(",\n" if count else "\n")
        out.write(_json(book))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _write_ndjson(out, books: Iterator[dict]) -> int:
    count = 0
    for book in books:
        out.write(_json(book))
        out.write("\n")
        count += 1
    return count
