"""The controller supervisor: a controller whose run (or one of its threads) dies of an
unexpected exception is logged with its traceback, recorded as ``failed``, restarted (a
``restarted`` event) and collects again; too many failures within the window leave it failed
for good, which the process's exit status says."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from controllers import BithumbController, UpbitController
from tests.helpers import expected_books, stored_books
from tests.sim_servers import Servers
from tests.test_faults import ROOT, Run, servers

pytestmark = pytest.mark.usefixtures("quick_retries")


def fail_once(monkeypatch, cls, name: str, on_call: int) -> list[int]:
    """Make ``cls.name`` raise a ``RuntimeError`` (a bug) on its ``on_call``-th call only."""
    original = getattr(cls, name)
    calls = [0]

    def failing(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == on_call:
            raise RuntimeError("injected bug")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, failing)
    return calls


def assert_restarted_and_flowing(run: Run, exchange: str, caplog, complete: bool = True) -> None:
    """Every book the server sent is stored (``complete=False``: those in flight on the
    connection the restart closed may be missing; the rest is stored in order), the failure and
    the restart are events of each market, books were stored after the restart, and the
    traceback is in the log."""
    summary = run.summary[exchange]
    stored, sent = stored_books(run.db, exchange), expected_books(run.servers, exchange)
    if complete:
        assert stored == sent
    else:
        for symbol, books in sent.items():
            it = iter(books)
            assert all(book in it for book in stored[symbol]), f"{symbol}: not in the order sent"
            assert len(stored[symbol]) > len(books) // 2
    assert summary.failures == 1 and summary.state == "stopped" and summary.lost == 0
    for symbol in ("BTC", "ETH"):
        events = [e for e in run.events(exchange) if e[0] == symbol]
        failed = [e for e in events if e[1] == "failed"]
        restarted = [e for e in events if e[1] == "restarted"]
        assert len(failed) == len(restarted) == 1, events
        assert "RuntimeError: injected bug; restarting in" in failed[0][2]
        assert events.index(failed[0]) < events.index(restarted[0])
    restart_sid = restarted[0][3]
    conn = sqlite3.connect(run.db)
    later = conn.execute("SELECT COUNT(*) FROM book b JOIN market m USING (market_id) "
                         "WHERE m.exchange = ? AND b.snapshot_id >= ?", (exchange, restart_sid)).fetchone()[0]
    conn.close()
    assert later > 0, "no book stored after the restart"
    assert "Traceback" in caplog.text and "injected bug" in caplog.text
    assert run.collector.exit_status(list(run.summary.values()))[0] == 0


def test_a_polling_controller_whose_run_raises_is_restarted(tmp_path, monkeypatch, caplog):
    """Bithumb's poll loop runs in the controller thread: the exception ends ``run``."""
    calls = fail_once(monkeypatch, BithumbController, "poll_once", on_call=4)
    with servers() as s:
        run = Run(tmp_path, s, exchanges=("bithumb",)).start()
        summary = run.finish()
    assert calls[0] > 4 and summary["BITHUMB"].stored_books > 0
    assert_restarted_and_flowing(run, "BITHUMB", caplog)


@pytest.mark.slow
def test_a_websocket_controller_whose_connection_thread_dies_is_restarted(tmp_path, monkeypatch,
                                                                         caplog):
    """Upbit's connection thread (not the controller's own) dies: the controller is restarted
    all the same, instead of sitting ``running`` with no connection."""
    fail_once(monkeypatch, UpbitController, "connect_url", on_call=1)
    with servers() as s:
        run = Run(tmp_path, s, exchanges=("upbit",)).start()
        run.finish()
    assert_restarted_and_flowing(run, "UPBIT", caplog)


ALWAYS_FAILS = """
import sys
from controllers import UpbitController
def broken(self):
    raise RuntimeError("injected bug")
UpbitController.connect_url = broken
UpbitController.backoff_initial = UpbitController.backoff_cap = 0.05
from collector.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_controller_failing_again_and_again_is_failed_for_good_exit_3(tmp_path):
    """The real command line, in its own process, with a controller that fails at every start:
    after --restart-limit failures it stays failed; exit status 3, the reason logged, the
    ``failed`` events stored (the last one says it is not restarted)."""
    db = tmp_path / "ob.db"
    env = {k: v for k, v in os.environ.items() if k not in ("DB_PATH", "LOG_PATH")}
    env["UPBIT_WS_URL"] = "ws://127.0.0.1:9"
    done = subprocess.run(
        [sys.executable, "-c", ALWAYS_FAILS, "--exchanges", "upbit", "--symbols", "BTC",
         "--db", str(db), "--log-dir", str(tmp_path / "logs"), "--duration", "3",
         "--restart-limit", "3", "--restart-window", "60"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "exit status 3: controller(s) failed for good: UPBIT" in done.stderr
    assert "failures=3 state=failed" in done.stderr
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT kind, detail FROM feed_event WHERE symbol = 'BTC' ORDER BY event_id"
                        ).fetchall()
    conn.close()
    assert [k for k, _ in rows] == ["failed", "restarted", "failed", "restarted", "failed"], rows
    assert rows[-1][1].endswith("3 failures within 60 s: not restarted")
    assert "Traceback" in done.stderr and "controller failed for good" in done.stderr


@pytest.mark.slow
def test_a_restart_closes_the_open_connection_with_an_honest_reason(tmp_path, monkeypatch, caplog):
    """The housekeeping thread dies while the connection is delivering: the connection is
    closed (``disconnected``: restarting, not stopping), the controller restarted, a new
    connection opened, and every book the server sent is stored."""
    original = UpbitController._watch

    def watch(self, now):
        if self.stats.books > 20 and not self.failures:
            raise RuntimeError("injected bug")
        return original(self, now)

    monkeypatch.setattr(UpbitController, "_watch", watch)
    with Servers({"upbit": ["BTC", "ETH"]}, 400, interval=0.004) as s:
        run = Run(tmp_path, s, exchanges=("upbit",)).start()
        run.finish()
    assert_restarted_and_flowing(run, "UPBIT", caplog, complete=False)
    for symbol in ("BTC", "ETH"):
        events = [(k, d) for sym, k, d, _ in run.events("UPBIT") if sym == symbol]
        assert [k for k, _ in events] == ["connected", "disconnected", "failed", "restarted",
                                          "connected", "disconnected"], events
        assert events[1][1] == "controller restarting after a failure"
        assert events[-1][1] == "collector stopping"
