"""``--record`` then ``python -m collector.replay``: the replay stores what the live run stored."""

from __future__ import annotations

import gzip
import json
import sqlite3

import pytest

from collector.record import decode_payload, encode_payload
from collector.replay import main as replay_main
from tests.test_faults import BOTH, Run, servers


pytestmark = pytest.mark.usefixtures("quick_retries")


def rows(db, table: str, columns: str, order: str) -> dict:
    conn = sqlite3.connect(db)
    try:
        result: dict = {}
        for row in conn.execute(f"SELECT exchange, symbol, {columns} FROM {table} ORDER BY {order}"):
            result.setdefault(row[:2], []).append(row[2:])
        return result
    finally:
        conn.close()


@pytest.mark.slow
def test_replay_of_a_recorded_run_stores_the_same_rows(tmp_path, capsys):
    with servers(faults={"upbit": {60: "drop"}}, gopax={"disconnect_after": 80}) as s:
        run = Run(tmp_path, s, record_dir=tmp_path / "rec").start()
        summary = run.finish()
    files = sorted((tmp_path / "rec").glob("rec-*.ndjson.gz"))
    assert files and run.collector.recorder.lines > 0
    lines = [json.loads(t) for f in files for t in gzip.open(f, "rt")]
    kinds = {(line["ex"], line["d"]) for line in lines}
    for exchange in ("UPBIT", "COINONE", "KORBIT", "GOPAX"):
        assert {(exchange, d) for d in ("meta", "open", "in", "out", "close")} <= kinds, exchange
    assert ("BITHUMB", "in") in kinds and all(l["status"] == 200 for l in lines if l["ex"] == "BITHUMB" and l["d"] == "in")
    assert any(l["ex"] == "UPBIT" and l["d"] == "in" and l.get("bin") for l in lines)  # binary frames

    replayed = tmp_path / "replay.db"
    assert replay_main([*map(str, files), "--db", str(replayed)]) == 0
    out = capsys.readouterr().out
    book_columns = "snapshot_id, timestamp, received_at, side, level, price, volume"
    live = rows(run.db, "orderbook", book_columns, "snapshot_id, side DESC, level")
    again = rows(replayed, "orderbook", book_columns, "snapshot_id, side DESC, level")
    assert set(live) == set(again) == {(e, sym) for e in ("UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX")
                                       for sym in BOTH["upbit"]}
    for market in live:  # snapshot ids differ (another interleaving of exchanges), the books not
        assert [r[1:] for r in again[market]] == [r[1:] for r in live[market]], market
    for exchange, item in summary.items():
        assert f"{exchange}: messages=" in out and f"stored={item.stored_books} " in out, exchange
    kinds_live = rows(run.db, "feed_event", "kind", "event_id")
    kinds_again = rows(replayed, "feed_event", "kind", "event_id")
    assert kinds_again == kinds_live  # the same connects, disconnects and GOPAX resyncs


def test_payload_encoding_round_trips():
    for payload in ("text", b'{"binary": "utf-8"}', b"\xff\xfe not utf-8"):
        assert decode_payload(encode_payload(payload)) == payload


def test_bad_recordings_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "bad.ndjson").write_text("not json\n")
    assert replay_main([str(tmp_path / "bad.ndjson"), "--db", str(tmp_path / "x.db")]) == 2
    assert "bad.ndjson:1: not a JSON line" in capsys.readouterr().err
    (tmp_path / "orphan.ndjson").write_text(json.dumps({"t": 1, "ex": "UPBIT", "c": 1, "d": "in", "p": "{}"}) + "\n")
    assert replay_main([str(tmp_path / "orphan.ndjson"), "--db", str(tmp_path / "x.db")]) == 2
    assert "before the UPBIT meta line" in capsys.readouterr().err
    assert replay_main([str(tmp_path / "missing.ndjson.gz"), "--db", str(tmp_path / "x.db")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_speed_is_max_or_a_positive_factor(tmp_path, capsys):
    for bad in ("abc", "0", "-1"):
        with pytest.raises(SystemExit) as exit_info:
            replay_main([str(tmp_path / "x.ndjson"), "--db", str(tmp_path / "x.db"), "--speed", bad])
        assert exit_info.value.code == 2
    assert "must be positive: '-1'" in capsys.readouterr().err
