"""Tickers and trades (``--channels ticker,trade``): each parser on the real fixtures, and the
taker volume of the recorded Binance minute against the oracle of the fixtures."""

import json
import sqlite3

import pytest

from collector.errors import MalformedMessage
from collector.model import Market, Ticker, Trade
from collector.simulator.frames import fixture_json, fixture_text
from controllers import BinanceController, UpbitController
from storage.writer import SQLiteWriter

RECEIVED = 1_790_000_000_000
BOTH = ("orderbook", "ticker", "trade")


def test_upbit_subscribes_each_channel_with_the_same_codes():
    upbit = UpbitController([Market("BTC", "KRW"), Market("USDT", "KRW")], channels=BOTH)
    [message] = upbit.subscribe_messages(upbit.markets)
    request = json.loads(message)
    assert [item.get("type") for item in request[1:-1]] == ["orderbook", "ticker", "trade"]
    assert all(item["codes"] == ["KRW-BTC", "KRW-USDT"] for item in request[1:-1])
    plain = json.loads(UpbitController([Market("BTC", "KRW")]).subscribe_messages([Market("BTC", "KRW")])[0])
    assert [item.get("type") for item in plain[1:-1]] == ["orderbook"]


def test_upbit_ticker_docs_message():
    upbit = UpbitController([Market("BTC", "KRW")], channels=BOTH)
    [ticker] = upbit.parse(fixture_text("upbit/ws_ticker_default_docs.json").encode(), RECEIVED)
    assert ticker == Ticker("UPBIT", "BTC", "KRW", 1676965262177, RECEIVED, last=32287000.0,
                            open=31883000.0, high=32310000.0, low=31855000.0,
                            prev_close=31883000.0, base_volume=7158.8028356,
                            quote_volume=228827082483.70729, market_warning="NONE")


def test_upbit_trades_docs_messages_keep_the_big_sequential_id_exact():
    upbit = UpbitController([Market("BTC", "KRW"), Market("ETH", "KRW")], channels=BOTH)
    lines = fixture_text("upbit/ws_trade_default_docs.jsonl").splitlines()
    trades = [t for line in lines for t in upbit.parse(line.encode(), RECEIVED)]
    assert trades == [
        Trade("UPBIT", "BTC", "KRW", 1730336862047, RECEIVED, "17303368620470000", 100473000.0,
              0.00014208, "buy"),
        Trade("UPBIT", "ETH", "KRW", 1730336862080, RECEIVED, "17303368620800006", 3700000.0,
              0.02207517, "buy"),
    ]


def test_upbit_trade_with_a_bad_side_or_price_is_malformed():
    upbit = UpbitController([Market("BTC", "KRW")], channels=BOTH)
    message = json.loads(fixture_text("upbit/ws_trade_default_docs.jsonl").splitlines()[0])
    for key, value in (("ask_bid", "BOTH"), ("trade_price", "abc"), ("trade_volume", 0),
                       ("sequential_id", None)):
        with pytest.raises(MalformedMessage):
            upbit.parse(json.dumps(dict(message, **{key: value})), RECEIVED)


def binance_trade_minute() -> list[str]:
    return fixture_text("binance_spot/rec_hftbacktest_20240808_BTCUSDT_trade_minute_1723161300000"
                        ".ndjson").splitlines()


def test_binance_docs_trade_and_ticker():
    binance = BinanceController([Market("BNB", "BTC")], channels=BOTH)
    [trade] = binance.parse(fixture_text("binance_spot/doc_ws_trade.json"), RECEIVED)
    assert trade == Trade("BINANCE", "BNB", "BTC", 1672515782136, RECEIVED, "12345", 0.001, 100.0,
                          "sell")  # m: true, the buyer was the maker: the taker sold
    [ticker] = binance.parse(fixture_text("binance_spot/doc_ws_24hrTicker.json"), RECEIVED)
    assert ticker == Ticker("BINANCE", "BNB", "BTC", 1672515782136, RECEIVED, last=0.0025,
                            open=0.001, high=0.0025, low=0.001, prev_close=0.0009,
                            base_volume=10000.0, quote_volume=18.0)


def test_binance_subscribes_the_trade_and_ticker_streams():
    binance = BinanceController([Market("BTC", "USDT")], channels=BOTH)
    request = json.loads(binance.subscribe_messages(binance.markets)[0])
    assert request["params"] == ["btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@ticker"]


def test_binance_recorded_minute_taker_volume_equals_the_oracle(tmp_path):
    """All 1,255 ``@trade`` events of 2024-08-08 23:55Z, through the parser, the writer (twice:
    a restart that sees the same trades again) and the ``taker_volume`` view."""
    oracle = fixture_json("binance_spot/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")["trade_minute"]
    binance = BinanceController([Market("BTC", "USDT")], channels=BOTH)
    trades = [t for line in binance_trade_minute() for t in binance.parse(line, RECEIVED)]
    assert len(trades) == oracle["n_trades"] == 1255
    db = tmp_path / "t.db"
    for _ in range(2):
        writer = SQLiteWriter(db)
        writer.start()
        for trade in trades:
            assert writer.submit(trade)
        assert writer.stop()
    assert writer.stats.stored_trades["BINANCE"] == 0  # the second run stored nothing new
    conn = sqlite3.connect(db)
    [row] = conn.execute("SELECT minute, trades, buy_volume, sell_volume, total_volume, buy_value,"
                         " sell_value, buy_ratio FROM taker_volume WHERE exchange = 'BINANCE'"
                         " AND symbol = 'BTC' AND currency = 'USDT'")
    minute, count, buy, sell, total, buy_value, sell_value, ratio = row
    assert (minute, count) == (oracle["minute_start_ms"], 1255)
    assert buy == pytest.approx(float(oracle["taker_buy_base(m=false)"]), rel=1e-12)
    assert sell == pytest.approx(float(oracle["taker_sell_base(m=true)"]), rel=1e-12)
    assert buy_value == pytest.approx(float(oracle["taker_buy_quote"]), rel=1e-12)
    assert sell_value == pytest.approx(float(oracle["taker_sell_quote"]), rel=1e-12)
    assert total == pytest.approx(buy + sell) and ratio == pytest.approx(buy / (buy + sell))


def test_coinone_ticker_and_trade_wire_messages():
    from controllers import CoinoneController
    coinone = CoinoneController([Market("BTC", "KRW")], channels=BOTH)
    subscribes = [json.loads(m) for m in coinone.subscribe_messages(coinone.markets)]
    assert [m["channel"] for m in subscribes] == ["ORDERBOOK", "TICKER", "TRADE"]
    [ticker] = coinone.parse(fixture_text("coinone/ws_ticker_wire_2026-09.json"), RECEIVED)
    assert ticker == Ticker("COINONE", "BTC", "KRW", 1790133796484, RECEIVED, last=116380000.0,
                            open=115650000.0, high=116470000.0, low=115570000.0,
                            prev_close=115640000.0, base_volume=267.27610034,
                            quote_volume=30947007404.5912)
    [trade] = coinone.parse(fixture_text("coinone/ws_trade_wire_2026-09.json"), RECEIVED)
    # is_seller_maker: true -> the seller rested, the buyer took
    assert trade == Trade("COINONE", "BTC", "KRW", 1790134177835, RECEIVED, "1790134177835001",
                          116460000.0, 0.00483595, "buy")


def test_korbit_ticker_and_trade_wire_messages():
    from controllers import KorbitController
    korbit = KorbitController([Market("BTC", "KRW")], channels=BOTH)
    [request] = korbit.subscribe_messages(korbit.markets)
    assert [(r["type"], r["requestId"]) for r in json.loads(request)] == [
        ("orderbook", 1), ("ticker", 2), ("trade", 3)]
    [ticker] = korbit.parse(fixture_text("korbit/ws_ticker_snapshot_wire_2026-09.json"), RECEIVED)
    assert ticker == Ticker("KORBIT", "BTC", "KRW", 1790134313071, RECEIVED, last=116463000.0,
                            open=115370000.0, high=116765000.0, low=114412000.0,
                            prev_close=115304000.0, base_volume=39.25266763,
                            quote_volume=4549864965.49708)
    [trade] = korbit.parse(fixture_text("korbit/ws_trade_snapshot_wire_2026-09.json"), RECEIVED)
    assert trade == Trade("KORBIT", "BTC", "KRW", 1790134317520, RECEIVED, "25441720",
                          116439000.0, 0.0067, "sell")  # isBuyerTaker: false
    [doc] = korbit.parse(fixture_text("korbit/ws_trade_docs.json"), RECEIVED)
    assert (doc.trade_id, doc.side, doc.volume) == ("123456", "buy", 0.00146702)


def test_gopax_ticker_event_keeps_only_subscribed_pairs():
    from controllers import GopaxController
    gopax = GopaxController([Market("WOORI", "KRW")], channels=BOTH)
    assert gopax.channels == {"orderbook", "ticker"} and gopax.unoffered_channels == ["trade"]
    assert json.loads(gopax.subscribe_messages(gopax.markets)[-1])["n"] == "SubscribeToTickers"
    [ticker] = gopax.parse(fixture_text("gopax/ws_ticker_event_wire_2026-09.json"), RECEIVED)
    assert ticker == Ticker("GOPAX", "WOORI", "KRW", 1790139116758, RECEIVED, last=264.0,
                            open=264.0, high=267.0, low=262.0, prev_close=None,
                            base_volume=60292.8383377, quote_volume=15951517.61339619)
    other = GopaxController([Market("BTC", "KRW")], channels=BOTH)
    assert other.parse(fixture_text("gopax/ws_ticker_event_wire_2026-09.json"), RECEIVED) == []


def test_an_unknown_channel_is_a_config_error():
    from collector.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown channel"):
        UpbitController([Market("BTC", "KRW")], channels=("orderbook", "candles"))


def test_handle_payload_hands_trades_to_the_sink_and_counts_a_bad_one():
    got = []
    upbit = UpbitController([Market("BTC", "KRW")], channels=BOTH, sink=lambda r: got.append(r) or True)
    line = fixture_text("upbit/ws_trade_default_docs.jsonl").splitlines()[0]
    assert upbit.handle_payload(line.encode(), RECEIVED) == 1
    bad = json.dumps(dict(json.loads(line), ask_bid="X"))
    assert upbit.handle_payload(bad, RECEIVED) == 0
    assert [type(r) for r in got] == [Trade]
    assert (upbit.stats.trades, upbit.stats.errors, upbit.stats.books) == (1, 1, 0)
    assert "bad ask_bid 'X'" in upbit.last_error
