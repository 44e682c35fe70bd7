import json

import pytest

from core.errors import ConfigError, StorageError
from exporter import DataConverter, parse_time
from exporter.cli import main as export_main
from storage import SQLiteWriter
from tests.test_writer import book


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "ob.db"
    writer = SQLiteWriter(path)
    writer.start()
    # submitted out of time order on purpose: the export is in time order
    for i in (3, 1, 2):
        writer.submit(book(i, "UPBIT", "BTC"))
    writer.submit(book(0, "UPBIT", "ETH"))
    writer.submit(book(5, "BITHUMB", "BTC"))
    writer.stop()
    return path


def as_export(b):
    return {"exchange": b.exchange, "symbol": b.base, "currency": b.quote,
            "timestamp": b.timestamp, "received_at": b.received_at,
            "bids": [list(level) for level in b.bids], "asks": [list(level) for level in b.asks]}


def test_export_writes_one_json_array_per_exchange_in_time_order(db, tmp_path):
    out = tmp_path / "out"
    assert export_main(["--db", str(db), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["BITHUMB.json", "UPBIT.json"]
    upbit = json.loads((out / "UPBIT.json").read_text())
    assert upbit == [as_export(book(0, "UPBIT", "ETH"))] + [as_export(book(i)) for i in (1, 2, 3)]
    assert json.loads((out / "BITHUMB.json").read_text()) == [as_export(book(5, "BITHUMB"))]


def test_export_filters_and_ndjson(db, tmp_path):
    out = tmp_path / "out"
    since = "2023-11-14T22:13:20.002Z"  # = 1_700_000_000_002 ms
    assert parse_time(since) == 1_700_000_000_002
    assert export_main(["--db", str(db), "--out", str(out), "--exchange", "upbit", "--symbol", "btc",
                        "--since", since, "--until", "1700000000003", "--format", "ndjson"]) == 0
    lines = (out / "UPBIT.ndjson").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [as_export(book(2)), as_export(book(3))]
    assert not (out / "BITHUMB.ndjson").exists()


def test_iter_books_streams_books(db):
    with DataConverter(db) as converter:
        books = converter.iter_books("UPBIT", symbol="BTC")
        assert next(books) == as_export(book(1))
        assert converter.exchanges() == ["BITHUMB", "UPBIT"]


def test_empty_export_is_an_empty_array(db, tmp_path):
    with DataConverter(db) as converter:
        [result] = converter.export(tmp_path / "o", exchange="UPBIT", since=2_000_000_000_000)
    assert result.books == 0 and json.loads(result.path.read_text()) == []


def test_bad_input_gives_one_line_errors(db, tmp_path, capsys):
    assert export_main(["--db", str(tmp_path / "missing.db"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no database" in err
    assert export_main(["--db", str(db), "--since", "yesterday"]) == 2
    assert "bad time" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="bad exchange name"), DataConverter(db) as converter:
        converter.export(tmp_path / "o", exchange="../../etc")
    (tmp_path / "o").mkdir(exist_ok=True)
    outside = tmp_path / "outside.json"
    (tmp_path / "o" / "UPBIT.json").symlink_to(outside)
    with pytest.raises(ConfigError, match="symbolic link"), DataConverter(db) as converter:
        converter.export(tmp_path / "o", exchange="UPBIT")
    assert not outside.exists()
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StorageError):
        DataConverter(tmp_path / "empty.db")


def strict_json(text):
    """``json.loads`` that refuses ``NaN``/``Infinity`` as strict parsers do."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_an_old_file_holding_infinity_stops_the_export_naming_the_row(db, tmp_path, capsys, fmt):
    import sqlite3
    with sqlite3.connect(db) as conn:  # as a collector before the checks of values stored it
        conn.execute("UPDATE book_level SET price = 9e999 WHERE side = 1 AND snapshot_id = (SELECT"
                     " snapshot_id FROM orderbook WHERE exchange = 'UPBIT' AND symbol = 'BTC' AND"
                     " timestamp = 1700000000002)")
        assert conn.execute("SELECT count(*) FROM orderbook WHERE price = 9e999").fetchone()[0]
    out = tmp_path / "out"
    assert export_main(["--db", str(db), "--out", str(out), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert "'exchange': 'UPBIT', 'symbol': 'BTC', 'currency': 'KRW', 'timestamp': 1700000000002" in err
    assert "holds a NaN or an infinity" in err
    assert not (out / f"UPBIT.{fmt}").exists()  # no half-written file
    bithumb = (out / f"BITHUMB.{fmt}").read_text()  # written before UPBIT, and strict JSON
    assert [strict_json(line) for line in bithumb.splitlines() if fmt == "ndjson"] or strict_json(bithumb)


def test_an_old_ticker_row_holding_nan_stops_its_export(tmp_path):
    import sqlite3
    from core.model import Ticker
    path = tmp_path / "t.db"
    writer = SQLiteWriter(path)
    writer.start()
    writer.submit(Ticker("OKX", "BTC", "USDT", 1_700_000_000_000, 1_700_000_000_001, 100.0, None,
                         None, None, None, 5.0, None))
    writer.stop()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE ticker SET base_volume = -9e999")
    with DataConverter(path) as converter, pytest.raises(StorageError, match=(
            r"row \{'exchange': 'OKX', 'symbol': 'BTC', 'currency': 'USDT', "
            r"'timestamp': 1700000000000\} holds a NaN or an infinity")):
        converter.export(tmp_path / "out", table="ticker")
    assert not (tmp_path / "out" / "OKX.ticker.json").exists()
