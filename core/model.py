"""The normalized data model shared by every controller, the writer and the exporter.

Units, everywhere in the collector:

* prices are in the quote currency (KRW for ``KRW-BTC``), volumes in the base currency (BTC);
* timestamps are integer milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, NamedTuple, Sequence

from core.errors import ConfigError

Level = tuple[float, float]
"""One price level: ``(price, volume)``, price in quote units, volume in base units."""


@dataclass(frozen=True, slots=True)
class Market:
    """A market of one exchange: ``base`` is the currency traded, ``quote`` the currency its price
    is in; both upper case (``Market("BTC", "KRW")``: BTC priced in KRW).

    Stored rows keep the design card's column names: ``symbol`` holds the base currency and
    ``currency`` the quote currency.
    """

    base: str
    quote: str

    def tag(self, exchange: str) -> str:
        """The market's name in log lines, events and errors: ``"UPBIT-BTC-KRW"`` (exchange, base,
        quote; two markets of one exchange never share a tag)."""
        return market_tag(exchange, self.base, self.quote)


def market_tag(exchange: str, base: str, quote: str) -> str:
    """``"<EXCHANGE>-<BASE>-<QUOTE>"``, the tag of a market in log lines, events and errors."""
    return f"{exchange}-{base}-{quote}"


class OrderBookSnapshot(NamedTuple):
    """The top of one market's order book at one moment (immutable; a named tuple because one is
    built per frame, and that is three times cheaper than a frozen dataclass).

    Fields:
        exchange: upper case exchange name, ``"UPBIT"``.
        base: base currency, upper case, ``"BTC"`` (stored as ``symbol``).
        quote: quote currency, upper case, ``"KRW"`` (stored as ``currency``).
        timestamp: the exchange's event time of the book, ms since the Unix epoch (UTC).
        received_at: local time the message was received, ms since the Unix epoch (UTC).
        bids: ``(price, volume)`` levels, best (highest price) first.
        asks: ``(price, volume)`` levels, best (lowest price) first.
        sequence: the exchange's version number of the book where it has one (Coinone ``id``),
            larger = newer; ``None`` otherwise. Used to drop books older than the last one; not
            stored.

    Levels only hold positive, finite prices and volumes (exchanges pad thin books with zero
    slots, which are dropped; anything else is refused by :mod:`controllers.records`), and a
    stored book is never crossed (best bid below best ask).
    """

    exchange: str
    base: str
    quote: str
    timestamp: int
    received_at: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int | None = None

    @property
    def tag(self) -> str:
        """The market tag used in logs, ``"UPBIT-BTC-KRW"``."""
        return market_tag(self.exchange, self.base, self.quote)


EVENT_KINDS = ("connected", "disconnected", "stale", "resync", "subscribe_failed", "dropped",
               "failed", "restarted")
"""What a :class:`FeedEvent` can say happened to a market's stream:

* ``connected``: a connection (or the first successful poll) started delivering; books stored
  after it are not continuous with the ones before;
* ``disconnected``: the stream stopped (connection closed, poll failing, collector stopping);
* ``stale``: the connection delivered no data for the idle timeout and was closed by the watchdog;
* ``resync``: the local book was thrown away and rebuilt from a new snapshot;
* ``subscribe_failed``: the exchange refused the market, or sent no book for it after subscribing;
* ``dropped``: books were received but not stored (writer queue full); the detail gives how many;
* ``failed``: the controller's thread (or one of its connection or worker threads) ended with an
  unexpected exception (a bug); the detail names it and whether the controller is restarted
  (after a backoff) or given up for good (too many failures within the restart window);
* ``restarted``: collection of the market starts again after a gap the collector did not see
  close: the controller restarted after a ``failed`` event, or the previous run on the same
  database ended without a clean stop (killed, power loss); books before and after are not
  continuous.
"""


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """Something that happened to a market's stream, stored in the ``feed_event`` table.

    Fields:
        exchange: upper case exchange name.
        base, quote: the market; both ``None`` for an event of the whole exchange.
        timestamp: when it happened, local clock, ms since the Unix epoch (UTC).
        kind: one of :data:`EVENT_KINDS`.
        detail: human-readable cause (``"connection closed (code 1006)"``).
    """

    exchange: str
    base: str | None
    quote: str | None
    timestamp: int
    kind: str
    detail: str = ""

    @property
    def tag(self) -> str:
        """The market tag used in logs, ``"UPBIT-BTC-KRW"``, or the exchange name."""
        return market_tag(self.exchange, self.base, self.quote) if self.base else self.exchange


def now_ms() -> int:
    """The current wall-clock time in ms since the Unix epoch (UTC)."""
    return time.time_ns() // 1_000_000


def to_ms(value: int | float | str) -> int:
    """Convert an exchange timestamp to integer ms since the Unix epoch, guessing its unit.

    Exchanges use seconds with a fraction (GOPAX ``1790138146.302``), milliseconds (Upbit),
    microseconds (Bithumb since 2025, 16 digits) and nanoseconds, as numbers or strings. The unit
    is told apart by magnitude, which is unambiguous for any date between 1973 and 5138.

    Raises:
        ValueError: the value is not a positive number.
    """
    number = float(value) if isinstance(value, str) else value
    if not number > 0:  # also rejects NaN
        raise ValueError(f"timestamp must be a positive number, got {value!r}")
    if number >= 1e17:  # nanoseconds
        return int(number // 1_000_000)
    if number >= 1e14:  # microseconds
        return int(number // 1_000)
    if number >= 1e11:  # milliseconds
        return int(number)
    return int(round(number * 1000))  # seconds


def iso_us(text: object) -> int:
    """Microseconds since the Unix epoch of an ISO 8601 / RFC 3339 UTC time
    (``"2023-07-30T15:29:58.343415Z"``; Kraken, BitMEX).

    Raises:
        ValueError: not such a time.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp {text!r} is not a string")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return calendar.timegm(moment.utctimetuple()) * 1_000_000 + moment.microsecond


INF = float("inf")


def check_padding(price: float, volume: float) -> None:
    """Accept a level that is not a real one as exchange padding: volume 0 at price 0 (Upbit's
    empty slots of a thin book) or at a finite positive price (Bithumb's dust shown as 0, a
    level deleted). Its caller drops it.

    Raises:
        ValueError: anything else that is not a real level: a NaN or infinite price or volume, a
            negative one, or a positive volume at price 0.
    """
    if not (volume == 0 and 0 <= price < INF):
        raise ValueError(f"level with price {price!r} and volume {volume!r}: a price must be "
                         "positive and finite, a volume finite and not negative")


def level_kept(price: float, volume: float) -> bool:
    """``True`` for a real level (price and volume positive and finite), ``False`` for padding
    (:func:`check_padding`).

    Raises:
        ValueError: a level that is neither (NaN, infinite, negative, a positive volume at 0).
    """
    if 0 < price < INF and 0 < volume < INF:
        return True
    check_padding(price, volume)
    return False


def best_first(levels: Iterable[Sequence], descending: bool, depth: int) -> tuple[Level, ...]:
    """Clean one side of a book: drop padding, order best first, keep ``depth`` levels.

    ``levels`` holds ``(price, volume)`` pairs as numbers or numeric strings. Padding (a volume of
    0, see :func:`check_padding`) is dropped. Bids are ordered by ``descending=True`` (highest
    first), asks by ``descending=False``.

    Raises:
        ValueError, TypeError: a price or a volume is not a number, or a level is neither real
            nor padding (:func:`level_kept`: NaN, infinite, negative, positive volume at 0).
    """
    cleaned = []
    for price, volume in levels:
        price = float(price)
        volume = float(volume)
        if level_kept(price, volume):
            cleaned.append((price, volume))
    cleaned.sort(reverse=descending)
    return tuple(cleaned[:depth])


CHANNELS = ("orderbook", "ticker", "trade")
"""The streams a controller can collect (``--channels``); ``orderbook`` is always collected."""


def checked_channels(names: Iterable[str]) -> set[str]:
    """``names`` as a set, every one of them in :data:`CHANNELS`.

    Raises:
        ConfigError: an unknown channel (the message lists the known ones).
    """
    asked = set(names)
    unknown = asked - set(CHANNELS)
    if unknown:
        raise ConfigError(f"unknown channel(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(CHANNELS)}")
    return asked


class Ticker(NamedTuple):
    """One ticker message of one market, stored in the ``ticker`` table.

    Fields:
        exchange, base, quote: as in :class:`OrderBookSnapshot`.
        timestamp: the exchange's event time, ms since the Unix epoch (UTC).
        received_at: local receive time, ms since the Unix epoch (UTC).
        last: last trade price (quote currency).
        open, high, low: the exchange's rolling or daily window (quote currency), ``None`` where
            the message has no such field.
        prev_close: the previous day's close (quote currency), ``None`` where not sent.
        base_volume: traded volume of the window in the base currency, ``None`` where not sent.
        quote_volume: traded value of the window in the quote currency, ``None`` where not sent.
        market_warning: the exchange's warning flag as sent (Upbit/Bithumb ``market_warning``:
            ``"NONE"`` or ``"CAUTION"``), ``None`` for exchanges without one.
    """

    exchange: str
    base: str
    quote: str
    timestamp: int
    received_at: int
    last: float
    open: float | None
    high: float | None
    low: float | None
    prev_close: float | None
    base_volume: float | None
    quote_volume: float | None
    market_warning: str | None = None

    @property
    def tag(self) -> str:
        """The market tag used in logs, ``"UPBIT-BTC-KRW"``."""
        return market_tag(self.exchange, self.base, self.quote)


TAKER_SIDES = ("buy", "sell")


class Trade(NamedTuple):
    """One public trade, stored once per ``(exchange, base, quote, trade_id)`` in ``trade``
    (columns ``exchange, symbol, currency, trade_id``).

    Fields:
        exchange, base, quote: as in :class:`OrderBookSnapshot`.
        timestamp: the exchange's trade time, ms since the Unix epoch (UTC).
        received_at: local receive time, ms since the Unix epoch (UTC).
        trade_id: the exchange's trade id, as text (Upbit's ``sequential_id`` exceeds 2**53).
        price: quote currency per base unit.
        volume: base currency (contracts on derivatives that count in contracts, e.g. BitMEX).
        side: the taker's side, ``"buy"`` (the taker bought, lifting an ask) or ``"sell"``.
    """

    exchange: str
    base: str
    quote: str
    timestamp: int
    received_at: int
    trade_id: str
    price: float
    volume: float
    side: str

    @property
    def tag(self) -> str:
        """The market tag used in logs, ``"UPBIT-BTC-KRW"``."""
        return market_tag(self.exchange, self.base, self.quote)


Record = OrderBookSnapshot | Ticker | Trade
"""What a controller's ``parse`` returns items of and the writer's queue holds: books, and the
tickers and trades of the other channels."""
