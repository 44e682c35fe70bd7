"""Exceptions of the collector.

One root, :class:`CollectorError`; everything the collector raises on purpose derives from it::

    CollectorError
    ├── ConfigError          bad command-line or environment input (reported as one line, exit 2)
    ├── StorageError         the SQLite file cannot be opened, created or written
    └── MessageError         one exchange message could not be turned into order books
        ├── MalformedMessage the payload is not what the exchange's protocol documents
        └── ExchangeError    the exchange answered with an error (e.g. Upbit ``{"error": …}``)

A ``MessageError`` never stops a controller: the controller logs it with the exchange and market,
counts it, and goes on with the next message.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Root of every exception the collector raises on purpose."""


class ConfigError(CollectorError):
    """Invalid configuration: an unknown exchange, a bad number, an unusable path."""


class StorageError(CollectorError):
    """The SQLite database cannot be opened, created or written."""


class MessageError(CollectorError):
    """A message from an exchange could not be turned into order books.

    ``market`` is the market tag (``"UPBIT-BTC"``) when the message names one, else ``None``.
    """

    def __init__(self, message: str, market: str | None = None) -> None:
        super().__init__(message)
        self.market = market


class MalformedMessage(MessageError):
    """The payload does not have the shape the exchange's protocol documents."""


class ExchangeError(MessageError):
    """The exchange answered with an error message (its ``name``/``code`` and text kept)."""
