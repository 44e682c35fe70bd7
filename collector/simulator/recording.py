"""Serving recorded books, and the small real recording shipped with the project.

:func:`frames_from_recording` turns the ``in`` lines of a ``--record`` recording (see
:mod:`collector.record`) into the books the simulator's servers send: Upbit, Coinone and Korbit
book frames per market, Bithumb book objects per market from the REST bodies. GOPAX is not
served from a recording: its server keeps a true book and generates its deltas.

:data:`SAMPLE` is a recording of 113 real Upbit order books (KRW-LAMB and KRW-WAVES, 2021-04-17,
from a public cryptofeed capture of Upbit's wire; the test suite's ``tests/fixtures/SOURCES.md``
names it). Upbit sent them in its SIMPLE format; the keys are renamed to the DEFAULT
format the collector subscribes to, every value is as received. The capture has no receive
times, so each line's ``t`` is the book's own ``timestamp``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from collector.record import decode_payload

SAMPLE = Path(__file__).resolve().parent / "recordings" / "upbit-2021-04-17-real.ndjson.gz"
"""The shipped real recording."""

SAMPLE_MARKETS = ("KRW-LAMB", "KRW-WAVES")


def frames_from_recording(lines: Iterable[dict]) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """``(frames, symbols)`` from recorded lines: ``frames`` as the ``frames`` argument of
    the servers (``{"upbit": {code: frames}, "bithumb": {market: books}, …}``), ``symbols`` lower-case exchange name -> the
    base currencies with books, in first-seen order. Exchanges other than Upbit, Bithumb,
    Coinone and Korbit, and lines that are not books, are left out."""
    frames: dict[str, dict] = {}
    symbols: dict[str, list[str]] = {}

    def add(exchange: str, key: str, symbol: str, item) -> None:
        frames.setdefault(exchange, {}).setdefault(key, []).append(item)
        known = symbols.setdefault(exchange, [])
        if symbol not in known:
            known.append(symbol)

    for line in lines:
        if line.get("d") != "in" or int(line.get("status", 200)) >= 400:
            continue
        exchange = str(line.get("ex", "")).lower()
        payload = decode_payload(line)
        try:
            message = json.loads(payload)
        except ValueError:
            continue
        if exchange == "upbit" and isinstance(message, dict) and message.get("type") == "orderbook":
            code = message["code"]
            add("upbit", code, code.split("-")[1], payload.decode() if isinstance(payload, bytes) else payload)
        elif exchange == "bithumb" and isinstance(message, list):
            for book in message:
                if isinstance(book, dict) and "market" in book:
                    add("bithumb", book["market"], book["market"].split("-")[1], book)
        elif exchange == "coinone" and isinstance(message, dict) and message.get("response_type") == "DATA":
            symbol = message["data"]["target_currency"].upper()
            add("coinone", symbol, symbol, payload)
        elif exchange == "korbit" and isinstance(message, dict) and message.get("type") == "orderbook":
            symbol = message["symbol"]
            add("korbit", symbol, symbol.split("_")[0].upper(), payload)
    return frames, symbols
