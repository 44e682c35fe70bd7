"""One market for every simulated exchange: a reference price path per asset, and books around it.

* :class:`World` holds, per asset, one price path in USD (a seeded random walk, one step every
  ``step`` seconds, linearly interpolated between steps, so every server asking for the price at
  the same moment gets the same number). The global exchanges quote it in USDT (1 USDT = 1 USD)
  with a small spread per exchange; the Korean exchanges quote ``USD price x usd_krw x (1 +
  premium)``, the premium moving slowly around ``premium`` (2 % by default) with an offset per
  exchange, so the kimchi premium the collector computes looks like the real one. Upbit's
  ``KRW-USDT`` is ``usd_krw`` with a small premium of its own.
* :class:`LiveBook` is one market's book on one exchange: ``levels`` price levels a side on a grid
  about one basis point apart, best bid below and best ask above the current price, sizes
  drifting. :meth:`LiveBook.step` moves it to the price of now and returns the levels that
  changed, as an exchange's delta would (size ``"0"`` removes a level); :meth:`LiveBook.top` is the
  whole book, as a snapshot would hold it.
"""

from __future__ import annotations

import math
import random
import threading
import time
import zlib

BASE_USD = {"BTC": 95_000.0, "ETH": 3_500.0, "XRP": 2.2, "SOL": 190.0, "DOGE": 0.32, "ADA": 0.9,
            "LINK": 22.0, "TRX": 0.25, "AVAX": 38.0, "DOT": 7.5}
"""Starting prices in USD of the assets the demo knows; any other symbol gets a price derived
from its name."""


def _unit(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (the same on every run)."""
    return zlib.crc32(text.encode()) / 2 ** 32


class World:
    """Reference prices (see the module text).

    Args:
        seed: seed of the random walks (one per asset, so adding an asset changes no other).
        usd_krw: the USD/KRW rate.
        premium: the average kimchi premium, a fraction (0.02 = 2 %).
        step: seconds between two steps of a walk.
        volatility: standard deviation of one step, a fraction of the price.
    """

    def __init__(self, *, seed: int = 1, usd_krw: float = 1390.0, premium: float = 0.02,
                 step: float = 0.5, volatility: float = 0.0004, start: float | None = None) -> None:
        self.seed = seed
        self.usd_krw = usd_krw
        self.premium = premium
        self.step = step
        self.volatility = volatility
        self.start = time.time() if start is None else start
        self._paths: dict[str, list[float]] = {}
        self._rngs: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    def base_usd(self, symbol: str) -> float:
        if symbol in BASE_USD:
            return BASE_USD[symbol]
        return round(10 ** (4 * _unit(symbol) - 1), 4)  # 0.1 to 1,000 USD

    def usd(self, symbol: str, at: float | None = None) -> float:
        """The reference price of ``symbol`` in USD at ``at`` (``time.time()``; default now)."""
        position = max(0.0, ((time.time() if at is None else at) - self.start) / self.step)
        index = int(position)
        with self._lock:
            path = self._paths.get(symbol)
            if path is None:
                path = self._paths[symbol] = [self.base_usd(symbol)]
                self._rngs[symbol] = random.Random(f"{self.seed}:{symbol}")
            rng = self._rngs[symbol]
            while len(path) < index + 2:
                path.append(path[-1] * math.exp(rng.gauss(0.0, self.volatility)))
            low, high = path[index], path[index + 1]
        return low + (high - low) * (position - index)

    def kimchi(self, exchange: str, symbol: str, at: float | None = None) -> float:
        """The premium of ``symbol`` on the Korean ``exchange`` at ``at``, a fraction: the average,
        a slow swing of +-0.4 % (a 4-minute period) and an offset per exchange and asset of up to
        +-0.3 %."""
        elapsed = (time.time() if at is None else at) - self.start
        swing = 0.004 * math.sin(2 * math.pi * elapsed / 240.0 + 6 * _unit(symbol))
        return self.premium + swing + 0.006 * (_unit(f"{exchange}:{symbol}") - 0.5)

    def price(self, exchange: str, symbol: str, quote: str, at: float | None = None) -> float:
        """The mid price of ``symbol`` in ``quote`` (``"KRW"`` or a USD stablecoin) on
        ``exchange`` (upper-case name) at ``at``."""
        if quote == "KRW":
            if symbol == "USDT":  # what a dollar costs on a Korean exchange
                return self.usd_krw * (1.0015 + 0.001 * (_unit(exchange) - 0.5))
            return self.usd(symbol, at) * self.usd_krw * (1 + self.kimchi(exchange, symbol, at))
        return self.usd(symbol, at) * (1 + 0.0008 * (_unit(f"{exchange}:{symbol}") - 0.5))

    def traded_value(self, exchange: str, symbol: str, quote: str) -> float:
        """A plausible 24-hour traded value in ``quote``: larger for the assets listed first in
        :data:`BASE_USD`, different per exchange."""
        rank = list(BASE_USD).index(symbol) if symbol in BASE_USD else len(BASE_USD)
        usd = 2e9 / (1 + rank) ** 1.5 * (0.5 + _unit(f"value:{exchange}:{symbol}"))
        return usd * (self.usd_krw if quote == "KRW" else 1.0)


def tick_size(price: float, quote: str) -> float:
    """The price step of a market at ``price``: Upbit's KRW table for KRW, five significant
    digits otherwise."""
    if quote == "KRW":
        for floor, tick in ((2_000_000, 1000.0), (1_000_000, 500.0), (500_000, 100.0),
                            (100_000, 50.0), (10_000, 10.0), (1_000, 1.0), (100, 0.1), (10, 0.01)):
            if price >= floor:
                return tick
        return 0.001
    return 10.0 ** (math.floor(math.log10(price)) - 5)


def decimals_of(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


class LiveBook:
    """One market's book on one exchange (see the module text).

    Args:
        price: the mid price now (a callable of no argument).
        quote: the quote currency (for the tick size).
        unit_size: the base quantity worth about 10,000 USD (sizes are 0.2 to 4 of it).
        levels: levels a side.
        rng: the random source of the sizes.
    """

    def __init__(self, price, quote: str, unit_size: float, *, levels: int = 20,
                 rng: random.Random | None = None) -> None:
        self.price = price
        self.levels = levels
        self.rng = rng or random.Random(0)
        mid = price()
        self.tick = tick_size(mid, quote)
        self.ticks_per_gap = max(1, round(mid * 0.0001 / self.tick))
        self.price_decimals = decimals_of(self.tick)
        self.size_decimals = min(8, max(0, round(4 - math.log10(unit_size))))
        self.unit_size = unit_size
        self.bids: dict[int, str] = {}  # grid index -> size text
        self.asks: dict[int, str] = {}
        self.mid = mid
        self._move(mid)

    # --- texts ---------------------------------------------------------------------------------

    def units(self, index: int) -> int:
        """The price of grid ``index`` in ticks."""
        return index * self.ticks_per_gap

    def price_text(self, index: int) -> str:
        return f"{self.units(index) * self.tick:.{self.price_decimals}f}"

    def _size(self) -> str:
        size = self.unit_size * self.rng.uniform(0.2, 4.0)
        text = f"{size:.{self.size_decimals}f}"
        return text if float(text) > 0 else f"{10 ** -self.size_decimals:.{self.size_decimals}f}"

    # --- moves -----------------------------------------------------------------------------------

    def _move(self, mid: float) -> tuple[dict[int, str], dict[int, str]]:
        """Put the book around ``mid``; returns the changed levels per side (index -> size text,
        ``"0"`` for a removed level)."""
        gap = self.tick * self.ticks_per_gap
        best_bid = math.ceil(mid / gap) - 1
        best_ask = math.floor(mid / gap) + 1
        wanted = {"bid": range(best_bid, best_bid - self.levels, -1),
                  "ask": range(best_ask, best_ask + self.levels)}
        changes: dict[str, dict[int, str]] = {"bid": {}, "ask": {}}
        for side, book in (("bid", self.bids), ("ask", self.asks)):
            keep = set(wanted[side])
            for index in [i for i in book if i not in keep]:
                del book[index]
                changes[side][index] = "0"
            for index in wanted[side]:
                if index not in book and index > 0:
                    book[index] = changes[side][index] = self._size()
        self.mid = mid
        return changes["bid"], changes["ask"]

    def step(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Move to the price of now and change one to three sizes; returns ``(bids, asks)``, the
        changed levels as ``(price, size)`` texts, best first, removed ones with size ``"0"``."""
        bids, asks = self._move(self.price())
        for _ in range(self.rng.randint(1, 3)):
            side, changed = (self.bids, bids) if self.rng.random() < 0.5 else (self.asks, asks)
            if side:
                index = self.rng.choice(list(side))
                side[index] = changed[index] = self._size()
        return self._texts(bids, reverse=True), self._texts(asks, reverse=False)

    def _texts(self, levels: dict[int, str], reverse: bool) -> list[tuple[str, str]]:
        return [(self.price_text(i), levels[i]) for i in sorted(levels, reverse=reverse)]

    def top(self, depth: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """``(bids, asks)`` best first as ``(price, size)`` texts."""
        return (self._texts(self.bids, reverse=True)[:depth],
                self._texts(self.asks, reverse=False)[:depth])

    def last_price(self) -> str:
        """A trade price: the best bid or the best ask, as text."""
        side = max(self.bids) if self.rng.random() < 0.5 else min(self.asks)
        return self.price_text(side)


def number(text: str) -> int | float:
    """A price or size text as the JSON number an exchange that sends numbers would write."""
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value
