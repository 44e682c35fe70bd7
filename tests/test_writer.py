import logging
import sqlite3
import threading
import time

import pytest

from core.errors import StorageError
from core.model import FeedEvent, OrderBookSnapshot, Ticker, Trade
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
    """The batch in hand and everything still queued are counted lost when the stop deadline
    passes, and a record submitted after that too: stored + lost == submitted."""
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db, busy_timeout_ms=20, retry_delay=0.02, batch_size=2)
    writer.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.ERROR, "collector.writer")
    for i in range(7):
        writer.submit(book(i))
    started = time.monotonic()
    assert writer.stop(0.5)
    assert time.monotonic() - started < 5  # bounded: not one give-up window per batch
    writer.submit(book(8))  # a controller that stopped late
    blocker.close()
    assert writer.stats.lost["UPBIT"] == 8 and writer.stats.stored_books["UPBIT"] == 0
    assert "7 records NOT stored (7 books" in caplog.text and "5 of them were still queued" in caplog.text


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
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'orderbook'").fetchone() == ("view",)
    assert sorted(conn.execute("SELECT * FROM orderbook WHERE snapshot_id <= 3")) == sorted(flat)
    assert conn.execute("SELECT MAX(snapshot_id) FROM book").fetchone() == (4,)
    conn.close()
    after = stored_books(db, "UPBIT")
    assert after["BTC"] == before["BTC"] + [(book(4).timestamp, book(4).bids, book(4).asks)]
    assert after["ETH"] == before["ETH"]


def test_a_record_the_database_refuses_does_not_hold_back_the_others(tmp_path, caplog):
    """A NaN price (stored as NULL: a NOT NULL violation), a ticker without a last price and a
    trade with a NaN volume among good records: the good ones are stored, in order, with their
    events; the bad ones are set aside, logged with their market and counted as rejected (in
    the stats and ``feed_status``); the writer goes on storing."""
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db, batch_size=100)
    caplog.set_level(logging.WARNING, "collector.writer")
    nan = float("nan")
    poisoned = book(3, symbol="ETH")._replace(bids=((nan, 1.0),))
    good = [book(i) for i in range(6)]
    records = [*good[:3], poisoned, *good[3:],
               Ticker("UPBIT", "BTC", "KRW", 1, 2, None, *([None] * 7)),
               Ticker("UPBIT", "BTC", "KRW", 1, 2, 100.0, *([None] * 7)),
               Trade("UPBIT", "BTC", "KRW", 1, 2, "t1", 100.0, nan, "buy"),
               Trade("UPBIT", "BTC", "KRW", 1, 2, "t2", 100.0, 1.0, "buy")]
    for record in records:  # queued before the thread starts: one batch
        assert writer.submit(record)
    writer.submit_event(FeedEvent("UPBIT", "BTC", "KRW", 5, "connected", "first connection"))
    writer.submit_status([{"exchange": "UPBIT", "state": "connected", "connected_since": None,
                           "messages": 9, "heartbeats": 0, "books": 7, "duplicates": 0, "stale": 0,
                           "errors": 0, "reconnects": 0, "stalls": 0, "last_message_at": None,
                           "last_data_at": None}])
    writer.start()
    time.sleep(0.5)
    writer.submit(book(9))  # the writer still stores after the refused batch
    assert writer.stop()
    assert stored_books(db, "UPBIT") == {"BTC": [(b.timestamp, b.bids, b.asks) for b in [*good, book(9)]]}
    assert writer.stats.stored_books["UPBIT"] == 7 and writer.stats.rejected["UPBIT"] == 3
    assert writer.stats.stored_tickers["UPBIT"] == 1 and writer.stats.stored_trades["UPBIT"] == 1
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT trade_id FROM trade").fetchall() == [("t2",)]
    assert conn.execute("SELECT COUNT(*) FROM market WHERE symbol = 'ETH'").fetchone() == (0,)
    assert conn.execute("SELECT rejected, stored_books FROM feed_status").fetchone() == (3, 7)
    assert [e[3] for e in events(db)] == ["connected"]
    assert "OrderBookSnapshot UPBIT-ETH-KRW refused by the database" in caplog.text
    assert "Ticker UPBIT-BTC-KRW refused" in caplog.text and "Trade UPBIT-BTC-KRW refused" in caplog.text


def test_a_refused_record_is_rejected_while_operational_errors_still_retry(tmp_path):
    """A bad record arriving while the database is locked: the batch waits for the lock (not
    rejected for it), then only the bad record is set aside."""
    db = tmp_path / "ob.db"
    writer = SQLiteWriter(db, busy_timeout_ms=20, retry_delay=0.02)
    blocker = sqlite3.connect(db, isolation_level=None)
    writer.start()
    blocker.execute("BEGIN IMMEDIATE")
    writer.submit(book(1))
    writer.submit(book(2)._replace(asks=((float("nan"), 1.0),)))
    writer.submit(book(3))
    time.sleep(0.3)
    assert writer.stats.write_errors >= 1 and not writer.stats.rejected
    blocker.execute("ROLLBACK")
    assert writer.stop()
    assert [b[0] for b in stored_books(db, "UPBIT")["BTC"]] == [book(1).timestamp, book(3).timestamp]
    assert writer.stats.rejected["UPBIT"] == 1 and not writer.stats.lost


def test_a_version_4_file_is_migrated_in_place(tmp_path):
    """A version 4 file (the old kind check of ``feed_event``, no ``rejected``, no ``run``) takes
    the new event kinds after it is opened, with its rows kept."""
    db = tmp_path / "ob.db"
    old = sqlite3.connect(db)
    old.executescript("""
        CREATE TABLE feed_event (event_id INTEGER PRIMARY KEY, exchange TEXT NOT NULL, symbol TEXT,
            currency TEXT, timestamp INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('connected', 'disconnected', 'stale', 'resync',
                                               'subscribe_failed', 'dropped')),
            detail TEXT NOT NULL, next_snapshot_id INTEGER NOT NULL);
        INSERT INTO feed_event VALUES (1, 'UPBIT', 'BTC', 'KRW', 5, 'connected', 'first', 1);
        CREATE TABLE feed_status (exchange TEXT PRIMARY KEY, state TEXT NOT NULL,
            connected_since INTEGER, messages INTEGER NOT NULL, heartbeats INTEGER NOT NULL,
            books INTEGER NOT NULL, stored_books INTEGER NOT NULL, stored_rows INTEGER NOT NULL,
            duplicates INTEGER NOT NULL, stale INTEGER NOT NULL, errors INTEGER NOT NULL,
            dropped INTEGER NOT NULL, lost INTEGER NOT NULL, reconnects INTEGER NOT NULL,
            stalls INTEGER NOT NULL, last_message_at INTEGER, last_data_at INTEGER,
            updated_at INTEGER NOT NULL);
        INSERT INTO feed_status VALUES ('UPBIT', 'stopped', NULL, 1, 0, 1, 1, 2, 0, 0, 0, 0, 0, 0,
                                        0, NULL, NULL, 9);
        PRAGMA user_version = 4;
    """)
    old.close()
    conn = open_database(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    conn.execute("INSERT INTO feed_event (exchange, timestamp, kind, detail, next_snapshot_id) "
                 "VALUES ('UPBIT', 6, 'restarted', 'x', 1)")
    assert conn.execute("SELECT event_id, kind FROM feed_event").fetchall() == [(1, "connected"),
                                                                                  (2, "restarted")]
    assert conn.execute("SELECT exchange, rejected, stored_rows FROM feed_status").fetchall() == [
        ("UPBIT", 0, 2)]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO feed_event (exchange, timestamp, kind, detail, next_snapshot_id) "
                     "VALUES ('UPBIT', 6, 'nonsense', 'x', 1)")
    assert conn.execute("SELECT COUNT(*) FROM run").fetchone() == (0,)


def test_a_rotating_path_moves_to_a_new_file_each_period_and_keeps_the_newest(tmp_path):
    """``data/ob-%Y%m%d%H.db``: a new file when the UTC hour changes, between transactions; each
    file holds its own books, markets and a run closed as clean; ``keep`` deletes older files."""
    clock = {"now": 1_790_000_000.0}  # 2026-09-21 14:13:20 UTC
    writer = SQLiteWriter(tmp_path / "ob-%Y%m%d%H.db", keep=2, clock=lambda: clock["now"])
    writer.start(markets=[("UPBIT", "BTC", "KRW")])
    names = []
    for hour in range(3):
        for i in range(5):
            assert writer.submit(book(100 * hour + i))
        deadline = time.monotonic() + 10
        while sum(writer.stats.stored_books.values()) < 5 * (hour + 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        names.append(writer.path.name)
        clock["now"] += 3600
    writer.stop()
    assert names == ["ob-2026092114.db", "ob-2026092115.db", "ob-2026092116.db"]
    assert sorted(p.name for p in tmp_path.glob("ob-*.db")) == names[1:]  # keep=2
    for name in names[1:]:
        conn = sqlite3.connect(tmp_path / name)
        assert conn.execute("SELECT COUNT(*) FROM book").fetchone() == (5,)
        assert conn.execute("SELECT COUNT(*) FROM orderbook WHERE exchange = 'UPBIT'").fetchone()[0] > 0
        assert conn.execute("SELECT clean FROM run").fetchall() == [(1,)]
        assert conn.execute("SELECT COUNT(*) FROM feed_event WHERE kind = 'restarted'").fetchone() == (0,)
        conn.close()
    assert sum(writer.stats.stored_books.values()) == 15 and not writer.stats.lost


def test_keep_needs_a_rotating_db(tmp_path, capsys):
    from collector.cli import main
    assert main(["--db", str(tmp_path / "plain.db"), "--keep", "3"]) == 2
    assert "--keep needs a rotating --db" in capsys.readouterr().err
