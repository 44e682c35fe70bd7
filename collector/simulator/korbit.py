"""A loopback Korbit WebSocket server (protocol: see ``controllers/korbit.py``).

The subscribe must be a JSON array (a bare object gets the real ``invalid_format`` failure);
known lower-case symbols are acked with the real success message (with the request's
``requestId``), unknown ones get the real ``INVALID_SYMBOL`` failure naming the symbol, and the
known ones stream. A symbol listed in ``stopped`` gets the real stopped-pair frame (empty book).
The server sends WebSocket protocol pings every ``ping_interval`` seconds and closes a connection
whose client does not answer, as Korbit pings every 30 s. A ``ticker`` or ``trade`` subscribe of
symbols whose frames are given (under ``"ticker:btc_krw"`` / ``"trade:btc_krw"``) is acked and
streamed with the books; other ones are ignored.
"""

from __future__ import annotations

import json

from websockets.sync.server import ServerConnection

from collector.simulator.frames import data_json, data_text
from collector.simulator.ws import BookStreamServer


class KorbitServer(BookStreamServer):
    """``frames``: Korbit symbol (``"btc_krw"``) -> frame texts. ``subscriptions`` keeps every
    subscribe request."""

    path = "/v2/public"

    def __init__(self, frames: dict[str, list[str]], *, stopped: tuple[str, ...] = (),
                 ping_interval: float | None = 0.5, **kwargs) -> None:
        super().__init__(frames, ping_interval=ping_interval, **kwargs)
        self.stopped = stopped
        self.subscriptions: list[list] = []

    def handle(self, connection: ServerConnection) -> None:
        keys: list[str] = []

        def on_message(message: str | bytes) -> None:
            try:
                request = json.loads(message)
            except ValueError:
                request = None
            if not isinstance(request, list):
                connection.send(data_text("korbit/ws_control_fail_invalid_format_wire_2026-09.json"))
                return
            with self.lock:
                self.subscriptions.append(request)
            for item in request:
                if item.get("method") == "subscribe" and item.get("type") in ("ticker", "trade"):
                    wanted = [f"{item['type']}:{s}" for s in item.get("symbols", [])]
                    if not any(key in self.frames for key in wanted):
                        continue
                    keys.extend(key for key in wanted if key in self.frames and key not in keys)
                    if item.get("requestId") is not None:
                        ok = data_json("korbit/ws_control_success_wire_2026-09.json")
                        connection.send(json.dumps(dict(ok, requestId=item["requestId"]),
                                                   separators=(",", ":")))
                    continue
                if item.get("method") != "subscribe" or item.get("type") != "orderbook":
                    continue
                request_id = item.get("requestId")
                for symbol in item.get("symbols", []):
                    if symbol in self.stopped:
                        stopped = data_json("korbit/ws_orderbook_stopped_pair_wire_2026-09.json")
                        connection.send(json.dumps(dict(stopped, symbol=symbol)))
                    elif symbol not in self.frames:
                        fail = data_json("korbit/ws_control_fail_invalid_symbol_wire_2026-09.json")
                        fail.update(message=f"The symbol does not exist ({symbol})", requestId=request_id)
                        connection.send(json.dumps(fail, separators=(",", ":")))
                    elif symbol not in keys:
                        keys.append(symbol)
                if request_id is not None:
                    ok = data_json("korbit/ws_control_success_wire_2026-09.json")
                    connection.send(json.dumps(dict(ok, requestId=request_id), separators=(",", ":")))

        self.serve_stream(connection, keys, on_message)
