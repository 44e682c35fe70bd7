"""The Bithumb poll loop against ``responses``: every failure is logged, counted, and survived."""

import json
import logging
import threading
import time

import pytest
import requests
import responses

from core.model import Market
from collector.simulator.bithumb import BithumbServer
from collector.simulator.http import Reply
from controllers import BithumbController
from controllers.base import parse_retry_after
from tests.helpers import expected_bithumb, run_until
from tests.sim_oracles import bithumb_generated_books, bithumb_real_books, fixture_text

BASE = "http://bithumb.test"
URL = BASE + "/v1/orderbook"


class FastBithumb(BithumbController):
    backoff_initial = 0.01
    backoff_cap = 0.05


@responses.activate
def test_errors_are_logged_counted_and_polling_goes_on(caplog):
    real = bithumb_real_books()["KRW-BTC"]
    books = [real] + bithumb_generated_books("KRW-BTC", real, 2, seed=7)
    responses.get(URL, body=fixture_text("bithumb/rest_error_v1_404_code_not_found_http200_wire_2026-09.json"))
    responses.get(URL, status=429, headers={"Retry-After": "0.2"}, body="{}")
    responses.get(URL, status=500, body="upstream failure")
    responses.get(URL, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.get(URL, body=requests.exceptions.ConnectionError("connection refused"))
    responses.get(URL, body="{not json")
    for b in books:
        responses.get(URL, body=json.dumps([b]))
    stored = []
    caplog.set_level(logging.INFO, "collector")
    controller = FastBithumb([Market("BTC", "KRW")], sink=lambda b: stored.append(b) or True,
                             poll_interval=0.01, env={"BITHUMB_REST_URL": BASE + "/"})
    started = time.monotonic()
    run_until(controller, lambda: len(stored) >= 3)
    assert [(b.timestamp, b.bids, b.asks) for b in stored] == expected_bithumb(books, "KRW-BTC")
    assert controller.stats.errors == 6
    assert controller.stats.books == 3 and controller.stats.reconnects == 6
    assert time.monotonic() - started >= 0.2  # Retry-After was honoured
    assert controller.state == "stopped"
    text = caplog.text
    for expected in ("exchange error: 404: Code not found", "HTTP 429: rate limited, waiting 0.2 s",
                     "HTTP 500: upstream failure", "timeout: ReadTimeout", "connection error: ConnectionError",
                     "parse error: DecodeError", "payload: {not json", "poll thread stopped"):
        assert expected in text, expected
    assert all(call.request.params == {"markets": "KRW-BTC"} for call in responses.calls)


@responses.activate
def test_repeated_books_are_counted_not_stored():
    body = json.dumps(bithumb_real_books()["KRW-BTC"]).join("[]")
    responses.get(URL, body=body)  # responses repeats the last registered reply
    stored = []
    controller = FastBithumb([Market("BTC", "KRW")], sink=lambda b: stored.append(b) or True,
                             poll_interval=0.005, env={"BITHUMB_REST_URL": BASE})
    run_until(controller, lambda: controller.stats.messages >= 20)
    assert len(stored) == 1
    assert controller.stats.duplicates == controller.stats.messages - 1 >= 19


@responses.activate
def test_repeated_errors_are_condensed_in_the_log(caplog):
    responses.get(URL, status=503, body="maintenance")
    caplog.set_level(logging.WARNING, "collector")
    controller = FastBithumb([Market("BTC", "KRW")], poll_interval=0.005, env={"BITHUMB_REST_URL": BASE})
    run_until(controller, lambda: controller.stats.errors >= 10)
    assert caplog.text.count("HTTP 503") == 1  # ten errors counted, one line within 10 s


@pytest.mark.parametrize("value, seconds", [("5", 5.0), ("0.5", 0.5), (None, None), ("soon", None),
                                            ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0)])
def test_retry_after_forms(value, seconds):
    assert parse_retry_after(value, now=1445412480.0) == seconds


class OmittingBithumb(BithumbServer):
    """Leaves ``KRW-ETH`` out of every reply from the ``omit_from``-th request until ``back``
    is set (the reply is otherwise as Bithumb sends it)."""

    def __init__(self, books, omit_from: int) -> None:
        super().__init__(books)
        self.omit_from = omit_from
        self.back = threading.Event()
        self.omitted = 0

    def respond(self, path, query):
        reply = super().respond(path, query)
        if path != "/v1/orderbook" or self.count <= self.omit_from or self.back.is_set():
            return reply
        with self.lock:
            self.omitted += 1
        body = [book for book in json.loads(reply.body) if book["market"] != "KRW-ETH"]
        return Reply(200, json.dumps(body).encode())


def test_a_market_missing_from_the_replies_is_resynced_once_and_comes_back():
    """The market watchdog of the poll loop: KRW-ETH missing from every reply for the stall
    timeout (0.3 s here) gets one ``resync`` event with the cause, the HTTP connections are
    reopened, and its books are stored again once the exchange sends them; KRW-BTC goes on."""
    books = {name: bithumb_generated_books(name, book, 400, seed=3)
             for name, book in bithumb_real_books().items()}
    events = []
    with OmittingBithumb(books, omit_from=5) as server:
        def on_event(event):
            events.append(event)
            if event.kind == "resync":
                server.back.set()
        stored = []
        controller = BithumbController([Market("BTC", "KRW"), Market("ETH", "KRW")],
                                       sink=lambda b: stored.append(b) or True, events=on_event,
                                       poll_interval=0.02, stall_timeout=0.3,
                                       env={"BITHUMB_REST_URL": server.url})
        run_until(controller, lambda: server.back.is_set()
                  and sum(b.base == "ETH" for b in stored) >= 10 + 4, timeout=15)
    [resync] = [e for e in events if e.kind == "resync"]
    assert (resync.base, resync.quote) == ("ETH", "KRW")
    assert resync.detail.startswith("stalled: ") and "HTTP connections reopened" in resync.detail
    assert server.omitted >= 10  # at 0.02 s a poll, 0.3 s missing
    eth = [b for b in stored if b.base == "ETH"]
    assert len(eth) >= 14 and controller.stats.errors == 0
    assert sum(b.base == "BTC" for b in stored) > len(eth)  # BTC never stopped
