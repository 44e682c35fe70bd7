"""A controller's health on its own: no controller, no socket."""

import logging
import threading
import time

import pytest

from core.logs import FeedLogger
from core.model import FeedEvent, Market
from controllers.health import ControllerStats, Health, wall_ms

BTC, ETH = Market("BTC", "KRW"), Market("ETH", "KRW")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink() -> list:
    return []


@pytest.fixture
def health(clock, sink) -> Health:
    log = FeedLogger("UPBIT", ["UPBIT-BTC-KRW", "UPBIT-ETH-KRW"])
    return Health("UPBIT", "UPBIT", log, events=sink.append, error_log_interval=10.0, clock=clock)


def warnings(caplog) -> list[tuple[str, str]]:
    return [(r.tag, r.getMessage()) for r in caplog.records if r.levelno == logging.WARNING]


def test_repeats_are_counted_and_the_next_line_says_how_many(health, clock, caplog):
    caplog.set_level(logging.WARNING, "collector")
    for _ in range(4):
        health.report_error("parse error", "bad frame", market="UPBIT-BTC-KRW")
    assert health.stats.errors == 4
    assert warnings(caplog) == [("UPBIT-BTC-KRW", "parse error: bad frame")]
    clock.now += 9.9
    health.report_error("parse error", "bad frame", market="UPBIT-BTC-KRW")
    assert len(warnings(caplog)) == 1
    clock.now += 0.1  # ten seconds after the line logged
    health.report_error("parse error", "bad frame", market="UPBIT-BTC-KRW")
    assert warnings(caplog)[-1] == ("UPBIT-BTC-KRW",
                                    "parse error: bad frame (4 more like it not logged)")
    clock.now += 60
    health.report_error("parse error", "bad frame", market="UPBIT-BTC-KRW")
    assert warnings(caplog)[-1] == ("UPBIT-BTC-KRW", "parse error: bad frame")
    assert health.stats.errors == 7
    assert health.last_error == "parse error: bad frame"


def test_throttling_is_per_kind_market_and_key(health, caplog):
    caplog.set_level(logging.WARNING, "collector")
    health.report_error("parse error", "one", market="UPBIT-BTC-KRW")
    health.report_error("parse error", "one", market="UPBIT-ETH-KRW")  # another market
    health.report_error("exchange error", "one", market="UPBIT-BTC-KRW")  # another kind
    health.report_error("parse error", "two", market="UPBIT-BTC-KRW")  # another detail
    health.report_error("parse error", "one")  # the whole exchange
    # the same key with another detail is a repeat
    health.report_error("parse error", "ValueError: a", key="ValueError")
    health.report_error("parse error", "ValueError: b", key="ValueError")
    assert warnings(caplog) == [
        ("UPBIT-BTC-KRW", "parse error: one"), ("UPBIT-ETH-KRW", "parse error: one"),
        ("UPBIT-BTC-KRW", "exchange error: one"), ("UPBIT-BTC-KRW", "parse error: two"),
        ("UPBIT", "parse error: one"), ("UPBIT", "parse error: ValueError: a")]
    assert health.stats.errors == 7
    assert health.last_error == "parse error: ValueError: b"


def test_events_reach_the_sink_with_base_quote_and_tag(health, sink):
    before = int(time.time() * 1000)
    health.record_event("disconnected", [BTC, ETH], "connection closed (code 1006)")
    health.record_event("stale", None, "no data for 30 s")
    assert [(e.exchange, e.base, e.quote, e.kind, e.tag) for e in sink] == [
        ("UPBIT", "BTC", "KRW", "disconnected", "UPBIT-BTC-KRW"),
        ("UPBIT", "ETH", "KRW", "disconnected", "UPBIT-ETH-KRW"),
        ("UPBIT", None, None, "stale", "UPBIT")]
    assert sink[0].detail == "connection closed (code 1006)"
    assert sink[0].timestamp == sink[1].timestamp >= before
    assert list(health.recent_events) == sink
    assert health.stats.events == {"disconnected": 2, "stale": 1}


def test_events_are_kept_without_a_sink_and_only_the_last_thousand():
    health = Health("KRAKEN", "KRAKEN", FeedLogger("KRAKEN", []))
    for i in range(1005):
        health.record_event("resync", [BTC], str(i))
    assert len(health.recent_events) == 1000
    assert health.recent_events[0].detail == "5"
    assert isinstance(health.recent_events[-1], FeedEvent)
    assert health.stats.events["resync"] == 1005


def test_status_fields(health):
    assert health.status() == {
        "exchange": "UPBIT", "state": "new", "connected_since": None, "messages": 0,
        "heartbeats": 0, "books": 0, "duplicates": 0, "stale": 0, "errors": 0, "dropped": 0,
        "reconnects": 0, "stalls": 0, "last_message_at": None, "last_data_at": None}
    health.state, health.connected_since = "connected", 1790138146302
    health.stats.messages, health.stats.books, health.stats.reconnects = 5, 3, 1
    health.stats.last_message_at = health.stats.last_data_at = time.monotonic() - 2.0
    status = health.status()
    assert (status["state"], status["connected_since"]) == ("connected", 1790138146302)
    assert (status["messages"], status["books"], status["reconnects"]) == (5, 3, 1)
    now = int(time.time() * 1000)
    assert now - 2100 <= status["last_message_at"] == status["last_data_at"] <= now - 1900
    assert "events" not in status and "tickers" not in status


def test_status_names_a_feed_by_its_own_name():
    stream = Health("BITHUMB", "BITHUMB_STREAM", FeedLogger("BITHUMB", []))
    assert stream.status()["exchange"] == "BITHUMB_STREAM"
    stream.record_event("connected", [BTC], "")
    assert stream.recent_events[0].exchange == "BITHUMB"


def test_errors_and_events_hold_the_lock_given(clock):
    lock = threading.RLock()
    free = []

    def held_elsewhere(event):
        """Whether another thread finds the lock free while the event is handed on."""
        probe = threading.Thread(target=lambda: free.append(lock.acquire(blocking=False)))
        probe.start()
        probe.join()

    health = Health("UPBIT", "UPBIT", FeedLogger("UPBIT", []), lock=lock, events=held_elsewhere,
                    clock=clock)
    health.record_event("connected", [BTC], "")
    assert free == [False]
    lock.acquire()
    done = threading.Event()
    worker = threading.Thread(target=lambda: (health.report_error("x", "y"), done.set()))
    worker.start()
    assert not done.wait(0.2)  # waits for the lock
    assert health.stats.errors == 0
    lock.release()
    assert done.wait(5.0)
    worker.join()
    assert health.stats.errors == 1


def test_wall_ms_and_fresh_counters():
    assert wall_ms(None) is None
    now = int(time.time() * 1000)
    assert abs(wall_ms(time.monotonic()) - now) < 100
    stats = ControllerStats()
    assert (stats.messages, stats.errors, stats.last_data_at, dict(stats.events)) == (0, 0, None, {})
