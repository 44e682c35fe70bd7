"""``python -m collector.simulator``: the five Korean exchanges on loopback, for a machine with no
network (or to test against).

    python -m collector.simulator                      # serve; prints the variables to set
    python -m collector.simulator --demo 20            # serve, and run the collector against it for 20 s
    python -m collector.simulator --fault-every 5      # with a random fault every 5 s on average
    python -m collector.simulator --sample --demo 10   # the shipped real Upbit recording
    python -m collector.simulator --recording rec/*.gz # books from a --record recording

Each exchange's server speaks its real protocol (subscribe messages, acks, heartbeats, error
frames; GOPAX keeps a true book and sends a snapshot and deltas) and streams books generated from
real books in ``tests/fixtures``, one frame every ``--interval`` seconds per server. The
collector is pointed at it with ``<EXCHANGE>_WS_URL`` / ``<EXCHANGE>_REST_URL``, which this
prints (and ``--demo`` sets). Needs the ``websockets`` package: ``pip install -e ".[sim]"``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from core import __version__
from core.errors import ConfigError
from collector.record import read_lines
from collector.simulator.faults import Injector
from collector.simulator.recording import SAMPLE, frames_from_recording
from collector.simulator.servers import Servers

NAMES = ("upbit", "bithumb", "coinone", "korbit", "gopax")
ROOT = Path(__file__).resolve().parent.parent.parent


def _names(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown exchange(s) {', '.join(unknown) or '(none)'}; "
                                         f"known: {', '.join(NAMES)}")
    return names


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols or not all(s.isalnum() for s in symbols):
        raise argparse.ArgumentTypeError(f"bad symbols {text!r}: comma-separated letters and digits")
    return symbols


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m collector.simulator",
                                     description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--exchanges", type=_names, default=list(NAMES),
                        help=f"comma-separated (default: {','.join(NAMES)})")
    parser.add_argument("--symbols", type=_symbols, default=["BTC", "ETH"],
                        help="base currencies served in KRW (default: BTC,ETH)")
    parser.add_argument("--books", type=int, default=5000, metavar="N",
                        help="books generated per market (default: 5000)")
    parser.add_argument("--interval", type=float, default=0.01, metavar="S",
                        help="seconds between two frames of one server (default: 0.01)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--recording", type=Path, nargs="+", default=None, metavar="FILE",
                        help="serve the books of a --record recording (Upbit, Bithumb, Coinone, "
                             "Korbit) instead of generated ones")
    source.add_argument("--sample", action="store_true",
                        help="serve the shipped real recording (113 Upbit books, KRW-LAMB and "
                             "KRW-WAVES, 2021-04-17)")
    parser.add_argument("--fault-every", type=float, default=None, metavar="S",
                        help="inject a random fault every S seconds on average (default: none)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the faults")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--demo", type=float, default=None, metavar="S",
                        help="also run python run_controller.py against the simulator for S seconds, "
                             "then stop both")
    parser.add_argument("--db", type=Path, default=Path("data/simulated.db"), metavar="PATH",
                        help="with --demo: the collector's SQLite file (default: data/simulated.db)")
    parser.add_argument("--log-dir", type=Path, default=Path("logs"), metavar="DIR",
                        help="with --demo: the collector's log folder (default: logs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.books < 1 or args.interval < 0:
        print("python -m collector.simulator: error: --books must be positive and --interval "
              "not negative", file=sys.stderr)
        return 2
    frames = None
    if args.sample or args.recording:
        try:
            frames, symbols = frames_from_recording(read_lines([SAMPLE] if args.sample else sorted(args.recording)))
        except ConfigError as exc:
            print(f"python -m collector.simulator: error: {exc}", file=sys.stderr)
            return 2
        if not frames:
            print("python -m collector.simulator: error: no Upbit, Bithumb, Coinone or Korbit books "
                  "in the recording", file=sys.stderr)
            return 2
        args.exchanges = [n for n in NAMES if n in frames]
        args.symbols = list(dict.fromkeys(s for n in args.exchanges for s in symbols[n]))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    if frames is None:
        print(f"generating {args.books} books for each of {len(args.symbols)} market(s)…", flush=True)
    served = {n: args.symbols for n in args.exchanges}
    with Servers(served, args.books, interval=args.interval, frames=frames) as servers:
        env = {k: v for k, v in servers.env().items() if k.split("_")[0].lower() in args.exchanges}
        print(f"simulating {', '.join(args.exchanges)} on 127.0.0.1 "
              f"({', '.join(args.symbols)} in KRW, a frame every {args.interval:g} s per server). "
              "Point the collector at it:", flush=True)
        for name, value in env.items():
            print(f"{name}={value}")
        command = ["python", "run_controller.py", "--exchanges", ",".join(args.exchanges),
                   "--symbols", ",".join(args.symbols)]
        print("then: " + " ".join(command), flush=True)
        collector = None
        if args.demo is not None:
            collector = subprocess.Popen(
                [sys.executable, "run_controller.py", *command[2:], "--duration", str(args.demo),
                 "--db", str(args.db), "--log-dir", str(args.log_dir),
                 "--stats-interval", str(max(5.0, args.demo / 4))],
                cwd=ROOT, env=dict(os.environ, **env))
        injector = Injector(servers, None, random.Random(args.seed), args.exchanges,
                            every=args.fault_every)
        started = time.monotonic()
        while not stop.wait(0.2):
            now = time.monotonic()
            if args.duration is not None and now - started >= args.duration:
                break
            if collector is not None and collector.poll() is not None:
                break
            label = injector.due(now)
            if label is not None:
                print(f"fault: {label}", flush=True)
        if collector is not None:
            if collector.poll() is None:
                collector.send_signal(signal.SIGTERM)
            collector.wait(60)
        injector.wait()
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    print("simulator stopped; sent: " + ", ".join(f"{n} {servers.books_sent(n)}" for n in args.exchanges))
    if collector is not None:
        print(f"the collector exited with {collector.returncode}; its books are in {args.db} "
              f"(python -m exporter --db {args.db} --out export)")
        return collector.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
