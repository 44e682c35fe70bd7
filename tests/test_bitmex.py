"""BitMEX ``orderBookL2`` against the real recorded session (loopback server)."""

from __future__ import annotations

import json

import pytest

from core.model import Market, Ticker, Trade
from collector.simulator.recorded import BitmexRecordedServer
from controllers.bitmex import BitmexController
from tests.global_helpers import fixture_lines, last_books, oracle, resyncs, run_recorded

RECORDING = "bitmex/rec_cryptofeed_20210722_ws_recv.ndjson"
MARKETS = {"XRPU21": Market("XRP", "U21"), "UNIUSDT": Market("UNI", "USDT"),
           "XBTUSD": Market("BTC", "USD"), "ADAUSDT": Market("ADA", "USDT"),
           "SOLUSDT": Market("SOL", "USDT"), "TRXU21": Market("TRX", "U21"),
           "EOSUSDT": Market("EOS", "USDT"), "TRXUSDT": Market("TRX", "USDT"),
           "BCHUSD": Market("BCH", "USD"), "MATICUSDT": Market("MATIC", "USDT")}
MATIC = MARKETS["MATICUSDT"]
FRAMES = 1979  # orderBookL2 messages: 10 partials, 445 inserts, 1090 updates, 434 deletes


def final(book: dict) -> tuple:
    return (tuple((float(p), float(s)) for p, s in book["top5_bids"]),
            tuple((float(p), float(s)) for p, s in book["top5_asks"]))


def stored_name(name: str) -> str:
    market = MARKETS[name]
    return market.base + market.quote


def test_recorded_session_ten_markets_match_the_oracle():
    expected = oracle("bitmex/expected_rec_cryptofeed_20210722_replay.json")["final_books"]
    with BitmexRecordedServer(fixture_lines(RECORDING)) as server:
        controller, books, events = run_recorded(
            BitmexController, server, list(MARKETS.values()),
            settle=lambda c, _: sum(s.snapshots + s.applied for s in c.sync.values()) >= FRAMES)
    stored = last_books(books)
    for name, book in expected.items():
        market = MARKETS[name]
        stats = controller.sync[market]
        assert (stats.snapshots, stats.resyncs) == (1, 0), name
        assert sum(controller.levels_held(market)) == book["levels"], name
        assert stored[stored_name(name)] == final(book), name
    assert sum(s.applied for s in controller.sync.values()) == FRAMES - 10
    assert resyncs(events) == [] and controller.stats.errors == 0
    assert '"orderBookL2:XBTUSD"' in server.received[0]  # BTC is XBT on BitMEX


@pytest.mark.parametrize("fault", ["drop", "swap", "cross"])
def test_an_injected_fault_resyncs_the_market_once_and_the_book_ends_right(fault):
    # MATICUSDT's message 31 inserts a level that message 32 changes: lost or late, the change
    # names an id the book does not hold
    expected = oracle("bitmex/expected_rec_cryptofeed_20210722_replay.json")["final_books"]["MATICUSDT"]
    with BitmexRecordedServer(fixture_lines(RECORDING), faults={31: fault}, interval=0.005) as server:
        controller, books, events = run_recorded(
            BitmexController, server, [MATIC],
            settle=lambda c, books: c.sync[MATIC].snapshots >= 2
            and last_books(books).get("MATICUSDT") == final(expected))
    [resync] = resyncs(events)
    cause = "crossed book" if fault == "cross" else "out of step: "
    assert resync.detail.startswith(cause) and (resync.base, resync.quote) == ("MATIC", "USDT")
    stats = controller.sync[MATIC]
    assert (stats.resyncs, stats.snapshots) == (1, 2)
    assert [m for m in server.received if '"unsubscribe"' in m] == [
        '{"op": "unsubscribe", "args": ["orderBookL2:MATICUSDT"]}']
    assert last_books(books)["MATICUSDT"] == final(expected)
    assert sum(controller.levels_held(MATIC)) == expected["levels"]
    assert all(b.bids[0][0] < b.asks[0][0] for b in books)


def test_tickers_and_trades_on_the_wire_beside_the_book():
    # the recording's XBTUSD trades and the instrument frames of the fixtures, on one connection
    instrument = fixture_lines("bitmex/instrument_XBTUSD_assembled.ndjson")
    xbt = MARKETS["XBTUSD"]
    lines = fixture_lines(RECORDING)
    frames = sum(1 for line in lines if line.startswith('{"table":"orderBookL2"') and '"XBTUSD"' in line)
    with BitmexRecordedServer(lines + instrument) as server:
        controller, records, events = run_recorded(
            BitmexController, server, [xbt], channels=("orderbook", "ticker", "trade"),
            settle=lambda c, _: c.sync[xbt].snapshots + c.sync[xbt].applied >= frames)
    trade_lines = [line for line in lines if line.startswith('{"table":"trade"') and '"XBTUSD"' in line]
    recorded_trades = [row for line in trade_lines for row in json.loads(line)["data"]]
    trades = [r for r in records if type(r) is Trade]
    assert [t.trade_id for t in trades] == [row["trdMatchID"] for row in recorded_trades]
    tickers = [r for r in records if type(r) is Ticker]
    assert [(t.timestamp, t.last, t.open) for t in tickers] == [  # merged into the partial
        (1732491199034, 97893.7, 97655.0), (1670874985000, 97893.7, 97655.0),
        (1535403550488, 6716.0, 97655.0)]
    assert (controller.stats.tickers, controller.stats.trades) == (3, len(trades))
    assert server.channel_sent == len(instrument) + len(trade_lines) and len(recorded_trades) > 1
    expected = oracle("bitmex/expected_rec_cryptofeed_20210722_replay.json")["final_books"]["XBTUSD"]
    assert last_books(records)["BTCUSD"] == final(expected)
    assert controller.stats.errors == 0 and resyncs(events) == []
    assert json.loads(server.received[1]) == {"op": "subscribe", "args": ["instrument:XBTUSD", "trade:XBTUSD"]}
