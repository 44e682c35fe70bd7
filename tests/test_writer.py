import logging
import sqlite3
import threading
import time

import pytest

from core.errors import StorageError
from core.model import FeedEvent, OrderBookSnapshot
from storage import SCHEMA_VERSION, SQLiteWriter, open_database
from tests.helpers import stored_books


def book(i: int, exchange="UPBIT", symbol="BTC") -> OrderBookSnapshot:
    return OrderBookSnapshot(exchange, symbol, "KRW", 1_700_000_000_000 + i, 1_700_000_000_005 + i,
                             bids=((100.0 - i, 1.0 + i), (99.0 - i, 2.0)),
                             asks=((101.0 + i, 0.5), (102.0 + i, 0.25), (103.0, 0.125)))


def test_writer_stores_every_level_and_drains_on_stop(tmp_path):
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db, batch_size=7)
    writer.start()
    books = [book(i) for i in range(50)]
    for b in books:
        assert writer.submit(b)
    assert writer.stop(10)
    assert stored_books(db, "UPBIT")["BTC"] == [(b.timestamp, b.bids, b.asks) for b in books]
    assert writer.stats.stored_books["UPBIT"] == 50 and writer.stats.stored_rows["UPBIT"] == 250
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = conn.execute("SELECT * FROM orderbook WHERE side='ask' AND level=1 ORDER BY snapshot_id LIMIT 1").fetchone()
    assert row == (1, "UPBIT", "BTC", "KRW", 1_700_000_000_000, 1_700_000_000_005, "ask", 1, 102.0, 0.25)
    assert conn.execute("SELECT COUNT(DISTINCT snapshot_id) FROM orderbook").fetchone()[0] == 50
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM orderbook WHERE exchange='UPBIT' AND symbol='BTC' "
        "AND currency='KRW' AND timestamp BETWEEN 1 AND 2"))
    # the view's query goes market -> book by (market_id, timestamp) -> levels by primary key
    assert "sqlite_autoindex_market_1" in plan and "book_market_time" in plan
    assert "SEARCH l USING PRIMARY KEY (snapshot_id=?)" in plan


def test_snapshot_ids_continue_across_runs(tmp_path):
    db = tmp_path / "ob.db"
    for run in range(2):
        writer = SQLiteWriter(db)
        writer.start()
        writer.submit(book(run))
        writer.stop()
    ids = sqlite3.connect(db).execute("SELECT DISTINCT snapshot_id FROM orderbook ORDER BY 1").fetchall()
    assert ids == [(1,), (2,)]


def test_full_queue_drops_are_counted_and_logged(tmp_path, caplog):
    writer = SQLiteWriter(tmp_path / "ob.db", queue_size=3)  # not started: nothing drains
    caplog.set_level(logging.ERROR, "collector.writer")
    results = [writer.submit(book(i, exchange="BITHUMB")) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert writer.stats.dropped["BITHUMB"] == 2
    assert "queue full" in caplog.text and "BITHUMB-BTC-KRW" in caplog.text


def test_writer_waits_out_a_locked_database(tmp_path, caplog):
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db, busy_timeout_ms=50, retry_delay=0.05)
    writer.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    caplog.set_level(logging.WARNING, "collector.writer")
    writer.submit(book(1))
    time.sleep(0.5)
    assert writer.stats.write_errors >= 1 and writer.stats.stored_books["UPBIT"] == 0
    blocker.execute("ROLLBACK")
    blocker.close()
    assert writer.stop(10)
    assert writer.stats.stored_books["UPBIT"] == 1
    assert "cannot write 1 books" in caplog.text and "after" in caplog.text


def test_books_still_failing_at_shutdown_are_reported_lost(tmp_path, caplog):
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db, busy_timeout_ms=20, retry_delay=0.02, stop_retry_seconds=0.3)
    writer.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.ERROR, "collector.writer")
    writer.submit(book(1))
    writer.submit(book(2))
    assert writer.stop(10)
    blocker.close()
    assert writer.stats.lost["UPBIT"] == 2
    assert "books NOT stored" in caplog.text


def test_unusable_path_is_a_storage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot create folder"):
        open_database(tmp_path / "file" / "ob.db")
    (tmp_path / "not.db").write_text("this is not a database" * 100)
    with pytest.raises(StorageError):
        open_database(tmp_path / "not.db")


def test_submit_from_many_threads(tmp_path):
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db)
    writer.start()
    threads = [threading.Thread(target=lambda s=s: [writer.submit(book(i, symbol=s)) for i in range(200)])
               for s in ("BTC", "ETH", "XRP")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()
    stored = stored_books(db, "UPBIT")
    assert {s: len(v) for s, v in stored.items()} == {"BTC": 200, "ETH": 200, "XRP": 200}
    assert all(v == [(b.timestamp, b.bids, b.asks) for b in map(book, range(200))] for v in stored.values())


def events(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT exchange, symbol, currency, kind, detail, next_snapshot_id "
                            "FROM feed_event ORDER BY event_id").fetchall()
    finally:
        conn.close()


def test_an_event_names_the_first_book_submitted_after_it(tmp_path):
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db)
    writer.submit(book(1))  # submitted before start: ids still follow the submit order
    writer.start()
    writer.submit(book(2))
    writer.submit_event(FeedEvent("UPBIT", "BTC", "KRW", 1_700_000_000_100, "disconnected", "code 1006"))
    writer.submit_event(FeedEvent("UPBIT", "BTC", "KRW", 1_700_000_000_200, "connected", "reconnected"))
    writer.submit(book(3))
    writer.submit_event(FeedEvent("UPBIT", None, None, 1_700_000_000_300, "disconnected", "collector stopping"))
    assert writer.stop()
    conn = sqlite3.connect(db)
    ids = [r[0] for r in conn.execute("SELECT DISTINCT snapshot_id FROM orderbook ORDER BY 1")]
    after = conn.execute("SELECT DISTINCT o.timestamp FROM orderbook o JOIN feed_event e "
                         "ON o.snapshot_id >= e.next_snapshot_id AND e.kind = 'connected'").fetchall()
    conn.close()
    assert ids == [1, 2, 3]
    assert events(db) == [("UPBIT", "BTC", "KRW", "disconnected", "code 1006", 3),
                          ("UPBIT", "BTC", "KRW", "connected", "reconnected", 3),
                          ("UPBIT", None, None, "disconnected", "collector stopping", 4)]
    assert after == [(book(3).timestamp,)]
    assert writer.stats.stored_events == 3


def test_disk_full_keeps_a_bounded_queue_and_records_what_it_dropped(tmp_path, caplog):
    """While the database refuses writes the queue fills; books beyond it are dropped, counted
    per exchange and recorded as ``dropped`` events once writes succeed again. Nothing else is
    lost: stored + dropped = submitted."""
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db, queue_size=50, batch_size=10, retry_delay=0.05)
    writer.start()
    caplog.set_level(logging.WARNING, "collector.writer")
    conn = sqlite3.connect(db)
    writer.set_max_page_count(conn.execute("PRAGMA page_count").fetchone()[0])
    for i in range(200):
        writer.submit(book(i, exchange="UPBIT" if i % 2 else "COINONE", symbol="BTC" if i % 4 < 2 else "ETH"))
    time.sleep(0.5)
    stored_while_full = sum(writer.stats.stored_books.values())  # what fit in the free pages
    assert writer.stats.write_errors >= 1
    time.sleep(0.3)
    assert sum(writer.stats.stored_books.values()) == stored_while_full  # no progress while full
    assert writer.pending <= 50
    writer.set_max_page_count(None)
    assert writer.stop()
    stored = sum(writer.stats.stored_books.values())
    dropped = writer.stats.dropped
    assert stored + sum(dropped.values()) == 200
    assert stored <= stored_while_full + 50 + 10  # the queue and the batch being retried
    recorded = {}
    for exchange, symbol, currency, kind, detail, _ in events(db):
        assert kind == "dropped" and currency == "KRW" and "writer queue full" in detail
        recorded[exchange] = recorded.get(exchange, 0) + int(detail.split()[0])
    assert recorded == dict(dropped)
    assert "database or disk is full" in caplog.text and "queue full (50 books waiting)" in caplog.text
    stored_rows = conn.execute("SELECT COUNT(DISTINCT snapshot_id) FROM orderbook").fetchone()[0]
    conn.close()
    assert stored_rows == stored


def test_status_rows_get_the_writers_final_counts(tmp_path):
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db)
    writer.start()
    writer.submit_status([{"exchange": "UPBIT", "state": "connected", "connected_since": 1, "messages": 5,
                           "heartbeats": 1, "books": 3, "duplicates": 1, "stale": 0, "errors": 0,
                           "reconnects": 0, "stalls": 0, "last_message_at": 2, "last_data_at": 2}])
    for i in range(3):
        writer.submit(book(i))
    assert writer.stop()
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT state, messages, stored_books, stored_rows, dropped, lost, updated_at "
                       "FROM feed_status").fetchall()
    conn.close()
    assert len(row) == 1 and row[0][:6] == ("connected", 5, 3, 15, 0, 0) and row[0][6] > 1.7e12


def test_a_version_2_file_is_converted_in_place_and_reads_the_same(tmp_path):
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript("""
        CREATE TABLE orderbook (snapshot_id INTEGER NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL,
            currency TEXT NOT NULL, timestamp INTEGER NOT NULL, received_at INTEGER NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('bid', 'ask')), level INTEGER NOT NULL,
            price REAL NOT NULL, volume REAL NOT NULL);
        CREATE INDEX orderbook_market_time ON orderbook (exchange, symbol, currency, timestamp);
        PRAGMA user_version = 2;
    """)
    flat = []
    for sid, b in enumerate([book(1), book(2, symbol="ETH"), book(3, exchange="BITHUMB")], 1):
        head = (sid, b.exchange, b.base, b.quote, b.timestamp, b.received_at)
        flat += [(*head, "bid", i, p, v) for i, (p, v) in enumerate(b.bids)]
        flat += [(*head, "ask", i, p, v) for i, (p, v) in enumerate(b.asks)]
    old.executemany("INSERT INTO orderbook VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", flat)
    old.commit()
    old.close()
    before = stored_books(db, "UPBIT")
    writer = SQLiteWriter(db)
    writer.start()
    writer.submit(book(4))
    assert writer.stop()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'orderbook'").fetchone() == ("view",)
    assert sorted(conn.execute("SELECT * FROM orderbook WHERE snapshot_id <= 3")) == sorted(flat)
    assert conn.execute("SELECT MAX(snapshot_id) FROM book").fetchone() == (4,)
    conn.close()
    after = stored_books(db, "UPBIT")
    assert after["BTC"] == before["BTC"] + [(book(4).timestamp, book(4).bids, book(4).asks)]
    assert after["ETH"] == before["ETH"]
