"""Signals computed from the live books: the kimchi premium (two of them) and net arbitrage at size.

Every ``interval`` seconds (default 60) the :class:`SignalEngine` takes the newest book of every
market from the :class:`BookBoard` (which every controller feeds, repeats included), leaves out
the books not seen for ``max_age`` seconds (a stale book yields no number), and stores:

* ``kimchi_premium`` — per asset, KRW exchange and global USDT spot exchange: the two mid prices
  and the premium of the KRW price over the global price converted to KRW, in percent, twice:
  with the live ``KRW-USDT`` mid of the venue declared as the rate's source (Upbit:
  ``usdt_krw``) and with the user's USD/KRW reference rate
  (``usd_krw``, taking 1 USDT = 1 USD). Neither can be rebuilt later (the live rate is not kept
  elsewhere; the reference is whatever the user supplied then), so both are stored side by side;
  a premium whose rate is missing or stale is ``NULL``::

      premium_pct = (krw_price / (global_price * rate) - 1) * 100

* ``arbitrage`` — per asset, notional size (KRW) and ordered pair of exchanges (KRW exchanges
  among themselves, and KRW against global USDT spot exchanges through the live ``KRW-USDT``
  mid): buy ``notional_krw`` worth at the asks of the buy exchange, walking its stored depth,
  then sell the quantity bought at the bids of the sell exchange, both legs paying their taker
  fee on the traded value::

      cost     = notional_krw * (1 + buy_fee)
      proceeds = sell_value_in_quote * sell_fx * (1 - sell_fee)
      net_bps  = (proceeds / cost - 1) * 10_000        (gross_bps: both fees 0)

  A book too thin for the size (the stored depth cannot fill it) yields no row.

Rows are stamped with the minute (ms since the epoch, UTC, floored) they were computed in; a
second computation in the same minute replaces the first (``INSERT OR REPLACE``).

Which exchanges are Korean (quoted in KRW), which are derivatives (never a leg), whose
``KRW-USDT`` book gives the live rate, and the taker fees, come from the venues' declarations
(:class:`core.venue.Venue`), passed in by the collector. Fees are fractions of the traded value
(0.0005 = 0.05 %), overridable with ``--fees EXCHANGE=RATE,...``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

from core.errors import ConfigError
from core.model import Level, OrderBookSnapshot, now_ms
from core.venue import Venue

log = logging.getLogger("collector.signals")
_TAG = {"tag": "SIGNALS"}

Venues = Mapping[str, Venue]
"""The venues' declarations by upper-case exchange name (``"UPBIT"``)."""


def _korean(venues: Venues, exchange: str) -> bool:
    venue = venues.get(exchange)
    return venue is not None and venue.korean


def _global_spot(venues: Venues, exchange: str) -> bool:
    venue = venues.get(exchange)
    return venue is not None and not venue.korean and not venue.derivative


DEFAULT_NOTIONALS = (1_000_000.0, 10_000_000.0, 50_000_000.0)
"""Default arbitrage sizes in KRW (``--arb-sizes``)."""


class Premium(NamedTuple):
    """One ``kimchi_premium`` row (see the module text); prices in KRW and USDT, rates in KRW
    per USDT / USD, premiums in percent, times in ms since the epoch (UTC)."""

    minute: int
    symbol: str
    krw_exchange: str
    krw_price: float
    global_exchange: str
    global_price: float
    usdt_krw: float | None
    premium_usdt_pct: float | None
    usd_krw: float | None
    premium_usd_pct: float | None
    computed_at: int


class Arbitrage(NamedTuple):
    """One ``arbitrage`` row (see the module text): ``quantity`` in the base currency,
    ``buy_price``/``sell_price`` the average fill prices in each exchange's quote currency,
    ``buy_fx``/``sell_fx`` KRW per unit of that quote currency (1 for KRW), fees as fractions,
    edges in basis points."""

    minute: int
    symbol: str
    notional_krw: float
    buy_exchange: str
    buy_currency: str
    sell_exchange: str
    sell_currency: str
    quantity: float
    buy_price: float
    sell_price: float
    buy_fx: float
    sell_fx: float
    buy_fee: float
    sell_fee: float
    gross_bps: float
    net_bps: float
    computed_at: int


def parse_fees(text: str) -> dict[str, float]:
    """``--fees`` (``"upbit=0.0004,binance=0.00075"``) as upper-case exchange -> rate.

    Raises:
        ConfigError: an entry not ``NAME=RATE`` with a rate from 0 to below 1.
    """
    fees: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, rate = entry.partition("=")
        try:
            value = float(rate)
        except ValueError:
            value = -1.0
        if not name.strip() or not 0 <= value < 1:
            raise ConfigError(f"bad --fees entry {entry!r}: expected EXCHANGE=RATE with RATE a "
                              f"fraction from 0 to below 1, e.g. upbit=0.0005")
        fees[name.strip().upper()] = value
    return fees


def read_rate(path: Path) -> float:
    """The USD/KRW rate in ``path``: the first line that is not empty and not a ``#`` comment,
    one positive number (``1385.20``).

    Raises:
        ConfigError: the file cannot be read or holds no such number.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read USD/KRW rate file {path}: {exc.strerror or exc}") from None
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                rate = float(line.replace(",", ""))
            except ValueError:
                break
            if rate > 0:
                return rate
            break
    raise ConfigError(f"USD/KRW rate file {path} holds no positive number")


def mid(book: OrderBookSnapshot) -> float | None:
    """The mid price of ``book`` (quote currency), ``None`` when a side is empty."""
    if not book.bids or not book.asks:
        return None
    return (book.bids[0][0] + book.asks[0][0]) / 2


def live_usdt_krw(books: Mapping[tuple[str, str, str], OrderBookSnapshot],
                  venues: Venues) -> float | None:
    """The mid of the ``KRW-USDT`` book among ``books`` (KRW per USDT) of the first venue
    declared as the rate's source (``usdt_krw_rate``: Upbit), else ``None``."""
    for exchange, venue in venues.items():
        book = books.get((exchange, "USDT", "KRW")) if venue.usdt_krw_rate else None
        if book is not None:
            return mid(book)
    return None


def buy_at_asks(asks: Sequence[Level], budget: float) -> tuple[float, float] | None:
    """Spend ``budget`` (quote currency) at ``asks`` (best first): ``(quantity bought in base,
    budget)``; ``None`` if the levels hold less than ``budget`` of value."""
    quantity = spent = 0.0
    for price, size in asks:
        value = price * size
        if spent + value >= budget:
            return quantity + (budget - spent) / price, budget
        quantity += size
        spent += value
    return None


def sell_at_bids(bids: Sequence[Level], quantity: float) -> float | None:
    """Sell ``quantity`` (base) at ``bids`` (best first): the value received (quote currency);
    ``None`` if the levels hold less than ``quantity``."""
    left = quantity
    value = 0.0
    for price, size in bids:
        if size >= left:
            return value + left * price
        value += size * price
        left -= size
    return None


def kimchi_premiums(books: Mapping[tuple[str, str, str], OrderBookSnapshot], minute: int,
                    computed_at: int, usd_krw: float | None, venues: Venues) -> list[Premium]:
    """The premium rows for the fresh ``books`` (key ``(exchange, symbol, currency)``): each KRW
    book of a Korean venue against each USDT book of a global spot venue; the live rate is
    :func:`live_usdt_krw`."""
    usdt_krw = live_usdt_krw(books, venues)
    if usdt_krw is None and usd_krw is None:
        return []
    rows = []
    for (krw_ex, symbol, currency), krw_book in sorted(books.items()):
        if currency != "KRW" or not _korean(venues, krw_ex) or symbol == "USDT":
            continue
        krw_price = mid(krw_book)
        if krw_price is None:
            continue
        for (ex, other, quote), book in sorted(books.items()):
            if other != symbol or quote != "USDT" or not _global_spot(venues, ex):
                continue
            price = mid(book)
            if price is None:
                continue
            rows.append(Premium(
                minute, symbol, krw_ex, krw_price, ex, price,
                usdt_krw, _premium(krw_price, price, usdt_krw),
                usd_krw, _premium(krw_price, price, usd_krw), computed_at))
    return rows


def _premium(krw_price: float, usdt_price: float, rate: float | None) -> float | None:
    return None if rate is None else (krw_price / (usdt_price * rate) - 1) * 100


@dataclass
class ArbitrageSkips:
    """Why pairs yielded no arbitrage row: a book too thin for the size, or no live KRW-USDT
    rate for a pair with a global exchange."""

    thin: int = 0
    no_rate: int = 0


def net_arbitrage(books: Mapping[tuple[str, str, str], OrderBookSnapshot],
                  notionals: Iterable[float], fees: Mapping[str, float], minute: int,
                  computed_at: int, venues: Venues,
                  skips: ArbitrageSkips | None = None) -> list[Arbitrage]:
    """The arbitrage rows for the fresh ``books`` (see the module text) at each notional size
    (KRW). An exchange missing from ``fees`` is left out."""
    skips = skips if skips is not None else ArbitrageSkips()
    usdt_krw = live_usdt_krw(books, venues)
    legs: dict[str, list[tuple[str, str, OrderBookSnapshot]]] = {}
    for (ex, symbol, currency), book in books.items():
        korean = _korean(venues, ex) and currency == "KRW"
        spot_usdt = _global_spot(venues, ex) and currency == "USDT"
        if (korean or spot_usdt) and symbol != "USDT" and ex in fees:
            legs.setdefault(symbol, []).append((ex, currency, book))
    rows = []
    for symbol in sorted(legs):
        for (buy_ex, buy_cur, buy), (sell_ex, sell_cur, sell) in itertools.permutations(
                sorted(legs[symbol], key=lambda v: v[0]), 2):
            if buy_cur != "KRW" and sell_cur != "KRW":
                continue  # global against global: not a kimchi trade
            fx = {"KRW": 1.0, "USDT": usdt_krw}
            buy_fx, sell_fx = fx[buy_cur], fx[sell_cur]
            if buy_fx is None or sell_fx is None:
                skips.no_rate += 1
                continue
            for notional in notionals:
                bought = buy_at_asks(buy.asks, notional / buy_fx)
                received = None if bought is None else sell_at_bids(sell.bids, bought[0])
                if bought is None or received is None:
                    skips.thin += 1
                    continue
                quantity, spent = bought
                buy_fee, sell_fee = fees[buy_ex], fees[sell_ex]
                value_krw = received * sell_fx
                gross = (value_krw / notional - 1) * 10_000
                net = (value_krw * (1 - sell_fee) / (notional * (1 + buy_fee)) - 1) * 10_000
                rows.append(Arbitrage(minute, symbol, notional, buy_ex, buy_cur, sell_ex, sell_cur,
                                      quantity, spent / quantity, received / quantity, buy_fx,
                                      sell_fx, buy_fee, sell_fee, gross, net, computed_at))
    return rows


class BookBoard:
    """The newest book of every market and when it was last seen (ms since the epoch, local
    clock); fed by every controller (``watcher``), read by the :class:`SignalEngine`."""

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self._books: dict[tuple[str, str, str], tuple[OrderBookSnapshot, int]] = {}
        self._clock = clock

    def watch(self, book: OrderBookSnapshot) -> None:
        """Note ``book`` as its market's current book (called from controller threads; one dict
        assignment, atomic)."""
        self._books[(book.exchange, book.base, book.quote)] = (book, self._clock())

    def fresh(self, now: int, max_age_ms: int) -> tuple[dict[tuple[str, str, str], OrderBookSnapshot], int]:
        """``(books seen within max_age_ms of now, how many were older)``."""
        books, stale = {}, 0
        for key, (book, seen) in list(self._books.items()):
            if now - seen <= max_age_ms:
                books[key] = book
            else:
                stale += 1
        return books, stale


@dataclass
class SignalStats:
    """Counts since the engine started."""

    runs: int = 0
    premium_rows: int = 0
    arbitrage_rows: int = 0
    stale_books: int = 0
    thin: int = 0
    no_rate: int = 0
    rate_errors: int = 0
    last_error: str | None = None


@dataclass
class SignalEngine:
    """Computes and stores the signals every ``interval`` seconds in its own thread.

    Args:
        board: where the books come from.
        submit: ``SQLiteWriter.submit_signals``.
        interval: seconds between computations (the rows are per minute; default 60).
        max_age: a book not seen for this many seconds is stale and yields no number.
        notionals: arbitrage sizes in KRW.
        venues: the venues' declarations by upper-case exchange name (:data:`Venues`).
        fees: taker fee per upper-case exchange name (``None``: the venues' declared fees).
        usd_krw: the USD/KRW reference rate, or ``None``.
        usd_krw_file: a file holding the rate (:func:`read_rate`), read again at every
            computation so another program can keep it current; wins over ``usd_krw``.
    """

    board: BookBoard
    submit: Callable[[str, Sequence[tuple]], None]
    interval: float = 60.0
    max_age: float = 10.0
    notionals: Sequence[float] = DEFAULT_NOTIONALS
    venues: Venues = field(default_factory=dict)
    fees: Mapping[str, float] | None = None
    usd_krw: float | None = None
    usd_krw_file: Path | None = None
    stats: SignalStats = field(default_factory=SignalStats)

    def __post_init__(self) -> None:
        if not self.venues:
            raise ConfigError("the signal engine needs the venues' declarations")
        if self.fees is None:
            self.fees = {exchange: venue.taker_fee for exchange, venue in self.venues.items()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reference_rate(self) -> float | None:
        """The USD/KRW reference now: the file's rate (``None``, logged and counted, if it cannot
        be read), else ``usd_krw``."""
        if self.usd_krw_file is None:
            return self.usd_krw
        try:
            return read_rate(self.usd_krw_file)
        except ConfigError as exc:
            self.stats.rate_errors += 1
            if self.stats.last_error != str(exc):
                log.warning("%s; premium_usd_pct stays empty until it can be read", exc, extra=_TAG)
            self.stats.last_error = str(exc)
            return None

    def compute(self, now: int | None = None) -> tuple[list[Premium], list[Arbitrage]]:
        """One computation at ``now`` (ms; default the clock): the rows, also handed to
        ``submit``."""
        now = now_ms() if now is None else now
        minute = now // 60_000 * 60_000
        books, stale = self.board.fresh(now, int(self.max_age * 1000))
        skips = ArbitrageSkips()
        premiums = kimchi_premiums(books, minute, now, self.reference_rate(), self.venues)
        arbitrages = net_arbitrage(books, self.notionals, self.fees, minute, now, self.venues, skips)
        if premiums:
            self.submit("kimchi_premium", premiums)
        if arbitrages:
            self.submit("arbitrage", arbitrages)
        s = self.stats
        s.runs += 1
        s.premium_rows += len(premiums)
        s.arbitrage_rows += len(arbitrages)
        s.stale_books += stale
        s.thin += skips.thin
        s.no_rate += skips.no_rate
        log.debug("minute %d: %d fresh and %d stale books; %d premium and %d arbitrage rows; "
                  "%d sizes too large for a book, %d pairs without a KRW-USDT rate", minute,
                  len(books), stale, len(premiums), len(arbitrages), skips.thin, skips.no_rate,
                  extra=_TAG)
        return premiums, arbitrages

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="signals", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a computation under way finishes and is submitted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval
            try:
                self.compute()
            except Exception:  # a bug here must not stop the books; it is logged loudly
                log.exception("signal computation failed", extra=_TAG)
        s = self.stats
        log.info("signals: %d runs, %d premium and %d arbitrage rows; %d stale books skipped, "
                 "%d sizes too large for a book, %d pairs without a KRW-USDT rate", s.runs,
                 s.premium_rows, s.arbitrage_rows, s.stale_books, s.thin, s.no_rate, extra=_TAG)
