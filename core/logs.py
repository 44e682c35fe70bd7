"""Logging: one rotating file for the whole process and one per exchange-market.

Files (in the log directory):

* ``collector.log`` — every line of the process;
* ``UPBIT-BTC.log``, ``BITHUMB-ETH.log``, … — the lines that concern that market, including the
  connection events of the connection that carries it.

Each file has exactly one ``RotatingFileHandler`` (several handlers on one file rotate over each
other). Lines look like ``[2024-04-14 20:32:01] [INFO] [UPBIT-BTC] connected``; the time is the
machine's local time.

Controllers log through :class:`FeedLogger`, which tags each record with the markets it concerns;
the :class:`MarketFileRouter` writes the record to each of those markets' files.
"""

from __future__ import annotations

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


class MarketFileRouter(logging.Handler):
    """Writes each record carrying ``markets`` (a tuple of tags) into ``<tag>.log`` per tag.

    The per-market ``RotatingFileHandler`` is created on first use. Records without ``markets``
    are ignored here (they still reach the process log).
    """

    def __init__(self, log_dir: Path, max_bytes: int, backup_count: int) -> None:
        super().__init__()
        self._dir = log_dir
        self._max_bytes = max_bytes
        self._backup_count = backup_count
        self._files: dict[str, logging.Handler] = {}

    def emit(self, record: logging.LogRecord) -> None:
        for tag in getattr(record, "markets", ()):
            handler = self._files.get(tag)
            if handler is None:
                if not _SAFE_TAG.match(tag):
                    continue  # a tag never names a path outside the log directory
                handler = logging.handlers.RotatingFileHandler(
                    self._dir / f"{tag}.log",
                    maxBytes=self._max_bytes,
                    backupCount=self._backup_count,
                    encoding="utf-8",
                )
                handler.setFormatter(_TagFormatter(tag))
                self._files[tag] = handler
            handler.handle(record)

    def close(self) -> None:
        for handler in self._files.values():
            handler.close()
        self._files.clear()
        super().close()


def setup_logging(
    log_dir: Path,
    *,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    level: int = logging.INFO,
    console: bool = True,
) -> logging.Logger:
    """Install the collector's handlers on the ``collector`` logger and return it.

    Calling it again replaces the previous handlers (closing their files), so there is never more
    than one handler per file. ``max_bytes``/``backup_count`` apply to every file.

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
    root.addHandler(MarketFileRouter(log_dir, max_bytes, backup_count))
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

    ``log(level, msg, *args, market=tag)`` writes to the process log tagged ``[UPBIT-BTC]`` and to
    ``UPBIT-BTC.log``; without ``market`` it is tagged ``[UPBIT]`` and written to the file of every
    market in ``markets``.
    """

    def __init__(self, exchange: str, markets: Iterable[str]) -> None:
        self.exchange = exchange
        self.markets = tuple(markets)
        self._logger = logging.getLogger(f"{ROOT_LOGGER}.{exchange}")

    def log(self, level: int, msg: str, *args: object, market: str | None = None) -> None:
        if not self._logger.isEnabledFor(level):
            return
        extra = {"tag": market or self.exchange, "markets": (market,) if market else self.markets}
        self._logger.log(level, msg, *args, extra=extra)

    def debug(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.DEBUG, msg, *args, market=market)

    def info(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.INFO, msg, *args, market=market)

    def warning(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.WARNING, msg, *args, market=market)

    def error(self, msg: str, *args: object, market: str | None = None) -> None:
        self.log(logging.ERROR, msg, *args, market=market)
