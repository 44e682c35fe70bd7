"""Resources are bounded by design, not by the number of markets: the real collector, run as a
process under ``ulimit -n 256`` with ``--symbols ALL`` against the five Korean exchanges' loopback
servers listing 300 markets each (1,500 in all), stores books of every exchange and exits 0, with
a number of open files and threads that does not grow with the markets."""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.simulator.live import LiveVenues
from collector.simulator.world import World

ROOT = Path(__file__).resolve().parent.parent
KOREAN = ("upbit", "bithumb", "coinone", "korbit", "gopax")
MARKETS = 300
NOFILE = 256


def limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.mark.slow
def test_symbols_all_on_1500_markets_runs_under_ulimit_n_256(tmp_path):
    symbols = [f"C{i:03d}" for i in range(MARKETS)]
    with LiveVenues(symbols, world=World(seed=3), exchanges=list(KOREAN), interval=2.0) as venues:
        env = {**os.environ, **venues.env()}
        for name in ("DB_PATH", "LOG_PATH", "GOPAX_API_KEY", "GOPAX_SECRET_KEY"):
            env.pop(name, None)
        proc = subprocess.Popen(
            [sys.executable, "run_controller.py", "--exchanges", ",".join(KOREAN),
             "--symbols", "ALL", "--duration", "12", "--db", str(tmp_path / "ob.db"),
             "--log-dir", str(tmp_path / "logs"),
             # the subject is open files and threads, not throughput: the first books of 1,500
             # markets come at once, and on a loaded 2-core machine they can outrun the
             # default 10,000-book queue (a drop would make the exit status 5)
             "--queue-size", "100000"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=limit_open_files)
        most_files = most_threads = 0
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                most_files = max(most_files, len(os.listdir(f"/proc/{proc.pid}/fd")))
                most_threads = max(most_threads, len(os.listdir(f"/proc/{proc.pid}/task")))
            except OSError:  # it has just ended
                pass
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
    print(f"{len(KOREAN) * MARKETS} markets under ulimit -n {NOFILE}: at most {most_files} open "
          f"files and {most_threads} threads")
    assert proc.returncode == 0, stderr[-3000:]
    assert "Too many open files" not in stderr and "Traceback" not in stderr
    conn = sqlite3.connect(tmp_path / "ob.db")
    try:
        stored = dict(conn.execute("SELECT m.exchange, COUNT(DISTINCT m.symbol) FROM book b "
                                   "JOIN market m USING (market_id) GROUP BY m.exchange"))
    finally:
        conn.close()
    assert set(stored) == {name.upper() for name in KOREAN} and min(stored.values()) > 0, stored
    # Per-exchange logs, one connection per Upbit/Korbit/Coinone, 6 for GOPAX (50 books each),
    # the database: a few dozen, whatever the number of markets.
    assert 0 < most_files < 64 and 0 < most_threads < 64, (most_files, most_threads)
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert logs == sorted(["collector.log", *(f"{name.upper()}.log" for name in KOREAN)])
    for name in KOREAN:  # every market listed was collected
        assert (f"controller started for {MARKETS} market(s)"
                in (tmp_path / "logs" / f"{name.upper()}.log").read_text()), name
