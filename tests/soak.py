"""Soak test: ``python run_controller.py`` against the five Korean exchanges' loopback servers for
N minutes, with a random fault every few seconds, then a check that nothing was lost.

    python -m tests.soak --minutes 10            # the long run (not part of the test suite)
    python -m tests.soak --seconds 20 --fault-every 2

The collector runs as its own process (as a user runs it, with the production backoff and a
short ``--idle-timeout``); the servers and the fault injector run here. Faults, picked at random
(seeded): a dropped connection (Upbit, Coinone, Korbit, GOPAX), a silent stall (Upbit, Coinone,
Korbit; the watchdog must reopen), a malformed frame, Bithumb HTTP 429 / 500 / read timeout /
refused connects, and another process holding the database's write lock.

At the end the collector gets SIGTERM, and the check is exact: for every market of every
exchange, the books stored equal the books the server sent (an independent oracle), and the
summary says nothing was dropped or lost. It prints the faults injected, reconnects, books sent
and stored, the longest recovery (fault to the first frame on a new connection), and the
collector's RSS at start and end. Exit status 0 when nothing was lost, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers import expected_books, stored_books
from benchmarks.bench import rss_mb
from collector.simulator.faults import Injector
from tests.sim_servers import Servers
from tests.test_end_to_end import summaries

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("upbit", "bithumb", "coinone", "korbit", "gopax")
INTERVAL = 0.02  # seconds between two frames of one server
IDLE_TIMEOUT = 3.0


def soak(seconds: float, fault_every: float, seed: int, workdir: Path) -> int:
    rng = random.Random(seed)
    per_market = int(seconds / INTERVAL / 2) + 50  # two markets share a server's stream
    print(f"generating {per_market} books per market…", flush=True)
    with Servers({n: ["BTC", "ETH"] for n in NAMES}, per_market, interval=INTERVAL) as servers:
        for books in servers.bithumb.books.values():  # 10 polls a second
            del books[int(seconds * 10 * 0.8):]
        db = workdir / "soak.db"
        env = dict(os.environ, **servers.env())
        for name in ("DB_PATH", "LOG_PATH", "GOPAX_API_KEY", "GOPAX_SECRET_KEY"):
            env.pop(name, None)
        proc = subprocess.Popen(
            [sys.executable, "run_controller.py", "--exchanges", ",".join(NAMES), "--symbols",
             "BTC,ETH", "--db", str(db), "--log-dir", str(workdir / "logs"), "--idle-timeout",
             str(IDLE_TIMEOUT), "--stats-interval", "30", "--status-interval", "2"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        time.sleep(min(5.0, seconds / 4))
        rss_start = rss_mb(proc.pid)
        injector = Injector(servers, db, rng, every=fault_every)
        quiet_tail = min(10.0, seconds / 4)  # no new fault near the end: let the last recover
        while time.monotonic() - started < seconds:
            if proc.poll() is not None:
                print("the collector exited early", file=sys.stderr)
                break
            if time.monotonic() - started < seconds - quiet_tail:
                label = injector.due(time.monotonic())
                if label is not None:
                    print(f"{time.monotonic() - started:7.1f} s  fault: {label}", flush=True)
            time.sleep(0.1)
        rss_end = rss_mb(proc.pid)
        injector.wait()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    (workdir / "collector.stderr").write_text(stderr)
    return report(servers, injector, db, stderr, proc.returncode, rss_start, rss_end)


def report(servers: Servers, injector: Injector, db: Path, stderr: str, returncode: int,
           rss_start: float, rss_end: float) -> int:
    figures = summaries(stderr)
    reconnects = {m.group(1): int(m.group(2)) for m in
                  re.finditer(r"summary (\w+): .*?reconnects=(\d+)", stderr)}
    ok = returncode == 0
    print(f"\nfaults injected: {sum(injector.counts.values())}")
    for label, count in sorted(injector.counts.items()):
        print(f"  {label:24} {count}")
    print(f"\n{'exchange':10} {'sent':>8} {'stored':>8} {'equal':>6} {'reconn.':>8} {'dropped':>8} {'lost':>5}")
    for name in NAMES:
        exchange = name.upper()
        expected = expected_books(servers, exchange)
        stored = stored_books(db, exchange)
        # a market's last frames may still be in flight at SIGTERM: stored must be a prefix
        equal = all(stored.get(sym, []) == books[:len(stored.get(sym, []))] for sym, books in expected.items())
        short = sum(len(books) - len(stored.get(sym, [])) for sym, books in expected.items())
        f = figures.get(exchange, {})
        equal = equal and f.get("stored") == f.get("books") and short <= 5
        ok = ok and equal and f.get("dropped") == 0 and f.get("lost") == 0
        print(f"{exchange:10} {sum(map(len, expected.values())):8d} {f.get('stored', -1):8d} "
              f"{'yes' if equal else 'NO':>6} {reconnects.get(exchange, -1):8d} "
              f"{f.get('dropped', -1):8d} {f.get('lost', -1):5d}")
    recoveries = [r for n in ("upbit", "coinone", "korbit") for r in getattr(servers, n).recoveries]
    if recoveries:
        print(f"\nstream recoveries: {len(recoveries)}, longest {max(recoveries):.2f} s, "
              f"median {sorted(recoveries)[len(recoveries) // 2]:.2f} s")
    print(f"collector RSS: {rss_start:.1f} MB at start, {rss_end:.1f} MB at the end")
    print("RESULT:", "nothing lost" if ok else "LOSS OR FAILURE (see above)")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--minutes", type=float, help="how long to run (default: 10)")
    group.add_argument("--seconds", type=float, help="how long to run, in seconds")
    parser.add_argument("--fault-every", type=float, default=15.0, metavar="S",
                        help="mean seconds between two faults (default: 15)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the faults (default: 1)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the database and logs in DIR (default: a temporary folder)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 10)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return soak(seconds, args.fault_every, args.seed, args.keep)
    with tempfile.TemporaryDirectory() as workdir:
        return soak(seconds, args.fault_every, args.seed, Path(workdir))


if __name__ == "__main__":
    sys.exit(main())
