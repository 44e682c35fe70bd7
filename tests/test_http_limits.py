"""Every REST answer is bounded: a body larger than the cap, or not complete by the request's
deadline, fails the request (a ``TransportError``) instead of growing memory or holding the
caller forever; the Bithumb poll loop logs it, counts it and polls again. Real loopback HTTP
servers that never end a body, or trickle it."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collector.simulator.http import LoopbackHTTPServer, Reply
from controllers import BithumbController
from controllers.http import RestClient, RetryPolicy
from core.errors import TransportError

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


class StreamServer(LoopbackHTTPServer):
    """Answers every GET with ``make()``'s chunks; counts the bytes it got out."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make
        self.sent = 0
        self.done = threading.Event()  # the answer ended (the client went away)

    def respond(self, path, query):
        return Reply(200, chunks=self._count(self.make()))

    def _count(self, chunks):
        try:
            for chunk in chunks:
                yield chunk
                self.sent += len(chunk)
        finally:
            self.done.set()


def endless(size: int = 64 * 1024):
    """A JSON array that never ends."""
    yield b"["
    piece = b"1," * (size // 2)
    while True:
        yield piece


def trickle(every: float):
    """One byte every ``every`` seconds, forever."""
    for _ in itertools.count():
        yield b" "
        time.sleep(every)


def fetch(client: RestClient, timeout: float) -> Exception | bytes:
    """``client.request("GET", "/")`` in a thread, so a hang fails the test instead of hanging it."""
    result: list = []

    def run():
        try:
            result.append(client.request("GET", "/"))
        except Exception as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert result, f"the request did not end within {timeout} s"
    return result[0]


MEASURE = """
import resource, sys, time
from controllers.http import RestClient, RetryPolicy
from core.errors import TransportError
mib = 1024 * 1024
client = RestClient(sys.argv[1], RetryPolicy(read_timeout=5, deadline=30))
client.request("GET", "/small")  # imports and the connection pool are warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    client.request("GET", "/")
    print("no error")
except TransportError as exc:
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(round((after - before) / mib, 1), exc)
"""


def test_an_endless_body_fails_at_the_cap_with_bounded_memory():
    """8 MiB is the default cap; a fresh process's peak resident memory grows by less than twice
    that while the server sends an endless body."""
    class Server(StreamServer):
        def respond(self, path, query):
            return Reply(200, b"[]") if path == "/small" else super().respond(path, query)

    with Server(endless) as server:
        done = subprocess.run([sys.executable, "-c", MEASURE, server.url], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        grown, message = done.stdout.split(" ", 1)
        assert "body exceeds the limit of 8388608 bytes" in message and "GET http://127.0.0.1" in message
        assert float(grown) < 16, done.stdout
        assert server.done.wait(10)  # the connection was closed: the server stopped sending
    assert 8 * MIB < server.sent < 64 * MIB


def test_the_cap_is_per_endpoint_and_a_declared_length_above_it_fails_before_reading():
    class Server(LoopbackHTTPServer):
        def respond(self, path, query):
            return Reply(200, b"[" + b"0," * 1000 + b"0]")

    with Server() as server, RestClient(server.url) as client:
        assert len(client.send("GET", "/").body) == 2003
        with pytest.raises(TransportError, match="body of 2003 bytes exceeds the limit of 2000 bytes"):
            client.send("GET", "/", max_body=2000)
        assert len(client.send("GET", "/", max_body=2003).body) == 2003


@pytest.mark.slow
def test_a_trickled_body_fails_at_the_deadline():
    """One byte every 0.5 s never trips the 5 s read timeout: the 2 s deadline ends it."""
    with StreamServer(lambda: trickle(0.5)) as server:
        with RestClient(server.url, RetryPolicy(read_timeout=5, deadline=2)) as client:
            error = fetch(client, timeout=10)
        assert isinstance(error, TransportError) and error.timeout, error
        assert "no complete body within 2 s" in str(error)
        assert server.done.wait(5)


@pytest.mark.slow
def test_bithumb_polling_survives_a_trickled_body_and_stores_books_after_it(tmp_path, monkeypatch,
                                                                           quick_retries, caplog):
    """A poll whose body trickles a byte every 2 s (under the 5 s read timeout) fails at the
    request's deadline, is logged and counted, and the next polls store books again."""
    from tests.test_faults import Run, assert_everything_stored, assert_gap_marked, logged, servers

    policy = BithumbController.retry_policy()
    monkeypatch.setattr(BithumbController, "retry_policy",
                        classmethod(lambda cls: dataclasses.replace(policy, deadline=3.0)))
    caplog.set_level("WARNING", "collector")
    with servers(script={5: Reply(200, chunks=trickle(2.0))}) as s:
        run = Run(tmp_path, s).start()
        summary = run.finish()
    assert_everything_stored(run, "BITHUMB")
    assert summary["BITHUMB"].errors == 1 and summary["BITHUMB"].reconnects == 1
    assert_gap_marked(run, "BITHUMB", "no complete body within 3 s")
    assert logged(caplog, "BITHUMB", "no complete body within 3 s")
    gap = s.bithumb.request_times[6] - s.bithumb.request_times[5]
    assert gap >= 3.0  # the failed poll lasted the deadline, not the endless trickle
