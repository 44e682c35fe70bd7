"""The kimchi premium and net arbitrage on hand-checked books (no network): the arithmetic, a
stale book, a book too thin for the size, the rate file, and the rows the writer stores."""

import sqlite3

import pytest

from core.errors import ConfigError
from core.model import OrderBookSnapshot
from analytics.signals import (Arbitrage, BookBoard, SignalEngine, buy_at_asks, parse_fees,
                               read_rate, sell_at_bids)
from controllers import BY_EXCHANGE
from storage.writer import SQLiteWriter

NOW = 1_790_000_030_000  # 30 s into the minute 1_790_000_000_000 (not a minute start)
MINUTE = NOW // 60_000 * 60_000
FEES = {"UPBIT": 0.0005, "BINANCE": 0.001, "COINONE": 0.002}


def book(exchange, symbol, currency, bids, asks):
    return OrderBookSnapshot(exchange, symbol, currency, NOW, NOW, tuple(bids), tuple(asks))


UPBIT_BTC = book("UPBIT", "BTC", "KRW", [(80_000_000, 0.05), (79_000_000, 0.5)],
                 [(81_000_000, 1.0)])                       # mid 80,500,000 KRW
UPBIT_USDT = book("UPBIT", "USDT", "KRW", [(1399, 1e6)], [(1401, 1e6)])  # mid 1,400 KRW
BINANCE_BTC = book("BINANCE", "BTC", "USDT", [(49_000, 2.0)],
                   [(50_000, 0.04), (60_000, 1.0)])         # mid 49,500 USDT
COINONE_BTC = book("COINONE", "BTC", "KRW", [(90_000_000, 1.0)], [(91_000_000, 1.0)])


def engine(books_seen, *, usd_krw=1386.0, sizes=(7_000_000.0, 50_000_000.0), max_age=10.0):
    """An engine whose board saw each book at the given ms; rows go to ``stored``."""
    clock = {"now": 0}
    board = BookBoard(clock=lambda: clock["now"])
    for seen, b in books_seen:
        clock["now"] = seen
        board.watch(b)
    stored = []
    return SignalEngine(board, lambda table, rows: stored.append((table, list(rows))),
                        max_age=max_age, notionals=sizes, venues=BY_EXCHANGE, fees=FEES,
                        usd_krw=usd_krw), stored


def test_depth_walks():
    asks = [(50_000, 0.04), (60_000, 1.0)]
    assert buy_at_asks(asks, 5_000) == (pytest.approx(0.09), 5_000)  # 2,000 + 3,000 / 60,000
    assert buy_at_asks(asks, 62_000.01) is None                      # the levels hold 62,000
    bids = [(80_000_000, 0.05), (79_000_000, 0.5)]
    assert sell_at_bids(bids, 0.09) == pytest.approx(4_000_000 + 0.04 * 79_000_000)
    assert sell_at_bids(bids, 0.5500001) is None


def test_kimchi_premium_against_both_rates():
    e, stored = engine([(NOW - 1000, b) for b in (UPBIT_BTC, UPBIT_USDT, BINANCE_BTC)])
    premiums, _ = e.compute(NOW)
    [row] = premiums
    # Binance mid (49,000 + 50,000) / 2 = 49,500 USDT; Upbit mid 80,500,000 KRW.
    assert (row.minute, row.symbol, row.krw_exchange, row.global_exchange) == (MINUTE, "BTC", "UPBIT", "BINANCE")
    assert (row.krw_price, row.global_price, row.usdt_krw, row.usd_krw) == (80_500_000, 49_500, 1400, 1386)
    # 80,500,000 / (49,500 x 1,400 = 69,300,000) = 1.161616...
    assert row.premium_usdt_pct == pytest.approx(16.161616161616)
    # 80,500,000 / (49,500 x 1,386 = 68,607,000) = 1.173350...
    assert row.premium_usd_pct == pytest.approx((80_500_000 / 68_607_000 - 1) * 100)
    assert row.premium_usd_pct == pytest.approx(17.33496582)
    assert ("kimchi_premium", premiums) in stored


def test_kimchi_premium_with_a_stale_usdt_book_keeps_only_the_reference_premium():
    e, _ = engine([(NOW - 1000, UPBIT_BTC), (NOW - 1000, BINANCE_BTC), (NOW - 11_000, UPBIT_USDT)])
    [row] = e.compute(NOW)[0]
    assert row.usdt_krw is None and row.premium_usdt_pct is None
    assert row.premium_usd_pct == pytest.approx(17.33496582)
    assert e.stats.stale_books == 1


def test_net_arbitrage_at_size_hand_checked():
    e, _ = engine([(NOW - 1000, b) for b in (UPBIT_BTC, UPBIT_USDT, BINANCE_BTC)])
    _, rows = e.compute(NOW)
    by_pair = {(r.buy_exchange, r.sell_exchange, r.notional_krw): r for r in rows}
    row = by_pair[("BINANCE", "UPBIT", 7_000_000.0)]
    # 7,000,000 KRW / 1,400 = 5,000 USDT: 0.04 BTC at 50,000 (2,000 USDT) + 0.05 at 60,000.
    assert row.quantity == pytest.approx(0.09)
    assert row.buy_price == pytest.approx(5_000 / 0.09) and row.buy_fx == 1400
    # Sold on Upbit: 0.05 at 80,000,000 + 0.04 at 79,000,000 = 7,160,000 KRW.
    assert row.sell_price == pytest.approx(7_160_000 / 0.09) and row.sell_fx == 1
    assert row.gross_bps == pytest.approx((7_160_000 / 7_000_000 - 1) * 10_000)  # 228.57
    # Net of both taker fees: 7,160,000 x 0.9995 = 7,156,420 against 7,000,000 x 1.001 = 7,007,000.
    assert row.net_bps == pytest.approx((7_156_420 / 7_007_000 - 1) * 10_000)
    assert row.net_bps == pytest.approx(213.2438990)
    assert (row.buy_fee, row.sell_fee) == (0.001, 0.0005)
    # The other way: 7,000,000 KRW at Upbit's ask buys 7/81 BTC, sold at 49,000 USDT x 1,400.
    back = by_pair[("UPBIT", "BINANCE", 7_000_000.0)]
    assert back.quantity == pytest.approx(7 / 81)
    value = 7 / 81 * 49_000 * 1400
    assert back.net_bps == pytest.approx((value * 0.999 / (7_000_000 * 1.0005) - 1) * 10_000)


def test_a_size_the_thin_book_cannot_fill_yields_no_row():
    e, _ = engine([(NOW - 1000, b) for b in (UPBIT_BTC, UPBIT_USDT, BINANCE_BTC)])
    _, rows = e.compute(NOW)
    # 50,000,000 KRW buys 0.04 + 33,714.29 / 60,000 = 0.6019 BTC on Binance; Upbit's bids hold
    # 0.55 BTC: no number. Upbit's asks hold 1 BTC (81,000,000 KRW), so the other way fills.
    sizes = {(r.buy_exchange, r.sell_exchange): [] for r in rows}
    for r in rows:
        sizes[(r.buy_exchange, r.sell_exchange)].append(r.notional_krw)
    assert sizes == {("BINANCE", "UPBIT"): [7_000_000.0], ("UPBIT", "BINANCE"): [7_000_000.0, 50_000_000.0]}
    assert e.stats.thin == 1


def test_a_stale_book_yields_no_number_and_krw_pairs_need_no_rate():
    e, _ = engine([(NOW - 1000, UPBIT_BTC), (NOW - 1000, BINANCE_BTC), (NOW - 1000, COINONE_BTC),
                   (NOW - 10_001, UPBIT_USDT)], usd_krw=None)
    premiums, rows = e.compute(NOW)
    assert premiums == []  # no live rate, no reference
    assert {(r.buy_exchange, r.sell_exchange) for r in rows} == {("UPBIT", "COINONE"), ("COINONE", "UPBIT")}
    assert e.stats.no_rate == 4  # Binance against Upbit and Coinone, both ways
    row = next(r for r in rows if r.buy_exchange == "UPBIT" and r.notional_krw == 7_000_000)
    # 7/81 BTC bought at 81,000,000, sold at Coinone's 90,000,000; fees 0.05 % and 0.2 %.
    assert row.net_bps == pytest.approx((7 / 81 * 90_000_000 * 0.998 / (7_000_000 * 1.0005) - 1) * 10_000)
    e2, _ = engine([(NOW - 20_000, b) for b in (UPBIT_BTC, UPBIT_USDT, BINANCE_BTC, COINONE_BTC)])
    assert e2.compute(NOW) == ([], []) and e2.stats.stale_books == 4


def test_rows_are_stored_once_per_minute_and_key(tmp_path):
    db = tmp_path / "s.db"
    writer = SQLiteWriter(db)
    writer.start()
    e, _ = engine([(NOW - 1000, b) for b in (UPBIT_BTC, UPBIT_USDT, BINANCE_BTC)])
    e.submit = writer.submit_signals
    e.compute(NOW)
    e.compute(NOW + 5_000)  # same minute: replaces
    assert writer.stop()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*), MIN(computed_at) FROM kimchi_premium").fetchone() == (1, NOW + 5_000)
    assert conn.execute("SELECT COUNT(*) FROM arbitrage").fetchone() == (3,)
    row = conn.execute("SELECT * FROM arbitrage WHERE buy_exchange = 'BINANCE'").fetchone()
    assert row[:8] == (MINUTE, "BTC", 7_000_000.0, "BINANCE", "USDT", "UPBIT", "KRW", pytest.approx(0.09))
    assert Arbitrage(*row).net_bps == pytest.approx(213.2438990)


def test_fee_and_rate_input_errors(tmp_path):
    assert parse_fees("upbit=0.0004, Binance=0") == {"UPBIT": 0.0004, "BINANCE": 0.0}
    for bad in ("upbit", "upbit=abc", "upbit=1", "=0.1", "upbit=-0.1"):
        with pytest.raises(ConfigError, match="--fees"):
            parse_fees(bad)
    rate = tmp_path / "usdkrw.txt"
    rate.write_text("# from the bank, 2026-11-20\n1,385.20\n")
    assert read_rate(rate) == 1385.2
    rate.write_text("soon\n")
    with pytest.raises(ConfigError, match="no positive number"):
        read_rate(rate)
    with pytest.raises(ConfigError, match="cannot read"):
        read_rate(tmp_path / "missing.txt")


def test_an_unreadable_rate_file_is_logged_and_leaves_the_premium_empty(tmp_path, caplog):
    e, _ = engine([(NOW - 1000, b) for b in (UPBIT_BTC, UPBIT_USDT, BINANCE_BTC)])
    e.usd_krw_file = tmp_path / "gone.txt"
    [row] = e.compute(NOW)[0]
    assert row.premium_usd_pct is None and row.premium_usdt_pct == pytest.approx(16.161616161616)
    assert e.stats.rate_errors == 1 and "cannot read USD/KRW rate file" in caplog.text


@pytest.mark.parametrize("argv, message", [
    (["--channels", "orderbook,candles"], "unknown channel(s) candles"),
    (["--fees", "upbit=2"], "bad --fees entry 'upbit=2'"),
    (["--arb-sizes", "10000000,lots"], "each --arb-sizes entry must be a positive number, got 'lots'"),
    (["--usd-krw-file", "/nonexistent/usdkrw.txt"], "cannot read USD/KRW rate file"),
])
def test_bad_signal_options_are_one_clear_error(argv, message):
    from collector.cli import build_parser, config_from_args
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_from_args(build_parser().parse_args(["--exchanges", "upbit", *argv]), {})


def test_signal_options_and_environment():
    from collector.cli import build_parser, config_from_args
    config, _ = config_from_args(build_parser().parse_args(
        ["--exchanges", "upbit,binance", "--channels", "TRADE", "--arb-sizes", "1_000_000,5000000",
         "--fees", "binance=0.00075"]), {"USD_KRW": "1385.5", "FEES": "upbit=0.0001"})
    assert config.channels == ("orderbook", "trade")
    assert config.arb_sizes == (1_000_000.0, 5_000_000.0)
    assert config.fees == {"BINANCE": 0.00075}  # the option wins over $FEES
    assert config.usd_krw == 1385.5
    with pytest.raises(ConfigError, match="USD_KRW must be a positive number"):
        config_from_args(build_parser().parse_args(["--exchanges", "upbit"]), {"USD_KRW": "x"})
