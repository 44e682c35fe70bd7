"""Exceptions of the collector.

One root, :class:`CollectorError`; everything the collector raises on purpose derives from it::

    CollectorError
    ├── ConfigError          bad command-line or environment input (reported as one line, exit 2)
    ├── StorageError         the SQLite file cannot be opened, created or written
    └── MessageError         one exchange message could not be turned into order books
        ├── MalformedMessage the payload is not what the exchange's protocol documents
        ├── ExchangeError    the exchange answered with an error (e.g. Upbit ``{"error": …}``)
        │   └── HTTPStatusError  …with an HTTP status of 400 or more (status, Retry-After kept)
        └── TransportError   no answer came: a timeout, a refused or dropped connection

A ``MessageError`` never stops a controller: the controller logs it with the exchange and market,
counts it, and goes on with the next message (or request). A timeout is a ``TransportError``,
never an ``ExchangeError``: the exchange said nothing. How long to wait after each kind before
asking again is :class:`controllers.http.RetryPolicy`'s.
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


class HTTPStatusError(ExchangeError):
    """The exchange answered a REST request with an HTTP status of 400 or more.

    ``status``: the HTTP status; ``body``: the answer's body (bytes, the exchange's own error
    text); ``retry_after``: the seconds its ``Retry-After`` header asked for, ``None`` without one.
    """

    def __init__(self, message: str, *, status: int, body: bytes = b"",
                 retry_after: float | None = None, market: str | None = None) -> None:
        super().__init__(message, market)
        self.status = status
        self.body = body
        self.retry_after = retry_after


class TransportError(MessageError):
    """A request got no answer: a connect or read timeout (``timeout`` is ``True``), a refused or
    dropped connection. ``detail`` is the cause without the request (``"ReadTimeout: …"``)."""

    def __init__(self, message: str, *, timeout: bool = False, detail: str = "",
                 market: str | None = None) -> None:
        super().__init__(message, market)
        self.timeout = timeout
        self.detail = detail or message
