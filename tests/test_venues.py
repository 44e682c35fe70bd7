"""Each venue is declared once, in its controller file, and every list of venues is derived from
those declarations."""

import ast
import re
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.venue import Endpoint, Venue, registry
from controllers import BY_EXCHANGE, CONTROLLERS, KOREAN, VENUES, Controller

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("core", "controllers", "storage", "analytics", "exporter", "collector")


def test_one_declaration_per_venue_in_its_own_file():
    declared = {}
    for path in sorted((ROOT / "controllers").glob("*.py")):
        count = len(re.findall(r"^VENUE = Venue\(", path.read_text(encoding="utf-8"), re.M))
        if count:
            assert count == 1, path.name
            declared[path.stem] = True
    assert sorted(declared) == sorted(VENUES) and len(VENUES) == 13
    for name, cls in CONTROLLERS.items():
        assert cls.__module__ == f"controllers.{name}" and cls.venue is VENUES[name]


def test_derived_lists():
    assert KOREAN == ("upbit", "bithumb", "coinone", "korbit", "gopax")
    assert {v.exchange for v in VENUES.values() if v.derivative} == {"BINANCE_FUTURES", "BITMEX"}
    assert {v.quote for n, v in VENUES.items() if n in KOREAN} == {"KRW"}
    assert [v.exchange for v in VENUES.values() if v.usdt_krw_rate] == ["UPBIT"]
    assert BY_EXCHANGE["BINANCE_FUTURES"] is VENUES["binance_futures"]
    for name, cls in CONTROLLERS.items():
        venue = VENUES[name]
        assert (cls.exchange, cls.default_currency) == (venue.exchange, venue.quote)
        assert cls.rest_url_env == f"{venue.exchange}_REST_URL"
        assert 0 < venue.taker_fee < 0.01 and venue.fee_source


def test_feeds_of_other_endpoints_come_from_the_declaration():
    bithumb, futures = CONTROLLERS["bithumb"], CONTROLLERS["binance_futures"]
    [stream] = bithumb.feeds(["ticker"])
    assert (stream.feed_name, stream.ws_url_env, stream.offered_channels, stream.collects_books) == (
        "BITHUMB_STREAM", "BITHUMB_WS_URL", ("ticker", "trade"), False)
    [market] = futures.feeds(["trade", "orderbook"])
    assert market is futures.feeds(["ticker"])[0], "one bound class per endpoint"
    assert (market.feed_name, market.ws_url_env, market.default_ws_url) == (
        "BINANCE_FUTURES_STREAM", "BINANCE_FUTURES_MARKET_WS_URL",
        "wss://fstream.binance.com/market/stream")
    assert futures.offered_channels == ("orderbook",)
    assert all(cls.feeds(["ticker", "trade"]) == [] for name, cls in CONTROLLERS.items()
               if name not in ("bithumb", "binance_futures"))


def test_every_endpoint_variable_is_in_env_sample():
    sample = (ROOT / ".env.sample").read_text(encoding="utf-8")
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", sample, re.M))
    for venue in VENUES.values():
        for endpoint in venue.endpoints:
            variable = venue.env_var(endpoint.role)
            assert variable in names, f"{variable} is not in .env.sample"
            assert endpoint.url in sample, f".env.sample does not give {variable}'s default"


def _code_strings(path: Path):
    """The string constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # an attribute docstring
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_venue_is_named_in_product_code_outside_its_own_files():
    names = {n for v in VENUES.values() for n in (v.name, v.exchange)}
    named = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(("controllers/", "collector/simulator/")):
                continue  # the venue's own file; the simulator's per-venue servers
            named += [f"{relative}:{line}: {text}" for line, text in _code_strings(path)
                      if text in names]
    assert named == []


def test_declaration_errors():
    ws = Endpoint("ws", "wss://x", ("orderbook",))
    with pytest.raises(ValueError, match="region"):
        Venue("x", "X", "mars", "KRW", 0.001, "-", (ws,))
    with pytest.raises(ValueError, match="kind"):
        Venue("x", "X", "korea", "KRW", 0.001, "-", (ws,), kind="option")
    with pytest.raises(ValueError, match="orderbook"):
        Venue("x", "X", "korea", "KRW", 0.001, "-", (Endpoint("ws", "wss://x", ("trade",)),))
    with pytest.raises(ValueError, match="twice"):
        Venue("x", "X", "korea", "KRW", 0.001, "-", (ws, ws))
    with pytest.raises(ValueError, match="unknown channel"):
        Endpoint("ws", "wss://x", ("candles",))
    with pytest.raises(ConfigError, match="declared twice"):
        registry([VENUES["upbit"], VENUES["upbit"]])
    venue = VENUES["upbit"]
    assert venue.url("ws", {"UPBIT_WS_URL": "ws://127.0.0.1:1"}) == "ws://127.0.0.1:1"
    assert venue.url("ws", {}) == "wss://api.upbit.com/websocket/v1"
    with pytest.raises(KeyError):
        venue.endpoint("market_ws")


def test_a_new_venue_class_takes_everything_from_its_declaration():
    from controllers.upbit import UpbitController

    declared = Venue("testex", "Test", "global", "USD", 0.001, "-",
                  (Endpoint("ws", "wss://test", ("orderbook", "trade")),
                   Endpoint("rest", "https://test")),
                  max_markets_per_connection=7, connect_interval=0.5, subscribe_interval=0.1)

    class TestController(UpbitController):
        """A parser reused under another venue's declaration."""
        venue = declared

    assert issubclass(TestController, Controller)
    assert (TestController.exchange, TestController.default_currency, TestController.ws_url_env,
            TestController.default_ws_url, TestController.rest_url_env,
            TestController.offered_channels, TestController.max_markets_per_connection,
            TestController.connect_interval, TestController.subscribe_interval) == (
        "TESTEX", "USD", "TESTEX_WS_URL", "wss://test", "TESTEX_REST_URL", ("orderbook", "trade"),
        7, 0.5, 0.1)
