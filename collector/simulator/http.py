"""A threaded HTTP server on loopback (the standard library's ``ThreadingHTTPServer``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One HTTP answer: status, body bytes, headers, and an optional delay before it (seconds).

    ``chunks``, when set, is sent instead of ``body``: each piece written and flushed as the
    iterable yields it (it may sleep between pieces, or never end), without ``Content-Length``;
    the connection is closed after it."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunks: Iterable[bytes] | None = None


class LoopbackHTTPServer:
    """Answers ``GET`` with ``respond(path, query) -> Reply`` (``POST`` with ``respond_post(path)``) on ``127.0.0.1:<random port>``.

    ``requests`` keeps ``(path, query)`` of every request in order, ``request_times`` their
    ``time.monotonic()``. Use as a context manager.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.request_times: list[float] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)  # the body is not used
                self.answer("POST")

            def answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with owner.lock:
                    owner.requests.append((parts.path, query))
                    owner.request_times.append(time.monotonic())
                reply = (owner.respond(parts.path, query) if method == "GET"
                         else owner.respond_post(parts.path))
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    if reply.chunks is None:
                        self.send_header("Content-Length", str(len(reply.body)))
                    else:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    for piece in (reply.body,) if reply.chunks is None else reply.chunks:
                        self.wfile.write(piece)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (read timeout): that is the point of a delay

            def log_message(self, *args: object) -> None:
                pass

        self._handler = Handler
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self.refused: tuple[float, float] | None = None  # monotonic (from, to) of refuse_for

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._serve()
        return self

    def _serve(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=type(self).__name__)
        self._thread.start()

    def _close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __exit__(self, *exc: object) -> None:
        self._close()

    def refuse_for(self, seconds: float) -> None:
        """Close the listening socket (connects are refused), and listen again on the same port
        ``seconds`` later, from a thread; returns at once."""
        started = time.monotonic()
        self._close()

        def reopen() -> None:
            time.sleep(seconds)
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
            self._server.daemon_threads = True
            self.refused = (started, time.monotonic())
            self._serve()

        threading.Thread(target=reopen, daemon=True).start()

    def respond(self, path: str, query: dict[str, list[str]]) -> Reply:
        raise NotImplementedError

    def respond_post(self, path: str) -> Reply:
        """The answer to a ``POST`` (its body is read and not used); 405 unless overridden."""
        return Reply(405, b'{"msg": "method not allowed"}')
