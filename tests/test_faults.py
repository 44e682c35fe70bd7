"""The fault-injection suite: one test per fault, against the five Korean exchanges' loopback
servers running at once in one collector (in-process; SIGTERM through ``run_controller.py``).

Every test asserts that
* every book the servers sent, before and after the fault, is stored exactly once, in order
  (the stored books equal an independent oracle of what was sent);
* the exchanges that were not faulted saw no error, reconnect or drop;
* recovery happened within a stated bound, measured on the server's side.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collector.app import Collector, CollectorConfig
from controllers import BithumbController, UpbitController
from tests.helpers import expected_books, stored_books
from tests.sim_oracles import fixture_json
from collector.simulator.http import Reply
from tests.sim_servers import Servers

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("upbit", "bithumb", "coinone", "korbit", "gopax")
EXCHANGES = tuple(n.upper() for n in NAMES)
BOTH = {name: ["BTC", "ETH"] for name in NAMES}
BOOKS = 120  # per market; each stream runs for about a second
INTERVAL = 0.004
BITHUMB_BOOKS = 12


pytestmark = pytest.mark.usefixtures("quick_retries")


def servers(**kwargs) -> Servers:
    servers = Servers(BOTH, BOOKS, interval=INTERVAL, **kwargs)
    for market, books in servers.bithumb.books.items():  # polls are slower than streams
        del books[BITHUMB_BOOKS:]
    return servers


class Run:
    """One collector run in a thread, stopped once the servers have sent everything."""

    def __init__(self, tmp_path: Path, servers: Servers, exchanges=NAMES,
                 symbols=("BTC", "ETH"), **config) -> None:
        self.servers = servers
        self.exchanges = exchanges
        self.db = tmp_path / "ob.db"
        self.collector = Collector(CollectorConfig(
            exchanges=list(exchanges), symbols=list(symbols), db_path=self.db, stats_interval=1.0,
            status_interval=0.5, poll_interval=0.05, **config), servers.env())
        self.summary: dict = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.summary = {s.exchange: s for s in self.collector.run()}

    def start(self) -> "Run":
        self._thread.start()
        return self

    def controller(self, exchange: str):
        return next(c for c in self.collector.controllers if c.exchange == exchange)

    def finish(self, timeout: float = 30.0) -> dict:
        """Wait until every server has sent everything (plus a moment for the last frames),
        stop, and return the summary per exchange."""
        deadline = time.monotonic() + timeout
        while not self.servers.finished(self.exchanges) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.servers.finished(self.exchanges), "the servers did not send everything in time"
        time.sleep(0.5)
        self.collector.request_stop("test done")
        self._thread.join(30)
        assert not self._thread.is_alive()
        return self.summary

    def events(self, exchange: str, kind: str | None = None) -> list[tuple]:
        conn = sqlite3.connect(self.db)
        try:
            rows = conn.execute("SELECT symbol, kind, detail, next_snapshot_id FROM feed_event "
                                "WHERE exchange = ? ORDER BY event_id", (exchange,)).fetchall()
        finally:
            conn.close()
        return [r for r in rows if kind is None or r[1] == kind]


def assert_everything_stored(run: Run, faulted: str | None, exchanges=EXCHANGES) -> None:
    """Every exchange stored exactly what its server sent; only ``faulted`` saw trouble."""
    for exchange in exchanges:
        assert stored_books(run.db, exchange) == expected_books(run.servers, exchange), exchange
        s = run.summary[exchange]
        assert s.stored_books == s.books > 0 and s.dropped == s.lost == 0, exchange
        if exchange != faulted:
            assert (s.errors, s.reconnects, s.stalls) == (0, 0, 0), f"{exchange} was affected"
            assert [k for _, k, _, _ in run.events(exchange)] == (
                ["connected"] * 2 + ["disconnected"] * 2), exchange


def logged(caplog, tag: str, text: str) -> bool:
    """Whether a log line tagged ``tag`` (``"UPBIT-BTC-KRW"``, ``"UPBIT"``) contains ``text``."""
    return any(getattr(r, "tag", None) == tag and text in r.getMessage() for r in caplog.records)


def recovery(server) -> float:
    """Seconds from the server's fault to its first book frame on a new connection."""
    [(_, fault_at)] = server.fault_log
    assert server.resumed_at is not None, "the stream never resumed"
    return server.resumed_at - fault_at


def assert_gap_marked(run: Run, exchange: str, cause: str, stale: bool = False) -> None:
    """Each market has (stale,) disconnected (with ``cause``) then connected events between its
    books, and books stored on both sides of them."""
    gap = ["stale", "disconnected"] if stale else ["disconnected"]
    for symbol in ("BTC", "ETH"):
        kinds = [(k, d) for s, k, d, _ in run.events(exchange) if s == symbol]
        assert [k for k, _ in kinds] == ["connected", *gap, "connected", "disconnected"], kinds
        assert cause in kinds[len(gap)][1] and kinds[-1][1] == "collector stopping", kinds
        reconnect_sid = [sid for s, k, _, sid in run.events(exchange, "connected") if s == symbol][1]
        conn = sqlite3.connect(run.db)
        before, after = conn.execute(
            "SELECT SUM(snapshot_id < ?), SUM(snapshot_id >= ?) FROM (SELECT DISTINCT snapshot_id "
            "FROM orderbook WHERE exchange = ? AND symbol = ?)",
            (reconnect_sid, reconnect_sid, exchange, symbol)).fetchone()
        conn.close()
        assert before > 0 and after > 0, (symbol, before, after)


# --- the connection ------------------------------------------------------------------------------

@pytest.mark.slow
def test_connection_dropped_mid_stream(tmp_path):
    with servers(faults={"upbit": {100: "drop"}}) as s:
        run = Run(tmp_path, s).start()
        summary = run.finish()
    assert_everything_stored(run, "UPBIT")
    assert summary["UPBIT"].reconnects == 1 and summary["UPBIT"].errors <= 1
    assert_gap_marked(run, "UPBIT", "Connection to remote host was lost")
    assert recovery(s.upbit) < 1.5  # backoff ≤ 0.3 s, connect pacing 0.2 s, resubscribe


@pytest.mark.slow
def test_server_stalls_silently_and_the_watchdog_reconnects(tmp_path, monkeypatch):
    monkeypatch.setattr(UpbitController, "idle_timeout", 1.0)
    monkeypatch.setattr(UpbitController, "keepalive_interval", 0.3)  # heartbeats go on meanwhile
    with servers(faults={"upbit": {100: "stall"}}) as s:
        run = Run(tmp_path, s).start()
        summary = run.finish()
    assert_everything_stored(run, "UPBIT")
    assert summary["UPBIT"].stalls == 1 and summary["UPBIT"].reconnects == 1
    assert s.upbit.pings >= 2  # the server answered PINGs while stalled: heartbeats are not data
    stale = run.events("UPBIT", "stale")
    assert [sym for sym, *_ in stale] == ["BTC", "ETH"] and "no data for" in stale[0][2]
    assert_gap_marked(run, "UPBIT", "closed by the watchdog", stale=True)
    assert 1.0 <= recovery(s.upbit) < 1.0 + 0.5 + 1.5  # idle timeout + watchdog tick + reconnect


# --- bad frames ------------------------------------------------------------------------------------

def _upbit_frame(**changes) -> bytes:
    frame = fixture_json("upbit/ws_orderbook_default_docs.json")
    frame.update(changes)
    return json.dumps({k: v for k, v in frame.items() if v is not None}).encode()


@pytest.mark.slow
@pytest.mark.parametrize("name, payload, tag, text", [
    ("malformed JSON", b'{"type": "orderbook", "code": "KRW-BTC", "orderbook_units": [',
     "UPBIT", "parse error: DecodeError"),
    ("a valid frame missing fields", _upbit_frame(orderbook_units=None),
     "UPBIT-BTC-KRW", "parse error: MalformedMessage"),
    ("an unknown message type", _upbit_frame(type="candle.1s"),
     "UPBIT", "unexpected message type 'candle.1s'"),
])
def test_bad_frame_is_logged_counted_and_skipped(tmp_path, caplog, name, payload, tag, text):
    caplog.set_level("WARNING", "collector")
    with servers(faults={"upbit": {100: payload}}) as s:
        run = Run(tmp_path, s).start()
        summary = run.finish()
    assert_everything_stored(run, "UPBIT")
    assert (summary["UPBIT"].errors, summary["UPBIT"].reconnects) == (1, 0), name
    assert logged(caplog, tag, text), caplog.text


@pytest.mark.slow
def test_exchange_error_for_one_market(tmp_path, caplog, monkeypatch):
    """NOPE is listed by none of the servers: Coinone answers 160012, Korbit a fail frame, GOPAX
    error 10058, Upbit nothing at all; each is a subscribe_failed event of that market only."""
    monkeypatch.setattr(UpbitController, "subscribe_timeout", 0.5)
    caplog.set_level("WARNING", "collector")
    ws = ("upbit", "coinone", "korbit", "gopax")
    with servers() as s:
        run = Run(tmp_path, s, exchanges=ws, symbols=("BTC", "ETH", "NOPE")).start()
        summary = run.finish()
    for exchange in (n.upper() for n in ws):
        assert stored_books(run.db, exchange) == expected_books(s, exchange), exchange
        failed = run.events(exchange, "subscribe_failed")
        assert [sym for sym, *_ in failed] == ["NOPE"], (exchange, failed)
        assert summary[exchange].errors == 1 and summary[exchange].reconnects == 0, exchange
        assert any(getattr(r, "tag", None) == f"{exchange}-NOPE-KRW" for r in caplog.records), exchange
    assert "no book within 0.5 s of subscribing" in run.events("UPBIT", "subscribe_failed")[0][2]


@pytest.mark.slow
def test_gopax_ping_is_answered_so_the_connection_stays(tmp_path):
    with servers(gopax={"ping_every": 0.15, "pong_timeout": 0.3}) as s:
        run = Run(tmp_path, s).start()
        summary = run.finish()
    assert_everything_stored(run, None)
    assert s.gopax.pings_sent >= 3 and len(s.gopax.pongs) == s.gopax.pings_sent
    assert s.gopax.unanswered_closes == 0 and summary["GOPAX"].reconnects == 0


@pytest.mark.slow
def test_gopax_reconnect_resyncs_its_books_from_a_new_snapshot(tmp_path):
    with servers(gopax={"disconnect_after": 100}) as s:
        run = Run(tmp_path, s).start()
        summary = run.finish()
    assert_everything_stored(run, "GOPAX")
    assert summary["GOPAX"].reconnects >= 1
    assert {sym for sym, *_ in run.events("GOPAX", "resync")} == {"BTC", "ETH"}


# --- REST (Bithumb) --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name, reply, least, most", [
    ("HTTP 429 with Retry-After", Reply(429, b'{"error":{"name":"too_many_requests"}}',
                                        {"Retry-After": "0.8"}), 0.8, 1.3),
    ("HTTP 500", Reply(500, b"upstream failure"), 0.0, 0.6),
    ("read timeout", Reply(200, b"[]", delay=1.5), 0.3, 1.0),
])
def test_bithumb_http_fault(tmp_path, monkeypatch, caplog, name, reply, least, most):
    monkeypatch.setattr(BithumbController, "read_timeout", 0.3)
    caplog.set_level("WARNING", "collector")
    with servers(script={5: reply}) as s:
        run = Run(tmp_path, s).start()
        summary = run.finish()
    assert_everything_stored(run, "BITHUMB")
    assert summary["BITHUMB"].errors == 1 and summary["BITHUMB"].reconnects == 1, name
    gap = s.bithumb.request_times[6] - s.bithumb.request_times[5]
    assert least <= gap <= most + (0.3 if name == "read timeout" else 0), (name, gap)
    assert_gap_marked(run, "BITHUMB", {"HTTP 429 with Retry-After": "HTTP 429: rate limited",
                                       "HTTP 500": "HTTP 500", "read timeout": "timeout"}[name])
    assert any(getattr(r, "tag", None) == "BITHUMB" and r.levelname == "WARNING"
               for r in caplog.records)


@pytest.mark.slow
def test_bithumb_connection_refused(tmp_path):
    with servers() as s:
        run = Run(tmp_path, s).start()
        deadline = time.monotonic() + 10
        while len(s.bithumb.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        s.bithumb.refuse_for(1.0)
        summary = run.finish()
    assert_everything_stored(run, "BITHUMB")
    assert summary["BITHUMB"].errors >= 1 and summary["BITHUMB"].reconnects >= 1
    assert_gap_marked(run, "BITHUMB", "connection error")
    refused_until = s.bithumb.refused[1]
    first_after = min(t for t in s.bithumb.request_times if t >= refused_until)
    assert first_after - refused_until < 0.5  # backoff ≤ 0.3 s


# --- storage ---------------------------------------------------------------------------------------

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # holds the write lock, as a sqlite3 shell user in a transaction
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""

LONG_READ = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
n = conn.execute("SELECT COUNT(*) FROM orderbook").fetchone()[0]  # a read snapshot, kept open
print("reading", n, flush=True)
time.sleep(float(sys.argv[2]))
assert conn.execute("SELECT COUNT(*) FROM orderbook").fetchone()[0] == n  # still the same snapshot
conn.execute("COMMIT")
"""


def _wait_for_rows(db: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT COUNT(*) FROM orderbook").fetchone()[0] > 1000:
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("no rows stored")


@pytest.mark.slow
def test_database_locked_by_another_process(tmp_path, caplog):
    caplog.set_level("WARNING", "collector.writer")
    with servers() as s:
        run = Run(tmp_path, s)
        run.collector.writer.busy_timeout_ms = 200  # fail fast, so the retry path runs
        run.start()
        _wait_for_rows(run.db)
        reader = subprocess.Popen([sys.executable, "-c", LONG_READ, str(run.db), "1.5"],
                                  stdout=subprocess.PIPE, text=True)
        locker = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run.db), "1.5"],
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout.readline().strip() == "locked"
        assert reader.stdout.readline().startswith("reading")
        batches = run.collector.writer.stats.batches
        assert locker.wait(10) == 0 and reader.wait(10) == 0
        released = time.monotonic()
        while run.collector.writer.stats.batches == batches and time.monotonic() - released < 10:
            time.sleep(0.01)
        recovered = time.monotonic() - released
        run.finish()
    assert_everything_stored(run, None)
    assert run.collector.writer.stats.write_errors >= 1
    assert "cannot write" in caplog.text and "database is locked" in caplog.text
    assert recovered < 4.5  # retries 0.5, 1, 2, 4 s apart: one comes within 4 s of the release


@pytest.mark.slow
def test_disk_full(tmp_path, caplog):
    caplog.set_level("WARNING", "collector.writer")
    with servers() as s:
        run = Run(tmp_path, s).start()
        _wait_for_rows(run.db)
        with sqlite3.connect(run.db) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        run.collector.writer.set_max_page_count(pages)  # no room for one more page
        time.sleep(1.0)
        assert run.collector.writer.stats.write_errors >= 1
        run.collector.writer.set_max_page_count(None)  # space freed
        run.finish()
    assert_everything_stored(run, None)
    assert "database or disk is full" in caplog.text


# --- the process -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_mid_stream_stores_every_book_received(tmp_path):
    with Servers(BOTH, 2000, interval=0.002) as s:
        env = dict(os.environ, **s.env())
        for name in ("DB_PATH", "LOG_PATH", "GOPAX_API_KEY", "GOPAX_SECRET_KEY"):
            env.pop(name, None)
        db = tmp_path / "ob.db"
        proc = subprocess.Popen(
            [sys.executable, "run_controller.py", "--exchanges", ",".join(NAMES), "--symbols", "BTC,ETH",
             "--db", str(db), "--log-dir", str(tmp_path / "logs"), "--poll-interval", "0.02"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3.0)
        assert not s.finished(("upbit", "coinone", "korbit", "gopax")), "streams too short"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    from tests.test_end_to_end import summaries
    figures = summaries(stderr)
    for exchange in EXCHANGES:
        f = figures[exchange]
        assert f["stored"] == f["books"] > 0 and f["lost"] == f["dropped"] == 0, exchange
        stored, sent = stored_books(db, exchange), expected_books(s, exchange)
        for symbol, books in stored.items():
            assert books == sent[symbol][:len(books)], f"{exchange} {symbol}: not a prefix of what was sent"
    assert "SIGTERM received" in stderr
