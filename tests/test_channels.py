"""Tickers and trades (``--channels ticker,trade``): each parser on the real fixtures, and the
taker volume of the recorded Binance minute against the oracle of the fixtures."""

import json
import sqlite3

import pytest

from core.errors import ExchangeError, MalformedMessage
from core.model import Market, Ticker, Trade
from tests.sim_oracles import fixture_json, fixture_text
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


def store(db, records) -> SQLiteWriter:
    """``records`` through a writer on ``db``, every one accepted and committed."""
    writer = SQLiteWriter(db)
    writer.start()
    for record in records:
        assert writer.submit(record)
    assert writer.stop()
    return writer


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
        writer = store(db, trades)
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
    assert [json.loads(m)["n"] for m in gopax.subscribe_messages(gopax.markets)] == [
        "SubscribeToOrderBook", "SubscribeToTradingPair", "SubscribeToTickers"]
    [ticker] = gopax.parse(fixture_text("gopax/ws_ticker_event_wire_2026-09.json"), RECEIVED)
    assert ticker == Ticker("GOPAX", "WOORI", "KRW", 1790139116758, RECEIVED, last=264.0,
                            open=264.0, high=267.0, low=262.0, prev_close=None,
                            base_volume=60292.8383377, quote_volume=15951517.61339619)
    other = GopaxController([Market("BTC", "KRW")], channels=BOTH)
    assert other.parse(fixture_text("gopax/ws_ticker_event_wire_2026-09.json"), RECEIVED) == []


def test_an_unknown_channel_is_a_config_error():
    from core.errors import ConfigError
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


# --- the global recordings: every recorded trade, against the taker volume oracles ----------------

def oracle_rows(path: str) -> list[dict]:
    expected = fixture_json(path)
    [key] = [k for k in expected if k.startswith("taker_volume_per_minute")]
    return expected[key]


GLOBAL_TRADES = [
    # controller, recording, oracle, a line is a trade push if it holds this, the name separator
    ("OkxController", "okx/rec_cryptofeed_20220513_ws_recv.ndjson",
     "okx/expected_rec_cryptofeed_20220513_replay.json", '{"arg":{"channel":"trades"', "-"),
    ("GateioController", "gateio/rec_cryptofeed_20210422_ws_recv.ndjson",
     "gateio/expected_rec_cryptofeed_20210422_replay.json", '"channel":"spot.trades","event":"update"', "_"),
    ("KucoinController", "kucoin/rec_cryptofeed_20210425_ws_recv.ndjson",
     "kucoin/expected_rec_cryptofeed_20210425_replay.json", '"subject":"trade.l3match"', "-"),
]


@pytest.mark.parametrize("name, recording, oracle, marker, separator", GLOBAL_TRADES,
                         ids=[g[0] for g in GLOBAL_TRADES])
def test_recorded_global_trades_taker_volume_equals_the_oracle(name, recording, oracle, marker,
                                                                separator, tmp_path):
    import controllers
    expected = oracle_rows(oracle)
    markets = sorted({Market(*row["symbol"].split(separator, 1)) for row in expected},
                     key=lambda m: (m.base, m.quote))
    controller = getattr(controllers, name)(markets, channels=BOTH)
    lines = [line for line in fixture_text(recording).splitlines() if marker in line]
    trades = [t for line in lines for t in controller.parse(line, RECEIVED)]
    assert len(trades) == sum(row["n_trades"] for row in expected)
    db = tmp_path / "t.db"
    store(db, trades)
    got = {(f"{s}{separator}{c}", m): row for s, c, m, *row in sqlite3.connect(db).execute(
        "SELECT symbol, currency, minute, buy_volume, sell_volume, buy_value, sell_value, trades "
        "FROM taker_volume")}
    assert len(got) == len(expected)
    for row in expected:
        buy, sell, buy_value, sell_value, count = got[(row["symbol"], row["minute_start_ms"])]
        assert count == row["n_trades"], row
        assert buy == pytest.approx(float(row["taker_buy_base"]), rel=1e-12, abs=1e-15), row
        assert sell == pytest.approx(float(row["taker_sell_base"]), rel=1e-12, abs=1e-15), row
        assert buy_value == pytest.approx(float(row["taker_buy_quote"]), rel=1e-12, abs=1e-15), row
        assert sell_value == pytest.approx(float(row["taker_sell_quote"]), rel=1e-12, abs=1e-15), row


def test_recorded_global_tickers():
    from controllers import GateioController, KucoinController, OkxController
    okx_line = next(line for line in fixture_text("okx/rec_cryptofeed_20220513_ws_recv.ndjson").splitlines()
                    if line.startswith('{"arg":{"channel":"tickers","instId":"BTC-USDT"'))
    okx = OkxController([Market("BTC", "USDT")], channels=BOTH)
    [ticker] = okx.parse(okx_line, RECEIVED)
    raw = json.loads(okx_line)["data"][0]
    assert ticker == Ticker("OKX", "BTC", "USDT", int(raw["ts"]), RECEIVED, float(raw["last"]),
                            float(raw["open24h"]), float(raw["high24h"]), float(raw["low24h"]), None,
                            float(raw["vol24h"]), float(raw["volCcy24h"]))
    gate_line = next(line for line in fixture_text("gateio/rec_cryptofeed_20210422_ws_recv.ndjson").splitlines()
                     if '"channel":"spot.tickers","event":"update"' in line and "NEO_BTC" in line)
    gate = GateioController([Market("NEO", "BTC")], channels=BOTH)
    [ticker] = gate.parse(gate_line, RECEIVED)
    assert ticker == Ticker("GATEIO", "NEO", "BTC", 1619093533000, RECEIVED, last=0.0018716,
                            open=None, high=0.0018754, low=0.0017148, prev_close=None,
                            base_volume=1138.01640718, quote_volume=2.048263365803126)
    kucoin = KucoinController([Market("SNX", "BTC")], channels=BOTH)
    lines = [line for line in fixture_text("kucoin/rec_cryptofeed_20210425_ws_recv.ndjson").splitlines()
             if '"topic":"/market/ticker:SNX-BTC"' in line]
    tickers = [t for line in lines for t in kucoin.parse(line, RECEIVED)]
    assert len(tickers) == len(lines) > 0
    assert (tickers[0].timestamp, tickers[0].last) == (1619378326323, 0.00028676)


def test_global_subscribes_name_the_other_channels():
    from controllers import GateioController, KucoinController, OkxController
    okx = OkxController([Market("BTC", "USDT")], channels=BOTH)
    assert [a["channel"] for a in json.loads(okx.subscribe_messages(okx.markets)[0])["args"]] == [
        "books", "tickers", "trades"]
    assert all(a["channel"] == "books" for m in okx.resubscribe_messages(okx.markets[0])
               for a in json.loads(m)["args"])  # a resync asks for the book alone
    gate = GateioController([Market("BTC", "USDT"), Market("ETH", "USDT")], channels=("trade",))
    assert [(json.loads(m)["channel"], json.loads(m)["payload"]) for m in gate.subscribe_messages(gate.markets)][2:] == [
        ("spot.trades", ["BTC_USDT", "ETH_USDT"])]
    kucoin = KucoinController([Market("BTC", "USDT")], channels=BOTH)
    assert [json.loads(m)["topic"] for m in kucoin.subscribe_messages(kucoin.markets)] == [
        "/market/level2:BTC-USDT", "/market/ticker:BTC-USDT", "/market/match:BTC-USDT"]


def test_bybit_trades_and_tickers_docs_and_a_recorded_delta():
    from controllers import BybitController
    bybit = BybitController([Market("BTC", "USDT"), Market("BTC", "USD")], channels=BOTH)
    args = [a for m in bybit.subscribe_messages(bybit.markets) for a in json.loads(m)["args"]]
    assert args == ["orderbook.50.BTCUSDT", "tickers.BTCUSDT", "publicTrade.BTCUSDT",
                    "orderbook.50.BTCUSD", "tickers.BTCUSD", "publicTrade.BTCUSD"]
    [trade] = bybit.parse(fixture_text("bybit/doc_ws_publicTrade_linear.json"), RECEIVED)
    assert trade == Trade("BYBIT", "BTC", "USDT", 1672304486865, RECEIVED,
                          "20f43950-d8dd-5b31-9112-a178eb6023af", 16578.5, 0.001, "buy")
    [ticker] = bybit.parse(fixture_text("bybit/doc_ws_tickers_spot_snapshot.json"), RECEIVED)
    assert ticker == Ticker("BYBIT", "BTC", "USDT", 1673853746003, RECEIVED, last=21109.77,
                            open=20704.93, high=21426.99, low=20575.0, prev_close=None,
                            base_volume=6780.866843, quote_volume=141946527.22907118)
    lines = [line for line in fixture_text("bybit/sample_tardis-node-test_v5_mixed_messages.ndjson").splitlines()
             if line.startswith('{"topic":"tickers.BTCUSD",')]
    assert bybit.parse(lines[1], RECEIVED) == []  # a delta before the snapshot: nothing to merge into
    snapshot, delta = [bybit.parse(line, RECEIVED)[0] for line in lines]
    assert "lastPrice" not in json.loads(lines[1])["data"]  # a delta of the changed fields
    assert delta.last == snapshot.last == 28560.0 and delta.timestamp == 1680673822776
    assert delta[6:] == snapshot[6:]


def test_kraken_trade_snapshot_docs():
    from controllers import KrakenController
    kraken = KrakenController([Market("MATIC", "USD")], channels=BOTH)
    assert kraken.unoffered_channels == []
    assert [json.loads(m)["params"] for m in kraken.subscribe_messages(kraken.markets)][1:] == [
        {"channel": "ticker", "symbol": ["MATIC/USD"]}, {"channel": "trade", "symbol": ["MATIC/USD"]}]
    trades = kraken.parse(fixture_text("kraken/doc_ws_v2_trade_snapshot.json"), RECEIVED)
    assert trades == [
        Trade("KRAKEN", "MATIC", "USD", 1695628116925, RECEIVED, "4665846", 0.5147, 6423.46326, "buy"),
        Trade("KRAKEN", "MATIC", "USD", 1695628176925, RECEIVED, "4665847", 0.5147, 1136.19677815, "buy"),
    ]


def test_kraken_ticker_docs_and_wire_messages(tmp_path):
    from controllers import KrakenController
    kraken = KrakenController([Market("ALGO", "USD"), Market("USDT", "USD")], channels=BOTH)
    [algo] = kraken.parse(fixture_text("kraken/doc_ws_v2_ticker_snapshot.json"), RECEIVED)
    # no open and no quote volume on the wire: last - change and vwap * volume, exactly
    assert algo == Ticker("KRAKEN", "ALGO", "USD", 1695632671742, RECEIVED, last=0.10035,
                          open=0.10052, high=0.10285, low=0.09979, prev_close=None,
                          base_volume=997038.98383185, quote_volume=101179.51607925614)
    wire = fixture_text("kraken/rec_ark-readme_20260924_USDTUSD_ticker_v2_wire.ndjson").splitlines()
    assert [kraken.parse(line, RECEIVED) for line in wire[:2]] == [[], []]  # status, ack
    with pytest.raises(ExchangeError, match="Currency pair not supported NOPE/USD"):
        kraken.parse(wire[2], RECEIVED)
    [usdt] = kraken.parse(wire[3], RECEIVED)
    assert usdt == Ticker("KRAKEN", "USDT", "USD", 1790222058054, RECEIVED, last=0.99981,
                          open=0.99976, high=1.0, low=0.99959, prev_close=None,
                          base_volume=270638277.50461281, quote_volume=270592268.997437)
    for ticker, line in ((algo, "kraken/doc_ws_v2_ticker_snapshot.json"), (usdt, None)):
        raw = json.loads(fixture_text(line) if line else wire[3])["data"][0]
        # the derived open agrees with Kraken's own change_pct (rounded to 2 places)
        assert round(100 * raw["change"] / ticker.open, 2) == raw["change_pct"]
    assert kraken.parse(wire[4], RECEIVED) == []  # heartbeat
    without = dict(json.loads(wire[3]), data=[{"symbol": "USDT/USD", "last": 1.0}])
    [bare] = kraken.parse(json.dumps(without), RECEIVED)
    assert (bare.timestamp, bare.open, bare.quote_volume) == (RECEIVED, None, None)
    bad = dict(json.loads(wire[3]), data=[dict(json.loads(wire[3])["data"][0], change="x")])
    with pytest.raises(MalformedMessage, match="last - change"):
        kraken.parse(json.dumps(bad), RECEIVED)
    db = tmp_path / "t.db"
    store(db, [algo, usdt])
    assert sqlite3.connect(db).execute(
        "SELECT symbol, last, open, quote_volume FROM ticker ORDER BY symbol").fetchall() == [
        ("ALGO", 0.10035, 0.10052, 101179.51607925614), ("USDT", 0.99981, 0.99976, 270592268.997437)]


def bitmex_instrument_lines() -> list[str]:
    """A partial of the whole XBTUSD instrument row (2024-11-24), then two real update frames
    from other sessions: one with impact prices only, one with a new last price (see SOURCES)."""
    return fixture_text("bitmex/instrument_XBTUSD_assembled.ndjson").splitlines()


def test_bitmex_instrument_partial_then_updates_merged(tmp_path):
    from controllers import BitmexController
    bitmex = BitmexController([Market("BTC", "USD")], channels=BOTH)
    assert json.loads(bitmex.subscribe_messages(bitmex.markets)[1])["args"] == [
        "instrument:XBTUSD", "trade:XBTUSD"]
    partial, impact, last = bitmex_instrument_lines()
    assert bitmex.parse(impact, RECEIVED) == []  # before the partial: nothing to merge into
    [whole] = bitmex.parse(partial, RECEIVED)
    assert whole == Ticker("BITMEX", "BTC", "USD", 1732491199034, RECEIVED, last=97893.7,
                           open=97655.0, high=98743.5, low=95802.9, prev_close=97409.63,
                           base_volume=4317.62899194, quote_volume=419742700.0)
    [same] = bitmex.parse(impact, RECEIVED)  # no ticker field changed: all kept, its own time
    assert same == whole._replace(timestamp=1670874985000)
    [traded] = bitmex.parse(last, RECEIVED)
    assert traded == whole._replace(timestamp=1535403550488, last=6716.0)
    assert bitmex.parse('{"table":"instrument","action":"delete","data":[{"symbol":"XBTUSD"}]}',
                        RECEIVED) == []
    [again] = bitmex.parse(partial, RECEIVED)  # a new partial (a reconnect) replaces the row
    assert again == whole
    quiet = BitmexController([Market("BTC", "USD")], channels=("trade",))
    with pytest.raises(MalformedMessage, match="the ticker channel is not collected"):
        quiet.parse(partial, RECEIVED)
    db = tmp_path / "t.db"
    store(db, [whole, same, traded])
    assert sqlite3.connect(db).execute(
        "SELECT timestamp, last, open, high, low, prev_close, base_volume, quote_volume FROM ticker "
        "ORDER BY received_at, timestamp DESC").fetchall() == [
        (1732491199034, 97893.7, 97655.0, 98743.5, 95802.9, 97409.63, 4317.62899194, 419742700.0),
        (1670874985000, 97893.7, 97655.0, 98743.5, 95802.9, 97409.63, 4317.62899194, 419742700.0),
        (1535403550488, 6716.0, 97655.0, 98743.5, 95802.9, 97409.63, 4317.62899194, 419742700.0)]


def test_bitmex_recorded_trades_stored_once_in_contracts(tmp_path):
    from controllers import BitmexController
    lines = [line for line in fixture_text("bitmex/rec_cryptofeed_20210722_ws_recv.ndjson").splitlines()
             if line.startswith('{"table":"trade"')]
    rows = [row for line in lines for row in json.loads(line)["data"]]
    bitmex = BitmexController([Market("BTC", "USD")], channels=BOTH)  # XBTUSD
    xbt = [t for line in lines if '"symbol":"XBTUSD"' in line for t in bitmex.parse(line, RECEIVED)]
    raw = [row for row in rows if row["symbol"] == "XBTUSD"]
    assert len(xbt) == len(raw) > 1
    assert [(t.trade_id, t.price, t.volume, t.side) for t in xbt] == [
        (r["trdMatchID"], float(r["price"]), float(r["size"]), r["side"].lower()) for r in raw]
    assert xbt[1].timestamp == 1626993371685 and xbt[1].base == "BTC"  # 22:36:11.685Z
    db = tmp_path / "t.db"
    writer = store(db, xbt + xbt)  # a resubscribe's partial repeats trades
    assert writer.stats.stored_trades["BITMEX"] == len({t.trade_id for t in xbt})


def test_bithumb_stream_parses_the_wire_ticker_and_trades():
    from controllers import BithumbController, BithumbStreamController
    assert BithumbController.feeds(["ticker", "trade"]) == [BithumbStreamController]
    assert BithumbController.feeds(["orderbook"]) == []
    books = BithumbController([Market("BTC", "KRW")], channels=BOTH)
    assert (books.channels, books.unoffered_channels) == ({"orderbook"}, [])
    stream = BithumbStreamController([Market("BTC", "KRW")], channels=("ticker", "trade"))
    assert (stream.name, stream.exchange, stream.unoffered_channels) == ("BITHUMB_STREAM", "BITHUMB", [])
    request = json.loads(stream.subscribe_messages(stream.markets)[0])
    assert [item.get("type") for item in request[1:-1]] == ["ticker", "trade"]  # no orderbook
    [ticker] = stream.parse(fixture_text("bithumb/ws_ticker_wire_2026-09_trimmed.json").encode(), RECEIVED)
    assert ticker == Ticker("BITHUMB", "BTC", "KRW", 1790133514044, RECEIVED, last=116208000.0,
                            open=None, high=None, low=None, prev_close=None, base_volume=None,
                            quote_volume=None, market_warning="NONE")
    [trade] = stream.parse(fixture_text("bithumb/ws_trade_wire_2026-09_trimmed.json").encode(), RECEIVED)
    # trade_time 12:18:33 is KST; trade_timestamp (03:18:33.739Z) is stored
    assert trade == Trade("BITHUMB", "BTC", "KRW", 1790133513739, RECEIVED, "1079953210371761700",
                          116208000.0, 0.0009, "buy")
    [doc] = stream.parse(fixture_text("bithumb/ws_trade_docs_v2.1.5.json"), RECEIVED)
    assert (doc.trade_id, doc.timestamp, doc.side) == ("17259299343730000", 1725929934373, "buy")


def test_binance_futures_stream_recorded_minute_and_ticker(tmp_path):
    """USD-M trades come from the book feed's class bound to the /market path; the 2,005 recorded ``@trade``
    events of 2024-08-08 23:55Z give the fixture oracle's taker volume."""
    from controllers import BinanceFuturesController
    [BinanceFuturesStreamController] = BinanceFuturesController.feeds(["trade"])
    assert issubclass(BinanceFuturesStreamController, BinanceFuturesController)
    assert BinanceFuturesStreamController.ws_url_env == "BINANCE_FUTURES_MARKET_WS_URL"
    books = BinanceFuturesController([Market("BTC", "USDT")], channels=BOTH)
    assert (books.channels, books.unoffered_channels) == ({"orderbook"}, [])  # nothing on /public
    assert json.loads(books.subscribe_messages(books.markets)[0])["params"] == ["btcusdt@depth@100ms"]
    stream = BinanceFuturesStreamController([Market("BTC", "USDT")], channels=("ticker", "trade"))
    assert stream.name == "BINANCE_FUTURES_STREAM" and stream.default_ws_url.endswith("/market/stream")
    assert json.loads(stream.subscribe_messages(stream.markets)[0])["params"] == [
        "btcusdt@trade", "btcusdt@ticker"]  # no depth stream on /market
    stream.on_connect(stream.markets)  # and no REST snapshot for a book it does not keep
    assert stream._snapshot_requests.empty() and not stream.has_book(Market("BTC", "USDT"))
    oracle = fixture_json("binance_futures/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")["trade_minute"]
    lines = fixture_text("binance_futures/rec_hftbacktest_20240808_BTCUSDT_trade_minute_1723161300000"
                         ".ndjson").splitlines()
    trades = [t for line in lines for t in stream.parse(line, RECEIVED)]
    assert len(trades) == oracle["n_trades"] == 2005
    db = tmp_path / "f.db"
    store(db, trades)
    [(buy, sell, buy_value, sell_value)] = sqlite3.connect(db).execute(
        "SELECT buy_volume, sell_volume, buy_value, sell_value FROM taker_volume "
        "WHERE exchange = 'BINANCE_FUTURES' AND minute = ?", (oracle["minute_start_ms"],))
    assert buy == pytest.approx(float(oracle["taker_buy_base(m=false)"]), rel=1e-12)
    assert sell == pytest.approx(float(oracle["taker_sell_base(m=true)"]), rel=1e-12)
    assert buy_value == pytest.approx(float(oracle["taker_buy_quote"]), rel=1e-12)
    assert sell_value == pytest.approx(float(oracle["taker_sell_quote"]), rel=1e-12)
    [ticker] = stream.parse(fixture_text("binance_futures/doc_ws_24hrTicker.json"), RECEIVED)
    assert ticker == Ticker("BINANCE_FUTURES", "BTC", "USDT", 1672515782136, RECEIVED, last=16584.6,
                            open=16716.0, high=16764.89, low=16456.51, prev_close=None,
                            base_volume=122474.816, quote_volume=2036102085.697464)


def test_gopax_public_trade_event_docs():
    from controllers import GopaxController
    gopax = GopaxController([Market("BCH", "KRW")] + [Market(f"C{i}", "KRW") for i in range(30)],
                            channels=BOTH)
    assert [len(c.markets) for c in gopax.connections] == [25, 6]  # trades: 25 markets each
    [trade] = gopax.parse(fixture_text("gopax/ws_public_trade_event_docs.json"), RECEIVED)
    assert trade == Trade("GOPAX", "BCH", "KRW", 1609756772000, RECEIVED, "75021", 100.0, 0.01, "buy")
    assert gopax.parse('{"i":"trades-BCH-KRW","n":"SubscribeToTradingPair","o":{}}', RECEIVED) == []
