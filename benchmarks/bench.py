"""The collector's benchmark: one command, one table.

    python -m benchmarks.bench                    # about two minutes
    python -m benchmarks.bench --memory-seconds 600   # with the 10-minute memory run

Figures (each against a baseline measured in the same run where the goal is a ratio):

* writer: level rows/s that ``SQLiteWriter`` stores, and the bare ``executemany`` ceiling on the
  same rows into a naive one-row-per-level table (WAL, one index, the same batch size); goal
  ratio >= 0.7;
* end to end: the simulator's Upbit server (its own process, as a real exchange is:
  ``benchmarks.upbit_server``) -> controller
  threads -> SQLite committed, rows/s and books/s, and the ratio to the ceiling; goal >= 0.6;
  also books/s with the server in the collector's process (sharing its GIL), for reference;
* parse: frames/s of each exchange's ``parse`` on one core (Upbit: full 30-unit books; goal
  >= 70k/s), and of the whole data path ``handle_payload`` (parse, dedup, hand-off);
* latency: p50/p99 from receive to commit at 2,000 books/s; goal p99 <= 200 ms;
* memory: peak RSS of ``run_controller.py`` over a run at a steady rate, and its start and end;
  goal < 150 MB and flat;
* disk: bytes per stored level (file size with indexes, after a checkpoint), and the naive
  table's; goal <= 40 B.

Nothing here reaches the internet: the servers are the test suite's loopback servers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from collector.app import Collector, CollectorConfig
from core.model import Market, now_ms
from controllers import BithumbController, CoinoneController, GopaxController, KorbitController, UpbitController
from storage.writer import SQLiteWriter
from tests.sim_oracles import (bithumb_generated_books, bithumb_real_books,
                               coinone_generated_books, fixture_json, fixture_text,
                               korbit_generated_books, upbit_generated_books)
from collector.simulator.upbit import UpbitServer

ROOT = Path(__file__).resolve().parent.parent
FLAT_SCHEMA = """
CREATE TABLE orderbook (snapshot_id INTEGER NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL,
    currency TEXT NOT NULL, timestamp INTEGER NOT NULL, received_at INTEGER NOT NULL,
    side TEXT NOT NULL, level INTEGER NOT NULL, price REAL NOT NULL, volume REAL NOT NULL);
CREATE INDEX orderbook_market_time ON orderbook (exchange, symbol, currency, timestamp);
"""
"""The naive one-row-per-level table with one index: the ceiling's (and disk figure's) baseline."""
FLAT_INSERT = "INSERT INTO orderbook VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
UPBIT_DOCS = "upbit/ws_orderbook_default_docs.json"


def upbit_frames(count: int, codes=("KRW-BTC",)) -> dict[str, list[str]]:
    template = fixture_json(UPBIT_DOCS)  # a real 30-unit Upbit book
    return {code: upbit_generated_books(code, template, count, seed=i) for i, code in enumerate(codes)}


def upbit_books(count: int):
    """``count`` normalized 15-level books (30 rows each) from full Upbit frames."""
    controller = UpbitController([Market("BTC", "KRW")])
    return [controller.parse(f, now_ms())[0] for f in upbit_frames(count)["KRW-BTC"]]


def rows_of(books) -> list[list[tuple]]:
    """The writer's rows, one list per book."""
    out = []
    for sid, book in enumerate(books, 1):
        head = (sid, book.exchange, book.base, book.quote, book.timestamp, book.received_at)
        out.append([(*head, "bid", i, p, v) for i, (p, v) in enumerate(book.bids)]
                   + [(*head, "ask", i, p, v) for i, (p, v) in enumerate(book.asks)])
    return out


def fresh(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(FLAT_SCHEMA)
    return conn


# --- writer -------------------------------------------------------------------------------------

def bench_ceiling(rows: list[list[tuple]], path: Path, batch: int = 1000) -> tuple[float, float]:
    """Level rows/s of bare executemany into the naive flat table with one index, ``batch``
    books a transaction; and its bytes per level."""
    conn = fresh(path)
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(FLAT_INSERT, [r for book in rows[start:start + batch] for r in book])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    count = sum(map(len, rows))
    return count / seconds, path.stat().st_size / count


def bench_writer(books, path: Path) -> tuple[float, float]:
    """Level rows/s through ``SQLiteWriter`` (submit -> committed), and bytes per level on disk."""
    writer = SQLiteWriter(path, queue_size=len(books) + 1)
    writer.start()
    started = time.perf_counter()
    for book in books:
        writer.submit(book)
    writer.stop()
    seconds = time.perf_counter() - started
    stored = sum(writer.stats.stored_rows.values())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return stored / seconds, path.stat().st_size / stored


# --- parse --------------------------------------------------------------------------------------

def parse_inputs(count: int) -> dict[str, tuple]:
    real = bithumb_real_books()
    bithumb = [json.dumps([b]) for b in bithumb_generated_books("KRW-BTC", real["KRW-BTC"], count, seed=1)]
    korbit = korbit_generated_books("BTC", fixture_json("korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json"),
                                    count, seed=1)
    coinone = coinone_generated_books("BTC", fixture_json("coinone/ws_orderbook_docs.json"), count, seed=1)
    btc = [Market("BTC", "KRW")]
    return {
        "UPBIT (30 units)": (UpbitController(btc), [f.encode() for f in upbit_frames(count)["KRW-BTC"]]),
        "BITHUMB (REST body)": (BithumbController(btc), [b.encode() for b in bithumb]),
        "COINONE (16/16)": (CoinoneController(btc), coinone),
        "KORBIT (trimmed 3/3)": (KorbitController(btc), korbit),
        "GOPAX (snapshot)": (GopaxController([Market("BCH", "KRW")]),
                             [fixture_text("gopax/ws_orderbook_snapshot_docs.json")] * count),
    }


def bench_parse(count: int) -> list[tuple[str, float, float]]:
    """Per exchange: ``parse`` frames/s and ``handle_payload`` frames/s (one thread)."""
    results = []
    for name, (controller, frames) in parse_inputs(count).items():
        received = now_ms()
        if isinstance(controller, GopaxController):
            controller.on_connect(controller.markets)
        started = time.perf_counter()
        for frame in frames:
            controller.parse(frame, received)
        parse_rate = len(frames) / (time.perf_counter() - started)
        controller.sink = lambda book: True
        started = time.perf_counter()
        for frame in frames:
            controller.handle_payload(frame, received)
        results.append((name, parse_rate, len(frames) / (time.perf_counter() - started)))
    return results


# --- end to end and latency ---------------------------------------------------------------------

class TimedWriter(SQLiteWriter):
    """A writer that notes, per committed book, ms from receive to commit."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.latencies: list[int] = []

    def _write(self, conn, batch, base) -> bool:
        written = super()._write(conn, batch, base)
        committed = now_ms()
        self.latencies.extend(committed - book.received_at for _, book in batch)
        return written


def collect(url: str, symbols: list[str], total: int, workdir: Path, name: str):
    """Run the collector (in this process) against an Upbit server at ``url`` until it has
    received ``total`` frames and committed every book; returns (seconds, writer)."""
    config = CollectorConfig(exchanges=["upbit"], symbols=symbols, db_path=workdir / f"{name}.db",
                             stats_interval=3600, queue_size=1_000_000)
    collector = Collector(config, {"UPBIT_WS_URL": url})
    collector.writer = TimedWriter(config.db_path, queue_size=config.queue_size)
    collector.prepare()
    thread = threading.Thread(target=collector.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    controller = collector.controllers[0]
    while time.perf_counter() - started < 300 and not (
            controller.stats.messages >= total
            and sum(collector.writer.stats.stored_books.values()) >= controller.stats.books):
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    collector.request_stop()
    thread.join(60)
    return seconds, collector.writer


def run_upbit(frames: dict[str, list[str]], interval: float, workdir: Path, name: str):
    """Collect ``frames`` from a loopback Upbit server in this process; (seconds, writer)."""
    with UpbitServer(frames, interval=interval) as server:
        return collect(server.url, [c.split("-")[1] for c in frames], sum(map(len, frames.values())),
                       workdir, name)


def bench_end_to_end(count: int, workdir: Path) -> tuple[float, float, float]:
    """Books/s and rows/s from the simulator (its own process, as an exchange is) at full speed
    to committed rows; and books/s with the server in this process (sharing the GIL)."""
    symbols = ["BTC", "ETH", "XRP", "SOL"]
    per_market = count // len(symbols)
    sim = subprocess.Popen([sys.executable, "-m", "benchmarks.upbit_server", ",".join(symbols),
                            str(per_market)],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = next(line.split("=", 1)[1].strip() for line in sim.stdout if line.startswith("UPBIT_WS_URL="))
        seconds, writer = collect(url, symbols, per_market * len(symbols), workdir, "e2e")
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    frames = upbit_frames(per_market, codes=tuple(f"KRW-{s}" for s in symbols))
    shared_seconds, shared = run_upbit(frames, 0.0, workdir, "e2e-shared")
    return (sum(writer.stats.stored_books.values()) / seconds,
            sum(writer.stats.stored_rows.values()) / seconds,
            sum(shared.stats.stored_books.values()) / shared_seconds)


def bench_latency(seconds: float, workdir: Path) -> tuple[float, float, float]:
    """p50/p99 ms from receive to commit at 2,000 books/s (two markets), and the rate reached."""
    count = int(2000 * seconds / 2)
    frames = upbit_frames(count, codes=("KRW-BTC", "KRW-ETH"))
    took, writer = run_upbit(frames, 1 / 2000, workdir, "latency")
    lat = sorted(writer.latencies)
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)], len(lat) / took


# --- memory -------------------------------------------------------------------------------------

def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_memory(seconds: float, workdir: Path) -> tuple[float, float, float]:
    """RSS of ``run_controller.py`` collecting 4 Upbit markets at about 400 books/s: (at 10 %
    of the run, peak, at the end), MB."""
    frames = upbit_frames(int(seconds * 100) + 100, codes=("KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"))
    with UpbitServer(frames, interval=1 / 400) as server:
        env = dict(os.environ, UPBIT_WS_URL=server.url)
        proc = subprocess.Popen([sys.executable, "run_controller.py", "--exchanges", "upbit", "--symbols",
                                 "BTC,ETH,XRP,SOL", "--db", str(workdir / "memory.db"), "--log-dir",
                                 str(workdir / "logs")], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            samples.append(rss_mb(proc.pid))
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return samples[max(0, len(samples) // 10 - 1)], max(samples), samples[-1]


# --- the table ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=20_000, help="books for the writer figures (default 20000)")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per exchange for parse (default 20000)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--memory-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}", flush=True)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        books = upbit_books(args.books)
        rows = rows_of(books)
        ceiling, flat_per_level = bench_ceiling(rows, workdir / "ceiling.db")
        writer_rate, per_level = bench_writer(books, workdir / "writer.db")
        table.append(("writer: level rows/s stored", f"{writer_rate:,.0f}", "ratio >= 0.7",
                      f"ceiling {ceiling:,.0f}; ratio {writer_rate / ceiling:.2f}"))
        books_s, rows_s, shared_books_s = bench_end_to_end(args.books, workdir)
        table.append(("end to end: rows/s committed", f"{rows_s:,.0f}", "ratio >= 0.6",
                      f"{books_s:,.0f} books/s; ratio {rows_s / ceiling:.2f} (server in-process: "
                      f"{shared_books_s:,.0f} books/s)"))
        for name, parse_rate, path_rate in bench_parse(args.frames):
            goal = ">= 70,000" if name.startswith("UPBIT") else ""
            table.append((f"parse: {name} frames/s", f"{parse_rate:,.0f}", goal,
                          f"handle_payload {path_rate:,.0f}/s"))
        p50, p99, rate = bench_latency(args.latency_seconds, workdir)
        table.append(("latency receive->commit p50 / p99", f"{p50:.0f} / {p99:.0f} ms", "p99 <= 200 ms",
                      f"at {rate:,.0f} books/s"))
        start, peak, end = bench_memory(args.memory_seconds, workdir)
        table.append((f"memory: peak RSS over {args.memory_seconds:.0f} s", f"{peak:.1f} MB",
                      "< 150 MB, flat", f"{start:.1f} MB early, {end:.1f} MB at the end"))
        table.append(("disk: bytes per stored level", f"{per_level:.1f} B", "<= 40 B",
                      f"naive flat table: {flat_per_level:.1f} B"))
    widths = [max(len(str(r[i])) for r in table + [("figure", "value", "goal", "baseline / notes")])
              for i in range(4)]
    header = ("figure", "value", "goal", "baseline / notes")
    print()
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
