"""The end-to-end benchmark's exchange in its own process, as a real exchange is:

    python -m benchmarks.upbit_server BTC,ETH,XRP,SOL 5000

serves that many books per market (generated from a real 30-unit Upbit book) on the Upbit
protocol at full speed, prints ``UPBIT_WS_URL=<url>``, and runs until SIGTERM or SIGINT (at
most ten minutes)."""

from __future__ import annotations

import signal
import sys
import threading

from benchmarks.bench import upbit_frames
from collector.simulator.upbit import UpbitServer


def main(argv: list[str]) -> int:
    symbols, count = argv[0].split(","), int(argv[1])
    frames = upbit_frames(count, codes=tuple(f"KRW-{s}" for s in symbols))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with UpbitServer(frames) as server:
        print(f"UPBIT_WS_URL={server.url}", flush=True)
        stop.wait(600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
