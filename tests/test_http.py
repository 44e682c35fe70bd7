"""The REST client and its retry policy (``controllers/http.py``) against loopback HTTP servers:
what each answer raises, and the waits the policy gives."""

from __future__ import annotations

import time

import pytest

from collector.simulator.http import LoopbackHTTPServer, Reply
from controllers.http import RestClient, RetryPolicy
from core.errors import ExchangeError, HTTPStatusError, MalformedMessage, TransportError


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
