"""The REST polling controller base, on a ``requests.Session``.

A subclass gives the path and query of one request that returns the books of all its markets,
and the pure ``parse`` of the response body. The base polls every ``poll_interval`` seconds
(measured from the start of one request to the start of the next), with connect and read
timeouts, and recovers from every failure:

* HTTP 429 (and Upbit-style 418): waits what ``Retry-After`` says (seconds or an HTTP date),
  else backs off;
* HTTP 5xx, timeouts, refused or dropped connections: exponential backoff with full jitter;
* HTTP 4xx and error bodies served with HTTP 200 (Bithumb): logged with the exchange's message,
  then backoff, so a persistent error does not hammer the exchange.

Every failure is logged (repeats condensed) and counted; the loop never ends before ``stop()``.
"""

from __future__ import annotations

import abc
import email.utils
import time
from datetime import datetime, timezone
from typing import Any, ClassVar

import requests

from collector.errors import ConfigError
from collector.model import now_ms
from controllers.base import Controller, describe_payload


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; else ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class RestPollingController(Controller):
    """Base of the REST polling controllers.

    Args (besides :class:`~controllers.base.Controller`'s):
        poll_interval: seconds between the starts of two requests (> 0).

    Class attributes a subclass sets: ``rest_url_env`` (``BITHUMB_REST_URL``), ``default_rest_url``
    (the exchange's base URL); optionally ``connect_timeout`` and ``read_timeout`` (seconds).

    Raises:
        ConfigError: ``poll_interval`` is not positive.
    """

    connect_timeout: ClassVar[float] = 3.05
    read_timeout: ClassVar[float] = 5.0
    backoff_initial: ClassVar[float] = 0.5

    def __init__(self, *args: Any, poll_interval: float = 0.1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not poll_interval > 0:
            raise ConfigError(f"poll interval must be positive, got {poll_interval}")
        self.poll_interval = poll_interval
        self.base_url = self.rest_base(self.env)

    @abc.abstractmethod
    def request(self) -> tuple[str, dict[str, str]]:
        """The path (from the base URL) and query parameters of the poll request."""

    def run(self) -> None:
        path, params = self.request()
        url = self.base_url + path
        failures = 0
        with requests.Session() as session:
            session.headers["Accept"] = "application/json"
            self.state = "polling"
            self.log.info("poll thread started: GET %s %s every %.3f s", url, params,
                          self.poll_interval)
            while not self.stopping:
                started = time.monotonic()
                wait = self.poll_once(session, url, params, failures)
                if wait is None:
                    failures = 0
                    wait = self.poll_interval - (time.monotonic() - started)
                else:
                    failures += 1
                    self.stats.reconnects += 1
                    self.log.info("next poll in %.1f s (failure %d in a row)", wait, failures)
                if self.wait(wait):
                    break
        self.log.info("poll thread stopped")

    def poll_once(self, session: requests.Session, url: str, params: dict[str, str],
                  failures: int) -> float | None:
        """One request; ``None`` when it succeeded, else the seconds to wait before the next."""
        try:
            response = session.get(url, params=params,
                                   timeout=(self.connect_timeout, self.read_timeout))
        except requests.Timeout as exc:
            self.report_error("timeout", f"{type(exc).__name__}: {exc}")
            return self.backoff_delay(failures)
        except requests.RequestException as exc:
            self.report_error("connection error", f"{type(exc).__name__}: {exc}")
            return self.backoff_delay(failures)
        received_at = now_ms()
        status = response.status_code
        if status in (418, 429):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = retry_after if retry_after is not None else self.backoff_delay(failures + 3)
            self.report_error(f"HTTP {status}",
                              f"rate limited, waiting {wait:.1f} s; body: "
                              f"{describe_payload(response.content)}")
            return wait
        if status >= 500:
            self.report_error(f"HTTP {status}", describe_payload(response.content))
            return self.backoff_delay(failures)
        errors_before = self.stats.errors
        if status >= 400:
            self.report_error(f"HTTP {status}", describe_payload(response.content))
        else:
            self.handle_payload(response.content, received_at)
        return self.backoff_delay(failures) if self.stats.errors > errors_before else None
