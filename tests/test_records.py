"""The record factory on its own: no controller, no socket."""

import pytest

from core.errors import MalformedMessage
from core.model import Market, OrderBookSnapshot, Ticker, Trade
from controllers.records import RecordFactory, number, optional_number

BTC_KRW, ETH_KRW = Market("BTC", "KRW"), Market("ETH", "KRW")
MS = 1790138146302


@pytest.fixture
def factory() -> RecordFactory:
    return RecordFactory("UPBIT", [BTC_KRW, ETH_KRW], {"orderbook", "ticker", "trade"})


def trade(factory, **changes):
    fields = {"trade_id": 7, "price": "100.5", "volume": 0.25, "side": "buy"} | changes
    return factory.trade("BTC", "KRW", MS, MS + 3, **fields)


def test_book_of_a_configured_market(factory):
    bids, asks = ((100.0, 1.0),), ((101.0, 2.0),)
    book = factory.book("BTC", "KRW", MS, bids, asks, MS + 5, sequence=42)
    assert book == OrderBookSnapshot("UPBIT", "BTC", "KRW", MS, MS + 5, bids, asks, 42)


def test_markets_are_looked_up_by_base_and_quote(factory):
    assert factory.market_for("ETH", "KRW") is ETH_KRW
    assert factory.market_for("ETH", "USDT") is None
    with pytest.raises(MalformedMessage, match="book for a market not subscribed: XRP/KRW"):
        factory.book("XRP", "KRW", MS, (), (), MS)


def test_a_channel_not_collected_is_refused_with_the_market_tag():
    books_only = RecordFactory("UPBIT", [BTC_KRW], {"orderbook"})
    with pytest.raises(MalformedMessage, match="the ticker channel is not collected") as error:
        books_only.ticker("BTC", "KRW", MS, MS, last=1)
    assert error.value.market == "UPBIT-BTC-KRW"
    with pytest.raises(MalformedMessage, match="the trade channel is not collected"):
        trade(books_only)
    assert books_only.book("BTC", "KRW", MS, (), (), MS).base == "BTC"  # books always


@pytest.mark.parametrize("timestamp", [
    1790138146.302,                  # seconds with a fraction (GOPAX)
    "1790138146.302",                # the same as a string
    MS,                              # milliseconds (Upbit)
    1790138146302000,                # microseconds (Bithumb)
    "1790138146302000",
    1790138146302000000,             # nanoseconds
    "2026-09-23T04:35:46.302Z",      # ISO 8601 (BitMEX)
    "2026-09-23T04:35:46.302999+00:00",
    "2026-09-23T04:35:46.302",       # no zone: UTC
])
def test_timestamps_in_every_unit_become_ms(factory, timestamp):
    assert factory.time_ms(timestamp, BTC_KRW) == MS
    assert factory.book("BTC", "KRW", timestamp, (), (), 0).timestamp == MS


@pytest.mark.parametrize("bad", [None, 0, -1, "", "soon", "2026-13-01T00:00:00Z", float("nan"),
                                 [MS]])
def test_a_bad_timestamp_names_the_market(factory, bad):
    with pytest.raises(MalformedMessage, match="bad timestamp") as error:
        factory.book("BTC", "KRW", bad, (), (), MS)
    assert error.value.market == "UPBIT-BTC-KRW"


def test_ticker_reads_numbers_and_numeric_strings(factory):
    ticker = factory.ticker("ETH", "KRW", MS, MS + 1, last="3000", open=2900, high="3100.5",
                            low=None, prev_close="", base_volume=12, quote_volume="36000",
                            market_warning="CAUTION")
    assert ticker == Ticker("UPBIT", "ETH", "KRW", MS, MS + 1, 3000.0, 2900.0, 3100.5, None,
                            None, 12.0, 36000.0, "CAUTION")
    assert factory.ticker("ETH", "KRW", MS, MS, last=1).market_warning is None


@pytest.mark.parametrize("fields, text", [
    ({"last": None}, "last is None, not a number"),
    ({"last": ""}, "last is '', not a number"),
    ({"last": "abc"}, "last is 'abc', not a number"),
    ({"last": True}, "last is True, not a number"),
    ({"last": "NaN"}, "last is .NaN., not a finite number"),
    ({"last": 1, "high": float("nan")}, "high is nan, not a finite number"),
    ({"last": 1, "base_volume": [1]}, r"base_volume is \[1\], not a number"),
])
def test_ticker_refuses_what_is_not_a_number(factory, fields, text):
    with pytest.raises(MalformedMessage, match=text) as error:
        factory.ticker("BTC", "KRW", MS, MS, **fields)
    assert error.value.market == "UPBIT-BTC-KRW"


def test_number_helpers():
    assert number(3, "x", None) == 3.0 and type(number(3, "x", None)) is float
    assert number("1e-8", "x", None) == 1e-8
    assert optional_number(None, "x", None) is None
    assert optional_number("", "x", None) is None
    assert optional_number("0", "x", None) == 0.0
    with pytest.raises(MalformedMessage, match="x is False"):
        number(False, "x", "T")


def test_trade(factory):
    assert trade(factory) == Trade("UPBIT", "BTC", "KRW", MS, MS + 3, "7", 100.5, 0.25, "buy")
    assert trade(factory, trade_id="a-1", side="sell").trade_id == "a-1"
    iso = factory.trade("ETH", "KRW", "2026-09-23T04:35:46.302Z", MS, trade_id="b", price=1,
                        volume=1, side="sell")
    assert (iso.base, iso.timestamp, iso.price) == ("ETH", MS, 1.0)


@pytest.mark.parametrize("changes, text", [
    ({"side": "BUY"}, "bad taker side 'BUY'"),
    ({"side": "bid"}, "bad taker side 'bid'"),
    ({"trade_id": None}, "bad trade id None"),
    ({"trade_id": ""}, "bad trade id ''"),
    ({"trade_id": 7.0}, "bad trade id 7.0"),
    ({"trade_id": True}, "bad trade id True"),
    ({"price": 0}, "price is 0.0, not positive"),
    ({"volume": "-1"}, "volume is -1.0, not positive"),
    ({"price": "NaN"}, "price is 'NaN', not a finite number"),
    ({"price": "inf"}, "price is 'inf', not a finite number"),
    ({"volume": float("-inf")}, "volume is -inf, not a finite number"),
    ({"volume": None}, "volume is None, not a number"),
])
def test_a_bad_trade_is_refused_with_the_market_tag(factory, changes, text):
    with pytest.raises(MalformedMessage, match=text) as error:
        trade(factory, **changes)
    assert error.value.market == "UPBIT-BTC-KRW"


def test_changed_ticker_fields_merge_into_the_last_whole_ticker(factory):
    assert factory.merged_ticker_fields(BTC_KRW, {"lastPrice": "1"}, whole=False) is None
    assert factory.merged_ticker_fields(BTC_KRW, {"lastPrice": "1", "volume24h": "5"},
                                        whole=True) == {"lastPrice": "1", "volume24h": "5"}
    assert factory.merged_ticker_fields(BTC_KRW, {"lastPrice": "2"}, whole=False) == {
        "lastPrice": "2", "volume24h": "5"}
    # another market keeps its own fields
    assert factory.merged_ticker_fields(ETH_KRW, {"lastPrice": "9"}, whole=False) is None
    # a whole ticker replaces what was known
    assert factory.merged_ticker_fields(BTC_KRW, {"highPrice24h": "3"}, whole=True) == {
        "highPrice24h": "3"}


BAD_NUMBERS = [float("nan"), float("inf"), float("-inf"), 0.0, -1.0]


@pytest.mark.parametrize("bad", BAD_NUMBERS)
@pytest.mark.parametrize("where", ["bid price", "bid volume", "ask price", "ask volume"])
def test_a_book_level_that_is_not_positive_and_finite_is_refused(factory, bad, where):
    side, field = where.split()
    level = (bad, 1.0) if field == "price" else (100.0 if side == "bid" else 101.0, bad)
    bids = (level,) if side == "bid" else ((100.0, 1.0),)
    asks = (level,) if side == "ask" else ((101.0, 2.0),)
    with pytest.raises(MalformedMessage, match=f"{side} level with price") as error:
        factory.book("BTC", "KRW", MS, bids, asks, MS)
    assert error.value.market == "UPBIT-BTC-KRW"


@pytest.mark.parametrize("bid, ask", [(101.0, 101.0), (102.0, 101.0)])
def test_a_crossed_book_is_refused(factory, bid, ask):
    with pytest.raises(MalformedMessage, match=f"crossed book: best bid {bid} >= best ask") as error:
        factory.book("BTC", "KRW", MS, ((bid, 1.0), (99.0, 1.0)), ((ask, 1.0),), MS)
    assert error.value.market == "UPBIT-BTC-KRW"
    assert factory.book("BTC", "KRW", MS, ((100.99, 1.0),), ((101.0, 1.0),), MS).bids


@pytest.mark.parametrize("field", ["last", "open", "high", "low", "prev_close"])
@pytest.mark.parametrize("bad", BAD_NUMBERS + ["NaN", "Infinity", "-5"])
def test_a_ticker_price_that_is_not_positive_and_finite_is_refused(factory, field, bad):
    with pytest.raises(MalformedMessage, match=f"{field} is .*, not (a finite number|positive)"):
        factory.ticker("BTC", "KRW", MS, MS, **({"last": 100} | {field: bad}))


@pytest.mark.parametrize("field", ["base_volume", "quote_volume"])
def test_a_ticker_volume_may_be_0_but_not_negative_nor_infinite(factory, field):
    assert getattr(factory.ticker("BTC", "KRW", MS, MS, last=100, **{field: "0"}), field) == 0.0
    for bad in (-0.5, "-1", float("inf"), "nan"):
        with pytest.raises(MalformedMessage, match=f"{field} is .*(negative|not a finite number)"):
            factory.ticker("BTC", "KRW", MS, MS, last=100, **{field: bad})
