"""Threaded WebSocket servers on loopback (the ``websockets`` package's sync server)."""

from __future__ import annotations

import threading
import time
from typing import Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


class LoopbackWSServer:
    """Serves ``handle(connection)`` in a thread per connection on ``127.0.0.1:<random port>``.

    Use as a context manager. ``connections`` counts accepted connections; ``received`` keeps
    every frame clients sent, in order. ``ping_interval`` (seconds) makes the server send
    WebSocket protocol pings and close connections that do not answer them.
    """

    path = "/"

    def __init__(self, *, ping_interval: float | None = None) -> None:
        self.connections = 0
        self.connect_times: list[float] = []  # time.monotonic() of each accepted connection
        self.received: list[str | bytes] = []
        self.received_at: list[tuple[float, str | bytes]] = []
        self.lock = threading.Lock()
        self.ping_interval = ping_interval
        self._server = None
        self._thread: threading.Thread | None = None
        self._open: list[ServerConnection] = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None,
                             ping_interval=self.ping_interval, ping_timeout=self.ping_interval,
                             max_size=None, process_request=self.process_request, close_timeout=1)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"{type(self).__name__}")
        self._thread.start()

    def stop(self) -> None:
        for conn in list(self._open):
            conn.close()
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    def record(self, message: str | bytes) -> None:
        with self.lock:
            self.received.append(message)
            self.received_at.append((time.monotonic(), message))

    def process_request(self, connection: ServerConnection, request):
        """Accept every handshake; a subclass may return ``connection.respond(status, text)``."""
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self.lock:
            self.connections += 1
            self.connect_times.append(time.monotonic())
            self._open.append(connection)
        try:
            self.handle(connection)
        finally:
            with self.lock:
                self._open.remove(connection)

    def handle(self, connection: ServerConnection) -> None:
        raise NotImplementedError


class BookStreamServer(LoopbackWSServer):
    """A server that streams prepared frames per market key, interleaved across the keys a
    connection subscribed, resuming where the previous connection stopped.

    Args:
        frames: key (e.g. ``"KRW-BTC"``) -> frame texts, in order.
        interval: seconds between two frames.
        disconnect_after: close the TCP connection abruptly after this many frames on one
            connection (``None``: never).
        binary: send frames as binary (Upbit, Bithumb) instead of text.

    ``sent[key]`` holds the frames sent, ``finished`` is set once every frame of every key has
    been sent.

    **Faults.** ``faults`` maps a count of book frames sent by the server (over all connections)
    to what happens right after that many: ``"drop"`` closes the TCP connection abruptly,
    ``"stall"`` stops sending on that connection (the socket stays open and client frames are
    still answered) until the client closes it, and a ``str``/``bytes`` payload is sent as is
    (text/binary) before the stream goes on; :meth:`inject` adds one after the next frame.
    ``fault_log`` keeps ``(fault, time.monotonic())``; ``resumed_at`` the time of the first book
    frame sent on a later connection after the last drop or stall, and ``recoveries`` the seconds
    from each drop or stall to that frame.
    """

    def __init__(self, frames: dict[str, list[str]], *, interval: float = 0.0,
                 disconnect_after: int | None = None, binary: bool = False,
                 ping_interval: float | None = None, faults: dict | None = None) -> None:
        super().__init__(ping_interval=ping_interval)
        self.faults = dict(faults or {})
        self.fault_log: list[tuple[object, float]] = []
        self.resumed_at: float | None = None
        self.recoveries: list[float] = []
        self.total_sent = 0
        self._broken_connection: object = None
        self.frames = frames
        self.interval = interval
        self.disconnect_after = disconnect_after
        self.binary = binary
        self.sent: dict[str, list[str]] = {key: [] for key in frames}
        self.finished = threading.Event()
        self._cursor = {key: 0 for key in frames}

    def encode(self, text: str) -> str | bytes:
        return text.encode() if self.binary else text

    def serve_stream(self, connection: ServerConnection, keys: list[str],
                     on_message: Callable[[str | bytes], None], before: list[str | bytes] = ()) -> None:
        """Until the connection ends: stream ``before`` and then the frames of ``keys`` (a list
        ``on_message`` may extend) from a thread, while every client frame is recorded and handed
        to ``on_message``. Returns once the streaming thread has stopped."""
        closed = threading.Event()
        sender = threading.Thread(target=self._stream, daemon=True,
                                  args=(connection, keys, closed, list(before)))
        sender.start()
        try:
            for message in connection:
                self.record(message)
                on_message(message)
        except ConnectionClosed:
            pass
        closed.set()
        sender.join(5)

    def inject(self, fault) -> None:
        """Inject ``fault`` (as in ``faults``) right after the next book frame."""
        with self.lock:
            self.faults[self.total_sent + 1] = fault

    def _after_frame(self, connection) -> bool:
        """Count a book frame sent and inject the fault due after it; ``True`` when this
        connection must send nothing more."""
        with self.lock:
            self.total_sent += 1
            if (self._broken_connection is not None and self.resumed_at is None
                    and connection is not self._broken_connection):
                self.resumed_at = time.monotonic()
                self.recoveries.append(self.resumed_at - self.fault_log[-1][1])
            fault = self.faults.pop(self.total_sent, None)
            if fault is None:
                return False
            self.fault_log.append((fault, time.monotonic()))
            if fault in ("drop", "stall"):
                self._broken_connection, self.resumed_at = connection, None
        if fault == "drop":
            connection.socket.close()
            return True
        if fault == "stall":
            return True  # the reading loop goes on answering until the client closes
        connection.send(fault)
        return False

    def _all_sent(self) -> bool:
        return all(self._cursor[k] >= len(f) for k, f in self.frames.items())

    def _stream(self, connection, keys, closed, before) -> None:
        sent_here = 0
        next_at = time.monotonic()
        try:
            for payload in before:
                connection.send(payload)
            while not closed.is_set():
                progressed = False
                for key in list(keys):
                    with self.lock:
                        index = self._cursor.get(key, 0)
                        frames = self.frames.get(key, [])
                        if index >= len(frames):
                            continue
                        self._cursor[key] = index + 1
                        self.sent[key].append(frames[index])
                    connection.send(self.encode(frames[index]))
                    progressed = True
                    sent_here += 1
                    if self._after_frame(connection):
                        return
                    if self.disconnect_after is not None and sent_here >= self.disconnect_after:
                        connection.socket.close()  # abrupt: no close frame, like a dropped link
                        return
                    if self.interval:  # on a schedule, so the rate holds at sub-ms intervals
                        next_at = max(next_at + self.interval, time.monotonic() - 0.05)
                        time.sleep(max(0.0, next_at - time.monotonic()))
                if not progressed:
                    if self._all_sent():
                        self.finished.set()
                    time.sleep(0.01)
        except (ConnectionClosed, OSError):
            return
