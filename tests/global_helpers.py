"""Running a snapshot + delta controller against a recorded session, and the oracles."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.model import FeedEvent, Market, OrderBookSnapshot
from tests.helpers import fast

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_lines(path: str) -> list[str]:
    """The non-empty lines of a recorded ``.ndjson`` fixture."""
    return [line for line in (FIXTURES / path).read_text().splitlines() if line.strip()]


def oracle(path: str) -> dict:
    return json.loads((FIXTURES / path).read_text())


def levels(pairs) -> tuple:
    """Oracle ``[["price", "size"], …]`` as stored ``((price, size), …)`` floats."""
    return tuple((float(p), float(s)) for p, s in pairs)


def run_recorded(cls, server, markets: list[Market], *, depth: int = 5, settle=None,
                 timeout: float = 20.0, env: dict[str, str] | None = None,
                 channels: tuple[str, ...] = ("orderbook",)):
    """Run a (fast-retrying) ``cls`` controller on ``channels`` against ``server`` (and ``env``
    besides its endpoints) until the server has served every frame and ``settle(controller,
    books)`` holds; returns ``(controller, books, events)``, ``books`` every record handed on
    (tickers and trades too), in order."""
    books: list = []
    events: list[FeedEvent] = []
    controller = fast(cls)(markets, sink=lambda b: books.append(b) or True,
                           events=events.append, env={**server.env(), **(env or {})}, depth=depth,
                           channels=channels)
    controller.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.finished.is_set() and (settle is None or settle(controller, books)):
            break
        time.sleep(0.02)
    time.sleep(0.2)  # frames still in flight
    controller.stop()
    assert controller.join(5.0), "controller did not stop"
    return controller, books, events


def last_books(books) -> dict[str, tuple]:
    """symbol+currency -> ``(bids, asks)`` of the last book handed on."""
    return {b.base + b.quote: (b.bids, b.asks) for b in books if type(b) is OrderBookSnapshot}


def resyncs(events: list[FeedEvent]) -> list[FeedEvent]:
    return [e for e in events if e.kind == "resync"]
