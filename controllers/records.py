"""Normalized records from an exchange's values: the checks every venue's parser shares.

A :class:`RecordFactory` belongs to one controller. It knows the exchange's name, the markets
the controller collects and the channels it collects, and builds
:class:`~core.model.OrderBookSnapshot`, :class:`~core.model.Ticker` and
:class:`~core.model.Trade` records from the values a parser read off a message: it checks the
market and the channel, converts the timestamp to ms since the Unix epoch and checks that prices,
volumes, sides and trade ids are what a record may hold. Anything wrong raises
:class:`~core.errors.MalformedMessage`, naming the market's tag where it is known.

This is the one point every record passes before it is handed to the writer, so the checks of
values are all here (``docs/storage.md``, "What is refused"):

* every price is finite and positive: a book level, a trade, a ticker's ``last``, ``open``,
  ``high``, ``low`` and ``prev_close`` (NaN, infinities, 0 and negative numbers are refused);
* every volume is finite: positive for a book level and a trade, positive or 0 for a ticker's
  ``base_volume`` and ``quote_volume`` (a market that did not trade in the window);
* a book is not crossed: its best bid is below its best ask.

The record is refused whole (the controller counts and logs the payload as a parse error with the
market's tag: :meth:`controllers.base.Controller.handle_payload`); nothing is repaired.

It does no I/O, no logging and no locking; the only state it keeps is the ticker fields of the
exchanges that send tickers as changes (:meth:`RecordFactory.merged_ticker_fields`), which the
controller's parser updates under the controller's lock.
"""

from __future__ import annotations

from typing import Iterable

from core.errors import MalformedMessage
from core.model import (INF, TAKER_SIDES, Level, Market, OrderBookSnapshot, Ticker, Trade,
                        iso_us, market_tag, to_ms)


class RecordFactory:
    """Builds and checks the records of one exchange's configured markets.

    Args:
        exchange: the exchange's upper case name, stored in every record (``"UPBIT"``).
        markets: the markets collected (base and quote upper case).
        channels: the channels collected, from :data:`core.model.CHANNELS`; a ticker or trade
            of a channel not among them is refused. Books are always accepted.
    """

    def __init__(self, exchange: str, markets: Iterable[Market], channels: Iterable[str]) -> None:
        self.exchange = exchange
        self.channels = frozenset(channels)
        self._markets_by_pair = {(m.base, m.quote): m for m in markets}
        self._ticker_fields: dict[Market, dict] = {}

    def market_for(self, base: str, quote: str) -> Market | None:
        """The configured market with this base and quote currency, or ``None``."""
        return self._markets_by_pair.get((base, quote))

    def checked_market(self, base: str, quote: str, what: str) -> Market:
        """The configured market of a ``what`` (``"book"``, ``"ticker"`` or ``"trade"``).

        Raises:
            MalformedMessage: ``what`` is a channel not collected (the error names the market's
                tag), or ``base``/``quote`` is not a configured market.
        """
        if what != "book" and what not in self.channels:
            raise MalformedMessage(f"a {what} came, but the {what} channel is not collected",
                                   market_tag(self.exchange, base, quote))
        market = self.market_for(base, quote)
        if market is None:
            raise MalformedMessage(f"{what} for a market not subscribed: {base}/{quote}")
        return market

    def time_ms(self, timestamp: object, market: Market) -> int:
        """ms since the epoch from a number or numeric string in any unit :func:`core.model.to_ms`
        recognizes (s, ms, µs, ns), or from an ISO 8601 UTC string (Kraken, BitMEX).

        Raises:
            MalformedMessage: anything else, naming ``market``'s tag.
        """
        try:
            return to_ms(timestamp)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            if isinstance(timestamp, str) and "T" in timestamp:
                try:
                    return iso_us(timestamp) // 1000
                except ValueError:
                    pass
            raise MalformedMessage(f"bad timestamp {timestamp!r}: {exc}",
                                   market.tag(self.exchange)) from exc

    def book(self, base: str, quote: str, timestamp: object, bids: tuple[Level, ...],
             asks: tuple[Level, ...], received_at: int, sequence: int | None = None
             ) -> OrderBookSnapshot:
        """A normalized book of a configured market; ``timestamp`` as :meth:`time_ms` reads it,
        ``received_at`` in ms since the epoch, ``bids``/``asks`` already normalized (best first,
        padding dropped).

        Raises:
            MalformedMessage: a market not configured, a bad timestamp, a level whose price or
                volume is not positive and finite, or a crossed book (best bid at or above best
                ask).
        """
        market = self.checked_market(base, quote, "book")
        for side, levels in (("bid", bids), ("ask", asks)):
            for price, volume in levels:
                if not (0 < price < INF and 0 < volume < INF):
                    raise MalformedMessage(f"{side} level with price {price!r} and volume "
                                           f"{volume!r}", market.tag(self.exchange))
        if bids and asks and bids[0][0] >= asks[0][0]:
            raise MalformedMessage(f"crossed book: best bid {bids[0][0]!r} >= best ask "
                                   f"{asks[0][0]!r}", market.tag(self.exchange))
        return OrderBookSnapshot(self.exchange, base, quote, self.time_ms(timestamp, market),
                                 received_at, bids, asks, sequence)

    def ticker(self, base: str, quote: str, timestamp: object, received_at: int, *,
               last: object, open: object = None, high: object = None, low: object = None,
               prev_close: object = None, base_volume: object = None,
               quote_volume: object = None, market_warning: object = None) -> Ticker:
        """A normalized :class:`~core.model.Ticker` of a configured market.

        Prices (quote currency) and volumes (base; ``quote_volume`` in quote) may be numbers or
        numeric strings; ``None`` or ``""`` (absent) is kept as ``None`` except for ``last``.
        ``timestamp`` as :meth:`time_ms` reads it; ``market_warning`` is kept as text.

        Raises:
            MalformedMessage: the ticker channel is not collected, a market not configured, a bad
                timestamp, a field that is not a finite number, a price (``last``, ``open``,
                ``high``, ``low``, ``prev_close``) that is not positive, or a negative volume
                (``base_volume``, ``quote_volume``: 0 is a market that did not trade).
        """
        market = self.checked_market(base, quote, "ticker")
        tag = market.tag(self.exchange)
        return Ticker(self.exchange, base, quote, self.time_ms(timestamp, market), received_at,
                      positive(number(last, "last", tag), "last", tag),
                      optional_number(open, "open", tag, positive),
                      optional_number(high, "high", tag, positive),
                      optional_number(low, "low", tag, positive),
                      optional_number(prev_close, "prev_close", tag, positive),
                      optional_number(base_volume, "base_volume", tag, not_negative),
                      optional_number(quote_volume, "quote_volume", tag, not_negative),
                      None if market_warning is None else str(market_warning))

    def trade(self, base: str, quote: str, timestamp: object, received_at: int, *,
              trade_id: object, price: object, volume: object, side: str) -> Trade:
        """A normalized :class:`~core.model.Trade` of a configured market; ``side`` is the
        taker's, ``"buy"`` or ``"sell"``, as the caller read it from the exchange's own field;
        ``timestamp`` as :meth:`time_ms` reads it; ``trade_id`` is stored as text.

        Raises:
            MalformedMessage: the trade channel is not collected, a market not configured, a bad
                timestamp, a missing trade id (``None``, ``""``, a bool or a float), a price or
                volume that is not a positive finite number, or another side.
        """
        market = self.checked_market(base, quote, "trade")
        tag = market.tag(self.exchange)
        if trade_id is None or trade_id == "" or isinstance(trade_id, (bool, float)):
            raise MalformedMessage(f"bad trade id {trade_id!r}", tag)
        price_ = positive(number(price, "price", tag), "price", tag)
        volume_ = positive(number(volume, "volume", tag), "volume", tag)
        if side not in TAKER_SIDES:
            raise MalformedMessage(f"bad taker side {side!r}", tag)
        return Trade(self.exchange, base, quote, self.time_ms(timestamp, market), received_at,
                     str(trade_id), price_, volume_, side)

    def merged_ticker_fields(self, market: Market, fields: dict, *, whole: bool) -> dict | None:
        """The ticker fields of ``market`` with ``fields`` merged in, for exchanges that send a
        whole ticker once and then only the fields that changed (Bybit derivatives' ``snapshot``
        then ``delta``, BitMEX's ``instrument`` ``partial`` then ``update``): ``whole`` replaces
        what was known. ``None`` for changed fields before any whole ticker: they have nothing to
        be merged into (the whole one is on its way).

        The dict returned is the one kept: it changes with the next call for ``market``.
        """
        known = self._ticker_fields.get(market)
        if whole:
            known = self._ticker_fields[market] = {}
        elif known is None:
            return None
        known.update(fields)
        return known


def number(value: object, name: str, market: str | None) -> float:
    """``value`` (an int, a float or a numeric string) as a float; ``name`` and ``market`` (a tag)
    are named in the error.

    Raises:
        MalformedMessage: anything else (``bool`` included), NaN or an infinity.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MalformedMessage(f"{name} is {value!r}, not a number", market)
    try:
        result = float(value)
    except (ValueError, OverflowError):
        raise MalformedMessage(f"{name} is {value!r}, not a number", market) from None
    if not -INF < result < INF:
        raise MalformedMessage(f"{name} is {value!r}, not a finite number", market)
    return result


def positive(value: float, name: str, market: str | None) -> float:
    """``value`` if above 0 (a price, a trade's volume).

    Raises:
        MalformedMessage: 0 or below, naming ``name`` and ``market`` (a tag).
    """
    if not value > 0:
        raise MalformedMessage(f"{name} is {value!r}, not positive", market)
    return value


def not_negative(value: float, name: str, market: str | None) -> float:
    """``value`` if 0 or above (a ticker's volume over its window).

    Raises:
        MalformedMessage: below 0, naming ``name`` and ``market`` (a tag).
    """
    if value < 0:
        raise MalformedMessage(f"{name} is {value!r}, negative", market)
    return value


def optional_number(value: object, name: str, market: str | None,
                    check=None) -> float | None:
    """:func:`number` passed through ``check`` (:func:`positive`, :func:`not_negative`) if
    given, keeping ``None`` (and the empty string some exchanges send) as ``None``."""
    if value is None or value == "":
        return None
    result = number(value, name, market)
    return result if check is None else check(result, name, market)
