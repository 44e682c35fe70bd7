"""``python -m collector.simulator``: what a newcomer with no network runs to see the collector
work — the five exchanges on loopback, the collector run against them, books stored."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_collects_from_all_five_simulated_exchanges(tmp_path):
    db = tmp_path / "sim.db"
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--demo", "5", "--books", "300",
                           "--interval", "0.005", "--db", str(db),
                           "--log-dir", str(tmp_path / "logs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for variable in ("UPBIT_WS_URL=ws://127.0.0.1:", "BITHUMB_REST_URL=http://127.0.0.1:",
                     "COINONE_WS_URL=", "KORBIT_WS_URL=", "GOPAX_WS_URL="):
        assert variable in done.stdout
    assert "then: python run_controller.py --exchanges upbit,bithumb,coinone,korbit,gopax" in done.stdout
    conn = sqlite3.connect(db)
    books = dict(conn.execute("SELECT exchange, COUNT(DISTINCT snapshot_id) FROM orderbook GROUP BY exchange"))
    status = dict(conn.execute("SELECT exchange, stored_books FROM feed_status"))
    conn.close()
    assert set(books) == {"UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX"} and min(books.values()) > 10
    assert status == books
    assert "simulator stopped; sent: upbit" in done.stdout and "the collector exited with 0" in done.stdout


def test_bad_arguments_are_one_line_errors():
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--exchanges", "nasdaq"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown exchange(s) nasdaq" in done.stderr
