import logging
import re

from core.logs import FeedLogger, setup_logging

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[(INFO|WARNING|ERROR)\] \[([A-Z0-9-]+)\] (.*)$")


def lines(path):
    return [LINE.match(line).groups() for line in path.read_text().splitlines()]


def flush():
    for handler in logging.getLogger("collector").handlers:
        handler.flush()


def test_an_exchange_has_one_file_with_its_markets_in_the_tags(tmp_path):
    setup_logging(tmp_path, console=False)
    feed = FeedLogger("UPBIT", ["UPBIT-BTC-KRW", "UPBIT-ETH-KRW"])
    FeedLogger("BITHUMB", ["BITHUMB-BTC-KRW"]).error("timeout", market="BITHUMB-BTC-KRW")
    feed.info("connected to %s", "wss://example")
    feed.warning("parse error: bad", market="UPBIT-ETH-KRW")
    logging.getLogger("collector.record").info("recording", extra={"tag": "RECORD"})
    flush()
    assert lines(tmp_path / "collector.log") == [
        ("ERROR", "BITHUMB-BTC-KRW", "timeout"),
        ("INFO", "UPBIT", "connected to wss://example"),
        ("WARNING", "UPBIT-ETH-KRW", "parse error: bad"),
        ("INFO", "RECORD", "recording"),
    ]
    assert lines(tmp_path / "UPBIT.log") == [
        ("INFO", "UPBIT", "connected to wss://example"),
        ("WARNING", "UPBIT-ETH-KRW", "parse error: bad"),
    ]
    assert lines(tmp_path / "BITHUMB.log") == [("ERROR", "BITHUMB-BTC-KRW", "timeout")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BITHUMB.log", "UPBIT.log", "collector.log"]


def test_per_market_files_on_request_get_connection_lines_too(tmp_path):
    setup_logging(tmp_path, console=False, per_market=True)
    feed = FeedLogger("UPBIT", ["UPBIT-BTC-KRW", "UPBIT-ETH-KRW"])
    feed.info("connected to %s", "wss://example")
    feed.warning("parse error: bad", market="UPBIT-ETH-KRW")
    flush()
    assert lines(tmp_path / "UPBIT-BTC-KRW.log") == [("INFO", "UPBIT-BTC-KRW", "connected to wss://example")]
    assert lines(tmp_path / "UPBIT-ETH-KRW.log") == [
        ("INFO", "UPBIT-ETH-KRW", "connected to wss://example"),
        ("WARNING", "UPBIT-ETH-KRW", "parse error: bad"),
    ]
    assert lines(tmp_path / "UPBIT.log") == [
        ("INFO", "UPBIT", "connected to wss://example"),
        ("WARNING", "UPBIT-ETH-KRW", "parse error: bad"),
    ]


def test_per_market_files_keep_a_bounded_number_open_and_lose_no_line(tmp_path):
    root = setup_logging(tmp_path, console=False, per_market=True, market_files_open=3)
    router = root.handlers[2]
    tags = [f"KORBIT-C{i}-KRW" for i in range(10)]
    feed = FeedLogger("KORBIT", tags)
    for round_ in range(3):
        for tag in tags:
            feed.info("round %d", round_, market=tag)
            assert router.open_files <= 3
    feed.info("all markets")  # every market's file, three open at a time
    assert router.open_files == 3
    flush()
    for tag in tags:
        assert lines(tmp_path / f"{tag}.log") == [
            ("INFO", tag, "round 0"), ("INFO", tag, "round 1"), ("INFO", tag, "round 2"),
            ("INFO", tag, "all markets")]
    assert len(lines(tmp_path / "KORBIT.log")) == 31


def test_files_rotate_with_one_handler_each(tmp_path):
    root = setup_logging(tmp_path, max_bytes=400, backup_count=2, console=False, per_market=True)
    root = setup_logging(tmp_path, max_bytes=400, backup_count=2, console=False, per_market=True)
    assert len(root.handlers) == 3  # the process file, the exchange and the market routers
    feed = FeedLogger("BITHUMB", ["BITHUMB-BTC-KRW"])
    for i in range(40):
        feed.info("line %d with some padding to fill the file", i, market="BITHUMB-BTC-KRW")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["BITHUMB-BTC-KRW.log", "BITHUMB-BTC-KRW.log.1", "BITHUMB-BTC-KRW.log.2",
                     "BITHUMB.log", "BITHUMB.log.1", "BITHUMB.log.2",
                     "collector.log", "collector.log.1", "collector.log.2"]
    assert lines(tmp_path / "BITHUMB-BTC-KRW.log")[-1] == ("INFO", "BITHUMB-BTC-KRW",
                                                      "line 39 with some padding to fill the file")
    assert lines(tmp_path / "BITHUMB.log")[-1] == ("INFO", "BITHUMB-BTC-KRW",
                                                  "line 39 with some padding to fill the file")
