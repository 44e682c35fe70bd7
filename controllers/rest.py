"""The REST polling controller base, on the controller's :class:`~controllers.http.RestClient`.

A subclass gives the path and query of one request that returns the books of all its markets,
and the pure ``parse`` of the response body. The base polls every ``poll_interval`` seconds
(measured from the start of one request to the start of the next), with connect and read
timeouts, and recovers from every failure, waiting what the retry policy
(:class:`~controllers.http.RetryPolicy`) says:

* HTTP 429: waits what ``Retry-After`` says (seconds or an HTTP date), else backs off; HTTP 418
  (a temporary IP ban): ``Retry-After``, else :attr:`~controllers.base.Controller.ban_delay`
  (5 minutes);
* HTTP 5xx, timeouts, refused or dropped connections: exponential backoff with full jitter;
* HTTP 4xx and error bodies served with HTTP 200 (Bithumb), which the policy does not retry:
  logged with the exchange's message, then the backoff all the same (a poll loop goes on until
  stopped), so a persistent error does not hammer the exchange.

Every failure is logged (repeats condensed) and counted; the loop never ends before ``stop()``.

The market watchdog (:class:`controllers.booksync.Freshness`): every poll that succeeds without
a book of a market, or with one older than its last, counts as a skipped update of that market
(a repeated book is progress: the market is quiet). A market that made no progress for
``stall_timeout`` seconds (60; the run's ``--stall-timeout``) gets a ``resync`` event with the
cause, and the client's HTTP connections are reopened for the next poll. A poll loop whose
requests fail makes no progress either: its failures are logged, counted, marked
(``disconnected``) and retried as above.
Gap markers: the first successful poll, and the first after failures, record ``connected`` for
every market; the first failure after a success records ``disconnected`` (with the cause), and so
does the stop.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Any, ClassVar

from core.errors import ConfigError, HTTPStatusError, TransportError
from core.model import Market, now_ms
from controllers.base import Controller, describe_payload
from controllers.http import RATE_LIMITED, RetryPolicy


class RestPollingController(Controller):
    """Base of the REST polling controllers.

    Args (besides :class:`~controllers.base.Controller`'s):
        poll_interval: seconds between the starts of two requests (> 0).

    Class attributes a subclass sets: ``rest_url_env`` (``BITHUMB_REST_URL``), ``default_rest_url``
    (the exchange's base URL); optionally ``connect_timeout`` and ``read_timeout`` (seconds; they
    replace :attr:`~controllers.base.Controller.http_timeout` in :meth:`retry_policy`).

    Raises:
        ConfigError: ``poll_interval`` is not positive.
    """

    connect_timeout: ClassVar[float] = 3.05
    read_timeout: ClassVar[float] = 5.0
    backoff_initial: ClassVar[float] = 0.5
    stall_timeout: ClassVar[float | None] = 60.0
    """Seconds a market may be missing from the replies (or older than its last book) before
    the market watchdog acts (``None``: never); the run's ``--stall-timeout`` overrides it."""

    def __init__(self, *args: Any, poll_interval: float = 0.1,
                 stall_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not poll_interval > 0:
            raise ConfigError(f"poll interval must be positive, got {poll_interval}")
        self.poll_interval = poll_interval
        if stall_timeout is not None:
            self.stall_timeout = stall_timeout
        self.base_url = self.rest_base(self.env)

    @abc.abstractmethod
    def request(self) -> tuple[str, dict[str, str]]:
        """The path (from the base URL) and query parameters of the poll request."""

    @classmethod
    def retry_policy(cls) -> RetryPolicy:
        return dataclasses.replace(super().retry_policy(), connect_timeout=cls.connect_timeout,
                                   read_timeout=cls.read_timeout)

    def run(self) -> None:
        path, params = self.request()
        url = self.base_url + path
        failures = 0
        down_since: float | None = None  # monotonic time of the first failure in a row
        with self.rest_client:
            self.state = "polling"
            self.log.info("poll thread started: GET %s %s every %.3f s", url, params,
                          self.poll_interval)
            while not self.stopping:
                started = time.monotonic()
                wait = self.poll_once(path, params, failures)
                if wait is None:
                    if self.connected_since is None:
                        self.connected_since = now_ms()
                        self.stream_opened(0, self.markets, url, f"polling {url}" if down_since is None
                                           else f"polling again after {failures} failed poll(s), "
                                                f"{time.monotonic() - down_since:.1f} s")
                    failures, down_since = 0, None
                    wait = self.poll_interval - (time.monotonic() - started)
                else:
                    if failures == 0:
                        down_since = started
                        self._polls_stopped(self.last_error or "poll failed")
                    failures += 1
                    self.stats.reconnects += 1
                    self.log.info("next poll in %.1f s (failure %d in a row)", wait, failures)
                if self.wait(wait):
                    break
        self._polls_stopped("collector stopping")
        self.log.info("poll thread stopped")

    def _polls_stopped(self, reason: str) -> None:
        """Books stopped coming (a failed poll, or the stop): ``disconnected``, once."""
        if self.connected_since is not None:
            self.connected_since = None
            self.stream_closed(0, self.markets, reason)

    def poll_once(self, path: str, params: dict[str, str], failures: int) -> float | None:
        """One request; ``None`` when it succeeded, else the seconds to wait before the next
        (``failures``: polls failed in a row before this one)."""
        policy = self.retry_policy()
        try:
            answer = self.rest_client.send("GET", path, params)
        except TransportError as exc:
            self.report_error("timeout" if exc.timeout else "connection error", exc.detail)
            return policy.delay(exc, failures, persist=True)
        self.record(0, "in", answer.body, answer.received_at, status=answer.status)
        try:
            body = answer.checked()
        except HTTPStatusError as exc:
            wait = policy.delay(exc, failures, persist=True)  # polling goes on until stopped
            if exc.status in RATE_LIMITED:
                self.report_error(f"HTTP {exc.status}", f"rate limited, waiting {wait:.1f} s; "
                                                        f"body: {describe_payload(exc.body)}")
            else:
                self.report_error(f"HTTP {exc.status}", describe_payload(exc.body))
            return wait
        errors_before = self.stats.errors
        before = {m: (f.since, f.skipped) for m, f in self.freshness.items()}
        self.handle_payload(body, answer.received_at)
        if self.stats.errors > errors_before:
            return policy.backoff(failures)
        self.watch_markets(time.monotonic(), before)
        return None

    def watch_markets(self, now: float, before: dict[Market, tuple[float, int]]) -> None:
        """After a successful poll at ``now``: the markets whose freshness the reply did not
        touch (``before``: each market's ``(since, skipped)`` before it) were missing from it and
        count a skipped update; a market that stalled (:meth:`Freshness.verdict
        <controllers.booksync.Freshness.verdict>`) gets a ``resync`` event with the cause, and
        the HTTP connections are reopened for the next poll."""
        if not self.stall_timeout:
            return
        stalled = []
        with self._lock:
            for market, fresh in self.freshness.items():
                if (fresh.since, fresh.skipped) == before[market]:
                    fresh.skip()
                cause = fresh.verdict(now, stall_after=self.stall_timeout, data_at=None)
                if cause is not None:
                    fresh.start(now)
                    stalled.append((market, cause))
        for market, cause in stalled:
            self.log.warning("resync: %s; reopening the HTTP connections", cause,
                             market=market.tag(self.exchange))
            self.record_event("resync", [market], f"{cause}; HTTP connections reopened")
        if stalled:
            self.rest_client.close()  # the next request opens new connections
