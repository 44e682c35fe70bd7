"""``python -m collector.replay FILES… --db PATH [--speed N|max]``: run a recording again.

The recorded frames (see :mod:`collector.record`) go through the same controllers' parsers,
book logic (dedup, sequence checks, GOPAX's local books) and the same SQLite writer as in the live
run, in the order they were recorded and with their recorded receive times, without a network.
So the books stored equal what the live run stored, level by level, with the same ``timestamp``
and ``received_at``; connection opens and closes give the same ``connected``/``disconnected``
events.

* WebSocket ``open``: the controller forgets the connection's per-market state
  (``on_connect``, as live); ``in``: a heartbeat (``reply_to`` answers it) is counted, anything
  else parsed; ``out`` lines are what the collector sent and are skipped;
* REST ``in`` with an HTTP status below 400: parsed, as a poll would; REST ``open``/``close``
  (polling started or resumed / failing or stopped) give the same events;
* ``--speed max`` (default) as fast as possible; ``--speed N`` N times the recorded pace.

Exit status 0, or 2 for bad input (a missing file, a line that is not a recording, an exchange
this version does not know).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from collector.cli import _positive
from core import __version__
from core.errors import CollectorError, ConfigError
from core.model import Market
from collector.record import decode_payload, read_lines
from controllers import CONTROLLERS, Controller
from controllers.ws import WSController
from storage.writer import SQLiteWriter

log = logging.getLogger("collector.replay")
_TAG = {"tag": "REPLAY"}


@dataclass
class ReplayStats:
    """What a replay did: lines read, frames handed to parsers, per exchange books stored."""

    lines: int = 0
    frames: int = 0
    seconds: float = 0.0
    controllers: dict[str, Controller] = field(default_factory=dict)


def replay(lines: Iterable[dict], writer: SQLiteWriter, speed: float | None = None) -> ReplayStats:
    """Feed recorded ``lines`` through new controllers into ``writer`` (already started).

    ``speed``: ``None`` as fast as possible, else a factor of the recorded pace.

    Raises:
        ConfigError: a frame of an exchange with no ``meta`` line before it, or an unknown
            controller name.
    """
    stats = ReplayStats()
    started = time.monotonic()
    first_t: int | None = None
    for line in lines:
        stats.lines += 1
        exchange, direction = line["ex"], line["d"]
        if direction == "meta":
            cls = CONTROLLERS.get(line.get("controller", ""))
            if cls is None:
                raise ConfigError(f"recording names an unknown controller {line.get('controller')!r}")
            markets = [Market(symbol, currency) for symbol, currency in line["markets"]]
            stats.controllers[exchange] = cls(markets, sink=writer.submit, events=writer.submit_event,
                                              depth=int(line.get("depth", 15)), env={})
            continue
        controller = stats.controllers.get(exchange)
        if controller is None:
            raise ConfigError(f"a {exchange} line comes before the {exchange} meta line")
        if speed is not None:
            first_t = line["t"] if first_t is None else first_t
            due = started + (line["t"] - first_t) / 1000 / speed
            time.sleep(max(0.0, due - time.monotonic()))
        _feed(controller, line)
        if direction == "in":
            stats.frames += 1
    stats.seconds = time.monotonic() - started
    return stats


def _feed(controller: Controller, line: dict) -> None:
    direction = line["d"]
    ws = isinstance(controller, WSController)
    index = int(line.get("c", 0))
    markets = (controller.connections[index - 1].markets
               if ws and 0 < index <= len(controller.connections) else controller.markets)
    if direction == "open":
        controller.record_event("connected", markets, f"replay of a connect to {line.get('p')}")
        if ws:
            controller.on_connect(markets)
    elif direction == "close":
        controller.record_event("disconnected", markets, str(line.get("p")))
    elif direction == "dropped":  # the recorder's queue was full: frames are missing here
        controller.record_event("dropped", None, f"{line.get('n')} recorded line(s) missing")
    elif direction == "in":
        payload = decode_payload(line)
        if ws and controller.reply_to(payload) is not None:
            controller.count_heartbeat()
        elif int(line.get("status", 200)) < 400:
            controller.handle_payload(payload, int(line["t"]))


def _speed(text: str) -> float | None:
    """``--speed``: ``max`` (``None``) or a positive factor."""
    return None if text == "max" else _positive(float)(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Replay recordings into a database; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m collector.replay",
                                     description="Replay recorded frames through the controllers "
                                                 "into a SQLite file, without a network.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="recording files (.ndjson.gz); replayed sorted by name, which is "
                             "the order they were recorded in")
    parser.add_argument("--db", type=Path, required=True, metavar="PATH", help="SQLite file to write")
    parser.add_argument("--speed", type=_speed, default=None, metavar="N|max",
                        help="max (default): as fast as possible; N: N times the recorded pace")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    writer = SQLiteWriter(args.db)
    try:
        writer.start()
        stats = replay(read_lines(sorted(args.files)), writer, args.speed)
    except CollectorError as exc:
        writer.stop()
        print(f"replay: error: {exc}", file=sys.stderr)
        return 2
    writer.stop()
    print(f"replayed {stats.frames} frames ({stats.lines} lines) in {stats.seconds:.1f} s")
    for exchange, controller in stats.controllers.items():
        print(f"{exchange}: messages={controller.stats.messages} books={controller.stats.books} "
              f"stored={writer.stats.stored_books[exchange]} rows={writer.stats.stored_rows[exchange]} "
              f"duplicates={controller.stats.duplicates} stale={controller.stats.stale} "
              f"errors={controller.stats.errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
