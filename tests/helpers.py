"""Test helpers: an independent oracle of what must be stored, and readers of what was stored."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path


def expected_book(units: list[dict], depth: int = 15) -> tuple[tuple, tuple]:
    """``(bids, asks)`` the collector must store for ``orderbook_units``: no zero price or size,
    best first, ``depth`` per side."""
    bids = [(float(u["bid_price"]), float(u["bid_size"])) for u in units
            if float(u["bid_price"]) > 0 and float(u["bid_size"]) > 0]
    asks = [(float(u["ask_price"]), float(u["ask_size"])) for u in units
            if float(u["ask_price"]) > 0 and float(u["ask_size"]) > 0]
    return tuple(sorted(bids, reverse=True)[:depth]), tuple(sorted(asks)[:depth])


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
