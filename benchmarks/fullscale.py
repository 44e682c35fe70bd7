"""Full scale: every market of every venue at a realistic rate, for a fixed time, then a ramp.

    python -m benchmarks.fullscale                          # about 3 minutes
    python -m benchmarks.fullscale --markets 200 --seconds 60 --ramp-seconds 20

The exchanges' side is the simulator (``python -m collector.simulator``), one process per venue
as real exchanges are other machines; the collector runs in this process (the app, its
controller threads, the SQLite writer), so its CPU time, memory, threads and open files are this
process's. Nothing here reaches the internet.

**Rates.** Each venue serves ``--markets`` markets (synthetic bases ``C000``, ``C001``, …, so
every venue has the same count; the real Korean venues list 70 to 250 KRW markets each, the
global ones several hundred USDT markets). Every market sends a book or a delta every
``--interval`` seconds (default 1.0 s). That is the rate of a typical market: the most traded
markets update several times a second (Binance, OKX, Bybit push at most every 100 ms), most of
the long tail far less than once a second, so one update per market per second is a fair
average for "all markets". Bithumb is polled (all its markets in one request every 0.1 s).

**Figures of the base run**: markets, frames/s received, books/s stored, books dropped, CPU
seconds per wall second of the collector (and of the simulators, for reference), peak RSS, open
file descriptors and threads at the end, p50/p99 ms from receive to commit, database bytes per
stored level and per hour.

**Ramp**: the five Korean venues (full books, which need no snapshot) at shorter and shorter
intervals until books drop or the p99 receive-to-commit lag passes 1 s; the highest rate
sustained is printed as a ratio to the parse-only rate of the same frames, measured in the same
run (the frames are recorded with ``--record`` during a short pass and fed to fresh controllers'
``handle_payload`` with no sink).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench import TimedWriter
from collector.app import Collector, CollectorConfig
from collector.record import decode_payload, read_lines
from controllers import CONTROLLERS, KOREAN
from core.model import Market

ROOT = Path(__file__).resolve().parent.parent


def symbols(count: int) -> list[str]:
    """``count`` synthetic base currencies, ``C000``, ``C001``, …"""
    return [f"C{i:03d}" for i in range(count)]


class Simulators:
    """One ``python -m collector.simulator`` process per venue; ``env`` points the collector at
    them."""

    def __init__(self, venues: list[str], bases: list[str], interval: float) -> None:
        self.procs: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}
        for venue in venues:
            proc = subprocess.Popen(
                [sys.executable, "-m", "collector.simulator", "--exchanges", venue, "--symbols",
                 ",".join(bases), "--interval", str(interval)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.procs.append(proc)
            for line in proc.stdout:  # the export lines come before "then: …"
                if line.startswith("export "):
                    name, value = line[len("export "):].strip().split("=", 1)
                    self.env[name] = value.strip("'")
                elif line.startswith("then:"):
                    break

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the simulator processes used so far (``/proc``)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for proc in self.procs:
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def proc_status(field: str) -> int:
    """A ``kB``/count field of ``/proc/self/status`` (``VmHWM``, ``Threads``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run(venues: list[str], bases: list[str], interval: float, seconds: float, workdir: Path,
        name: str, record: bool = False) -> dict:
    """Collect ``venues`` × ``bases`` for ``seconds`` against fresh simulators; the figures."""
    sims = Simulators(venues, bases, interval)
    db = workdir / f"{name}.db"
    config = CollectorConfig(exchanges=venues, symbols=bases, db_path=db, stats_interval=3600,
                             signal_interval=0,
                             record_dir=workdir / f"{name}-rec" if record else None)
    collector = Collector(config, sims.env)
    collector.writer = TimedWriter(db, queue_size=config.queue_size)
    try:
        collector.prepare()
        thread = threading.Thread(target=collector.run, daemon=True)
        wall0 = time.monotonic()
        thread.start()
        time.sleep(min(5.0, seconds / 4))  # connect and subscribe before measuring
        messages0 = sum(c.stats.messages for c in collector.controllers)
        books0 = sum(collector.writer.stats.stored_books.values())
        lat0 = len(collector.writer.latencies)
        cpu1, sim1, wall1 = time.process_time(), sims.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - wall1
        figures = {
            "markets": sum(len(c.markets) for c in collector.controllers if c.collects_books),
            "frames_in": (sum(c.stats.messages for c in collector.controllers) - messages0) / wall,
            "books_stored": (sum(collector.writer.stats.stored_books.values()) - books0) / wall,
            "cpu": (time.process_time() - cpu1) / wall,
            "sim_cpu": (sims.cpu_seconds() - sim1) / wall,
            "fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count(),
        }
        lat = sorted(collector.writer.latencies[lat0:])
        collector.request_stop()
        thread.join(60)
    finally:
        sims.stop()
    stats = collector.writer.stats
    figures["dropped"] = sum(stats.dropped.values()) + sum(c.stats.dropped for c in collector.controllers)
    figures["lost"] = sum(stats.lost.values())
    figures["p50"] = lat[len(lat) // 2] if lat else float("nan")
    figures["p99"] = lat[int(len(lat) * 0.99)] if lat else float("nan")
    rows = sum(stats.stored_rows.values())
    size = sum(p.stat().st_size for p in workdir.glob(f"{name}.db*"))
    figures["bytes_per_level"] = size / rows if rows else float("nan")
    figures["bytes_per_hour"] = size / (time.monotonic() - wall0) * 3600
    figures["wall_total"] = time.monotonic() - wall0
    return figures


def parse_only(record_dir: Path, venues: list[str]) -> float:
    """Frames/s of fresh controllers' ``handle_payload`` (no sink) over the recorded frames of
    ``venues``, one core, best of three passes."""
    lines = [line for line in read_lines(sorted(record_dir.glob("*.ndjson*")))
             if line["d"] == "in"]
    by_exchange: dict[str, list] = {}
    for line in lines:
        by_exchange.setdefault(line["ex"], []).append((decode_payload(line), line["t"]))
    metas = {line["ex"]: line for line in read_lines(sorted(record_dir.glob("*.ndjson*")))
             if line["d"] == "meta"}
    best = float("inf")
    for _ in range(3):
        controllers = {}
        for exchange, meta in metas.items():
            if meta["controller"] not in venues:
                continue
            cls = CONTROLLERS[meta["controller"]]
            controllers[exchange] = cls([Market(b, q) for b, q in meta["markets"]],
                                        depth=meta["depth"])
        frames = [(controllers[ex], p, t) for ex, items in by_exchange.items()
                  if ex in controllers for p, t in items]
        started = time.perf_counter()
        for controller, payload, at in frames:
            controller.handle_payload(payload, at)
        best = min(best, time.perf_counter() - started)
    return len(frames) / best


def line(label: str, f: dict) -> str:
    return (f"{label:<22} {f['markets']:>6} {f['frames_in']:>9,.0f} {f['books_stored']:>9,.0f} "
            f"{f['dropped'] + f['lost']:>7} {f['cpu']:>5.2f} {f['sim_cpu']:>5.2f} "
            f"{f['p50']:>6.0f} {f['p99']:>6.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fullscale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--markets", type=int, default=100, help="markets per venue (default 100)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between two updates of one market (default 1.0)")
    parser.add_argument("--seconds", type=float, default=30.0, help="base run (default 30)")
    parser.add_argument("--ramp-seconds", type=float, default=15.0, help="each ramp step (default 15)")
    parser.add_argument("--ramp-steps", type=int, default=5, help="at most this many (default 5)")
    args = parser.parse_args(argv)
    bases = symbols(args.markets)
    venues = list(CONTROLLERS)
    workdir = Path(tempfile.mkdtemp(prefix="fullscale-"))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"# {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"ulimit -n {soft}; {len(venues)} venues x {args.markets} markets, an update every "
          f"{args.interval:g} s per market")
    try:
        base = run(venues, bases, args.interval, args.seconds, workdir, "base")
        print(f"{'run':<22} {'markets':>6} {'frames/s':>9} {'books/s':>9} {'lost':>7} "
              f"{'cpu':>5} {'sim':>5} {'p50ms':>6} {'p99ms':>6}")
        print(line("base, all venues", base))
        print(f"peak RSS {proc_status('VmHWM') / 1024:.1f} MB, open fds {base['fds']}, threads "
              f"{base['threads']}, {base['bytes_per_level']:.1f} B per stored level, "
              f"{base['bytes_per_hour'] / 1e9:.2f} GB per hour "
              f"({base['bytes_per_hour'] / 1e9 * 24 / (base['markets'] / 100):.1f} GB per day per "
              f"100 markets)")
        korean = list(KOREAN)
        run(korean, bases, args.interval / 4, 5.0, workdir, "record", record=True)
        ceiling = parse_only(workdir / "record-rec", korean)
        best = None
        interval = args.interval
        for step in range(args.ramp_steps):
            figures = run(korean, bases, interval, args.ramp_seconds, workdir, f"ramp{step}")
            print(line(f"korean @ {interval:g} s", figures))
            if figures["dropped"] or figures["lost"] or figures["p99"] > 1000:
                break
            best = figures
            interval /= 2
        if best is not None:
            print(f"highest sustained: {best['frames_in']:,.0f} frames/s "
                  f"({best['books_stored']:,.0f} books/s) = {best['frames_in'] / ceiling:.3f} of the "
                  f"parse-only rate of the same frames ({ceiling:,.0f} frames/s, one core)")
        else:
            print(f"no ramp step was sustained; parse-only {ceiling:,.0f} frames/s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
