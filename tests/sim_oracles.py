"""Test-side helpers of the simulator: the fixtures as text, the real books the tests serve and
compare with (from ``tests/fixtures``, which the installed simulator does not read), and more
books generated from real ones.

Generated books keep a real book's prices and change its sizes step by step (a seeded random
walk, so a run is repeatable); now and then a size becomes 0, which exchanges use for padding and
dust. The tests know exactly what was sent, so what must have been stored.

``python -m tests.sim_oracles`` writes the shipped real recording
(``collector/simulator/recordings/upbit-2021-04-17-real.ndjson.gz``) again from the fixture it
comes from.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
from pathlib import Path

from collector.record import encode_payload
from collector.simulator.recording import SAMPLE, SAMPLE_MARKETS

FIXTURES = Path(__file__).resolve().parent / "fixtures"

_SIMPLE_KEYS = {"ty": "type", "cd": "code", "tms": "timestamp", "tas": "total_ask_size",
                "tbs": "total_bid_size", "obu": "orderbook_units", "st": "stream_type", "lv": "level"}
_SIMPLE_UNIT_KEYS = {"ap": "ask_price", "bp": "bid_price", "as": "ask_size", "bs": "bid_size"}


def fixture_text(name: str) -> str:
    """The exact text of ``tests/fixtures/<name>``, without the final newline the files carry."""
    return (FIXTURES / name).read_text(encoding="utf-8").rstrip("\n")


def fixture_json(name: str):
    return json.loads(fixture_text(name))


def upbit_recorded_books() -> dict[str, list[str]]:
    """The 145 order book frames of the 2021 Upbit recording, per code, as DEFAULT-format text.

    The recording is in SIMPLE format; only the keys are renamed, every value is as recorded.
    """
    books: dict[str, list[str]] = {}
    for line in fixture_text("upbit/ws_recv_recorded_2021-04_cryptofeed.jsonl").splitlines():
        simple = json.loads(line)
        if simple.get("ty") != "orderbook":
            continue
        frame = {_SIMPLE_KEYS.get(k, k): v for k, v in simple.items()}
        frame["orderbook_units"] = [{_SIMPLE_UNIT_KEYS[k]: v for k, v in unit.items()}
                                    for unit in frame["orderbook_units"]]
        books.setdefault(frame["code"], []).append(json.dumps(frame))
    return books




def bithumb_real_books() -> dict[str, dict]:
    """Real Bithumb books as ``/v1/orderbook`` objects: KRW-BTC (REST 2025-08, 30 units) and
    KRW-ETH (the units of a 2026-09 WebSocket frame, which has the same unit shape)."""
    btc = fixture_json("bithumb/rest_orderbook_v1_recorded_2025-08.json")[0]
    eth_frame = fixture_json("bithumb/ws_orderbook_wire_2026-09_snapshot_trimmed.json")
    eth = {"market": eth_frame["code"], "timestamp": eth_frame["timestamp"],
           "total_ask_size": eth_frame["total_ask_size"], "total_bid_size": eth_frame["total_bid_size"],
           "orderbook_units": eth_frame["orderbook_units"]}
    return {"KRW-BTC": btc, "KRW-ETH": eth}


def without_elisions(frame: dict) -> dict:
    """A copy of an elided-by-source frame with its ``"…"`` placeholders removed from every list."""
    def clean(value):
        if isinstance(value, list):
            return [clean(v) for v in value if v != "…"]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value
    return clean(frame)


def write_sample(path: Path = SAMPLE) -> int:
    """Write the real Upbit sample recording to ``path``; returns the books written."""
    books = upbit_recorded_books()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"t": 0, "ex": "UPBIT", "c": 0, "d": "meta", "controller": "upbit", "depth": 15,
              "markets": [[code.split("-")[1], code.split("-")[0]] for code in SAMPLE_MARKETS]}]
    first = min(json.loads(f)["timestamp"] for code in SAMPLE_MARKETS for f in books[code])
    lines.append({"t": first, "ex": "UPBIT", "c": 1, "d": "open", "p": "wss://api.upbit.com/websocket/v1"})
    frames = sorted((json.loads(f)["timestamp"], i, f) for code in SAMPLE_MARKETS
                    for i, f in enumerate(books[code]))
    for timestamp, _, text in frames:
        lines.append({"t": timestamp, "ex": "UPBIT", "c": 1, "d": "in", **encode_payload(text.encode())})
    lines.append({"t": frames[-1][0], "ex": "UPBIT", "c": 1, "d": "close", "p": "end of the capture"})
    lines[0]["t"] = first
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    return len(frames)



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


def scaled_units(units: list[dict], factor: float, decimals: int = 3) -> list[dict]:
    """``orderbook_units`` with every price multiplied by ``factor`` (rounded to ``decimals``);
    sizes kept. Gives a real book's shape at another market's price (Upbit ``KRW-USDT``); the
    rounding must keep the levels apart (1 decimal at 1,400 KRW made the best bid equal the best
    ask: a crossed book, refused)."""
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

if __name__ == "__main__":
    print(f"{write_sample()} books written to {SAMPLE}")
