"""A local order book kept from a snapshot and deltas (GOPAX and the global exchanges)."""

from __future__ import annotations

import bisect
from typing import Hashable

from core.model import Level


class LocalBook:
    """One market's book: price -> volume per side, updated level by level.

    Prices are in quote units, volumes in base units. An optional ``version`` per update (any
    comparable value, e.g. GOPAX's ``(updatedAt, entryId)``) makes an update older than the one
    already applied at that price a no-op; a deleted level forgets its version. An optional
    ``text`` per update keeps the level as the exchange spelled it (``("5.14", "251")``), for the
    checksums that are computed over those strings (:meth:`top_text`).

    Each side also keeps its prices sorted (``bisect``), so the top of a deep book (Binance
    snapshots hold 1,000 levels a side) is a slice, not a scan of every level.
    """

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._versions: dict[tuple[str, float], Hashable] = {}
        self._text: dict[str, dict[float, tuple[str, str]]] = {"bid": {}, "ask": {}}
        self._sorted: dict[str, list[float]] = {"bid": [], "ask": []}  # ascending prices

    def apply(self, side: str, price: float, volume: float, version: Hashable = None,
              text: tuple[str, str] | None = None) -> bool:
        """Set the level at ``price`` on ``side`` (``"bid"`` or ``"ask"``) to ``volume``; a volume
        of 0 deletes it. Returns ``False`` if ``version`` is not newer than the level's.

        Raises:
            ValueError: ``side`` is neither ``"bid"`` nor ``"ask"``.
        """
        if side == "bid":
            levels = self.bids
        elif side == "ask":
            levels = self.asks
        else:
            raise ValueError(f"side must be 'bid' or 'ask', got {side!r}")
        key = (side, price)
        if version is not None:
            known = self._versions.get(key)
            if known is not None and not version > known:  # type: ignore[operator]
                return False
        if volume > 0:
            if price not in levels:
                bisect.insort(self._sorted[side], price)
            levels[price] = volume
            if version is not None:
                self._versions[key] = version
            if text is not None:
                self._text[side][price] = text
        else:
            if levels.pop(price, None) is not None:
                prices = self._sorted[side]
                del prices[bisect.bisect_left(prices, price)]
            self._versions.pop(key, None)
            self._text[side].pop(price, None)
        return True

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels of each side (Kraken: levels pushed out of the
        subscribed depth are not deleted by a message)."""
        for side, levels in (("bid", self.bids), ("ask", self.asks)):
            prices = self._sorted[side]
            if len(prices) <= depth:
                continue
            dropped = prices[:-depth] if side == "bid" else prices[depth:]
            self._sorted[side] = prices[-depth:] if side == "bid" else prices[:depth]
            for price in dropped:
                del levels[price]
                self._versions.pop((side, price), None)
                self._text[side].pop(price, None)

    def top_text(self, depth: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """``(bids, asks)`` as the exchange spelled them, best first, at most ``depth`` each;
        only levels applied with ``text``."""
        bids, asks = self.top(depth)
        return ([self._text["bid"][price] for price, _ in bids],
                [self._text["ask"][price] for price, _ in asks])

    def top(self, depth: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """``(bids, asks)``, best first, at most ``depth`` levels each."""
        bids, asks = self.bids, self.asks
        return (tuple((p, bids[p]) for p in reversed(self._sorted["bid"][-depth:])),
                tuple((p, asks[p]) for p in self._sorted["ask"][:depth]))

    def crossed(self) -> bool:
        """``True`` if the best bid is at or above the best ask (a desynchronized book)."""
        bids, asks = self._sorted["bid"], self._sorted["ask"]
        return bool(bids and asks) and bids[-1] >= asks[0]

    def best(self) -> tuple[float | None, float | None]:
        """``(best bid, best ask)`` prices; ``None`` for an empty side."""
        bids, asks = self._sorted["bid"], self._sorted["ask"]
        return (bids[-1] if bids else None, asks[0] if asks else None)
