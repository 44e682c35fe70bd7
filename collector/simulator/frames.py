"""Real exchange messages (the package data), and more books generated from them.

Generated books keep a real book's prices and change its sizes step by step (a seeded random
walk, so a run is repeatable); now and then a size becomes 0, which exchanges use for padding and
dust. They are what the loopback servers send for markets that have no recording.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "messages"
"""The real exchange messages the servers start from (package data; ``messages/SOURCES.md`` says
where each came from)."""


def data_text(name: str) -> str:
    """The exact text of ``messages/<name>``, without the final newline the files carry."""
    return (DATA / name).read_text(encoding="utf-8").rstrip("\n")


def data_json(name: str):
    return json.loads(data_text(name))


def vary_units(units: list[dict], count: int, *, seed: int, decimals: int = 8,
               keys: tuple[str, ...] = ("ask_size", "bid_size"), text: bool = False) -> list[list[dict]]:
    """``count`` successive variants of a list of level objects: same prices, walking sizes.

    ``keys`` are the size keys walked (``orderbook_units`` by default; ``("qty",)`` for one side
    of a Coinone or Korbit book); ``text`` writes sizes as strings, as those exchanges do.
    """
    rng = random.Random(seed)
    current = copy.deepcopy(units)
    variants = []
    for _ in range(count):
        current = copy.deepcopy(current)
        for unit in rng.sample(current, k=max(1, len(current) // 3)):
            for key in keys:
                if rng.random() < 0.05:
                    unit[key] = "0" if text else 0
                else:
                    base = float(unit[key]) or 10 ** -decimals * rng.randint(1, 5000)
                    size = round(base * rng.uniform(0.5, 1.5) + 10 ** -decimals, decimals)
                    unit[key] = f"{size:.{decimals}f}".rstrip("0").rstrip(".") if text else size
        variants.append(current)
    return variants


def upbit_generated_books(code: str, template: dict, count: int, *, seed: int,
                          start_ms: int = 1_790_134_742_106, step_ms: int = 100) -> list[str]:
    """``count`` Upbit DEFAULT frames for ``code``: the first a SNAPSHOT, then REALTIME."""
    frames = []
    for i, units in enumerate(vary_units(template["orderbook_units"], count, seed=seed)):
        frame = dict(template, code=code, timestamp=start_ms + i * step_ms, orderbook_units=units,
                     stream_type="SNAPSHOT" if i == 0 else "REALTIME")
        frame["total_ask_size"] = round(sum(u["ask_size"] for u in units), 8)
        frame["total_bid_size"] = round(sum(u["bid_size"] for u in units), 8)
        frames.append(json.dumps(frame))
    return frames


def bithumb_generated_books(market: str, template: dict, count: int, *, seed: int,
                            start_us: int = 1_790_133_505_546_514, step_us: int = 100_000) -> list[dict]:
    """``count`` Bithumb ``/v1/orderbook`` book objects for ``market`` (µs timestamps)."""
    books = []
    for i, units in enumerate(vary_units(template["orderbook_units"], count, seed=seed, decimals=4)):
        books.append({
            "market": market,
            "timestamp": start_us + i * step_us,
            "total_ask_size": round(sum(u["ask_size"] for u in units), 4),
            "total_bid_size": round(sum(u["bid_size"] for u in units), 4),
            "orderbook_units": units,
        })
    return books


def coinone_generated_books(symbol: str, template: dict, count: int, *, seed: int,
                            start_ms: int = 1_790_134_177_753) -> list[str]:
    """``count`` Coinone ``DATA``/``ORDERBOOK`` frames for ``KRW-<symbol>``: the template's prices
    (asks worst first, as Coinone sends them), walking ``qty`` strings, ``id`` growing."""
    data = template["data"]
    asks = vary_units(data["asks"], count, seed=seed, keys=("qty",), text=True)
    bids = vary_units(data["bids"], count, seed=seed + 1, keys=("qty",), text=True)
    frames = []
    for i in range(count):
        ms = start_ms + 37 * i
        frames.append(json.dumps(dict(template, data=dict(
            data, target_currency=symbol, timestamp=ms, id=f"{ms}{i % 1000:03d}",
            asks=asks[i], bids=bids[i])), separators=(",", ":")))
    return frames


def korbit_generated_books(symbol: str, template: dict, count: int, *, seed: int,
                           start_ms: int = 1_790_134_243_067) -> list[str]:
    """``count`` Korbit orderbook frames for ``<symbol>_krw``: the first ``snapshot: true``, the
    later ones without the key (as on the wire), prices kept, ``qty`` strings walking."""
    data = template["data"]
    asks = vary_units(data["asks"], count, seed=seed, keys=("qty",), text=True)
    bids = vary_units(data["bids"], count, seed=seed + 1, keys=("qty",), text=True)
    frames = []
    for i in range(count):
        frame = {"symbol": f"{symbol.lower()}_krw", "timestamp": start_ms + 50 * i + 14,
                 "type": "orderbook"}
        if i == 0:
            frame["snapshot"] = True
        frame["data"] = {"timestamp": start_ms + 50 * i, "asks": asks[i], "bids": bids[i]}
        frames.append(json.dumps(frame, separators=(",", ":")))
    return frames


def scaled_units(units: list[dict], factor: float, decimals: int = 1) -> list[dict]:
    """``orderbook_units`` with every price multiplied by ``factor`` (rounded to ``decimals``);
    sizes kept. Gives a real book's shape at another market's price (Upbit ``KRW-USDT``)."""
    return [dict(u, ask_price=round(u["ask_price"] * factor, decimals),
                 bid_price=round(u["bid_price"] * factor, decimals)) for u in units]


def upbit_generated_trades(code: str, template: dict, count: int, *, seed: int, price: float,
                           start_ms: int = 1_790_134_742_106, step_ms: int = 250) -> list[str]:
    """``count`` Upbit DEFAULT ``trade`` frames for ``code`` in the shape of ``template`` (the
    docs example): ``sequential_id`` growing as Upbit's does (ms x 1000 + a counter), prices
    within 0.1 % of ``price``, taker sides and volumes drawn from a seeded generator."""
    rng = random.Random(seed)
    frames = []
    for i in range(count):
        ms = start_ms + i * step_ms
        frames.append(json.dumps(dict(
            template, code=code, timestamp=ms + 35, trade_timestamp=ms,
            trade_price=round(price * rng.uniform(0.999, 1.001)),
            trade_volume=round(rng.uniform(0.0001, 0.05), 8),
            ask_bid=rng.choice(("ASK", "BID")), sequential_id=ms * 1000 + i % 1000,
            stream_type="SNAPSHOT" if i == 0 else "REALTIME")))
    return frames


def upbit_generated_tickers(code: str, template: dict, count: int, *, price: float,
                            start_ms: int = 1_790_134_742_106, step_ms: int = 1000) -> list[str]:
    """``count`` Upbit DEFAULT ``ticker`` frames for ``code`` in the shape of ``template`` (the
    docs example), the last price stepping by 0.01 % from ``price``."""
    frames = []
    for i in range(count):
        last = round(price * (1 + 0.0001 * i))
        frames.append(json.dumps(dict(
            template, code=code, timestamp=start_ms + i * step_ms, trade_price=last,
            trade_timestamp=start_ms + i * step_ms - 40,
            stream_type="SNAPSHOT" if i == 0 else "REALTIME")))
    return frames
