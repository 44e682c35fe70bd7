"""Logging: one rotating file for the whole process, one per exchange, and per-market files on
request.

Files (in the log directory):

* ``collector.log`` — every line of the process;
* ``UPBIT.log``, ``BITHUMB.log``, … — the lines of one exchange: its connections (tagged
  ``[UPBIT]``) and its markets (tagged ``[UPBIT-BTC-KRW]``, so ``grep UPBIT-BTC-KRW UPBIT.log``
  gives one market's story);
* only with ``per_market`` (``--log-per-market``): ``UPBIT-BTC-KRW.log``, … — the lines that
  concern one market, including the connection events of the connection that carries it.

The number of open log files is bounded by design, not by the number of markets: one for the
process, one per exchange (13 at most), and with ``per_market`` at most
:data:`MARKET_FILES_OPEN` per-market files at a time (the least recently written one is closed
when another is needed, and appended to again when it is next written). ``--symbols ALL`` on
the Korean exchanges (about 1,000 markets) thus runs under ``ulimit -n 256``.

Each file has exactly one ``RotatingFileHandler`` (several handlers on one file rotate over each
other). Lines look like ``[2024-04-14 20:32:01] [INFO] [UPBIT-BTC-KRW] connected``; the time is
the machine's local time.

Controllers log through :class:`FeedLogger`, which tags each record with its exchange and the
markets it concerns; :class:`TagFileRouter` writes the record to the exchange's file and, on
request, to each of those markets' files.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import re
import sys
from pathlib import Path
from typing import Iterable

ROOT_LOGGER = "collector"
PROCESS_LOG = "collector.log"
LINE_FORMAT = "[%(asctime)s] [%(levelname)s] [%(tag)s] %(message)s"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MARKET_FILES_OPEN = 64
"""With per-market files, at most this many are open at once (least recently written closed
first)."""
_SAFE_TAG = re.compile(r"^[A-Za-z0-9_.-]+$")


class _TagFormatter(logging.Formatter):
    """Formats ``[time] [LEVEL] [TAG] message``; TAG is fixed, or the record's own tag."""

    def __init__(self, fixed_tag: str | None = None) -> None:
        super().__init__(LINE_FORMAT, TIME_FORMAT)
        self._fixed_tag = fixed_tag

    def format(self, record: logging.LogRecord) -> str:
        # The record is shared by every handler: set the tag for this format only.
        own = record.__dict__.get("tag")
        record.tag = self._fixed_tag or own or record.name.rsplit(".", 1)[-1]
        try:
            return super().format(record)
        finally:
            if own is None:
                del record.tag
            else:
                record.tag = own


class TagFileRouter(logging.Handler):
    """Writes each record into ``<name>.log`` for each name ``files(record)`` gives, keeping at
    most ``max_open`` files open (the least recently written is closed first; a file closed this
    way is appended to when it is next written).

    Args:
        log_dir: the folder of the files.
        files: the file names (without ``.log``) of a record; names that are not plain tags
            (letters, digits, ``_.-``) are skipped, so a tag never names a path elsewhere.
        fixed_tag: whether the line's tag is the file's name (a market file shows every line as
            that market's) or the record's own tag.
        max_bytes, backup_count: rotation of every file.
        max_open: open files at most (``None``: no bound, for a set known to be small).
    """

    def __init__(self, log_dir: Path, files, *, fixed_tag: bool, max_bytes: int,
                 backup_count: int, max_open: int | None = None) -> None:
        super().__init__()
        self._dir = log_dir
        self._names = files
        self._fixed_tag = fixed_tag
        self._max_bytes = max_bytes
        self._backup_count = backup_count
        self._max_open = max_open
        self._files: collections.OrderedDict[str, logging.Handler] = collections.OrderedDict()

    @property
    def open_files(self) -> int:
        """How many files are open now."""
        return len(self._files)

    def emit(self, record: logging.LogRecord) -> None:
        for name in self._names(record):
            handler = self._files.get(name)
            if handler is None:
                if not _SAFE_TAG.match(name):
                    continue  # a tag never names a path outside the log directory
                if self._max_open is not None and len(self._files) >= self._max_open:
                    self._files.popitem(last=False)[1].close()
                handler = logging.handlers.RotatingFileHandler(
                    self._dir / f"{name}.log",
                    maxBytes=self._max_bytes,
                    backupCount=self._backup_count,
                    encoding="utf-8",
                )
                handler.setFormatter(_TagFormatter(name if self._fixed_tag else None))
                self._files[name] = handler
            else:
                self._files.move_to_end(name)
            handler.handle(record)

    def flush(self) -> None:
        for handler in self._files.values():
            handler.flush()

    def close(self) -> None:
        for handler in self._files.values():
            handler.close()
        self._files.clear()
        super().close()


def _exchange_file(record: logging.LogRecord) -> tuple[str, ...]:
    exchange = getattr(record, "exchange", None)
    return (exchange,) if exchange else ()


def _market_files(record: logging.LogRecord) -> tuple[str, ...]:
    return getattr(record, "markets", ())


def setup_logging(
    log_dir: Path,
    *,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    level: int = logging.INFO,
    console: bool = True,
    per_market: bool = False,
    market_files_open: int = MARKET_FILES_OPEN,
) -> logging.Logger:
    """Install the collector's handlers on the ``collector`` logger and return it.

    Files: ``collector.log``, one per exchange, and with ``per_market`` one per market of which
    at most ``market_files_open`` are open at once (see the module text). Calling it again
    replaces the previous handlers (closing their files), so there is never more than one handler
    per file. ``max_bytes``/``backup_count`` apply to every file.

    Raises:
        OSError: the log directory cannot be created.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger(ROOT_LOGGER)
    close_logging()
    root.setLevel(level)
    root.propagate = False

    process = logging.handlers.RotatingFileHandler(
        log_dir / PROCESS_LOG, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    process.setFormatter(_TagFormatter())
    root.addHandler(process)
    root.addHandler(TagFileRouter(log_dir, _exchange_file, fixed_tag=False, max_bytes=max_bytes,
                                  backup_count=backup_count))
    if per_market:
        root.addHandler(TagFileRouter(log_dir, _market_files, fixed_tag=True, max_bytes=max_bytes,
                                      backup_count=backup_count, max_open=market_files_open))
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(_TagFormatter())
        root.addHandler(stream)
    return root


def close_logging() -> None:
    """Remove and close every handler of the ``collector`` logger (files are flushed)."""
    root = logging.getLogger(ROOT_LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


class FeedLogger:
    """Logs for one controller: lines about one market, or about all markets of a connection.

    ``log(level, msg, *args, market=tag)`` writes to the process log and the exchange's file
    tagged ``[UPBIT-BTC-KRW]`` (and to ``UPBIT-BTC-KRW.log`` with per-market files); without
    ``market`` it is tagged ``[UPBIT]`` (and written to the file of every market in ``markets``
    with per-market files).
    """

    def __init__(self, exchange: str, markets: Iterable[str]) -> None:
        self.exchange = exchange
        self.markets = tuple(markets)
        self._logger = logging.getLogger(f"{ROOT_LOGGER}.{exchange}")

    def log(self, level: int, msg: str, *args: object, market: str | None = None) -> None:
        if not self._logger.isEnabledFor(level):
            return
        extra = {"tag": market or self.exchange, "exchange": self.exchange,
                 "markets": (market,) if market else self.markets}
        self._logger.log(level, msg, *args, extra=extra)

    def debug(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.DEBUG, msg, *args, market=market)

    def info(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.INFO, msg, *args, market=market)

    def warning(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.WARNING, msg, *args, market=market)

    def error(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.ERROR, msg, *args, market=market)
