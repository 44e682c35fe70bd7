import logging
import re

from core.logs import FeedLogger, setup_logging

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[(INFO|WARNING|ERROR)\] \[([A-Z0-9-]+)\] (.*)$")


def lines(path):
    return [LINE.match(line).groups() for line in path.read_text().splitlines()]


def test_market_lines_go_to_their_file_and_connection_lines_to_every_market(tmp_path):
    setup_logging(tmp_path, console=False)
    feed = FeedLogger("UPBIT", ["UPBIT-BTC-KRW", "UPBIT-ETH-KRW"])
    feed.info("connected to %s", "wss://example")
    feed.warning("parse error: bad", market="UPBIT-ETH-KRW")
    logging.getLogger("collector").handlers[0].flush()
    assert lines(tmp_path / "collector.log") == [
        ("INFO", "UPBIT", "connected to wss://example"),
        ("WARNING", "UPBIT-ETH-KRW", "parse error: bad"),
    ]
    assert lines(tmp_path / "UPBIT-BTC-KRW.log") == [("INFO", "UPBIT-BTC-KRW", "connected to wss://example")]
    assert lines(tmp_path / "UPBIT-ETH-KRW.log") == [
        ("INFO", "UPBIT-ETH-KRW", "connected to wss://example"),
        ("WARNING", "UPBIT-ETH-KRW", "parse error: bad"),
    ]


def test_files_rotate_with_one_handler_each(tmp_path):
    root = setup_logging(tmp_path, max_bytes=400, backup_count=2, console=False)
    root = setup_logging(tmp_path, max_bytes=400, backup_count=2, console=False)  # set up twice
    assert len(root.handlers) == 2  # the process file and the market router, not four
    feed = FeedLogger("BITHUMB", ["BITHUMB-BTC-KRW"])
    for i in range(40):
        feed.info("line %d with some padding to fill the file", i, market="BITHUMB-BTC-KRW")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["BITHUMB-BTC-KRW.log", "BITHUMB-BTC-KRW.log.1", "BITHUMB-BTC-KRW.log.2",
                     "collector.log", "collector.log.1", "collector.log.2"]
    assert lines(tmp_path / "BITHUMB-BTC-KRW.log")[-1] == ("INFO", "BITHUMB-BTC-KRW",
                                                      "line 39 with some padding to fill the file")
