"""Test helpers: an independent oracle of what must be stored, and readers of what was stored."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path


def expected_side(pairs, descending: bool, depth: int) -> tuple:
    """One side as the collector must store it: ``(price, size)`` floats without a zero price or
    size, best first, ``depth`` levels."""
    levels = [(float(p), float(v)) for p, v in pairs]
    return tuple(sorted([lv for lv in levels if lv[0] > 0 and lv[1] > 0], reverse=descending)[:depth])


def expected_book(units: list[dict], depth: int = 15) -> tuple[tuple, tuple]:
    """``(bids, asks)`` the collector must store for ``orderbook_units``."""
    return (expected_side(((u["bid_price"], u["bid_size"]) for u in units), True, depth),
            expected_side(((u["ask_price"], u["ask_size"]) for u in units), False, depth))


def without_repeats(books: list[tuple]) -> list[tuple]:
    """Drop each book whose levels equal the previous one's (the collector stores those once).

    Books are ``(timestamp, bids, asks)``.
    """
    kept: list[tuple] = []
    for book in books:
        if not kept or kept[-1][1:] != book[1:]:
            kept.append(book)
    return kept


def expected_upbit(frames: list[str], depth: int = 15) -> list[tuple]:
    """``(timestamp_ms, bids, asks)`` per frame text, repeats dropped."""
    books = []
    for text in frames:
        frame = json.loads(text)
        books.append((frame["timestamp"], *expected_book(frame["orderbook_units"], depth)))
    return without_repeats(books)


def expected_bithumb(served: list[dict], market: str, depth: int = 15) -> list[tuple]:
    """``(timestamp_ms, bids, asks)`` of the books served for ``market`` (µs -> ms), repeats dropped."""
    return without_repeats([
        (int(book["timestamp"]) // 1000, *expected_book(book["orderbook_units"], depth))
        for book in served if book["market"] == market
    ])


def stored_books(db: Path, exchange: str) -> dict[str, list[tuple]]:
    """symbol -> ``[(timestamp, bids, asks), …]`` in storage order, read with plain SQL."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT snapshot_id, symbol, timestamp, side, level, price, volume FROM orderbook "
            "WHERE exchange = ? ORDER BY snapshot_id, side DESC, level", (exchange,)).fetchall()
    finally:
        conn.close()
    books: dict[int, dict] = {}
    for sid, symbol, ts, side, level, price, volume in rows:
        book = books.setdefault(sid, {"symbol": symbol, "ts": ts, "bid": [], "ask": []})
        assert level == len(book[side]), f"levels of snapshot {sid} not contiguous"
        book[side].append((price, volume))
    result: dict[str, list[tuple]] = {}
    for book in books.values():
        result.setdefault(book["symbol"], []).append((book["ts"], tuple(book["bid"]), tuple(book["ask"])))
    return result


def run_until(controller, condition, *, timeout: float = 10.0, stop_within: float = 5.0) -> None:
    """Start ``controller``, wait until ``condition()`` (at most ``timeout`` s), stop it, and
    assert that its thread ended within ``stop_within`` seconds of the stop."""
    controller.start()
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop_asked = time.monotonic()
    controller.stop()
    assert controller.join(stop_within), "controller did not stop"
    assert time.monotonic() - stop_asked < stop_within


def expected_keyed(data: dict, depth: int = 15) -> tuple[tuple, tuple]:
    """``(bids, asks)`` for a book given as ``{"bids": [{"price", "qty"}], "asks": […]}`` in any
    order."""
    return (expected_side(((i["price"], i["qty"]) for i in data["bids"]), True, depth),
            expected_side(((i["price"], i["qty"]) for i in data["asks"]), False, depth))


def expected_coinone(frames: list[str], depth: int = 15) -> list[tuple]:
    """``(timestamp_ms, bids, asks)`` per Coinone frame: book time = the ms part of ``id``; a
    frame whose ``id`` is not above the last one is left out; repeats dropped."""
    books, last = [], -1
    for text in frames:
        data = json.loads(text)["data"]
        if int(data["id"]) <= last:
            continue
        last = int(data["id"])
        books.append((int(data["id"][:13]), *expected_keyed(data, depth)))
    return without_repeats(books)


def expected_korbit(frames: list[str], depth: int = 15) -> list[tuple]:
    """``(data.timestamp, bids, asks)`` per Korbit orderbook frame, repeats dropped."""
    return without_repeats([(json.loads(t)["data"]["timestamp"], *expected_keyed(json.loads(t)["data"], depth))
                            for t in frames])


def fast(cls):
    """A subclass of controller ``cls`` that retries within 0.05-0.2 s, for tests."""
    return type(f"Fast{cls.__name__}", (cls,), {"backoff_initial": 0.05, "backoff_cap": 0.2})


def collect(cls, markets, env: dict, until, *, timeout: float = 10.0, depth: int = 15):
    """Run a ``cls`` controller for ``markets`` until ``until(stored)``; return
    ``(controller, stored)``, the books in the order the controller handed them on."""
    stored: list = []
    controller = cls(markets, sink=lambda b: stored.append(b) or True, env=env, depth=depth)
    run_until(controller, lambda: until(stored), timeout=timeout, stop_within=3.0)
    return controller, stored


def by_symbol(stored) -> dict[str, list[tuple]]:
    """symbol -> ``[(timestamp, bids, asks), …]`` of handed-on books, in order."""
    result: dict[str, list[tuple]] = {}
    for b in stored:
        result.setdefault(b.base, []).append((b.timestamp, b.bids, b.asks))
    return result


def expected_books(servers, exchange: str, depth: int = 15) -> dict[str, list[tuple]]:
    """symbol -> the books that must be stored for ``exchange`` (upper case) at ``depth``, from
    what the :class:`tests.sim_servers.Servers` servers sent (GOPAX's server keeps
    them at the depth it was made with)."""
    if exchange == "UPBIT":
        return {k.split("-")[1]: expected_upbit(v, depth) for k, v in servers.upbit.sent.items()
                if ":" not in k}  # "trade:KRW-BTC", "ticker:KRW-BTC" hold the other channels
    if exchange == "BITHUMB":
        return {m.split("-")[1]: expected_bithumb(servers.bithumb.served, m, depth)
                for m in servers.bithumb.books}
    if exchange == "COINONE":
        return {k: expected_coinone(v, depth) for k, v in servers.coinone.sent.items()}
    if exchange == "KORBIT":
        return {k.split("_")[0].upper(): expected_korbit(v, depth) for k, v in servers.korbit.sent.items()}
    return {p.split("-")[0]: without_repeats([b for b in v if b[1] or b[2]])
            for p, v in servers.gopax.expected.items()}
