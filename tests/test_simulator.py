"""``python -m collector.simulator``: what a newcomer with no network runs to see the collector
work — the thirteen exchanges on loopback, the collector run against them, books, tickers, trades
and signals stored."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controllers import CONTROLLERS

ROOT = Path(__file__).resolve().parent.parent
EXCHANGES = [cls.exchange for cls in CONTROLLERS.values()]
SPOT_USDT = ("BINANCE", "OKX", "BYBIT", "GATEIO", "KRAKEN", "KUCOIN")


def environ() -> dict[str, str]:
    """This process's environment with the checkout importable (the demo runs elsewhere)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def check_demo_database(db: Path, started_ms: int, ended_ms: int) -> None:
    """What a demo run must have stored: books of every exchange without an error, tickers and
    trades, stamped with the time of the run, and kimchi premiums between 0 and 5 %."""
    conn = sqlite3.connect(db)
    books = dict(conn.execute("SELECT m.exchange, COUNT(*) FROM book b JOIN market m USING (market_id) "
                              "GROUP BY m.exchange"))
    assert set(books) == set(EXCHANGES) and min(books.values()) >= 10, books
    status = {row[0]: row[1:] for row in conn.execute(
        "SELECT exchange, errors, lost, stored_books FROM feed_status")}
    for exchange in EXCHANGES:
        assert status[exchange][:2] == (0, 0), (exchange, status[exchange])
        assert status[exchange][2] == books[exchange], exchange
    assert sum(errors for errors, _, _ in status.values()) == 0
    first, last = conn.execute("SELECT MIN(timestamp), MAX(timestamp) FROM book").fetchone()
    assert started_ms - 5_000 <= first and last <= ended_ms + 1_000
    for table in ("ticker", "trade"):
        stored = {e for (e,) in conn.execute(f"SELECT DISTINCT exchange FROM {table} "
                                             f"WHERE timestamp BETWEEN ? AND ?", (started_ms - 5_000, ended_ms))}
        assert stored == set(EXCHANGES), (table, stored)
    premiums = conn.execute("SELECT krw_exchange, global_exchange, premium_usdt_pct, premium_usd_pct "
                            "FROM kimchi_premium").fetchall()
    assert {row[0] for row in premiums} == {"UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX"}
    assert {row[1] for row in premiums} == set(SPOT_USDT)
    assert all(0 < usdt < 5 and 0 < usd < 5 for _, _, usdt, usd in premiums), premiums
    # the same asset costs the same everywhere, give or take the premium and a spread
    mids = conn.execute("SELECT exchange, currency, AVG(mid) FROM quote WHERE symbol = 'BTC' "
                        "GROUP BY exchange, currency").fetchall()
    usdt = [mid for _, currency, mid in mids if currency == "USDT"]
    krw = [mid for _, currency, mid in mids if currency == "KRW"]
    assert len(usdt) == 8 and len(krw) == 5 and max(usdt) / min(usdt) < 1.01
    assert all(1.0 < k / (u * 1390) < 1.05 for k in krw for u in usdt)  # the premium, 0 to 5 %
    conn.close()


@pytest.mark.slow
def test_demo_collects_from_all_thirteen_simulated_exchanges(tmp_path):
    started = int(time.time() * 1000)
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--demo", "15"],
                          cwd=tmp_path, env=environ(), capture_output=True, text=True, timeout=180)
    ended = int(time.time() * 1000)
    assert done.returncode == 0, done.stdout + done.stderr
    exports = dict(line[len("export "):].split("=", 1) for line in done.stdout.splitlines()
                   if line.startswith("export "))
    for cls in CONTROLLERS.values():  # every exchange's endpoint, as a shell reads it
        assert exports[cls.ws_url_env if cls.exchange != "BITHUMB" else cls.rest_url_env] \
            .startswith(("ws://127.0.0.1:", "http://127.0.0.1:")), cls.exchange
    assert "export BINANCE_FUTURES_MARKET_WS_URL=ws://127.0.0.1:" in done.stdout
    assert "then: python run_controller.py --exchanges upbit,bithumb,coinone,korbit,gopax,binance," \
           "binance_futures,okx,bybit,gateio,kraken,kucoin,bitmex --symbols BTC,ETH,XRP" in done.stdout
    db = tmp_path / "data" / "simulated.db"  # under the folder it ran in
    assert db.is_file() and (tmp_path / "logs").is_dir()
    assert "the collector exited with 0" in done.stdout and f"are in {db}" in done.stdout
    check_demo_database(db, started, ended)


def test_symbols_all_and_top_work_against_the_simulator(tmp_path):
    """The Korean exchanges' market lists and tickers are served too: ``--symbols ALL`` and
    ``--top N`` resolve offline to the simulated markets."""
    from collector.simulator.live import LiveVenues
    from collector.simulator.world import World
    from tests.test_korea_end_to_end import run

    world = World(seed=3)
    with LiveVenues(["BTC", "ETH", "XRP", "DOGE"], world=world,
                    exchanges=["upbit", "bithumb", "coinone", "korbit", "gopax"]) as venues:
        done = run(tmp_path, venues.env(), "--symbols", "ALL", "--top", "2", "--duration", "3",
                   "--stats-interval", "1")
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(tmp_path / "ob.db")
    markets = conn.execute("SELECT exchange, symbol FROM market ORDER BY exchange, symbol").fetchall()
    conn.close()
    expected = {}
    for name in ("upbit", "bithumb", "coinone", "korbit", "gopax"):
        values = {s: world.traded_value(name.upper(), s, "KRW") for s in ("BTC", "ETH", "XRP", "DOGE")}
        top = sorted(values, key=values.get, reverse=True)[:2]
        expected[name.upper()] = sorted(top)
    stored: dict[str, list[str]] = {}
    for exchange, symbol in markets:
        stored.setdefault(exchange, []).append(symbol)
    assert stored == expected


def test_bad_arguments_are_one_line_errors():
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--exchanges", "nasdaq"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown exchange(s) nasdaq" in done.stderr


def test_the_shipped_real_recording_is_served_and_stored_exactly(tmp_path):
    from collector.record import read_lines
    from collector.simulator.recording import SAMPLE, frames_from_recording
    from tests.helpers import expected_upbit, stored_books

    frames, symbols = frames_from_recording(read_lines([SAMPLE]))
    assert symbols == {"upbit": ["LAMB", "WAVES"]} and sum(map(len, frames["upbit"].values())) == 113
    db = tmp_path / "sample.db"
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--sample", "--demo", "4",
                           "--interval", "0.005", "--db", str(db), "--log-dir", str(tmp_path / "logs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "then: python run_controller.py --exchanges upbit --symbols LAMB,WAVES" in done.stdout
    assert "export UPBIT_WS_URL=ws://127.0.0.1:" in done.stdout
    stored = stored_books(db, "UPBIT")
    assert stored == {s: expected_upbit(frames["upbit"][f"KRW-{s}"]) for s in ("LAMB", "WAVES")}

    replayed = tmp_path / "replayed.db"  # the same recording straight through the replay
    done = subprocess.run([sys.executable, "-m", "collector.replay", str(SAMPLE), "--db", str(replayed)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stored_books(replayed, "UPBIT") == stored


def test_frames_from_a_recording_of_every_served_exchange():
    from collector.record import encode_payload
    from tests.sim_oracles import fixture_text
    from collector.simulator.recording import frames_from_recording

    coinone = fixture_text("coinone/ws_orderbook_docs.json")
    korbit = fixture_text("korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json")
    bithumb = fixture_text("bithumb/rest_orderbook_v1_recorded_2025-08.json")
    upbit = fixture_text("upbit/ws_orderbook_default_docs.json")
    lines = [
        {"ex": "COINONE", "d": "in", "t": 1, **encode_payload(fixture_text("coinone/ws_connected_wire_2026-09.json"))},
        {"ex": "COINONE", "d": "in", "t": 2, **encode_payload(coinone)},
        {"ex": "KORBIT", "d": "in", "t": 3, **encode_payload(korbit)},
        {"ex": "BITHUMB", "d": "in", "t": 4, "status": 200, **encode_payload(bithumb.encode())},
        {"ex": "BITHUMB", "d": "in", "t": 5, "status": 429, **encode_payload(b"{}")},
        {"ex": "UPBIT", "d": "in", "t": 6, **encode_payload(upbit.encode())},
        {"ex": "UPBIT", "d": "out", "t": 7, **encode_payload("PING")},
        {"ex": "GOPAX", "d": "in", "t": 8, **encode_payload(fixture_text("gopax/ws_orderbook_delta_docs.json"))},
    ]
    frames, symbols = frames_from_recording(lines)
    assert frames["coinone"] == {"XRP": [coinone]}
    assert list(frames["korbit"]) == ["btc_krw"] and frames["korbit"]["btc_krw"] == [korbit]
    assert [b["market"] for books in frames["bithumb"].values() for b in books] == ["KRW-BTC"]
    assert frames["upbit"] == {"KRW-BTC": [upbit]}
    assert "gopax" not in frames and symbols == {"coinone": ["XRP"], "korbit": ["BTC"],
                                                  "bithumb": ["BTC"], "upbit": ["BTC"]}
