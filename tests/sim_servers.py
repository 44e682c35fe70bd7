"""The five Korean exchanges' loopback servers together, serving books generated from the real
books of ``tests/fixtures`` (prices as recorded, sizes walking), so a test knows what each must
have stored."""

from __future__ import annotations

import json

from collector.simulator.bithumb import BithumbServer
from collector.simulator.coinone import CoinoneServer
from tests.sim_oracles import (bithumb_generated_books, bithumb_real_books,
                               coinone_generated_books, fixture_json, fixture_text,
                               korbit_generated_books, scaled_units, upbit_generated_books,
                               upbit_generated_tickers, upbit_generated_trades)
from collector.simulator.gopax import GopaxServer as _GopaxServer
from collector.simulator.korbit import KorbitServer
from collector.simulator.upbit import UpbitServer

UPBIT_DOCS = "upbit/ws_orderbook_default_docs.json"
UPBIT_TRADE_DOCS = "upbit/ws_trade_default_docs.jsonl"
UPBIT_TICKER_DOCS = "upbit/ws_ticker_default_docs.json"
BITHUMB_TRADE_WIRE = "bithumb/ws_trade_wire_2026-09_trimmed.json"
BITHUMB_TICKER_WIRE = "bithumb/ws_ticker_wire_2026-09_trimmed.json"
COINONE_DOCS = "coinone/ws_orderbook_docs.json"
KORBIT_WIRE = "korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json"


class GopaxServer(_GopaxServer):
    """GOPAX's loopback server that also keeps ``expected[pair]``: the true top-``depth`` book
    (and its time) after the snapshot and after each delta, what the collector must store."""

    def __init__(self, events: dict[str, int], *, depth: int = 15, **kwargs) -> None:
        super().__init__(events, **kwargs)
        self.depth = depth
        self.expected: dict[str, list[tuple]] = {pair: [] for pair in events}

    def _record_expected(self, pair: str, newest: float) -> None:
        self.expected[pair].append((int(round(newest * 1000)), *self.truth[pair].top(self.depth)))


class Servers:
    """The five exchanges' loopback servers for ``symbols`` (lower-case exchange name -> base
    currencies), ``count`` books per market, one frame every ``interval`` seconds per server.

    ``faults`` (exchange name -> the ``faults`` argument of
    :class:`~collector.simulator.ws.BookStreamServer`) injects faults into the Upbit, Coinone and
    Korbit streams; ``script`` replaces Bithumb replies by request number; ``gopax`` holds extra
    arguments of :class:`~collector.simulator.gopax.GopaxServer`. ``frames`` replaces the
    generated books of an exchange with given ones (``"upbit"``/``"coinone"``/``"korbit"``:
    subscription key -> frame texts; ``"bithumb"``: market -> book objects), e.g. from a
    recording. ``channels``: Upbit also streams ``count`` trades and tickers per market (for
    ``--channels ticker,trade``), and a Bithumb WebSocket server streams Bithumb's; ``usdt_krw``: Upbit also has a ``KRW-USDT`` book at about that
    price (the docs book's shape, prices scaled). Use as a context manager.
    """

    def __init__(self, symbols: dict[str, list[str]], count: int, *, interval: float = 0.0,
                 faults: dict[str, dict] | None = None, script: dict | None = None,
                 gopax: dict | None = None, frames: dict[str, dict] | None = None,
                 channels: bool = False, usdt_krw: float | None = None) -> None:
        real = bithumb_real_books()
        faults = faults or {}
        given = frames or {}
        self.upbit = UpbitServer(given.get("upbit") or self._upbit_frames(
            symbols.get("upbit", []), count, channels, usdt_krw),
            interval=interval, faults=faults.get("upbit"))
        self.bithumb = BithumbServer(given.get("bithumb") or {
            f"KRW-{s}": bithumb_generated_books(f"KRW-{s}", real["KRW-BTC"], count, seed=i)
            for i, s in enumerate(symbols.get("bithumb", []))}, script=script)
        self.coinone = CoinoneServer(given.get("coinone") or {
            s: coinone_generated_books(s, fixture_json(COINONE_DOCS), count, seed=i)
            for i, s in enumerate(symbols.get("coinone", []))}, interval=interval, faults=faults.get("coinone"))
        self.korbit = KorbitServer(given.get("korbit") or {
            f"{s.lower()}_krw": korbit_generated_books(s, fixture_json(KORBIT_WIRE), count, seed=i)
            for i, s in enumerate(symbols.get("korbit", []))}, interval=interval, faults=faults.get("korbit"))
        self.gopax = GopaxServer({f"{s}-KRW": count for s in symbols.get("gopax", [])}, interval=interval,
                                 **(gopax or {}))
        self.all = [self.upbit, self.bithumb, self.coinone, self.korbit, self.gopax]
        self.bithumb_ws: UpbitServer | None = None
        """Bithumb's WebSocket (the Upbit-compatible protocol) for its trades and tickers, when
        ``channels``."""
        if channels:
            self.bithumb_ws = UpbitServer(self._bithumb_frames(symbols.get("bithumb", []), count, real),
                                          interval=interval)
            self.all.append(self.bithumb_ws)

    @staticmethod
    def _upbit_frames(symbols: list[str], count: int, channels: bool,
                      usdt_krw: float | None) -> dict[str, list[str]]:
        docs = fixture_json(UPBIT_DOCS)
        frames = {f"KRW-{s}": upbit_generated_books(f"KRW-{s}", docs, count, seed=i)
                  for i, s in enumerate(symbols)}
        if channels:
            price = docs["orderbook_units"][0]["ask_price"]
            trade = json.loads(fixture_text(UPBIT_TRADE_DOCS).splitlines()[0])
            for i, s in enumerate(symbols):
                frames[f"trade:KRW-{s}"] = upbit_generated_trades(f"KRW-{s}", trade, count,
                                                                  seed=i, price=price)
                frames[f"ticker:KRW-{s}"] = upbit_generated_tickers(
                    f"KRW-{s}", fixture_json(UPBIT_TICKER_DOCS), max(1, count // 10), price=price)
        if usdt_krw is not None:
            factor = usdt_krw / docs["orderbook_units"][0]["ask_price"]
            usdt = dict(docs, orderbook_units=scaled_units(docs["orderbook_units"], factor))
            frames["KRW-USDT"] = upbit_generated_books("KRW-USDT", usdt, count, seed=99)
        return frames

    @staticmethod
    def _bithumb_frames(symbols: list[str], count: int, real: dict) -> dict[str, list[str]]:
        price = real["KRW-BTC"]["orderbook_units"][0]["ask_price"]
        trade = fixture_json(BITHUMB_TRADE_WIRE)
        frames = {}
        for i, s in enumerate(symbols):
            frames[f"trade:KRW-{s}"] = upbit_generated_trades(f"KRW-{s}", trade, count, seed=50 + i,
                                                              price=price)
            frames[f"ticker:KRW-{s}"] = upbit_generated_tickers(
                f"KRW-{s}", fixture_json(BITHUMB_TICKER_WIRE), max(1, count // 10), price=price)
        return frames

    def __enter__(self):
        for server in self.all:
            server.__enter__()
        return self

    def __exit__(self, *exc):
        for server in self.all:
            server.__exit__(*exc)

    def books_sent(self, name: str) -> int:
        """Book frames (Bithumb: book objects) the server of exchange ``name`` has sent."""
        if name == "bithumb":
            return len(self.bithumb.served)
        return sum(len(sent) for key, sent in getattr(self, name).sent.items() if ":" not in key)

    def env(self) -> dict:
        env = {"UPBIT_WS_URL": self.upbit.url, "BITHUMB_REST_URL": self.bithumb.url,
               "COINONE_WS_URL": self.coinone.url, "KORBIT_WS_URL": self.korbit.url,
               "GOPAX_WS_URL": self.gopax.url}
        if self.bithumb_ws is not None:
            env["BITHUMB_WS_URL"] = self.bithumb_ws.url
        return env

    def finished(self, exchanges=("upbit", "bithumb", "coinone", "korbit", "gopax")) -> bool:
        """Whether the servers of ``exchanges`` (lower-case names) have sent every book."""
        return all(self.bithumb.served_all() if name == "bithumb" else getattr(self, name).finished.is_set()
                   for name in exchanges)
