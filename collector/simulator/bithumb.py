"""A loopback Bithumb REST server: ``GET /v1/orderbook?markets=KRW-BTC,KRW-ETH``.

Each request gets the next book of every requested market (the last one again once a market's
books are used up: Bithumb polling returns the same book many times). Unknown markets get
Bithumb's real error body with HTTP 200; other paths the real 404 body. ``script`` replaces the
normal answer of given request numbers (0-based) with a fixed :class:`Reply` (429, 500, a delay…).
With ``market_list`` set it also answers ``GET /v1/market/all`` (for ``--symbols ALL``).
"""

from __future__ import annotations

import json

from collector.simulator.frames import data_text
from collector.simulator.http import LoopbackHTTPServer, Reply


class BithumbServer(LoopbackHTTPServer):
    def __init__(self, books: dict[str, list[dict]], *, script: dict[int, Reply] | None = None) -> None:
        super().__init__()
        self.books = books
        self.script = dict(script or {})
        self.served: list[dict] = []  # every book object served, in order
        self._cursor = {market: 0 for market in books}
        self.count = 0
        self.market_list: list[dict] | None = None  # served at /v1/market/all when set

    def served_all(self) -> bool:
        """Whether every market's last book has been served at least once."""
        with self.lock:
            return all(self._cursor[m] >= len(b) for m, b in self.books.items())

    def respond(self, path: str, query: dict[str, list[str]]) -> Reply:
        if path == "/v1/market/all" and self.market_list is not None:
            return Reply(200, json.dumps(self.market_list).encode())
        with self.lock:
            number = self.count
            self.count += 1
            if number in self.script:
                return self.script[number]
            if path != "/v1/orderbook":
                return Reply(404, data_text("bithumb/rest_error_v1_no_route_http404_wire_2026-09.json").encode())
            markets = ",".join(query.get("markets", [])).split(",")
            if not markets or not all(m in self.books for m in markets):
                name = ("rest_error_v1_400_missing_parameter_http200_wire_2026-09.json" if markets == [""]
                        else "rest_error_v1_404_code_not_found_http200_wire_2026-09.json")
                return Reply(200, data_text(f"bithumb/{name}").encode())
            body = []
            for market in markets:
                books = self.books[market]
                index = min(self._cursor[market], len(books) - 1)
                self._cursor[market] = index + 1
                body.append(books[index])
                self.served.append(books[index])
            return Reply(200, json.dumps(body).encode())
