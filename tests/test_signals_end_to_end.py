"""``--channels orderbook,ticker,trade`` with signals: the five Korean exchanges, Binance (its
recorded 2024 session, with the 1,255 trades of one recorded minute) and Upbit ``KRW-USDT`` in
one ``python run_controller.py`` run; every quote, taker volume, premium and arbitrage row is
checked against the books and trades that were stored and sent."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict

import pytest

from collector.simulator.recorded import BinanceRecordedServer
from tests.sim_servers import Servers
from tests.global_helpers import FIXTURES, fixture_lines, oracle
from tests.helpers import expected_books, stored_books
from tests.test_end_to_end import summaries
from tests.test_korea_end_to_end import run

# every test here reads the one collector run (~7 s) of the module fixture: they are slow
# together, and one xdist worker runs them (SHARED_FIXTURE_MODULES in tests/conftest.py)
pytestmark = pytest.mark.slow

KOREAN = ("UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX")
USD_KRW = 1385.5
SIZES = (1_000_000.0, 10_000_000.0, 500_000_000.0)
FEES = {"UPBIT": 0.0005, "BITHUMB": 0.0004, "COINONE": 0.002, "KORBIT": 0.002, "GOPAX": 0.002,
        "BINANCE": 0.00075}  # Binance overridden on the command line


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("signals")
    expected = oracle("binance_spot/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")
    files = expected["files"]
    binance = BinanceRecordedServer(
        fixture_lines(f"binance_spot/{files['depth']}") + fixture_lines(f"binance_spot/{files['trades']}"),
        snapshots={"BTCUSDT": (FIXTURES / "binance_spot" / files["snapshot"]).read_text()},
        interval=0.005)
    named = {name: ["BTC"] for name in ("upbit", "bithumb", "coinone", "korbit", "gopax")}
    with Servers(named, 150, interval=0.01, channels=True, usdt_krw=1400.0) as servers, binance:
        env = {**servers.env(), **binance.env()}
        done = run(tmp_path, env, "--exchanges", "upbit,bithumb,coinone,korbit,gopax,binance",
                   "--symbols", "BTC", "--channels", "orderbook,ticker,trade", "--duration", "6",
                   "--signal-interval", "1", "--signal-max-age", "30",
                   "--arb-sizes", ",".join(str(int(s)) for s in SIZES),
                   "--fees", "binance=0.00075", "--usd-krw", str(USD_KRW), "--stats-interval", "2")
        assert binance.finished.is_set() and servers.upbit.finished.is_set()
        assert servers.bithumb_ws.finished.is_set()
    assert done.returncode == 0, done.stderr
    return tmp_path / "ob.db", servers, binance, expected, done


def mids(conn, exchange, symbol, currency) -> set[float]:
    return {m for (m,) in conn.execute("SELECT mid FROM quote WHERE exchange = ? AND symbol = ? "
                                       "AND currency = ?", (exchange, symbol, currency))}


def test_books_still_exact_with_the_other_channels(session):
    db, servers, _, _, done = session
    figures = summaries(done.stderr)
    for exchange in KOREAN:
        assert stored_books(db, exchange) == expected_books(servers, exchange), exchange
        assert figures[exchange]["errors"] == figures[exchange]["lost"] == 0, exchange
    assert set(stored_books(db, "UPBIT")) == {"BTC", "USDT"}  # KRW-USDT added for the premium
    # Bithumb's tickers and trades come from its companion WebSocket controller
    stream = figures["BITHUMB_STREAM"]
    assert stream["errors"] == stream["books"] == stream["stored"] == 0 and stream["messages"] > 0
    conn = sqlite3.connect(db)
    assert {row[0] for row in conn.execute("SELECT exchange FROM feed_status")} == {
        *KOREAN, "BINANCE", "BITHUMB_STREAM"}


def test_quote_view_summarizes_each_stored_book(session):
    db = session[0]
    conn = sqlite3.connect(db)
    per_exchange = dict(conn.execute("SELECT exchange, COUNT(*) FROM quote GROUP BY exchange"))
    assert set(per_exchange) == {*KOREAN, "BINANCE"}
    assert per_exchange == dict(conn.execute("SELECT m.exchange, COUNT(*) FROM book b JOIN market m "
                                             "USING (market_id) GROUP BY m.exchange"))
    books = defaultdict(lambda: {"bid": [], "ask": []})
    for sid, side, price, volume in conn.execute("SELECT snapshot_id, side, price, volume FROM orderbook "
                                                 "ORDER BY snapshot_id, side, level"):
        books[sid][side].append((price, volume))
    for sid, best_bid, best_ask, spread, mid, bid_volume, ask_volume in conn.execute(
            "SELECT snapshot_id, best_bid, best_ask, spread, mid, bid_volume, ask_volume FROM quote"):
        bids, asks = books[sid]["bid"], books[sid]["ask"]
        assert (best_bid, best_ask) == (bids[0][0], asks[0][0])
        assert spread == asks[0][0] - bids[0][0] and mid == (asks[0][0] + bids[0][0]) / 2
        assert bid_volume == pytest.approx(sum(v for _, v in bids))
        assert ask_volume == pytest.approx(sum(v for _, v in asks))


def test_trades_tickers_and_taker_volume(session):
    db, servers, binance, expected, _ = session
    conn = sqlite3.connect(db)
    oracle_minute = expected["trade_minute"]
    [(minute, count, buy, sell, ratio)] = conn.execute(
        "SELECT minute, trades, buy_volume, sell_volume, buy_ratio FROM taker_volume "
        "WHERE exchange = 'BINANCE' AND symbol = 'BTC' AND currency = 'USDT'")
    assert (minute, count) == (oracle_minute["minute_start_ms"], 1255) and binance.channel_sent == 1255
    assert buy == pytest.approx(float(oracle_minute["taker_buy_base(m=false)"]), rel=1e-12)
    assert sell == pytest.approx(float(oracle_minute["taker_sell_base(m=true)"]), rel=1e-12)
    assert ratio == pytest.approx(buy / (buy + sell))
    # Upbit: the generated trades, bucketed by their trade_timestamp minute, by ask_bid.
    sent = [json.loads(f) for f in servers.upbit.sent["trade:KRW-BTC"]]
    assert len(sent) == 150
    want = defaultdict(lambda: [0.0, 0.0, 0])
    for t in sent:
        bucket = want[t["trade_timestamp"] // 60_000 * 60_000]
        bucket[0 if t["ask_bid"] == "BID" else 1] += t["trade_volume"]
        bucket[2] += 1
    got = {m: [b, s, n] for m, b, s, n in conn.execute(
        "SELECT minute, buy_volume, sell_volume, trades FROM taker_volume WHERE exchange = 'UPBIT'")}
    assert got.keys() == want.keys()
    for m in want:
        assert got[m] == [pytest.approx(want[m][0]), pytest.approx(want[m][1]), want[m][2]]
    stored_ids = {i for (i,) in conn.execute("SELECT trade_id FROM trade WHERE exchange = 'UPBIT'")}
    assert stored_ids == {str(t["sequential_id"]) for t in sent}
    # Bithumb, through its stream: every trade sent, by taker side
    bithumb = [json.loads(f) for f in servers.bithumb_ws.sent["trade:KRW-BTC"]]
    [(buy, sell, count)] = conn.execute(
        "SELECT SUM(buy_volume), SUM(sell_volume), SUM(trades) FROM taker_volume WHERE exchange = 'BITHUMB'")
    assert count == len(bithumb) == 150
    assert buy == pytest.approx(sum(t["trade_volume"] for t in bithumb if t["ask_bid"] == "BID"))
    assert sell == pytest.approx(sum(t["trade_volume"] for t in bithumb if t["ask_bid"] == "ASK"))
    tickers = conn.execute("SELECT last, market_warning FROM ticker WHERE exchange = 'UPBIT' "
                           "ORDER BY timestamp").fetchall()
    assert [last for last, _ in tickers] == [json.loads(f)["trade_price"]
                                             for f in servers.upbit.sent["ticker:KRW-BTC"]]
    assert {w for _, w in tickers} == {"NONE"}


def test_both_kimchi_premiums_from_stored_mids(session):
    db = session[0]
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT symbol, krw_exchange, krw_price, global_exchange, global_price, "
                        "usdt_krw, premium_usdt_pct, usd_krw, premium_usd_pct, minute, computed_at "
                        "FROM kimchi_premium").fetchall()
    assert {r[1] for r in rows} == set(KOREAN) and {r[3] for r in rows} == {"BINANCE"}
    binance_mids = mids(conn, "BINANCE", "BTC", "USDT")
    usdt_mids = mids(conn, "UPBIT", "USDT", "KRW")
    for symbol, krw_ex, krw_price, global_ex, price, usdt_krw, p_usdt, usd_krw, p_usd, minute, at in rows:
        assert symbol == "BTC" and minute == at // 60_000 * 60_000
        assert krw_price in mids(conn, krw_ex, "BTC", "KRW")  # the mid of a book that was stored
        assert price in binance_mids and usdt_krw in usdt_mids and usd_krw == USD_KRW
        assert 1390 < usdt_krw < 1410
        assert p_usdt == pytest.approx((krw_price / (price * usdt_krw) - 1) * 100)
        assert p_usd == pytest.approx((krw_price / (price * USD_KRW) - 1) * 100)


def test_net_arbitrage_rows_from_stored_books(session):
    db = session[0]
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT buy_exchange, buy_currency, sell_exchange, sell_currency, "
                        "notional_krw, quantity, buy_price, sell_price, buy_fx, sell_fx, buy_fee, "
                        "sell_fee, gross_bps, net_bps FROM arbitrage").fetchall()
    # Korbit's last book (sizes walked down from the trimmed wire fixture's three levels a side)
    # is too thin for 1,000,000 KRW either way: the last computation has no Korbit pair.
    last_sid = conn.execute("SELECT MAX(snapshot_id) FROM quote WHERE exchange = 'KORBIT'").fetchone()[0]
    korbit = conn.execute("SELECT bid_volume * best_bid, ask_volume * best_ask FROM quote "
                          "WHERE snapshot_id = ?", (last_sid,)).fetchone()
    assert max(korbit) < 1_000_000
    last = conn.execute("SELECT buy_exchange, sell_exchange, notional_krw FROM arbitrage "
                        "WHERE computed_at = (SELECT MAX(computed_at) FROM arbitrage)").fetchall()
    # Coinone's book is the docs example of a coin at about 690 KRW: 1,000,000 KRW buys some
    # 1,450 units there, more than any other stored book bids for; so Coinone only sells.
    venues = ("UPBIT", "BITHUMB", "COINONE", "GOPAX", "BINANCE")
    every = {(a, b) for a in venues for b in venues if a != b and a != "COINONE"}
    assert {(b, s) for b, s, n in last if n == 1_000_000.0} == every
    assert {(b, s) for b, s, n in last if n == 10_000_000.0} <= every  # deeper: fewer fill
    # 500,000,000 KRW: only where both stored books are that deep (GOPAX sends its whole book)
    for buy_ex, sell_ex in {(r[0], r[2]) for r in rows if r[4] == 500_000_000.0}:
        [(deep,)] = conn.execute("SELECT MAX(ask_volume * best_ask) FROM quote WHERE exchange = ?", (buy_ex,))
        assert deep * (1400 if buy_ex == "BINANCE" else 1) > 500_000_000
    for (buy_ex, buy_cur, sell_ex, sell_cur, notional, qty, buy_price, sell_price, buy_fx, sell_fx,
         buy_fee, sell_fee, gross, net) in rows:
        assert (buy_fee, sell_fee) == (FEES[buy_ex], FEES[sell_ex])
        assert buy_price * qty * buy_fx == pytest.approx(notional)
        value = sell_price * qty * sell_fx
        assert gross == pytest.approx((value / notional - 1) * 10_000)
        assert net == pytest.approx((value * (1 - sell_fee) / (notional * (1 + buy_fee)) - 1) * 10_000)
        if "BINANCE" in (buy_ex, sell_ex):
            assert {buy_cur, sell_cur} == {"KRW", "USDT"} and 1390 < max(buy_fx, sell_fx) < 1410
        # the walk starts at the best price: the average fill is no better than the best level
        best_ask = {a for (a,) in conn.execute("SELECT best_ask FROM quote WHERE exchange = ? AND symbol = 'BTC'", (buy_ex,))}
        assert buy_price >= min(best_ask)


def test_the_new_tables_export_like_books(session, tmp_path):
    import subprocess
    import sys
    from tests.test_korea_end_to_end import ROOT
    db = session[0]
    out = tmp_path / "export"
    for table in ("trade", "taker_volume", "kimchi_premium", "arbitrage", "ticker", "quote"):
        done = subprocess.run([sys.executable, "-m", "exporter", "--db", str(db), "--out", str(out),
                               "--table", table], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"{table} rows ->" in done.stdout
    conn = sqlite3.connect(db)
    trades = json.loads((out / "BINANCE.trade.json").read_text())
    assert len(trades) == 1255 and trades[0] == dict(zip(
        ("exchange", "symbol", "currency", "timestamp", "received_at", "trade_id", "price",
         "volume", "side"),
        conn.execute("SELECT * FROM trade WHERE exchange = 'BINANCE' ORDER BY timestamp").fetchone()))
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    premiums = json.loads((out / "UPBIT.kimchi_premium.json").read_text())
    assert premiums and {p["krw_exchange"] for p in premiums} == {"UPBIT"}
    assert premiums[0]["premium_usd_pct"] == pytest.approx(
        (premiums[0]["krw_price"] / (premiums[0]["global_price"] * USD_KRW) - 1) * 100)
    [volume] = json.loads((out / "BINANCE.taker_volume.json").read_text())
    assert volume["trades"] == 1255 and volume["minute"] == 1723161300000
    # arbitrage rows go to the file of their buy exchange: one file per buy exchange of the
    # stored rows (Korbit's too when its thin book bought in some computation), each holding
    # exactly that exchange's rows
    conn.row_factory = sqlite3.Row
    stored = defaultdict(list)
    for row in conn.execute("SELECT * FROM arbitrage"):
        stored[row["buy_exchange"]].append(dict(row))
    assert {"UPBIT", "BITHUMB", "GOPAX", "BINANCE"} <= set(stored)  # they buy at 1,000,000 KRW
    assert sorted(p.name for p in out.glob("*.arbitrage.json")) == sorted(
        f"{exchange}.arbitrage.json" for exchange in stored)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    for exchange, rows in stored.items():
        exported = json.loads((out / f"{exchange}.arbitrage.json").read_text())
        assert sorted(exported, key=key) == sorted(rows, key=key), exchange
        assert [r["minute"] for r in exported] == sorted(r["minute"] for r in exported)
    bad = subprocess.run([sys.executable, "-m", "exporter", "--db", str(db), "--table", "candles"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'candles'" in bad.stderr
