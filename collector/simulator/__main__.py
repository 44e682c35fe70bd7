"""``python -m collector.simulator``: the thirteen exchanges on loopback, for a machine with no
network (or to test against).

    python -m collector.simulator                      # serve; prints the variables to set
    python -m collector.simulator --demo 20            # serve, and run the collector against it for 20 s
    python -m collector.simulator --fault-every 5      # with a random fault every 5 s on average
    python -m collector.simulator --sample --demo 10   # the shipped real Upbit recording
    python -m collector.simulator --recording rec/*.gz # books from a --record recording

Each exchange's server speaks its real protocol (subscribe messages, acks, heartbeats, error
frames, snapshots and deltas with the exchange's sequence numbers and checksums) and streams
books, tickers and trades priced from one reference price path per asset: the global exchanges
in USDT around it, the Korean ones in KRW at a USD/KRW rate plus a kimchi premium of about 2 %,
stamped with the time of now. The collector is pointed at it with ``<EXCHANGE>_WS_URL`` /
``<EXCHANGE>_REST_URL``, which this prints as ``export`` lines (and ``--demo`` sets). Needs the
``websockets`` package: ``pip install "kr-orderbook-collector[sim]"``.
"""

from __future__ import annotations

import argparse
import random
import shlex
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
from collector.simulator.live import EXCHANGES, LiveVenues
from collector.simulator.recording import SAMPLE, frames_from_recording
from collector.simulator.world import World

RECORDED = ("upbit", "bithumb", "coinone", "korbit")
"""The exchanges a recording can be served for."""
COLLECTOR = ("-m", "run_controller")
"""How the demo starts the collector: ``python -m run_controller`` (installed with the package)."""


def _names(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXCHANGES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown exchange(s) {', '.join(unknown) or '(none)'}; "
                                         f"known: {', '.join(EXCHANGES)}")
    return list(dict.fromkeys(names))


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols or not all(s.isalnum() for s in symbols) or "USDT" in symbols:
        raise argparse.ArgumentTypeError(f"bad symbols {text!r}: comma-separated letters and digits "
                                         "(USDT is the quote)")
    return list(dict.fromkeys(symbols))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m collector.simulator",
                                     description=__doc__.split("\n\n")[0].replace("\n", " ")
                                     .replace("``python -m collector.simulator``: the", "The"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--exchanges", type=_names, default=list(EXCHANGES),
                        help=f"comma-separated (default: all, {','.join(EXCHANGES)})")
    parser.add_argument("--symbols", type=_symbols, default=["BTC", "ETH", "XRP"],
                        help="base currencies served, in KRW on the Korean exchanges and in USDT "
                             "on the global ones (default: BTC,ETH,XRP)")
    parser.add_argument("--interval", type=float, default=0.1, metavar="S",
                        help="seconds between two books of one market (default: 0.1)")
    parser.add_argument("--usd-krw", type=float, default=1390.0, metavar="RATE",
                        help="the USD/KRW rate of the Korean prices (default: 1390)")
    parser.add_argument("--premium", type=float, default=2.0, metavar="PCT",
                        help="the average kimchi premium in percent (default: 2)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--recording", type=Path, nargs="+", default=None, metavar="FILE",
                        help="serve the books of a --record recording (Upbit, Bithumb, Coinone, "
                             "Korbit) instead of generated ones")
    source.add_argument("--sample", action="store_true",
                        help="serve the shipped real recording (113 Upbit books, KRW-LAMB and "
                             "KRW-WAVES, 2021-04-17)")
    parser.add_argument("--fault-every", type=float, default=None, metavar="S",
                        help="inject a random fault into the Korean exchanges' servers every S "
                             "seconds on average (default: none)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the prices and the faults")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--demo", type=float, default=None, metavar="S",
                        help="also run the collector against the simulator for S seconds, then "
                             "stop both")
    parser.add_argument("--channels", default="orderbook,ticker,trade", metavar="LIST",
                        help="with --demo: what the collector collects (default: "
                             "orderbook,ticker,trade)")
    parser.add_argument("--db", type=Path, default=Path("data/simulated.db"), metavar="PATH",
                        help="with --demo: the collector's SQLite file, relative to the current "
                             "folder (default: data/simulated.db)")
    parser.add_argument("--log-dir", type=Path, default=Path("logs"), metavar="DIR",
                        help="with --demo: the collector's log folder (default: logs)")
    return parser


def _error(message: str) -> int:
    print(f"python -m collector.simulator: error: {message}", file=sys.stderr)
    return 2


def _recorded_venues(frames: dict, interval: float):
    """The Korean servers of a recording's books, in the shape :class:`LiveVenues` has."""
    from collector.simulator.bithumb import BithumbServer
    from collector.simulator.coinone import CoinoneServer
    from collector.simulator.korbit import KorbitServer
    from collector.simulator.live import CONTROLLERS
    from collector.simulator.upbit import UpbitServer

    class Recorded:
        def __init__(self) -> None:
            self.upbit = UpbitServer(frames.get("upbit", {}), interval=interval)
            self.bithumb = BithumbServer(frames.get("bithumb", {}))
            self.coinone = CoinoneServer(frames.get("coinone", {}), interval=interval)
            self.korbit = KorbitServer(frames.get("korbit", {}), interval=interval)
            self.gopax = None
            self.servers = {n: getattr(self, n) for n in RECORDED if n in frames}

        def __enter__(self):
            for server in self.servers.values():
                server.__enter__()
            return self

        def __exit__(self, *exc) -> None:
            for server in self.servers.values():
                server.__exit__(*exc)

        def env(self) -> dict[str, str]:
            return {CONTROLLERS[n].rest_url_env if n == "bithumb" else CONTROLLERS[n].ws_url_env:
                    server.url for n, server in self.servers.items()}

        def books_sent(self, name: str) -> int:
            if name == "bithumb":
                return len(self.bithumb.served)
            return sum(len(sent) for key, sent in self.servers[name].sent.items() if ":" not in key)

    return Recorded()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.interval <= 0 or args.usd_krw <= 0:
        return _error("--interval and --usd-krw must be positive")
    recorded = None
    if args.sample or args.recording:
        try:
            recorded, symbols = frames_from_recording(
                read_lines([SAMPLE] if args.sample else sorted(args.recording)))
        except ConfigError as exc:
            return _error(str(exc))
        if not recorded:
            return _error("no Upbit, Bithumb, Coinone or Korbit books in the recording")
        args.exchanges = [n for n in RECORDED if n in recorded]
        args.symbols = list(dict.fromkeys(s for n in args.exchanges for s in symbols[n]))
    db = Path.cwd() / args.db
    log_dir = Path.cwd() / args.log_dir
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    world = World(seed=args.seed, usd_krw=args.usd_krw, premium=args.premium / 100)
    venues = (_recorded_venues(recorded, args.interval) if recorded is not None
              else LiveVenues(args.symbols, world=world, exchanges=args.exchanges,
                              interval=args.interval))
    with venues:
        env = venues.env()
        if recorded is None:
            print(f"simulating {', '.join(args.exchanges)} on 127.0.0.1: {', '.join(args.symbols)} "
                  f"in KRW (Upbit also USDT) and in USDT, at USD/KRW {args.usd_krw:g} with a kimchi "
                  f"premium of about {args.premium:g} %, a book every {args.interval:g} s per "
                  "market. Point the collector at it (paste into a shell):", flush=True)
        else:
            print(f"serving the recording's books of {', '.join(args.exchanges)} on 127.0.0.1. "
                  "Point the collector at it (paste into a shell):", flush=True)
        for name, value in env.items():
            print(f"export {name}={shlex.quote(value)}")
        command = ["--exchanges", ",".join(args.exchanges), "--symbols", ",".join(args.symbols)]
        if recorded is None:
            command += ["--channels", args.channels, "--usd-krw", f"{args.usd_krw:g}"]
        print("then: python run_controller.py " + " ".join(command), flush=True)
        collector = None
        if args.demo is not None:
            extra = ["--signal-interval", f"{max(1.0, min(10.0, args.demo / 5)):g}"] if recorded is None else []
            collector = subprocess.Popen(
                [sys.executable, *COLLECTOR, *command, *extra, "--duration", f"{args.demo:g}",
                 "--db", str(db), "--log-dir", str(log_dir),
                 "--stats-interval", f"{max(5.0, args.demo / 4):g}"],
                env={**_environ(), **env})
        injector = Injector(venues, None, random.Random(args.seed),
                            [n for n in args.exchanges if getattr(venues, n, None) is not None],
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
    print("simulator stopped; books sent: "
          + ", ".join(f"{n} {venues.books_sent(n)}" for n in args.exchanges))
    if collector is not None:
        print(f"the collector exited with {collector.returncode}; its books are in {db} "
              f"(python -m exporter --db {shlex.quote(str(db))} --out export)")
        return collector.returncode
    return 0


def _environ() -> dict[str, str]:
    import os
    return dict(os.environ)


if __name__ == "__main__":
    sys.exit(main())
