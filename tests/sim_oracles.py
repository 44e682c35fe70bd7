"""Test-side helpers of the simulator: the fixtures as text, and the real books the tests serve
and compare with (from ``tests/fixtures``, which the installed simulator does not read).

``python -m tests.sim_oracles`` writes the shipped real recording
(``collector/simulator/recordings/upbit-2021-04-17-real.ndjson.gz``) again from the fixture it
comes from.
"""

from __future__ import annotations

import gzip
import json
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


if __name__ == "__main__":
    print(f"{write_sample()} books written to {SAMPLE}")
