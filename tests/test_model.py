import pytest

from core.model import Market, best_first, to_ms
from tests.sim_oracles import fixture_json


def test_to_ms_recognizes_each_unit_exchanges_use():
    # Bithumb 2026 wire: 16-digit microseconds, as a number and (ccxt comment) as a string
    assert to_ms(1790133505564033) == 1790133505564
    assert to_ms(fixture_json("bithumb/ws_orderbook_ccxt_comment_2026-07.json")["timestamp"]) == 1783657882348
    # Upbit / Bithumb docs 2024: milliseconds
    assert to_ms(1746601573804) == 1746601573804
    assert to_ms(fixture_json("bithumb/ws_orderbook_docs_v2.1.5.json")["timestamp"]) == 1725930007672
    # GOPAX updatedAt: seconds with a fraction
    assert to_ms(1790138146.302) == 1790138146302
    # nanoseconds
    assert to_ms(1790138146302000000) == 1790138146302


@pytest.mark.parametrize("bad", [0, -5, "abc", float("nan")])
def test_to_ms_rejects_what_is_not_a_time(bad):
    with pytest.raises(ValueError):
        to_ms(bad)


def test_best_first_drops_padding_and_orders_each_side():
    units = fixture_json("bithumb/ws_orderbook_units_zero_padding_fragment_2026-09.json")["orderbook_units"]
    asks = best_first(((u["ask_price"], u["ask_size"]) for u in units), False, 15)
    bids = best_first(((u["bid_price"], u["bid_size"]) for u in units), True, 15)
    assert asks == ((120000000.0, 15.721),)  # two price-0 padding slots gone
    assert bids == ((113000000.0, 5.5544), (112000000.0, 6.1459), (111000000.0, 2.9321))
    # worst-first input (Coinone sends asks like this) comes out best first, cut to depth
    assert best_first([("103", "1"), ("101", "2"), ("102", "0.5")], False, 2) == ((101.0, 2.0), (102.0, 0.5))


def test_market_tag_names_exchange_and_base():
    assert Market("BTC", "KRW").tag("UPBIT") == "UPBIT-BTC-KRW"


@pytest.mark.parametrize("level", [("0", "0"), ("0.0", "0"), ("101", "0")])
def test_best_first_drops_zero_volume_padding(level):
    assert best_first([("100", "1"), level], True, 5) == ((100.0, 1.0),)


@pytest.mark.parametrize("level", [("NaN", "1"), ("100", "NaN"), ("inf", "1"), ("100", "inf"),
                                   ("-100", "1"), ("100", "-1"), ("0", "1"), ("-1", "0"),
                                   ("nan", "0"), ("inf", "0")])
def test_best_first_refuses_what_is_neither_a_level_nor_padding(level):
    with pytest.raises(ValueError, match="a price must be positive and finite"):
        best_first([("100", "1"), level], True, 5)
