"""An honest, bounded stop and an honest exit status, through the real command line in its own
process against the loopback exchanges: SIGTERM while the database is locked by another
process or the disk is full (every book received is stored or counted lost, the stop is bounded,
exit status 5), a run that stores nothing (exit 4), and the ``restarted`` gap marker after a
``kill -9``."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import expected_books, stored_books
from tests.sim_servers import Servers
from tests.test_faults import ROOT

NAMES = ("upbit", "bithumb", "coinone")
SYMBOLS = {name: ["BTC", "ETH"] for name in NAMES}
SUMMARY = re.compile(r"summary (\w+): (.*)")


def summaries(stderr: str) -> dict[str, dict[str, str]]:
    """exchange -> the ``key=value`` figures of its summary line."""
    return {m.group(1): dict(pair.split("=", 1) for pair in m.group(2).split())
            for m in SUMMARY.finditer(stderr)}


def collector(tmp_path: Path, db: Path, env: dict, *args: str) -> subprocess.Popen:
    env = dict(os.environ, **env)
    for name in ("DB_PATH", "LOG_PATH", "GOPAX_API_KEY", "GOPAX_SECRET_KEY"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "run_controller.py", "--db", str(db), "--log-dir", str(tmp_path / "logs"),
         "--poll-interval", "0.02", "--signal-interval", "0", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_books(db: Path, at_least: int = 20, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=0.1) as conn:
                n = conn.execute("SELECT COUNT(*) FROM book").fetchone()[0]
            if n >= at_least:
                return n
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("no books stored")


def stop_and_account(proc: subprocess.Popen, s: Servers, db: Path, release) -> str:
    """SIGTERM ``proc`` while the database refuses writes, ``release`` the database once it has
    exited; assert the stop was bounded, exit status 5, and every book accounted for: stored +
    lost == received per exchange, the stored ones a prefix of what the server sent."""
    time.sleep(1.0)  # books pile up in the writer's queue meanwhile
    assert not s.finished(NAMES), "streams too short"
    stop_asked = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    took = time.monotonic() - stop_asked
    release()
    assert proc.returncode == 5, stderr
    assert took <= 5 + 3, f"the stop took {took:.1f} s"  # --stop-timeout 5, and the exit
    assert "exit status 5: records not stored" in stderr and "NOT stored" in stderr
    figures = summaries(stderr)
    lost_total = 0
    for name in NAMES:
        exchange = name.upper()
        f = {k: int(v) for k, v in figures[exchange].items() if v.isdigit()}
        stored = stored_books(db, exchange)
        assert sum(map(len, stored.values())) == f["stored"], exchange
        assert f["stored"] + f["lost"] == f["books"] > 0 and f["dropped"] == 0, (exchange, f)
        lost_total += f["lost"]
        sent = expected_books(s, exchange)
        for symbol, books in stored.items():
            assert books == sent[symbol][:len(books)], f"{exchange} {symbol}: not a prefix"
    assert lost_total > 0
    return stderr


@pytest.mark.slow
def test_sigterm_while_the_database_stays_locked_accounts_for_every_book(tmp_path):
    db = tmp_path / "ob.db"
    with Servers(SYMBOLS, 3000, interval=0.003) as s:
        proc = collector(tmp_path, db, s.env(), "--exchanges", ",".join(NAMES), "--symbols",
                         "BTC,ETH", "--stop-timeout", "5")
        wait_for_books(db)
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the file
        stderr = stop_and_account(proc, s, db, locker.close)
    assert "database is locked" in stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs mounted at ``tmp_path/disk`` (skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the disk is full; returns it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:  # unbuffered: nothing left to flush at close
        try:
            while out.write(b"\0" * 65536):
                pass
        except OSError:  # ENOSPC
            pass
    return filler


@pytest.mark.slow
def test_sigterm_while_the_disk_stays_full_accounts_for_every_book(tmp_path, small_disk):
    db = small_disk / "ob.db"
    with Servers(SYMBOLS, 3000, interval=0.003) as s:
        proc = collector(tmp_path, db, s.env(), "--exchanges", ",".join(NAMES), "--symbols",
                         "BTC,ETH", "--stop-timeout", "5")
        wait_for_books(db)
        filler = fill(small_disk)
        stderr = stop_and_account(proc, s, db, filler.unlink)
    assert "database or disk is full" in stderr


@pytest.mark.slow
def test_a_run_that_stores_nothing_exits_4(tmp_path):
    """No exchange reachable (nothing listens on the port): exit status 4, and why."""
    proc = collector(tmp_path, tmp_path / "ob.db", {"UPBIT_WS_URL": "ws://127.0.0.1:9"},
                     "--exchanges", "upbit", "--duration", "2")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 4, stderr
    assert "exit status 4: nothing was stored" in stderr


def restarted_events(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT exchange, symbol, currency, detail, next_snapshot_id "
                            "FROM feed_event WHERE kind = 'restarted' ORDER BY event_id").fetchall()
    finally:
        conn.close()


@pytest.mark.slow
def test_a_killed_run_leaves_a_restarted_marker_a_clean_stop_none(tmp_path):
    db = tmp_path / "ob.db"
    with Servers({"upbit": ["BTC", "ETH"]}, 3000, interval=0.005) as s:
        args = ("--exchanges", "upbit", "--symbols", "BTC,ETH")
        killed = collector(tmp_path, db, s.env(), *args)
        wait_for_books(db)
        killed.kill()  # kill -9: no clean stop
        killed.communicate(timeout=10)
        with sqlite3.connect(db) as conn:
            last_before = conn.execute("SELECT MAX(snapshot_id) FROM book").fetchone()[0]
        assert restarted_events(db) == []
        second = collector(tmp_path, db, s.env(), *args, "--duration", "1.5")
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 0, stderr
        events = restarted_events(db)
        assert [(e[0], e[1], e[2]) for e in events] == [("UPBIT", "BTC", "KRW"), ("UPBIT", "ETH", "KRW")]
        assert all("ended without a clean stop" in e[3] and e[4] == last_before + 1 for e in events)
        assert "did not stop cleanly" in stderr
        third = collector(tmp_path, db, s.env(), *args, "--duration", "1")
        _, stderr = third.communicate(timeout=60)
        assert third.returncode == 0, stderr
    assert restarted_events(db) == events  # the clean stop left no marker
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT clean FROM run ORDER BY run_id").fetchall() == [(0,), (1,), (1,)]
