"""The REST client and its retry policy (``controllers/http.py``) against loopback HTTP servers:
what each answer raises, the waits the policy gives, and the callers following it — the snapshot
worker of a snapshot + delta book (Binance spot's recorded BTCUSDT session) and discovery."""

from __future__ import annotations

import threading
import time

import pytest

from collector.discovery import resolve_markets
from collector.simulator.http import LoopbackHTTPServer, Reply
from collector.simulator.markets import MarketListServer
from collector.simulator.recorded import BinanceRecordedServer
from controllers import CONTROLLERS
from controllers.binance import BinanceController
from controllers.http import RestClient, RetryPolicy
from core.errors import ExchangeError, HTTPStatusError, MalformedMessage, TransportError
from core.model import Market
from tests.global_helpers import FIXTURES, fixture_lines, last_books, levels, oracle, run_recorded

BTCUSDT = Market("BTC", "USDT")


class ScriptedServer(LoopbackHTTPServer):
    """Answers ``GET`` with the ``replies`` in turn, then with ``Reply(200, b'{"ok": true}')``."""

    def __init__(self, *replies: Reply) -> None:
        super().__init__()
        self.replies = list(replies)

    def respond(self, path: str, query: dict[str, list[str]]) -> Reply:
        with self.lock:
            return self.replies.pop(0) if self.replies else Reply(200, b'{"ok": true}')


def error_body(body: object) -> None:
    if isinstance(body, dict) and "code" in body:
        raise ExchangeError(f"{body['code']}: {body['msg']}")


# --- the client: what each answer raises ----------------------------------------------------------

def test_a_404_is_raised_with_the_exchanges_text_and_not_retried():
    with ScriptedServer(Reply(404, b'{"code": -1121, "msg": "Invalid symbol."}')) as server:
        with RestClient(server.url) as client, pytest.raises(HTTPStatusError) as caught:
            client.get_json("/api/v3/depth", {"symbol": "NOPEUSDT"})
        assert len(server.requests) == 1
    error = caught.value
    assert error.status == 404 and isinstance(error, ExchangeError)
    assert str(error) == (f"GET {server.url}/api/v3/depth: HTTP 404: "
                          '{"code": -1121, "msg": "Invalid symbol."}')
    assert RetryPolicy().delay(error, 0) is None  # the policy does not retry it
    assert 0.1 <= RetryPolicy().delay(error, 0, persist=True) <= 1.0  # a caller that must go on


def test_rate_limits_carry_what_retry_after_asked_for():
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    with ScriptedServer(Reply(429, b"{}", {"Retry-After": "2"}), Reply(418, b"{}"),
                        Reply(429, b"{}", {"Retry-After": date})) as server:
        with RestClient(server.url) as client:
            errors = []
            for _ in range(3):
                with pytest.raises(HTTPStatusError) as caught:
                    client.request("GET", "/v1/orderbook")
                errors.append(caught.value)
            assert client.request("GET", "/v1/orderbook") == b'{"ok": true}'
    assert [(e.status, e.retry_after) for e in errors[:2]] == [(429, 2.0), (418, None)]
    assert 55 <= errors[2].retry_after <= 60


def test_a_timeout_is_a_transport_error_not_an_exchange_error():
    policy = RetryPolicy(connect_timeout=1.0, read_timeout=0.2)
    with ScriptedServer(Reply(200, b"[]", delay=1.0)) as server:
        with RestClient(server.url, policy) as client, pytest.raises(TransportError) as caught:
            client.request("GET", "/v1/orderbook")
    assert caught.value.timeout and not isinstance(caught.value, ExchangeError)
    assert caught.value.detail.startswith("ReadTimeout: ")
    assert str(caught.value).startswith(f"GET {server.url}/v1/orderbook: ReadTimeout: ")


def test_a_refused_connection_is_a_transport_error():
    with ScriptedServer() as server:
        url = server.url
    with RestClient(url) as client, pytest.raises(TransportError) as caught:
        client.request("GET", "/v1/orderbook")
    assert not caught.value.timeout and caught.value.detail.startswith("ConnectionError: ")


def test_an_error_body_and_a_body_that_is_not_json():
    with ScriptedServer(Reply(200, b'{"code": -1003, "msg": "Too much request weight used."}'),
                        Reply(200, b"<html>maintenance</html>")) as server:
        with RestClient(server.url, check_body=error_body) as client:
            with pytest.raises(ExchangeError, match=r"^-1003: Too much request weight") as caught:
                client.get_json("/api/v3/depth")
            assert not isinstance(caught.value, HTTPStatusError)
            with pytest.raises(MalformedMessage, match="not JSON: <html>maintenance</html>"):
                client.get_json("/api/v3/depth")
            assert client.get_json("/api/v3/depth") == {"ok": True}


# --- the policy ----------------------------------------------------------------------------------

def test_the_backoff_is_capped_and_jittered():
    policy = RetryPolicy(backoff_initial=1.0, backoff_cap=30.0)
    delays = [[policy.backoff(attempt) for _ in range(200)] for attempt in range(12)]
    for attempt, drawn in enumerate(delays):
        assert all(0.1 <= d <= min(30.0, 2.0 ** attempt) for d in drawn), attempt
        assert len({round(d, 6) for d in drawn}) > 150, attempt  # jittered, not a schedule
    assert max(delays[11]) > 20  # the ceiling reaches the cap
    assert policy.backoff(10_000) <= 30.0
    steady = RetryPolicy(jitter=False)
    assert [steady.backoff(a) for a in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_the_delay_each_failure_causes():
    policy = RetryPolicy(backoff_initial=1.0, backoff_cap=30.0, ban_delay=300.0)

    def status(code: int, retry_after: float | None = None) -> HTTPStatusError:
        return HTTPStatusError("x", status=code, retry_after=retry_after)

    assert policy.delay(status(429, 2.0), 0) == 2.0
    assert policy.delay(status(418, 7.0), 0) == 7.0
    assert policy.delay(status(418), 0) == 300.0
    assert all(0.1 <= policy.delay(status(429), 0) <= 8.0 for _ in range(100))  # 3 steps on
    for failure in (status(500), status(503), TransportError("x", timeout=True),
                    TransportError("x")):
        assert all(0.1 <= policy.delay(failure, 2) <= 4.0 for _ in range(100))
    for refused in (status(400), status(404), ExchangeError("-1121: Invalid symbol."),
                    MalformedMessage("not JSON")):
        assert policy.delay(refused, 0) is None
        assert 0.1 <= policy.delay(refused, 0, persist=True) <= 1.0


# --- the snapshot worker -------------------------------------------------------------------------

class ScriptedBinance(BinanceRecordedServer):
    """The recorded BTCUSDT session, whose first snapshot requests get ``replies`` first."""

    def __init__(self, *replies: Reply) -> None:
        expected = oracle("binance_spot/expected_rec_hftbacktest_20240808_BTCUSDT_replay.json")
        snapshot = (FIXTURES / "binance_spot" / expected["files"]["snapshot"]).read_text()
        super().__init__(fixture_lines(f"binance_spot/{expected['files']['depth']}"),
                         snapshots={"BTCUSDT": snapshot})
        self.expected = expected
        self.replies = list(replies)
        self.script_lock = threading.Lock()

    def respond_rest(self, path: str, query: dict[str, list[str]]) -> Reply:
        with self.script_lock:
            reply = self.replies.pop(0) if self.replies else None
        return reply or super().respond_rest(path, query)


def run_snapshot_fault(cls, *replies: Reply):
    """Binance spot BTCUSDT against a server whose first snapshot answers are ``replies``;
    returns the server, the controller and the gaps between the snapshot requests it saw."""
    with ScriptedBinance(*replies) as server:
        expected = server.expected
        controller, books, events = run_recorded(
            cls, server, [BTCUSDT], timeout=30,
            settle=lambda c, _: c.sync[BTCUSDT].applied >= expected["n_applied"])
    times = server.http.request_times
    assert len(times) == len(replies) + 1, times  # the failures, then the snapshot
    stats = controller.sync[BTCUSDT]
    assert (stats.snapshots, stats.applied, stats.resyncs) == (1, expected["n_applied"], 0)
    assert last_books(books)["BTCUSDT"] == (levels(expected["final_top5_bids"]),
                                            levels(expected["final_top5_asks"]))
    assert server.rest_requests == ["BTCUSDT"] and controller.stats.errors == len(replies)
    return controller, [b - a for a, b in zip(times, times[1:])]


def test_a_snapshot_answered_429_is_not_asked_again_before_retry_after(caplog):
    caplog.set_level("WARNING", "collector")
    _, gaps = run_snapshot_fault(BinanceController,
                                 Reply(429, b'{"code": -1003, "msg": "Too many requests."}',
                                       {"Retry-After": "2"}))
    assert gaps[0] >= 2.0, gaps  # not the 0.05-0.2 s backoff
    assert "snapshot failed" in caplog.text and "HTTP 429" in caplog.text and "-1003" in caplog.text


def test_a_snapshot_answered_418_without_retry_after_waits_the_ban_delay():
    banned = type("BannedBinance", (BinanceController,), {"ban_delay": 1.5})
    _, gaps = run_snapshot_fault(banned, Reply(418, b'{"code": -1003, "msg": "banned"}'))
    assert gaps[0] >= 1.5, gaps


def test_snapshot_server_errors_and_timeouts_back_off_and_recover(caplog):
    caplog.set_level("WARNING", "collector")
    quick = type("QuickBinance", (BinanceController,), {"http_timeout": (1.0, 0.3)})
    _, gaps = run_snapshot_fault(quick, Reply(503, b"Service Unavailable"),
                                 Reply(200, b"{}", delay=1.0), Reply(500, b"upstream failure"))
    # backoff (fast: at most 0.2 s) within the pacing (0.5 s between snapshot requests); the
    # timed-out request took its read timeout (0.3 s) first
    assert all(gap < 1.5 for gap in gaps), gaps
    assert "ReadTimeout" in caplog.text and "HTTP 503" in caplog.text


# --- discovery -----------------------------------------------------------------------------------

class RateLimitedLists(MarketListServer):
    """Answers the first request ``429 Retry-After: 7``."""

    def respond(self, path: str, query: dict[str, list[str]]) -> Reply:
        with self.lock:
            first = not getattr(self, "limited", False)
            self.limited = True
        if first:
            return Reply(429, b'{"error": {"name": "too_many_requests"}}', {"Retry-After": "7"})
        return super().respond(path, query)


def test_discovery_waits_what_retry_after_says():
    waits: list[float] = []
    with RateLimitedLists({}) as server:
        markets = resolve_markets(CONTROLLERS["upbit"], {"UPBIT_REST_URL": server.base("upbit")},
                                  "KRW", None, None, wait=lambda s: waits.append(s) or False)
    assert waits == [7.0] and len(markets) == 117
