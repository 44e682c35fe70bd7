"""A threaded WebSocket server on loopback (the ``websockets`` package's sync server)."""

from __future__ import annotations

import threading

from websockets.sync.server import ServerConnection, serve


class LoopbackWSServer:
    """Serves ``handle(connection)`` in a thread per connection on ``127.0.0.1:<random port>``.

    Use as a context manager. ``connections`` counts accepted connections; ``received`` keeps
    every frame clients sent, in order.
    """

    path = "/"

    def __init__(self) -> None:
        self.connections = 0
        self.received: list[str | bytes] = []
        self.lock = threading.Lock()
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
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None, ping_interval=None,
                             max_size=None)
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

    def _handle(self, connection: ServerConnection) -> None:
        with self.lock:
            self.connections += 1
            self._open.append(connection)
        try:
            self.handle(connection)
        finally:
            with self.lock:
                self._open.remove(connection)

    def handle(self, connection: ServerConnection) -> None:
        raise NotImplementedError
