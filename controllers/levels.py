"""Book sides given as lists of objects, ``[{"price": "…", "qty": "…"}, …]`` (Coinone, Korbit,
GOPAX), turned into normalized levels."""

from __future__ import annotations

from core.errors import MalformedMessage
from core.model import Level, best_first


def keyed_levels(items: object, descending: bool, depth: int, market: str | None, *,
                 price: str = "price", size: str = "qty") -> tuple[Level, ...]:
    """One side, best first, at most ``depth`` levels, from a list of ``{price: …, size: …}``
    objects (numbers or numeric strings; zero prices and sizes dropped). ``descending`` is
    ``True`` for bids. The exchange's order does not matter (Coinone sends asks worst first).

    Raises:
        MalformedMessage: ``items`` is not a list of objects with numeric ``price`` and ``size``
            keys; ``market`` (a tag) is named in the error.
    """
    if not isinstance(items, list):
        raise MalformedMessage(f"book side is {type(items).__name__}, not a list", market)
    try:
        return best_first(((item[price], item[size]) for item in items), descending, depth)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"bad level: {type(exc).__name__}: {exc}", market) from exc
