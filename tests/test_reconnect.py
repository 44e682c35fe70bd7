"""Reconnecting politely: rate-limit answers on the WebSocket handshake and on REST, the
documented connect/subscribe rates, and a stop that ends every wait at once."""

from __future__ import annotations

import logging
import time

import pytest
import responses

from core.model import Market
from controllers import CONTROLLERS, BithumbController, GopaxController, UpbitController
from tests.helpers import expected_upbit, fast, run_until
from tests.sim_oracles import fixture_json, upbit_generated_books
from tests.sim_servers import GopaxServer
from collector.simulator.upbit import UpbitServer

BTC = [Market("BTC", "KRW")]


class RateLimitedUpbit(UpbitServer):
    """Refuses the first handshake(s) with ``status`` (and ``Retry-After`` when given)."""

    def __init__(self, frames, status: int, retry_after: str | None, refusals: int = 1) -> None:
        super().__init__(frames)
        self.status, self.retry_after, self.refusals = status, retry_after, refusals
        self.handshakes: list[float] = []

    def process_request(self, connection, request):
        self.handshakes.append(time.monotonic())
        if len(self.handshakes) <= self.refusals:
            response = connection.respond(self.status, "Too Many Requests\n")
            if self.retry_after is not None:
                response.headers["Retry-After"] = self.retry_after
            return response
        return None


def upbit_books(count: int = 20) -> dict[str, list[str]]:
    return {"KRW-BTC": upbit_generated_books("KRW-BTC", fixture_json("upbit/ws_orderbook_default_docs.json"),
                                             count, seed=5)}


@pytest.mark.serial
def test_handshake_429_waits_what_retry_after_says(caplog):
    caplog.set_level(logging.WARNING, "collector")
    with RateLimitedUpbit(upbit_books(), 429, "1.2") as server:
        stored = []
        controller = fast(UpbitController)(BTC, sink=lambda b: stored.append(b) or True,
                                           env={"UPBIT_WS_URL": server.url})
        run_until(controller, lambda: len(stored) == 20, timeout=10)
    first, second = server.handshakes[:2]
    assert 1.2 <= second - first < 1.2 + 0.5  # not the 0.05-0.2 s backoff
    assert [(b.timestamp, b.bids, b.asks) for b in stored] == expected_upbit(server.sent["KRW-BTC"])
    assert "handshake refused with HTTP 429: rate limited, waiting 1.2 s" in caplog.text


def test_handshake_418_without_retry_after_waits_minutes_and_stop_ends_the_wait(caplog):
    caplog.set_level(logging.WARNING, "collector")
    with RateLimitedUpbit(upbit_books(), 418, None) as server:
        controller = fast(UpbitController)(BTC, sink=lambda b: True, env={"UPBIT_WS_URL": server.url})
        run_until(controller, lambda: "reconnecting in" in caplog.text, timeout=5, stop_within=1.0)
        time.sleep(0.3)
    assert len(server.handshakes) == 1
    assert f"waiting {UpbitController.ban_delay:.1f} s" in caplog.text
    assert UpbitController.ban_delay >= 60
    assert f"reconnecting in {UpbitController.ban_delay:.1f} s" in caplog.text


@responses.activate
def test_rest_418_waits_the_ban_delay_and_stop_ends_the_wait(caplog):
    caplog.set_level(logging.WARNING, "collector")
    responses.get("http://bithumb.test/v1/orderbook", status=418, body="{}")
    controller = BithumbController(BTC, sink=lambda b: True, poll_interval=0.01,
                                   env={"BITHUMB_REST_URL": "http://bithumb.test"})
    run_until(controller, lambda: controller.stats.errors >= 1, timeout=5, stop_within=1.0)
    time.sleep(0.2)
    assert len(responses.calls) == 1
    assert f"HTTP 418: rate limited, waiting {BithumbController.ban_delay:.1f} s" in caplog.text


# Documented limits, PROTOCOLS.md "Limits": connection attempts per second per IP.
DOCUMENTED_CONNECTS_PER_SECOND = {"UPBIT": 5, "COINONE": None, "KORBIT": None, "GOPAX": 20}


def test_connect_pacing_is_inside_every_documented_rate():
    for name, cls in CONTROLLERS.items():
        limit = DOCUMENTED_CONNECTS_PER_SECOND.get(cls.exchange)
        if limit is not None:
            assert 1 / cls.connect_interval <= limit, name
    # Upbit: one subscribe per connection, against 5 messages/s and 100/min per connection
    assert len(UpbitController([Market(f"C{i}", "KRW") for i in range(200)]).subscribe_messages(
        [Market(f"C{i}", "KRW") for i in range(200)])) == 1


@pytest.mark.slow
@pytest.mark.serial
def test_200_markets_reconnecting_at_once_keep_the_pace():
    """GOPAX: 200 markets over 4 connections, every connection dropped again and again: the
    server never sees more than 20 connects in any second (the documented limit), the connects
    are at least ``connect_interval`` apart, and subscribes ``subscribe_interval`` apart."""
    pairs = {f"C{i:03d}-KRW": 3 for i in range(200)}
    with GopaxServer(pairs, disconnect_after=60) as server:
        markets = [Market(p.split("-")[0], "KRW") for p in pairs]
        controller = fast(GopaxController)(markets, sink=lambda b: True, env={"GOPAX_WS_URL": server.url})
        run_until(controller, lambda: server.connections >= 12, timeout=30)
    times = sorted(server.connect_times)
    assert len(controller.connections) == 4 and len(times) >= 12
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= GopaxController.connect_interval - 0.01
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 20
    subscribe_times = [t for t, m in server.received_at if "SubscribeToOrderBook" in str(m)]
    sub_gaps = [b - a for a, b in zip(subscribe_times, subscribe_times[1:])]
    assert len(subscribe_times) >= 200 and min(sub_gaps) >= GopaxController.subscribe_interval - 0.01


def test_backoff_is_capped_and_jittered():
    controller = UpbitController(BTC)
    delays = [controller.backoff_delay(attempt) for attempt in range(200)]
    assert all(0.1 <= d <= UpbitController.backoff_cap for d in delays)
    assert len({round(d, 6) for d in delays[10:]}) > 100  # jittered, not a fixed schedule
    assert max(delays[:2]) <= 2.0  # attempt 0 right after a healthy period: about a second


class FailingUpbit(UpbitServer):
    """Fails the first ``failures`` connections, by turns: the handshake refused with HTTP 503,
    then the connection accepted and closed at once (before any frame); serves after that."""

    def __init__(self, frames, failures: int) -> None:
        super().__init__(frames)
        self.failures = failures
        self.attempts = 0
        self.failed: list[str] = []

    def process_request(self, connection, request):
        with self.lock:
            self.attempts += 1
            refuse = self.attempts <= self.failures and self.attempts % 2 == 1
            if refuse:
                self.failed.append("refused")
        return connection.respond(503, "Service Unavailable\n") if refuse else None

    def handle(self, connection):
        with self.lock:
            drop = self.attempts <= self.failures
            if drop:
                self.failed.append("dropped")
        if drop:
            connection.close(1012)  # service restart
            return
        super().handle(connection)


@pytest.mark.slow
def test_no_retry_limit_reconnects_after_thirty_failures_in_a_row(caplog):
    """30 failed connections in a row, more than any retry limit would allow (the backoff cut to
    0.1 s, the connect pacing to 0.05 s, for the test): the controller keeps trying, with the
    attempt count growing, and stores every book once the server serves again."""
    caplog.set_level(logging.WARNING, "collector")
    persistent = type("PersistentUpbit", (UpbitController,),
                      {"backoff_initial": 0.05, "backoff_cap": 0.1, "connect_interval": 0.05})
    with FailingUpbit(upbit_books(), failures=30) as server:
        stored = []
        controller = persistent(BTC, sink=lambda b: stored.append(b) or True,
                                env={"UPBIT_WS_URL": server.url})
        run_until(controller, lambda: len(stored) == 20, timeout=30)
    assert server.failed == ["refused", "dropped"] * 15 and server.attempts == 31
    assert [(b.timestamp, b.bids, b.asks) for b in stored] == expected_upbit(server.sent["KRW-BTC"])
    assert len(stored) == 20 and controller.stats.reconnects == 30
    assert "Handshake status 503" in caplog.text
    assert "reconnecting in 0.1 s (attempt 30)" in caplog.text  # counted on, never given up


# Idle limits on the wire, PROTOCOLS.md "idle close": a client that sends nothing is closed after
# about 60 s (Upbit, Coinone before its first request); Korbit and GOPAX ping the client instead
# (answered by websocket-client / at once by the controller).
IDLE_LIMIT = {"UPBIT": 60.0, "COINONE": 60.0}


def test_keepalives_are_sent_well_inside_each_idle_limit_and_the_watchdog_is_on():
    for name, cls in CONTROLLERS.items():
        if cls.exchange in IDLE_LIMIT:
            assert cls.keepalive_message and cls.keepalive_interval <= IDLE_LIMIT[cls.exchange] / 2, name
        if hasattr(cls, "idle_timeout"):
            assert cls.idle_timeout is not None and cls.idle_timeout <= 120, name
    assert GopaxController([Market("BTC", "KRW")]).reply_to('"primus::ping::1790139005374"') == \
        '"primus::pong::1790139005374"'


@pytest.mark.serial
@pytest.mark.slow
def test_backoff_starts_again_once_a_connection_delivered_data(caplog):
    """A server that drops every connection after three books: each connection delivered data,
    so every reconnect waits at the backoff's first step (0.3 s here), never the growing steps
    of failed attempts (0.6, 1.2, 2.4 s… up to the 30 s cap), and every book gets through."""
    caplog.set_level(logging.WARNING, "collector")
    quick = type("QuickUpbit", (UpbitController,), {"backoff_initial": 0.3})
    with UpbitServer(upbit_books(30), interval=0.02, disconnect_after=3) as server:
        stored = []
        controller = quick(BTC, sink=lambda b: stored.append(b) or True,
                           env={"UPBIT_WS_URL": server.url})
        run_until(controller, lambda: len(stored) == 30, timeout=20)
        times = list(server.connect_times)
    assert [(b.timestamp, b.bids, b.asks) for b in stored] == expected_upbit(server.sent["KRW-BTC"])
    assert len(stored) == 30 and len(times) >= 10  # three books per connection
    attempts = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(attempts) >= 9 and all(m.endswith("(attempt 0)") for m in attempts), attempts
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 1.0, gaps  # the wait (at most 0.3 s), the handshake and three books
