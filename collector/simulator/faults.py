"""Random faults for the simulator and the soak test (see :class:`Injector`)."""

from __future__ import annotations

import collections
import random
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from collector.simulator.http import Reply

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


class Injector:
    """Picks and injects one random fault at a time into ``servers`` (an object with the Korean
    exchanges' servers as attributes ``upbit``, ``bithumb``, ``coinone``, ``korbit``, ``gopax``);
    counts what it did.

    Faults: a dropped connection or a silent stall (Upbit, Coinone, Korbit), a malformed frame,
    a dropped GOPAX connection, Bithumb HTTP 429 / 500 / a reply slower than the read timeout /
    refused connects for 2 s, and, with ``db`` given, another process holding the database's
    write lock for 7 s.

    With ``every`` set, :meth:`due` injects one every ``every`` seconds on average (each wait
    drawn from 0.5-1.5 times it, from ``rng``, so a seed repeats the run).
    """

    STREAMS = ("upbit", "coinone", "korbit")

    def __init__(self, servers, db: Path | None, rng: random.Random,
                 exchanges: Sequence[str] = ("upbit", "bithumb", "coinone", "korbit", "gopax"),
                 every: float | None = None) -> None:
        self.servers, self.db, self.rng, self.every = servers, db, rng, every
        self._next_at: float | None = None
        self.exchanges = set(exchanges)
        self.counts: collections.Counter = collections.Counter()
        self.lockers: list[subprocess.Popen] = []

    def due(self, now: float) -> str | None:
        """Inject a fault if one is due at ``now`` (``time.monotonic()``); returns what it was,
        or ``None``. The first is due ``every`` (0.5-1.5 times) after the first call."""
        if self.every is None:
            return None
        if self._next_at is None:
            self._next_at = now + self.rng.uniform(0.5, 1.5) * self.every
        if now < self._next_at:
            return None
        self._next_at = now + self.rng.uniform(0.5, 1.5) * self.every
        return self.inject()

    def inject(self) -> str:
        """Inject one random fault; returns what it was (``"korbit drop"``)."""
        s = self.servers
        streams = [n for n in self.STREAMS if n in self.exchanges]
        kinds = ["drop", "drop", "stall", "garbage"] if streams else []
        kinds += ["gopax drop"] if "gopax" in self.exchanges else []
        kinds += ["http 429", "http 500", "read timeout", "refused"] if "bithumb" in self.exchanges else []
        kinds += ["db lock"] if self.db is not None else []
        kind = self.rng.choice(kinds)
        if kind in ("drop", "stall", "garbage"):
            name = self.rng.choice(streams)
            payload = {"drop": "drop", "stall": "stall", "garbage": "{not json"}[kind]
            server = getattr(s, name)
            server.inject(payload.encode() if name == "upbit" and kind == "garbage" else payload)
            label = f"{name} {kind}"
        elif kind == "gopax drop":
            with s.gopax.lock:
                s.gopax.drop_next = True
            label = kind
        elif kind in ("http 429", "http 500", "read timeout"):
            reply = {"http 429": Reply(429, b"{}", {"Retry-After": "1"}),
                     "http 500": Reply(500, b"upstream failure"),
                     "read timeout": Reply(200, b"[]", delay=6.0)}[kind]
            with s.bithumb.lock:
                s.bithumb.script[s.bithumb.count + 1] = reply
            label = f"bithumb {kind}"
        elif kind == "refused":
            s.bithumb.refuse_for(2.0)
            label = "bithumb refused"
        else:
            self.lockers.append(subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(self.db), "7"]))
            label = "database locked 7 s"
        self.counts[label] += 1
        return label

    def wait(self) -> None:
        """Wait for the lock-holding processes to end."""
        for locker in self.lockers:
            locker.wait(30)
