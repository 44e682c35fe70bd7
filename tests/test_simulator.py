"""``python -m collector.simulator``: what a newcomer with no network runs to see the collector
work — the five exchanges on loopback, the collector run against them, books stored."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_collects_from_all_five_simulated_exchanges(tmp_path):
    db = tmp_path / "sim.db"
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--demo", "5", "--books", "300",
                           "--interval", "0.005", "--db", str(db),
                           "--log-dir", str(tmp_path / "logs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for variable in ("UPBIT_WS_URL=ws://127.0.0.1:", "BITHUMB_REST_URL=http://127.0.0.1:",
                     "COINONE_WS_URL=", "KORBIT_WS_URL=", "GOPAX_WS_URL="):
        assert variable in done.stdout
    assert "then: python run_controller.py --exchanges upbit,bithumb,coinone,korbit,gopax" in done.stdout
    conn = sqlite3.connect(db)
    books = dict(conn.execute("SELECT exchange, COUNT(DISTINCT snapshot_id) FROM orderbook GROUP BY exchange"))
    status = dict(conn.execute("SELECT exchange, stored_books FROM feed_status"))
    conn.close()
    assert set(books) == {"UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX"} and min(books.values()) > 10
    assert status == books
    assert "simulator stopped; sent: upbit" in done.stdout and "the collector exited with 0" in done.stdout


def test_bad_arguments_are_one_line_errors():
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--exchanges", "nasdaq"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown exchange(s) nasdaq" in done.stderr


@pytest.mark.slow
def test_the_shipped_real_recording_is_served_and_stored_exactly(tmp_path):
    from collector.record import read_lines
    from collector.simulator.recording import SAMPLE, frames_from_recording
    from tests.helpers import expected_upbit, stored_books

    frames, symbols = frames_from_recording(read_lines([SAMPLE]))
    assert symbols == {"upbit": ["LAMB", "WAVES"]} and sum(map(len, frames["upbit"].values())) == 113
    db = tmp_path / "sample.db"
    done = subprocess.run([sys.executable, "-m", "collector.simulator", "--sample", "--demo", "4",
                           "--interval", "0.005", "--db", str(db), "--log-dir", str(tmp_path / "logs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "then: python run_controller.py --exchanges upbit --symbols LAMB,WAVES" in done.stdout
    stored = stored_books(db, "UPBIT")
    assert stored == {s: expected_upbit(frames["upbit"][f"KRW-{s}"]) for s in ("LAMB", "WAVES")}

    replayed = tmp_path / "replayed.db"  # the same recording straight through the replay
    done = subprocess.run([sys.executable, "-m", "collector.replay", str(SAMPLE), "--db", str(replayed)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stored_books(replayed, "UPBIT") == stored


def test_frames_from_a_recording_of_every_served_exchange():
    from collector.record import encode_payload
    from collector.simulator.frames import fixture_text
    from collector.simulator.recording import frames_from_recording

    coinone = fixture_text("coinone/ws_orderbook_docs.json")
    korbit = fixture_text("korbit/ws_orderbook_snapshot_wire_2026-09_trimmed.json")
    bithumb = fixture_text("bithumb/rest_orderbook_v1_recorded_2025-08.json")
    upbit = fixture_text("upbit/ws_orderbook_default_docs.json")
    lines = [
        {"ex": "COINONE", "d": "in", "t": 1, **encode_payload(fixture_text("coinone/ws_connected_wire_2026-09.json"))},
        {"ex": "COINONE", "d": "in", "t": 2, **encode_payload(coinone)},
        {"ex": "KORBIT", "d": "in", "t": 3, **encode_payload(korbit)},
        {"ex": "BITHUMB", "d": "in", "t": 4, "status": 200, **encode_payload(bithumb.encode())},
        {"ex": "BITHUMB", "d": "in", "t": 5, "status": 429, **encode_payload(b"{}")},
        {"ex": "UPBIT", "d": "in", "t": 6, **encode_payload(upbit.encode())},
        {"ex": "UPBIT", "d": "out", "t": 7, **encode_payload("PING")},
        {"ex": "GOPAX", "d": "in", "t": 8, **encode_payload(fixture_text("gopax/ws_orderbook_delta_docs.json"))},
    ]
    frames, symbols = frames_from_recording(lines)
    assert frames["coinone"] == {"XRP": [coinone]}
    assert list(frames["korbit"]) == ["btc_krw"] and frames["korbit"]["btc_krw"] == [korbit]
    assert [b["market"] for books in frames["bithumb"].values() for b in books] == ["KRW-BTC"]
    assert frames["upbit"] == {"KRW-BTC": [upbit]}
    assert "gopax" not in frames and symbols == {"coinone": ["XRP"], "korbit": ["BTC"],
                                                  "bithumb": ["BTC"], "upbit": ["BTC"]}
