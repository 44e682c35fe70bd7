"""``python run_controller.py`` and ``python -m exporter`` as a user runs them, against loopback
Upbit (WebSocket) and Bithumb (REST) servers replaying real messages."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import expected_bithumb, expected_upbit, stored_books
from collector.simulator.bithumb import BithumbServer
from tests.sim_oracles import (bithumb_generated_books, bithumb_real_books, fixture_json,
                               fixture_text, upbit_generated_books)
from collector.simulator.upbit import UpbitServer

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"summary (\w+): messages=(\d+) books=(\d+) stored=(\d+) rows=(\d+) "
                     r"duplicates=(\d+) errors=(\d+) dropped=(\d+) lost=(\d+)")


def upbit_frames(count: int) -> dict[str, list[str]]:
    """KRW-BTC: the two real wire frames, the docs book, then books generated from it;
    KRW-ETH: books generated from a real Bithumb KRW-ETH book (Upbit published none)."""
    docs = fixture_json("upbit/ws_orderbook_default_docs.json")
    eth = dict(docs, orderbook_units=bithumb_real_books()["KRW-ETH"]["orderbook_units"])
    return {
        "KRW-BTC": [fixture_text("upbit/ws_orderbook_default_wire_2026-09_snapshot_trimmed.json"),
                    fixture_text("upbit/ws_orderbook_default_wire_2026-09_realtime_trimmed.json"),
                    fixture_text("upbit/ws_orderbook_default_docs.json")]
                   + upbit_generated_books("KRW-BTC", docs, count, seed=1),
        "KRW-ETH": upbit_generated_books("KRW-ETH", eth, count, seed=2),
    }


def bithumb_books(count: int) -> dict[str, list[dict]]:
    real = bithumb_real_books()
    return {m: [real[m]] + bithumb_generated_books(m, real[m], count, seed=3) for m in real}


def start_collector(tmp_path: Path, upbit: UpbitServer, bithumb: BithumbServer, *extra: str):
    env = dict(os.environ, UPBIT_WS_URL=upbit.url, BITHUMB_REST_URL=bithumb.url)
    for name in ("DB_PATH", "LOG_PATH"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "run_controller.py", "--exchanges", "upbit,bithumb", "--symbols", "BTC,ETH",
         "--db", str(tmp_path / "ob.db"), "--log-dir", str(tmp_path / "logs"), *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summaries(stderr: str) -> dict[str, dict[str, int]]:
    keys = ("messages", "books", "stored", "rows", "duplicates", "errors", "dropped", "lost")
    return {m.group(1): dict(zip(keys, map(int, m.groups()[1:]))) for m in SUMMARY.finditer(stderr)}


def assert_stored_exactly(db: Path, upbit: UpbitServer, bithumb: BithumbServer) -> None:
    up = stored_books(db, "UPBIT")
    for code, symbol in (("KRW-BTC", "BTC"), ("KRW-ETH", "ETH")):
        assert up[symbol] == expected_upbit(upbit.sent[code]), f"UPBIT {symbol}"
    bt = stored_books(db, "BITHUMB")
    for market, symbol in (("KRW-BTC", "BTC"), ("KRW-ETH", "ETH")):
        assert bt[symbol] == expected_bithumb(bithumb.served, market), f"BITHUMB {symbol}"


@pytest.mark.slow
def test_collect_for_a_duration_then_export(tmp_path):
    with UpbitServer(upbit_frames(60), interval=0.005) as upbit, BithumbServer(bithumb_books(15)) as bithumb:
        proc = start_collector(tmp_path, upbit, bithumb, "--duration", "3", "--stats-interval", "1")
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    db = tmp_path / "ob.db"
    assert upbit.finished.is_set()
    assert_stored_exactly(db, upbit, bithumb)

    figures = summaries(stderr)
    up, bt = figures["UPBIT"], figures["BITHUMB"]
    assert up["messages"] == 123 and up["stored"] == up["books"] == len(upbit.sent["KRW-BTC"]) + 60 - up["duplicates"]
    assert bt["stored"] == bt["books"] == 32  # 16 distinct books per market, then repeats
    assert bt["duplicates"] == 2 * bt["messages"] - 32 > 0
    assert up["errors"] == bt["errors"] == up["dropped"] == bt["dropped"] == up["lost"] == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM orderbook").fetchone()[0] == up["rows"] + bt["rows"]
    events = conn.execute("SELECT exchange, symbol, kind, detail FROM feed_event "
                          "ORDER BY event_id").fetchall()
    for exchange in ("UPBIT", "BITHUMB"):
        for symbol in ("BTC", "ETH"):
            mine = [(kind, detail) for ex, sym, kind, detail in events if (ex, sym) == (exchange, symbol)]
            assert [kind for kind, _ in mine] == ["connected", "disconnected"], (exchange, symbol, mine)
            assert mine[1][1] == "collector stopping"
    status = {row[0]: row[1:] for row in conn.execute(
        "SELECT exchange, state, messages, stored_books, stored_rows, lost, connected_since, "
        "last_data_at FROM feed_status")}
    assert status["UPBIT"][:5] == ("stopped", up["messages"], up["stored"], up["rows"], 0)
    assert status["BITHUMB"][:5] == ("stopped", bt["messages"], bt["stored"], bt["rows"], 0)
    assert status["UPBIT"][6] > 1.7e12  # ms since the epoch

    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["BITHUMB.log", "UPBIT.log", "collector.log"]
    upbit_log = (logs / "UPBIT.log").read_text()
    assert re.search(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[INFO\] \[UPBIT\] connected to ws://",
                     upbit_log, re.M)
    assert re.search(r"\[UPBIT\] stats: state=connected up=\d+s messages=\d+ .* rate=[\d.]+ msg/s "
                     r"last_message_age=[\d.]+s last_data_age=[\d.]+s", upbit_log)
    assert "[BITHUMB] poll thread started: GET http://127.0.0.1" in (logs / "BITHUMB.log").read_text()
    assert "BITHUMB" not in upbit_log and "UPBIT" not in (logs / "BITHUMB.log").read_text()
    assert "[MAIN] summary UPBIT" in (logs / "collector.log").read_text()

    out = tmp_path / "export"
    done = subprocess.run([sys.executable, "-m", "exporter", "--db", str(db), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["BITHUMB.json", "UPBIT.json"]
    for exchange in ("UPBIT", "BITHUMB"):
        exported = json.loads((out / f"{exchange}.json").read_text())
        assert [b["timestamp"] for b in exported] == sorted(b["timestamp"] for b in exported)
        from_db = stored_books(db, exchange)
        for symbol, books in from_db.items():
            mine = [(b["timestamp"], tuple(map(tuple, b["bids"])), tuple(map(tuple, b["asks"])))
                    for b in exported if b["symbol"] == symbol]
            assert sorted(mine) == sorted(books)
        assert f"{exchange}: {len(exported)} books" in done.stdout


def test_sigterm_while_books_flow_loses_nothing(tmp_path):
    with UpbitServer(upbit_frames(3000), interval=0.0005) as upbit, \
            BithumbServer(bithumb_books(3000)) as bithumb:
        proc = start_collector(tmp_path, upbit, bithumb, "--poll-interval", "0.01")
        db = tmp_path / "ob.db"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until books are flowing
            time.sleep(0.2)
            if len(upbit.sent["KRW-BTC"]) > 200 and len(bithumb.served) > 20:
                break
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert not upbit.finished.is_set(), "the server ran out of books before the signal"
    assert proc.returncode == 0, stderr
    assert "stopping: SIGTERM received" in stderr
    figures = summaries(stderr)
    for exchange in ("UPBIT", "BITHUMB"):
        f = figures[exchange]
        assert f["stored"] == f["books"] > 0 and f["dropped"] == f["lost"] == 0, exchange
    # every book the collector received is stored, in order: a prefix of what was sent
    up = stored_books(db, "UPBIT")
    for code, symbol in (("KRW-BTC", "BTC"), ("KRW-ETH", "ETH")):
        assert up[symbol] == expected_upbit(upbit.sent[code])[: len(up[symbol])]
    assert sum(map(len, up.values())) == figures["UPBIT"]["stored"]
    bt = stored_books(db, "BITHUMB")
    for market, symbol in (("KRW-BTC", "BTC"), ("KRW-ETH", "ETH")):
        assert bt[symbol] == expected_bithumb(bithumb.served, market)[: len(bt[symbol])]
    assert sum(map(len, bt.values())) == figures["BITHUMB"]["stored"]


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "run_controller.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, message", [
    (["--exchanges", "upbit,binanceX"], "unknown exchange 'binancex'; supported: upbit, bithumb"),
    (["--symbols", "BTC;DROP"], "bad currency name 'BTC;DROP'"),
    (["--depth", "0"], "must be positive"),
    (["--duration", "soon"], "not a number"),
    (["--symbols", "ALL,BTC"], "--symbols ALL cannot be combined with other symbols"),
    (["--top", "0"], "must be positive"),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, args, message):
    done = run_cli(*args, "--db", str(tmp_path / "ob.db"), "--log-dir", str(tmp_path / "logs"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ob.db").exists()


def test_unwritable_database_path_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("x")
    done = run_cli("--db", str(tmp_path / "a-file" / "ob.db"), "--log-dir", str(tmp_path / "logs"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot create folder" in done.stderr


def test_db_and_log_paths_come_from_the_environment(tmp_path):
    with UpbitServer(upbit_frames(3)) as upbit, BithumbServer(bithumb_books(3)) as bithumb:
        done = run_cli("--exchanges", "bithumb,upbit", "--duration", "1", "--log-per-market", env_extra={
            "DB_PATH": str(tmp_path / "env.db"), "LOG_PATH": str(tmp_path / "envlogs"),
            "UPBIT_WS_URL": upbit.url, "BITHUMB_REST_URL": bithumb.url})
    assert done.returncode == 0, done.stderr
    assert stored_books(tmp_path / "env.db", "BITHUMB")["BTC"]
    logs = tmp_path / "envlogs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "BITHUMB-BTC-KRW.log", "BITHUMB.log", "UPBIT-BTC-KRW.log", "UPBIT.log",
        "collector.log"]  # --log-per-market
    upbit_btc = (logs / "UPBIT-BTC-KRW.log").read_text()
    assert re.search(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[INFO\] \[UPBIT-BTC-KRW\] connected to ws://",
                     upbit_btc, re.M)
    assert "BITHUMB" not in upbit_btc
    assert "[BITHUMB-BTC-KRW] poll thread started: GET http://127.0.0.1" in (logs / "BITHUMB-BTC-KRW.log").read_text()


def test_help_lists_every_option():
    done = run_cli("--help")
    assert done.returncode == 0
    for option in ("--exchanges", "--symbols", "--top", "--currency", "--depth", "--poll-interval",
                   "--duration", "--db", "--log-dir", "UPBIT_WS_URL", "ALL"):
        assert option in done.stdout


def test_stop_requested_before_run_ends_at_once_with_its_reason(tmp_path, caplog):
    from collector.app import Collector, CollectorConfig

    collector = Collector(CollectorConfig(exchanges=["upbit"], db_path=tmp_path / "ob.db"),
                          env={"UPBIT_WS_URL": "ws://127.0.0.1:9/websocket/v1"})
    collector.request_stop("SIGTERM received")
    caplog.set_level("INFO", "collector")
    started = time.monotonic()
    [summary] = collector.run()
    assert time.monotonic() - started < 5
    assert "stopping: SIGTERM received" in caplog.text
    assert summary.exchange == "UPBIT" and summary.state == "stopped" and summary.stored_books == 0
