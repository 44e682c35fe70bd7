"""A loopback Upbit WebSocket server (protocol: see ``controllers/upbit.py``).

It checks the subscribe array like Upbit does (errors are the real Upbit error frames), sends each
subscribed code's frames as **binary** frames, interleaved across codes, answers the text ``PING``
with ``{"status":"UP"}``, and ignores codes it has no frames for (as Upbit does for unknown codes).
Frames resume where the previous connection stopped.
"""

from __future__ import annotations

import json

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from collector.simulator.frames import data_text
from collector.simulator.ws import BookStreamServer


CHANNEL_TYPES = ("orderbook", "ticker", "trade")


class UpbitServer(BookStreamServer):
    """Args:
        frames: code -> the order book frame texts to send in order after a subscribe; the
            ticker and trade frames of a code are under ``"ticker:KRW-BTC"`` / ``"trade:KRW-BTC"``
            and are sent, interleaved with the books, when those types are subscribed.
        interval: seconds between two frames.
        disconnect_after: close the TCP connection abruptly after this many frames on one
            connection (``None``: never).
        extra_frames: raw payloads sent (binary) before the books, e.g. a malformed frame.
        faults: see :class:`~collector.simulator.ws.BookStreamServer`.
    """

    path = "/websocket/v1"

    def __init__(self, frames: dict[str, list[str]], *, interval: float = 0.0,
                 disconnect_after: int | None = None, extra_frames: list[bytes] = (),
                 faults: dict | None = None) -> None:
        super().__init__(frames, interval=interval, disconnect_after=disconnect_after, binary=True,
                         faults=faults)
        self.extra_frames = list(extra_frames)
        self.subscriptions: list[list] = []
        self.pings = 0

    def handle(self, connection: ServerConnection) -> None:
        try:
            first = connection.recv(timeout=10)
        except (TimeoutError, ConnectionClosed):
            return
        self.record(first)
        error = self._check_subscribe(first)
        if error is not None:
            connection.send(data_text(f"upbit/{error}").encode())
            connection.close(1000)
            return
        request = json.loads(first)
        self.subscriptions.append(request)
        codes = [c if item["type"] == "orderbook" else f"{item['type']}:{c}"
                 for item in request if item.get("type") in CHANNEL_TYPES for c in item["codes"]]

        def on_message(message: str | bytes) -> None:
            if message == "PING":
                with self.lock:
                    self.pings += 1
                connection.send(data_text("upbit/ws_keepalive_status_up.json").encode())

        self.serve_stream(connection, codes, on_message, before=self.extra_frames)

    @staticmethod
    def _check_subscribe(text: str | bytes) -> str | None:
        """The fixture name of Upbit's error reply to this subscribe, or ``None`` if it is valid."""
        try:
            request = json.loads(text)
        except ValueError:
            return "ws_error_wrong_format_wire_2026-09.json"
        if not isinstance(request, list) or not all(isinstance(i, dict) for i in request):
            return "ws_error_wrong_format_wire_2026-09.json"
        if not any("ticket" in item for item in request):
            return "ws_error_no_ticket_wire_2026-09.json"
        for item in request:
            if "type" in item and (item["type"] not in CHANNEL_TYPES or not item.get("codes")):
                return "ws_error_invalid_param_wire_2026-09.json"
        return None
