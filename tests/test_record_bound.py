"""``--record`` never grows without bound: at most ``max_queue`` lines wait for the disk; lines
beyond are dropped, counted, and marked in the recording where they are missing, and a replay
turns the marker into a ``dropped`` event."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time

from collector.record import Recorder
from collector.replay import main as replay_main
from core.model import Market


def recorded(folder) -> list[dict]:
    return [json.loads(t) for f in sorted(folder.glob("rec-*.ndjson.gz")) for t in gzip.open(f, "rt")]


def test_a_full_queue_drops_counts_and_marks_where_lines_are_missing(tmp_path):
    recorder = Recorder(tmp_path / "rec", max_queue=4, flush_interval=0.05)
    recorder.meta("upbit", "UPBIT", [Market("BTC", "KRW")], 15)
    for i in range(1, 4):
        recorder.record("UPBIT", 1, "in", f"a{i}")  # the queue is now full (meta + 3)
    recorder.record("UPBIT", 1, "in", "a4")
    recorder.record("BITHUMB", 0, "in", "b1")
    recorder.record("UPBIT", 1, "in", "a5")
    assert recorder.dropped == 3
    recorder.start()
    deadline = time.monotonic() + 10
    while not recorder._queue.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.record("UPBIT", 1, "in", "a6")  # after the gap: its marker first
    recorder.stop()  # BITHUMB's gap was not followed by a line: its marker comes at the end
    lines = [(line["ex"], line["d"], line.get("p", line.get("n"))) for line in recorded(tmp_path / "rec")]
    assert lines == [("UPBIT", "meta", None), ("UPBIT", "in", "a1"), ("UPBIT", "in", "a2"),
                     ("UPBIT", "in", "a3"), ("UPBIT", "dropped", 2), ("UPBIT", "in", "a6"),
                     ("BITHUMB", "dropped", 1)]
    assert recorder.lines == 7 and recorder.dropped == 3


def test_a_replay_turns_the_marker_into_a_dropped_event(tmp_path, capsys):
    recorder = Recorder(tmp_path / "rec", max_queue=2)
    recorder.meta("upbit", "UPBIT", [Market("BTC", "KRW")], 15)
    recorder.record("UPBIT", 1, "open", "ws://127.0.0.1:1")
    recorder.record("UPBIT", 1, "in", "{}")  # dropped
    recorder.start()
    recorder.stop()
    db = tmp_path / "replay.db"
    assert replay_main([*map(str, sorted((tmp_path / "rec").glob("*.gz"))), "--db", str(db)]) == 0
    conn = sqlite3.connect(db)
    events = conn.execute("SELECT exchange, symbol, kind, detail FROM feed_event ORDER BY event_id").fetchall()
    assert events == [("UPBIT", "BTC", "connected", "replay of a connect to ws://127.0.0.1:1"),
                      ("UPBIT", None, "dropped", "1 recorded line(s) missing")]
