"""The REST client every controller uses, and the one retry policy of every REST caller.

Three callers request the exchanges' public REST APIs: the REST polling loop
(:class:`controllers.rest.RestPollingController`, Bithumb's books), market discovery
(``--symbols ALL``/``--top``, :mod:`collector.discovery`, and KuCoin's connect token) and the
snapshot worker of the snapshot + delta books (:class:`controllers.deltabook.DeltaBookController`).
All of them go through :class:`RestClient` and wait what :class:`RetryPolicy` says between two
attempts; each keeps its own loop (polling pace, a limited number of discovery attempts, one
snapshot request at a time), because only the caller knows whether to go on.

The client makes one attempt per call: it has no threads and never sleeps. What an answer means:

=====================================  =========================================================
answer                                 raised, and what the policy waits before the next attempt
=====================================  =========================================================
HTTP 2xx/3xx                           nothing: the body (bytes, or decoded JSON)
HTTP 429 (rate limited)                :class:`~core.errors.HTTPStatusError`; ``Retry-After``
                                       (seconds or an HTTP date), else a backoff three steps on
HTTP 418 (a temporary IP ban)          :class:`~core.errors.HTTPStatusError`; ``Retry-After``,
                                       else :attr:`RetryPolicy.ban_delay` (minutes)
HTTP 5xx                               :class:`~core.errors.HTTPStatusError`; the backoff
a timeout, a refused or dropped        :class:`~core.errors.TransportError` (never an
connection                             ``ExchangeError``: the exchange said nothing); the backoff
a body larger than ``max_body`` bytes, :class:`~core.errors.TransportError` (``timeout`` is
or not complete within ``deadline``    ``True`` for the deadline); the backoff
any other HTTP 4xx                     :class:`~core.errors.HTTPStatusError` with the exchange's
                                       own error text; not retried (:meth:`RetryPolicy.delay`
                                       gives ``None``: the request itself was refused)
an error body (often with HTTP 200)    :class:`~core.errors.ExchangeError` from the controller's
                                       ``check_body`` (JSON calls only); not retried
a body that is not JSON                :class:`~core.errors.MalformedMessage` (JSON calls only)
=====================================  =========================================================

**Bounded answers.** ``requests``' read timeout bounds each read from the socket, not the
answer: a body that never ends, or that trickles a byte every few seconds, would hold the caller
(and grow its memory) forever. The body is therefore read streamed, at most :data:`CHUNK` bytes a
read, and the request fails as soon as the decoded body passes ``max_body`` bytes
(:attr:`RetryPolicy.max_body`, 8 MiB by default; Binance's 1000-level snapshot is about 100 KB;
``max_body`` of :meth:`RestClient.send` overrides it per endpoint) or when ``deadline`` seconds
(:attr:`RetryPolicy.deadline`, 10 s) have passed since the request started: connect, headers and
the whole body. Each read waits at most the time left, so a failing request takes the deadline
and less than :data:`CHUNK` bytes more than the cap. The connection of such an answer is closed,
not reused.

The backoff is exponential with full jitter, capped: attempt ``n`` (0 = the first retry after a
success) waits uniformly between 0.1 s and ``min(backoff_cap, backoff_initial * 2**n)`` seconds.
It is the one backoff formula of the collector: the WebSocket reconnect loop uses it too
(:meth:`controllers.base.Controller.backoff_delay`). All durations are in seconds.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Literal, Mapping, overload

import requests
import urllib3

from core.errors import HTTPStatusError, MalformedMessage, TransportError
from core.model import now_ms

RATE_LIMITED = (418, 429)
"""The HTTP statuses that are a rate limit: 429 Too Many Requests, 418 a temporary IP ban
(Upbit, Binance), which grows when requests go on."""

MIN_DELAY = 0.1
"""The least backoff, in seconds: a retry never comes at once."""

BODY_EXCERPT = 300
"""How many bytes of an error body an error message quotes."""

CHUNK = 64 * 1024
"""The most bytes of a body one read takes (the cap is checked after each)."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (``now``:
    the current Unix time, for tests); ``None`` when absent or unreadable."""
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


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts of one request, and how long to wait before the next attempt after a failure.

    Attributes (seconds):
        connect_timeout, read_timeout: of every request.
        backoff_initial, backoff_cap: the backoff's first ceiling and its cap.
        ban_delay: the wait after HTTP 418 without ``Retry-After`` (five minutes by default:
            asking again sooner prolongs the ban).
        jitter: ``True`` (the default): full jitter; ``False``: the ceiling itself, a fixed
            schedule (discovery's 1 s, 2 s … at start-up, before any connection).
        deadline: the most one request may take, connect and whole body (seconds).
        max_body: the most bytes of a (decoded) body; a larger one fails the request.
    """

    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_cap: float = 30.0
    ban_delay: float = 300.0
    jitter: bool = True
    deadline: float = 10.0
    max_body: int = 8 * 1024 * 1024

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` timeouts, as ``requests`` takes them."""
        return self.connect_timeout, self.read_timeout

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (0 = the first retry after a success): the
        ceiling ``min(backoff_cap, backoff_initial * 2**attempt)``, drawn uniformly between
        :data:`MIN_DELAY` and it (full jitter), or the ceiling itself without jitter."""
        ceiling = min(self.backoff_cap, self.backoff_initial * 2 ** min(attempt, 16))
        if not self.jitter:
            return max(MIN_DELAY, ceiling)
        return max(MIN_DELAY, random.uniform(0.0, ceiling))

    def rate_limit_delay(self, status: int, retry_after: float | None,
                         attempt: int) -> float | None:
        """Seconds to wait after an HTTP ``status`` answer (a REST reply or a WebSocket
        handshake) whose ``Retry-After`` asked for ``retry_after`` seconds (``None``: absent);
        ``None`` if ``status`` is not a rate limit.

        429: ``retry_after``, else the backoff three steps further than ``attempt``'s. 418:
        ``retry_after``, else :attr:`ban_delay`.
        """
        if status not in RATE_LIMITED:
            return None
        if retry_after is not None:
            return retry_after
        return self.ban_delay if status == 418 else self.backoff(attempt + 3)

    @overload
    def delay(self, error: Exception, attempt: int, *, persist: Literal[True]) -> float: ...

    @overload
    def delay(self, error: Exception, attempt: int, *, persist: bool = False) -> float | None: ...

    def delay(self, error: Exception, attempt: int, *, persist: bool = False) -> float | None:
        """Seconds to wait before the next attempt after ``error`` (``attempt`` failures in a row
        before this one): for a rate limit :meth:`rate_limit_delay`, for HTTP 5xx and a
        :class:`~core.errors.TransportError` :meth:`backoff`.

        Any other failure (an HTTP 4xx other than 429/418 or an error body: the exchange refused
        the request itself; a malformed body) is not retried: ``None``. ``persist=True`` is for
        a caller that asks again whatever the failure (the poll loop and the snapshot worker,
        which run for days, discovery within its few attempts): it gets :meth:`backoff` then.
        """
        if isinstance(error, HTTPStatusError) and error.status in RATE_LIMITED:
            return self.rate_limit_delay(error.status, error.retry_after, attempt)
        retried = isinstance(error, TransportError) or (
            isinstance(error, HTTPStatusError) and error.status >= 500)
        return self.backoff(attempt) if retried or persist else None


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, whatever its status. ``received_at``: ms since the epoch (UTC) when it
    came; ``headers`` as ``requests`` gives them (names in any case)."""

    method: str
    url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    received_at: int

    def checked(self) -> bytes:
        """The body of a successful answer.

        Raises:
            HTTPStatusError: a status of 400 or more; its message names the request, the status
                and the start of the exchange's body; ``retry_after`` holds what the
                ``Retry-After`` header asked for.
        """
        if self.status < 400:
            return self.body
        raise HTTPStatusError(f"{self.method} {self.url}: HTTP {self.status}: "
                              f"{self.excerpt()}", status=self.status, body=self.body,
                              retry_after=parse_retry_after(self.headers.get("Retry-After")))

    def excerpt(self) -> str:
        """The start of the body as text (at most :data:`BODY_EXCERPT` bytes), for a message."""
        text = self.body[:BODY_EXCERPT].decode("utf-8", "replace")
        return text + "…" if len(self.body) > BODY_EXCERPT else text


class RestClient:
    """Requests to one exchange's REST base URL over one ``requests.Session`` (connections are
    kept and reused), with the timeouts of ``policy``.

    Args:
        base_url: ``https://api.binance.com``; paths are appended to it.
        policy: the timeouts (and, for the caller, the waits) of this client.
        check_body: raises :class:`~core.errors.ExchangeError` for one of the exchange's error
            bodies (the controller's ``check_body``); applied to decoded JSON bodies.

    One attempt per call, no retry, no thread, no sleep: the caller waits
    ``policy.delay(error, attempt)`` and asks again (see the module text). A client is used by one
    thread at a time; :meth:`close` (or ``with``) releases its connections.
    """

    def __init__(self, base_url: str, policy: RetryPolicy = RetryPolicy(), *,
                 check_body: Callable[[object], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.check_body = check_body
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def send(self, method: str, path: str, params: Mapping[str, str] | None = None, *,
             max_body: int | None = None) -> Answer:
        """One request (``method`` ``"GET"`` or ``"POST"``, no body); the answer whatever its
        status. ``max_body``: the most bytes of its body (default: the policy's ``max_body``).

        Raises:
            TransportError: no answer: a connect or read timeout, or the request's deadline
                passed before the whole body came (``timeout`` is ``True``); a refused or
                dropped connection; a body larger than ``max_body`` bytes.
        """
        url = self.base_url + path
        policy = self.policy
        deadline = time.monotonic() + policy.deadline
        limit = policy.max_body if max_body is None else max_body
        try:
            response = self.session.request(
                method, url, params=params, stream=True,
                timeout=(policy.connect_timeout, min(policy.read_timeout, policy.deadline)))
        except requests.RequestException as exc:
            raise self._failed(method, url, exc, isinstance(exc, requests.Timeout)) from exc
        try:
            body = self._read_body(response, deadline, limit)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            timeout = isinstance(exc, (urllib3.exceptions.TimeoutError, requests.Timeout,
                                       TimeoutError))
            raise self._failed(method, url, exc, timeout) from exc
        except TransportError as exc:
            raise TransportError(f"{method} {url}: {exc}", timeout=exc.timeout,
                                 detail=exc.detail) from None
        finally:
            response.close()  # a cut answer leaves the connection unusable: never reused
        return Answer(method, url, response.status_code, body, response.headers, now_ms())

    @staticmethod
    def _failed(method: str, url: str, exc: Exception, timeout: bool) -> TransportError:
        return TransportError(f"{method} {url}: {type(exc).__name__}: {exc}", timeout=timeout,
                              detail=f"{type(exc).__name__}: {exc}")

    def _read_body(self, response: requests.Response, deadline: float, limit: int) -> bytes:
        """The decoded body, read :data:`CHUNK` bytes at a time, each read waiting at most until
        ``deadline`` (``time.monotonic()``).

        Raises:
            TransportError: past the deadline (``timeout``), or more than ``limit`` bytes.
        """
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit and "Content-Encoding" not in response.headers:
            raise TransportError(f"body of {declared} bytes exceeds the limit of {limit} bytes")
        raw = response.raw
        # The socket's timeout is per read: lower it to the time left, so a trickle cannot
        # outlast the deadline (urllib3 keeps the connection's socket in ``_connection.sock``).
        sock = getattr(getattr(raw, "_connection", None), "sock", None)
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"no complete body within {self.policy.deadline:g} s "
                                     f"({size} bytes came)", timeout=True)
            if sock is not None:
                sock.settimeout(min(left, self.policy.read_timeout))
            try:
                chunk = raw.read1(CHUNK, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError:
                if time.monotonic() >= deadline:
                    continue  # the deadline's message
                raise
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise TransportError(f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)

    def request(self, method: str, path: str, params: Mapping[str, str] | None = None) -> bytes:
        """The body of a successful answer.

        Raises:
            TransportError: as :meth:`send`.
            HTTPStatusError: an HTTP status of 400 or more (see :meth:`Answer.checked`).
        """
        return self.send(method, path, params).checked()

    def json(self, method: str, path: str, params: Mapping[str, str] | None = None) -> object:
        """The decoded JSON body of a successful answer that is not an error body.

        Raises:
            TransportError, HTTPStatusError: as :meth:`request`.
            ExchangeError: ``check_body`` found one of the exchange's error bodies.
            MalformedMessage: the body is not JSON.
        """
        answer = self.send(method, path, params)
        try:
            body = json.loads(answer.checked())
        except ValueError as exc:
            raise MalformedMessage(f"{method} {answer.url}: not JSON: {answer.excerpt()}") from exc
        if self.check_body is not None:
            self.check_body(body)
        return body

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> object:
        """``GET`` and :meth:`json`."""
        return self.json("GET", path, params)

    def post_json(self, path: str) -> object:
        """``POST`` with no body and :meth:`json` (KuCoin's connect token)."""
        return self.json("POST", path)
