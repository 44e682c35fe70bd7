"""A loopback Coinone WebSocket server (protocol: see ``controllers/coinone.py``).

On open it sends the real ``CONNECTED`` frame. Each ``SUBSCRIBE`` gets the real ``SUBSCRIBED``
ack (echoing the topic); a pair it has no frames for then gets the real ``160012 Invalid Topic``
error, which does not name the pair, as Coinone does. A pair subscribed again on a new connection
first gets its last book again (same ``id``), as Coinone sends the current book on subscribe.
``{"request_type":"PING"}`` is answered with the real ``PONG``; a non-JSON frame with ``160010``.
A ``TICKER`` or ``TRADE`` subscribe of a pair whose frames are given (under ``"ticker:BTC"`` /
``"trade:BTC"``) is acked and streamed with the books; other ones are ignored.
"""

from __future__ import annotations

import json

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from collector.simulator.frames import data_json, data_text
from collector.simulator.ws import BookStreamServer


class CoinoneServer(BookStreamServer):
    """``frames``: symbol (``"BTC"``) -> frame texts. ``pings`` counts PINGs answered,
    ``subscribes`` keeps every SUBSCRIBE request in order."""

    def __init__(self, frames: dict[str, list[str]], **kwargs) -> None:
        super().__init__(frames, **kwargs)
        self.pings = 0
        self.subscribes: list[dict] = []

    def handle(self, connection: ServerConnection) -> None:
        try:
            connection.send(data_text("coinone/ws_connected_wire_2026-09.json"))
        except ConnectionClosed:
            return
        keys: list[str] = []

        def on_message(message: str | bytes) -> None:
            try:
                request = json.loads(message)
            except ValueError:
                connection.send(data_text("coinone/ws_error_160010_invalid_request_wire_2026-09.json"))
                return
            if request == {"request_type": "PING"}:
                with self.lock:
                    self.pings += 1
                connection.send(data_text("coinone/ws_keepalive_pong_response.json"))
                return
            if request.get("request_type") != "SUBSCRIBE":
                return
            topic = request["topic"]
            if request.get("channel") in ("TICKER", "TRADE"):
                key = f"{request['channel'].lower()}:{str(topic.get('target_currency')).upper()}"
                if key in self.frames:
                    ack = data_json("coinone/ws_subscribed_ack_wire_2026-09.json")
                    ack.update(channel=request["channel"], data=topic)
                    connection.send(json.dumps(ack, separators=(",", ":")))
                    keys.append(key)
                return
            if request.get("channel") != "ORDERBOOK":
                return
            with self.lock:
                self.subscribes.append(request)
            ack = data_json("coinone/ws_subscribed_ack_wire_2026-09.json")
            ack["data"] = topic
            connection.send(json.dumps(ack, separators=(",", ":")))
            symbol = topic["target_currency"].upper()
            if symbol not in self.frames or topic["quote_currency"].upper() != "KRW":
                connection.send(data_text("coinone/ws_error_160012_invalid_topic.json"))
                return
            with self.lock:
                repeat = self.sent[symbol][-1] if self.sent[symbol] else None
            if repeat is not None:
                connection.send(repeat)
            keys.append(symbol)

        self.serve_stream(connection, keys, on_message)
