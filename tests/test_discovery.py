"""``--symbols ALL`` and ``--top N``: each exchange's market list and tickers, from a loopback
server answering in the exchanges' real shapes."""

import logging

import pytest

from collector.discovery import resolve_markets
from core.errors import ConfigError
from core.model import Market
from controllers import CONTROLLERS, KOREAN
from collector.simulator.markets import MarketListServer, upbit_krw_symbols

SYMBOLS = {"coinone": ["BTC", "XRP", "ETH", "ADA"], "korbit": ["BTC", "ETH", "KLAY", "XRP"],
           "gopax": ["ETH", "BTC", "XRP"]}


def env_for(server: MarketListServer) -> dict:
    return {f"{name.upper()}_REST_URL": server.base(name) for name in KOREAN}


@pytest.mark.parametrize("name", KOREAN)
def test_all_lists_every_krw_market(name):
    with MarketListServer(SYMBOLS, stopped=("KLAY",)) as server:
        markets = resolve_markets(CONTROLLERS[name], env_for(server), "KRW", None, None)
    assert markets == [Market(s, "KRW") for s in server.listed(name)]
    assert Market("KLAY", "KRW") not in markets  # Korbit lists it as stopped


def test_upbit_list_is_the_recorded_one():
    with MarketListServer(SYMBOLS) as server:
        markets = resolve_markets(CONTROLLERS["upbit"], env_for(server), "KRW", None, None)
        assert server.requests == [("/upbit/v1/market/all", {})]
    assert len(markets) == 117 and markets[0] == Market("BTC", "KRW")
    assert [m.base for m in markets] == upbit_krw_symbols()


@pytest.mark.parametrize("name", KOREAN)
def test_top_n_by_24h_traded_value(name):
    with MarketListServer(SYMBOLS, stopped=("KLAY",)) as server:
        listed = server.listed(name)
        values = {s: float((i * 7919) % 101 + 1) * 1e9 for i, s in enumerate(listed)}
        server.values = {name: values}
        markets = resolve_markets(CONTROLLERS[name], env_for(server), "KRW", None, 2)
    want = sorted(listed, key=lambda s: values[s], reverse=True)[:2]
    assert markets == [Market(s, "KRW") for s in want]


def test_top_n_among_named_symbols_leaves_out_unlisted_ones(caplog):
    caplog.set_level(logging.INFO, "collector")
    with MarketListServer(SYMBOLS, values={"gopax": {"ETH": 5e9, "BTC": 9e9, "XRP": 1e9}}) as server:
        markets = resolve_markets(CONTROLLERS["gopax"], env_for(server), "KRW", ["XRP", "ETH", "DOGE"], 1)
    assert markets == [Market("ETH", "KRW")]
    assert "GOPAX does not list KRW-DOGE: left out" in caplog.text
    assert "GOPAX top 1 by 24 h traded value: ETH (5,000,000,000 KRW)" in caplog.text


def test_named_symbols_without_top_need_no_request():
    assert resolve_markets(CONTROLLERS["korbit"], {"KORBIT_REST_URL": "http://127.0.0.1:9"}, "KRW",
                           ["BTC"], None) == [Market("BTC", "KRW")]


@pytest.mark.parametrize("name", KOREAN)
def test_an_error_reply_is_retried(name, caplog):
    caplog.set_level(logging.WARNING, "collector")
    waits = []
    with MarketListServer(SYMBOLS, fail={name: 2}) as server:
        markets = resolve_markets(CONTROLLERS[name], env_for(server), "KRW", None, None,
                                  wait=lambda s: waits.append(s) or False)
    assert markets and waits == [1.0, 2.0]
    assert caplog.text.count(f"{CONTROLLERS[name].exchange} market list failed (attempt") == 2


def test_persistent_failure_is_one_clear_error():
    with MarketListServer(SYMBOLS, fail={"coinone": 5}) as server:
        with pytest.raises(ConfigError, match=r"COINONE market list failed 3 times; last error: "
                                              r"108: Unknown CryptoCurrency"):
            resolve_markets(CONTROLLERS["coinone"], env_for(server), "KRW", None, None,
                            wait=lambda s: False)


def test_unreachable_endpoint_is_one_clear_error():
    with pytest.raises(ConfigError, match="UPBIT market list failed 1 times; last error: GET "
                                          "http://127.0.0.1:9/v1/market/all: ConnectionError"):
        resolve_markets(CONTROLLERS["upbit"], {"UPBIT_REST_URL": "http://127.0.0.1:9"}, "KRW",
                        None, None, attempts=1)


@pytest.mark.parametrize("symbols, top", [(None, None), (["BTC"], 5)])
def test_an_exchange_without_a_market_list_is_one_clear_error(symbols, top):
    """The global controllers list no markets yet: ``--symbols ALL`` or ``--top`` on one of
    them is a configuration error, not a traceback, and asks for nothing."""
    with pytest.raises(ConfigError, match="BINANCE has no market list or tickers in this "
                                          "collector: name its markets with --symbols"):
        resolve_markets(CONTROLLERS["binance"], {"BINANCE_REST_URL": "http://127.0.0.1:9"},
                        "USDT", symbols, top, attempts=1)
