"""A loopback server for the five Korean exchanges' market-list and ticker endpoints.

One server answers for all of them under a path prefix per exchange (set
``<EXCHANGE>_REST_URL=<url>/<exchange>``). Market rows and ticker rows have the exchanges' real
shapes: for Upbit and Bithumb without ``symbols`` of their own, the real Upbit (2021, 294 rows)
and Bithumb (2025, 7 rows) lists as recorded, else rows of the recorded shape for those symbols;
for Coinone, Korbit and GOPAX, whose real messages hold one row each, that real row plus rows of
the same shape for the symbols of ``symbols``. 24-hour traded values are ``values[exchange][symbol]``
(KRW), else a value derived from the symbol's position.
"""

from __future__ import annotations

import json

from collector.simulator.frames import data_json
from collector.simulator.http import LoopbackHTTPServer, Reply


def upbit_krw_symbols() -> list[str]:
    """The base currencies of the KRW markets of the recorded 2021 Upbit list, in its order."""
    return [row["market"].split("-")[1] for row in data_json("upbit/rest_market_all_recorded_2021-04.json")
            if row["market"].startswith("KRW-")]


class MarketListServer(LoopbackHTTPServer):
    """Args:
        symbols: per exchange (``"upbit"``, ``"bithumb"``, ``"coinone"``, ``"korbit"``,
            ``"gopax"``), the KRW base currencies it lists; Upbit and Bithumb list their recorded
            markets when they are not named.
        stopped: Korbit symbols listed with ``"status": "stopped"``.
        values: exchange -> symbol -> 24 h traded value in KRW.
        fail: exchange -> number of requests answered with that exchange's error first.
    """

    def __init__(self, symbols: dict[str, list[str]], *, stopped: tuple[str, ...] = (),
                 values: dict[str, dict[str, float]] | None = None,
                 fail: dict[str, int] | None = None) -> None:
        super().__init__()
        self.symbols = symbols
        self.stopped = stopped
        self.values = values or {}
        self.fail = dict(fail or {})

    def base(self, exchange: str) -> str:
        return f"{self.url}/{exchange}"

    def listed(self, exchange: str) -> list[str]:
        """The KRW base currencies ``exchange`` lists (Korbit: launched ones only)."""
        if exchange in ("upbit", "bithumb") and exchange in self.symbols:
            return list(self.symbols[exchange])
        if exchange == "upbit":
            return upbit_krw_symbols()
        if exchange == "bithumb":
            return [r["market"].split("-")[1] for r in
                    data_json("bithumb/rest_market_all_recorded_2025-08_trimmed.json")
                    if r["market"].startswith("KRW-")]
        return [s for s in self.symbols[exchange] if s not in self.stopped]

    def value(self, exchange: str, symbol: str) -> float:
        table = self.values.get(exchange, {})
        if symbol in table:
            return table[symbol]
        listed = self.listed(exchange) + list(self.stopped)
        return 1_000_000.0 * (len(listed) - listed.index(symbol))

    def respond(self, path: str, query: dict[str, list[str]]) -> Reply:
        _, exchange, rest = path.split("/", 2)
        rest = "/" + rest
        with self.lock:
            if self.fail.get(exchange, 0) > 0:
                self.fail[exchange] -= 1
                return self._error(exchange)
        body = getattr(self, f"_{exchange}")(rest, query)
        if body is None:
            return Reply(404, b'{"error":"not found"}')
        return Reply(200, json.dumps(body).encode())

    def _error(self, exchange: str) -> Reply:
        name = {"upbit": ("upbit/rest_error_404_code_not_found.json", 404),
                "bithumb": ("bithumb/rest_error_v1_404_code_not_found_http200_wire_2026-09.json", 200),
                "coinone": ("coinone/rest_error_108_unknown_currency_wire_2026-09.json", 200),
                "korbit": ("korbit/rest_error_400_bad_request_wire_2026-09.json", 400),
                "gopax": ("gopax/rest_error_10058_invalid_asset_http404_wire_2026-09.json", 404)}[exchange]
        return Reply(name[1], json.dumps(data_json(name[0])).encode())

    def _units(self, exchange: str, rest: str, query) -> object:
        if rest == "/v1/market/all":
            name = ("upbit/rest_market_all_recorded_2021-04.json" if exchange == "upbit"
                    else "bithumb/rest_market_all_recorded_2025-08_trimmed.json")
            rows = data_json(name)
            if exchange not in self.symbols:
                return rows
            row = next(r for r in rows if r["market"].startswith("KRW-"))
            return [dict(row, market=f"KRW-{s}", korean_name=s, english_name=s)
                    for s in self.symbols[exchange]]
        if rest == "/v1/ticker":
            codes = ",".join(query.get("markets", [])).split(",")
            return [{"market": code, "acc_trade_price_24h": self.value(exchange, code.split("-")[1])}
                    for code in codes if code.startswith("KRW-")]
        return None

    def _upbit(self, rest, query):
        return self._units("upbit", rest, query)

    def _bithumb(self, rest, query):
        return self._units("bithumb", rest, query)

    def _coinone(self, rest, query):
        if rest == "/public/v2/markets/KRW":
            real = data_json("coinone/rest_markets_docs_via_ccxt_comment.json")
            row = real["markets"][0]
            markets = [dict(row, target_currency=s) for s in self.symbols["coinone"]]
            return {"result": "success", "error_code": "0", "server_time": real["server_time"],
                    "markets": markets}
        if rest == "/public/v2/ticker_new/KRW":
            real = data_json("coinone/rest_ticker_ccxt_comment_2023-11.json")
            row = real["tickers"][0]
            return dict(real, tickers=[dict(row, target_currency=s.lower(),
                                            quote_volume=str(self.value("coinone", s)))
                                       for s in self.symbols["coinone"]])
        return None

    def _korbit(self, rest, query):
        if rest == "/v2/currencyPairs":
            row = data_json("korbit/rest_currency_pair_row_wire_2026-09.json")
            rows = [dict(row, symbol=f"{s.lower()}_krw", baseCurrency=s.lower(),
                         status="stopped" if s in self.stopped else "launched")
                    for s in self.symbols["korbit"]]
            return {"success": True, "data": rows}
        if rest == "/v2/tickers":
            data = data_json("korbit/ws_ticker_snapshot_wire_2026-09.json")["data"]
            wanted = ",".join(query.get("symbol", [])).split(",")
            return {"success": True, "data": [
                dict(data, symbol=name, quoteVolume=str(self.value("korbit", name.split("_")[0].upper())))
                for name in wanted if name.split("_")[0].upper() in self.symbols["korbit"]]}
        return None

    def _gopax(self, rest, query):
        if rest == "/trading-pairs":
            row = data_json("gopax/rest_trading_pairs_row_ccxt_comment.json")[0]
            return [dict(row, id=i + 1, name=f"{s}-KRW", baseAsset=s)
                    for i, s in enumerate(self.symbols["gopax"])]
        if rest == "/trading-pairs/stats":
            # the /trading-pairs/stats row shape ({name, open, high, low, close, volume, time})
            # is documented in GOPAX's REST docs; close * volume = the value wanted
            return [{"name": f"{s}-KRW", "open": 100, "high": 100, "low": 100, "close": 100,
                     "volume": self.value("gopax", s) / 100, "time": "2026-09-23T00:00:00.000Z"}
                    for s in self.symbols["gopax"]]
        return None
