"""Loopback exchanges that serve a real recorded session of a snapshot + delta book feed.

:class:`RecordedBookServer` streams the recorded frames of the markets a client subscribes to,
in the recorded order, and keeps the **truth**: each market's book as the recording makes it,
advanced as frames are served. A REST snapshot request is answered with the recorded snapshot
the first time (so a replay reproduces the recorded sync point) and from the truth after that
(so a collector that resyncs gets the book as it is now, as from the exchange).

Faults, by position in the served sequence of book frames (0-based), each to test one resync:

* ``"drop"``: the frame is not sent (the truth still advances: it was lost on the way);
* ``"swap"``: the frame and the next one are sent in the opposite order, back to back (no
  snapshot goes between them);
* ``"cross"``: before the frame, an extra delta that puts a bid above the best ask (a bad delta
  that keeps the sequence);
* ``"checksum"``: the frame is sent with a wrong checksum (exchanges that send one).

Subclasses give the exchange's protocol: which frames are book frames of which market, the
subscribe reply, the truth rule and the REST answers.
"""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from dataclasses import dataclass, field, replace
from decimal import Decimal

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from collector.simulator.http import LoopbackHTTPServer, Reply
from collector.simulator.ws import LoopbackWSServer


@dataclass
class TruthBook:
    """A market's book as the recording makes it: price text -> size text per side."""

    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    last: int | str | None = None  # the update id (Kraken: the last message's timestamp)

    def set(self, bids, asks) -> None:
        for levels, side in ((bids, self.bids), (asks, self.asks)):
            for price, size, *_ in levels:
                if Decimal(size) == 0:
                    side.pop(price, None)
                else:
                    side[price] = size

    def sorted_levels(self, depth: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
        """``(bids, asks)`` best first as ``[price, size]`` strings."""
        bids = sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:depth]
        asks = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))[:depth]
        return [list(level) for level in bids], [list(level) for level in asks]


class RecordedBookServer(LoopbackWSServer):
    """Serves ``lines`` (recorded frame texts, every stream) to subscribers, with the truth.

    ``interval``: seconds between two frames. ``served`` counts book frames sent or dropped;
    ``finished`` is set when every book frame of the subscribed markets has been served.
    """

    def __init__(self, lines: list[str], *, snapshots: dict[str, str] | None = None,
                 faults: dict[int, str] | None = None, interval: float = 0.0) -> None:
        super().__init__()
        self.lines = lines
        self.snapshots = dict(snapshots or {})
        self.faults = dict(faults or {})
        self.interval = interval
        self.truth: dict[str, TruthBook] = {}
        self.served = 0
        self.channel_sent = 0
        """Ticker and trade frames sent."""
        self.finished = threading.Event()
        self.rest_requests: list[str] = []
        self.paths: list[str] = []  # the request path (with query) of each WS connection
        self._first_snapshot_sent: set[str] = set()
        self.http = _SnapshotHTTP(self)

    def __enter__(self):
        super().__enter__()
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.__exit__(*exc)
        super().__exit__(*exc)

    # --- what a subclass gives -------------------------------------------------------------------

    def book_frame(self, line: str) -> str | None:
        """The market name of a recorded book frame, ``None`` for other frames."""
        raise NotImplementedError

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        """The market names a client frame subscribes to, and the replies to send."""
        raise NotImplementedError

    def advance(self, truth: TruthBook, line: str) -> None:
        """Apply a recorded book frame to its market's truth."""
        raise NotImplementedError

    def cross_frame(self, name: str, truth: TruthBook) -> str:
        """A delta for ``name`` that keeps the sequence and crosses the book."""
        raise NotImplementedError

    def bad_checksum(self, line: str) -> str:
        """``line`` with its checksum changed."""
        raise NotImplementedError

    def snapshot_body(self, name: str, truth: TruthBook) -> str:
        """The REST snapshot body of ``name`` from its truth."""
        raise NotImplementedError

    def snapshot_frame(self, name: str, truth: TruthBook) -> str:
        """The WS snapshot frame of ``name`` from its truth (sent when a client subscribes to a
        market again)."""
        raise NotImplementedError

    def snapshot_name(self, path: str, query: dict[str, list[str]]) -> str | None:
        """The market a REST request asks a snapshot of (``None``: not a snapshot request)."""
        raise NotImplementedError

    snapshot_id_key = "lastUpdateId"
    """Where a recorded REST snapshot keeps its update id."""

    def recorded_book(self, body: dict) -> dict:
        """The book object of a recorded REST snapshot body (``bids``, ``asks``, the id)."""
        return body

    def initial_truth(self, name: str) -> TruthBook:
        """The truth before the first frame: the recorded REST snapshot, if there is one."""
        truth = TruthBook()
        if name in self.snapshots:
            book = self.recorded_book(json.loads(self.snapshots[name]))
            truth.set(book["bids"], book["asks"])
            truth.last = int(book[self.snapshot_id_key])
        return truth

    def on_wire(self, line: str) -> bool:
        """Whether a recorded book frame is sent (it advances the truth either way)."""
        return True

    def channel_streams(self, message: str) -> set[str]:
        """The ticker/trade streams a client frame subscribes to (none by default)."""
        return set()

    def channel_frame(self, line: str) -> str | None:
        """The stream of a recorded ticker/trade frame, ``None`` for other frames. The frames of
        the streams a connection subscribed go out, in recorded order, before its books."""
        return None

    def greeting(self) -> list[str]:
        """The frames sent as soon as a client connects (a welcome)."""
        return []

    def respond_post(self, path: str) -> Reply:
        """The answer to a REST ``POST`` (none by default)."""
        return Reply(404, b'{"msg": "no such path"}')

    # --- serving ---------------------------------------------------------------------------------

    subscribe_grace = 0.2
    """Seconds the stream waits after the first subscribe for more (one subscribe per market)."""

    def opened(self, connection: ServerConnection) -> None:
        """Note a new connection's path (``paths``)."""
        with self.lock:
            self.paths.append(connection.request.path if connection.request else "")

    def requests(self, connection: ServerConnection):
        """The connection's greeting frames sent, then each client frame as text, recorded."""
        for frame in self.greeting():
            connection.send(frame)
        for message in connection:
            self.record(message)
            yield message if isinstance(message, str) else message.decode()

    def handle(self, connection: ServerConnection) -> None:
        closed = threading.Event()
        streaming = threading.Event()
        streamed: set[str] = set()
        channels: set[str] = set()
        sender: threading.Thread | None = None
        self.opened(connection)
        try:
            for text in self.requests(connection):
                names, replies = self.subscribed(text)
                with self.lock:
                    channels |= self.channel_streams(text)
                for reply in replies:
                    connection.send(reply)
                if not names:
                    continue
                with self.lock:
                    if not streaming.is_set():  # still gathering the first subscribes
                        streamed |= names
                    else:  # subscribed again: a new snapshot (WS books)
                        for name in names & streamed:
                            connection.send(self.snapshot_frame(name, self.truth[name]))
                if sender is None:
                    sender = threading.Thread(target=self._stream,
                                              args=(connection, streamed, streaming, closed,
                                                    channels),
                                              daemon=True)
                    sender.start()
        except ConnectionClosed:
            pass
        closed.set()
        if sender is not None:
            sender.join(5)

    def _stream(self, connection: ServerConnection, names: set[str], streaming: threading.Event,
                closed: threading.Event, channels: set[str]) -> None:
        if closed.wait(self.subscribe_grace):
            return
        with self.lock:
            extras = [line for line in self.lines if self.channel_frame(line) in channels] if channels else []
        try:
            for line in extras:
                connection.send(line)
        except (ConnectionClosed, OSError):
            return
        with self.lock:
            self.channel_sent += len(extras)
            streaming.set()
            frames = [(line, name) for line in self.lines
                      if (name := self.book_frame(line)) is not None and name in names]
            for name in names:
                self.truth.setdefault(name, self.initial_truth(name))
        order = list(range(len(frames)))
        for position, fault in self.faults.items():
            if fault == "swap" and position + 1 < len(order):
                order[position], order[position + 1] = order[position + 1], order[position]
        advanced = -1  # the truth has every frame up to this index, in the recorded order
        held = False  # a swapped pair goes out back to back: no snapshot between the two
        try:
            for position in range(len(frames)):
                if closed.is_set():
                    return
                fault = self.faults.get(position)
                sent_line, sent_name = frames[order[position]]
                if fault == "checksum":
                    sent_line = self.bad_checksum(sent_line)
                if not held:  # a snapshot asked for meanwhile goes between two frames
                    self.lock.acquire()
                held = True
                if fault == "cross":
                    connection.send(self.cross_frame(sent_name, self.truth[sent_name]))
                while advanced < order[position]:  # a dropped frame counts: it was lost
                    advanced += 1
                    line, name = frames[advanced]
                    self.advance(self.truth[name], line)
                self.served += 1
                if fault != "drop" and self.on_wire(sent_line):
                    connection.send(sent_line)
                if fault != "swap":
                    held = False
                    self.lock.release()
                    if self.interval:
                        time.sleep(self.interval)
            self.finished.set()
        except (ConnectionClosed, OSError):
            return
        finally:
            if held:
                self.lock.release()

    def respond_rest(self, path: str, query: dict[str, list[str]]) -> Reply:
        name = self.snapshot_name(path, query)
        if name is None:
            return Reply(404, b'{"msg": "no such path"}')
        with self.lock:
            self.rest_requests.append(name)
            if name not in self._first_snapshot_sent and name in self.snapshots:
                self._first_snapshot_sent.add(name)
                return Reply(200, self.snapshots[name].encode())
            truth = self.truth.setdefault(name, self.initial_truth(name))
            return Reply(200, self.snapshot_body(name, truth).encode())


class _SnapshotHTTP(LoopbackHTTPServer):
    def __init__(self, owner: RecordedBookServer) -> None:
        super().__init__()
        self.owner = owner

    def respond(self, path: str, query: dict[str, list[str]]) -> Reply:
        return self.owner.respond_rest(path, query)

    def respond_post(self, path: str) -> Reply:
        return self.owner.respond_post(path)


# --- Binance ---------------------------------------------------------------------------------------

class BinanceRecordedServer(RecordedBookServer):
    """Binance spot (``futures=False``) or USD-M futures: combined-stream frames
    ``{"stream", "data": depthUpdate}``, SUBSCRIBE acks, and ``/api/v3/depth`` (``/fapi/v1/depth``)
    snapshots. ``snapshots`` maps ``"BTCUSDT"`` to the recorded REST body."""

    path = "/stream"

    def __init__(self, lines: list[str], *, futures: bool = False, **kwargs) -> None:
        super().__init__(lines, **kwargs)
        self.futures = futures

    def book_frame(self, line: str) -> str | None:
        data = json.loads(line).get("data", {})
        return data.get("s") if data.get("e") == "depthUpdate" else None

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        if request.get("method") != "SUBSCRIBE":
            return set(), []
        names = {stream.split("@")[0].upper() for stream in request.get("params", [])}
        return names, [json.dumps({"result": None, "id": request.get("id")})]

    def channel_streams(self, message: str) -> set[str]:
        request = json.loads(message)
        if request.get("method") != "SUBSCRIBE":
            return set()
        return {stream for stream in request.get("params", []) if stream.endswith(("@trade", "@ticker"))}

    def channel_frame(self, line: str) -> str | None:
        message = json.loads(line)
        data = message.get("data", {})
        return message.get("stream") if data.get("e") in ("trade", "24hrTicker") else None

    def advance(self, truth: TruthBook, line: str) -> None:
        data = json.loads(line)["data"]
        if truth.last is None or data["u"] > truth.last:
            truth.set(data["b"], data["a"])
            truth.last = data["u"]

    def cross_frame(self, name: str, truth: TruthBook) -> str:
        best_ask = min(truth.asks, key=Decimal)
        crossing = str(Decimal(best_ask) * Decimal("1.01"))
        last = truth.last or 0
        data = {"e": "depthUpdate", "E": 1, "s": name, "U": last + 1, "u": last + 1,
                "b": [[crossing, "1"]], "a": []}
        if self.futures:
            data.update(U=last, u=last, pu=last, T=1)
        return json.dumps({"stream": f"{name.lower()}@depth", "data": data})

    def snapshot_name(self, path: str, query: dict[str, list[str]]) -> str | None:
        if path not in ("/api/v3/depth", "/fapi/v1/depth"):
            return None
        return query.get("symbol", [None])[0]

    def snapshot_body(self, name: str, truth: TruthBook) -> str:
        bids, asks = truth.sorted_levels(1000)
        body = {"lastUpdateId": truth.last, "bids": bids, "asks": asks}
        if self.futures:
            body.update(E=1, T=1)
        return json.dumps(body)

    def env(self) -> dict[str, str]:
        prefix = "BINANCE_FUTURES" if self.futures else "BINANCE"
        return {f"{prefix}_WS_URL": self.url, f"{prefix}_REST_URL": self.http.url}


# --- OKX --------------------------------------------------------------------------------------------

class OkxRecordedServer(RecordedBookServer):
    """OKX ``books``: ``{"op": "subscribe"|"unsubscribe", "args": […]}`` requests, acks, pushes.

    A market subscribed again gets a snapshot of its truth with ``checksum: 0`` (as OKX sends
    since 2026-06), so the next update's recorded checksum checks the rebuilt book.
    ``numbered=True`` serves a recording made before OKX sent sequence ids as today's protocol
    does: ``prevSeqId``/``seqId`` numbered per instrument (a snapshot has ``prevSeqId: -1``).
    ``reset=(instId, n)`` (with ``numbered``) resets that instrument's sequence at its ``n``-th
    update, as after maintenance: that update has ``prevSeqId`` of the old sequence and
    ``seqId`` 3, the next ones follow from there."""

    def __init__(self, lines: list[str], *, numbered: bool = False, ws_snapshots: bool = True,
                 reset: tuple[str, int] | None = None, **kwargs) -> None:
        if numbered:
            lines = _numbered_okx(lines, reset)
        super().__init__(lines, **kwargs)
        self.ws_snapshots = ws_snapshots

    def on_wire(self, line: str) -> bool:
        return self.ws_snapshots or '"action":"snapshot"' not in line

    def initial_truth(self, name: str) -> TruthBook:
        """Without WS snapshots (as OKX announced), the book the withheld snapshot holds: what
        a REST request before the first update returns."""
        truth = TruthBook()
        if not self.ws_snapshots:
            first = next((line for line in self.lines if self.book_frame(line) == name), None)
            if first is not None:
                self.advance(truth, first)
        return truth

    def snapshot_name(self, path: str, query: dict[str, list[str]]) -> str | None:
        return query.get("instId", [None])[0] if path == "/api/v5/market/books" else None

    def snapshot_body(self, name: str, truth: TruthBook) -> str:
        bids, asks = truth.sorted_levels(400)
        return json.dumps({"code": "0", "msg": "", "data": [{
            "asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids],
            "ts": "1", "seqId": truth.last}]})

    def book_frame(self, line: str) -> str | None:
        message = json.loads(line)
        arg = message.get("arg") or {}
        return arg.get("instId") if arg.get("channel") == "books" and "data" in message else None

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        if message == "ping":
            return set(), ["pong"]
        request = json.loads(message)
        args = [a for a in request.get("args", []) if a.get("channel") == "books"]
        replies = [json.dumps({"event": request.get("op"), "arg": a}) for a in args]
        names = {a["instId"] for a in args} if request.get("op") == "subscribe" else set()
        return names, replies

    def advance(self, truth: TruthBook, line: str) -> None:
        message = json.loads(line)
        for data in message["data"]:
            if message["action"] == "snapshot":
                truth.bids.clear()
                truth.asks.clear()
            truth.set(data["bids"], data["asks"])
            truth.last = data.get("seqId", truth.last)

    def bad_checksum(self, line: str) -> str:
        message = json.loads(line)
        message["data"][0]["checksum"] = message["data"][0]["checksum"] + 1
        return json.dumps(message)

    def snapshot_frame(self, name: str, truth: TruthBook) -> str:
        bids, asks = truth.sorted_levels(400)
        data = {"asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids],
                "ts": "1", "checksum": 0}
        if truth.last is not None:
            data.update(prevSeqId=-1, seqId=truth.last)
        return json.dumps({"arg": {"channel": "books", "instId": name}, "action": "snapshot",
                           "data": [data]})

    def env(self) -> dict[str, str]:
        return {"OKX_WS_URL": self.url, "OKX_REST_URL": self.http.url}


def _numbered_okx(lines: list[str], reset: tuple[str, int] | None = None) -> list[str]:
    seq: dict[str, int] = {}
    updates: dict[str, int] = {}
    out = []
    for line in lines:
        message = json.loads(line)
        arg = message.get("arg") or {}
        if arg.get("channel") != "books" or "data" not in message:
            out.append(line)
            continue
        name = arg["instId"]
        for data in message["data"]:
            previous = seq.get(name, 1000)
            data["prevSeqId"] = -1 if message["action"] == "snapshot" else previous
            data["seqId"] = seq[name] = previous + 1
            if message["action"] == "update":
                updates[name] = updates.get(name, 0) + 1
                if reset == (name, updates[name]):
                    data["seqId"] = seq[name] = 3
        out.append(json.dumps(message, separators=(",", ":")))
    return out


# --- Bybit ------------------------------------------------------------------------------------------

class BybitRecordedServer(RecordedBookServer):
    """Bybit v5 ``orderbook.N.SYMBOL``: ``{"op": "subscribe"|"unsubscribe"|"ping", "args"}``
    requests, acks, pongs; a market subscribed again gets a snapshot of its truth.
    ``restart_at=n``: a service restart before the ``n``-th book frame (counted from 0): a
    snapshot of the book with ``u`` 1, and the later deltas numbered on from it."""

    def __init__(self, lines: list[str], *, restart_at: int | None = None, **kwargs) -> None:
        if restart_at is not None:
            lines = self._restarted(lines, restart_at)
        super().__init__(lines, **kwargs)

    def _restarted(self, lines: list[str], restart_at: int) -> list[str]:
        out, truth, position, u = [], TruthBook(), 0, None
        for line in lines:
            name = self.book_frame(line)
            if name is None:
                out.append(line)
                continue
            if position == restart_at:
                u = 1
                out.append(self.snapshot_frame(name, replace(truth, last=u)))
            if u is not None:
                message = json.loads(line)
                u = message["data"]["u"] = u + 1
                line = json.dumps(message)
            self.advance(truth, line)
            out.append(line)
            position += 1
        return out

    def book_frame(self, line: str) -> str | None:
        message = json.loads(line)
        return message["data"]["s"] if str(message.get("topic", "")).startswith("orderbook.") else None

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        op = request.get("op")
        reply = json.dumps({"success": True, "ret_msg": "pong" if op == "ping" else "",
                            "conn_id": "loopback", "req_id": request.get("req_id", ""), "op": op})
        names = {topic.split(".")[-1] for topic in request.get("args", [])} if op == "subscribe" else set()
        return names, [reply]

    def advance(self, truth: TruthBook, line: str) -> None:
        message = json.loads(line)
        if message["type"] == "snapshot":
            truth.bids.clear()
            truth.asks.clear()
        truth.set(message["data"]["b"], message["data"]["a"])
        truth.last = message["data"]["u"]

    def cross_frame(self, name: str, truth: TruthBook) -> str:
        best_ask = min(truth.asks, key=Decimal)
        truth_u = (truth.last or 0) + 1  # in sequence, so only the crossing gives it away
        return json.dumps({"topic": f"orderbook.50.{name}", "type": "delta", "ts": 1,
                           "data": {"s": name, "b": [[str(Decimal(best_ask) * Decimal("1.01")), "1"]],
                                    "a": [], "u": truth_u, "seq": 1}})

    def snapshot_frame(self, name: str, truth: TruthBook) -> str:
        bids, asks = truth.sorted_levels(500)
        return json.dumps({"topic": f"orderbook.50.{name}", "type": "snapshot", "ts": 1,
                           "data": {"s": name, "b": bids, "a": asks, "u": truth.last, "seq": 1}})

    def env(self) -> dict[str, str]:
        return {"BYBIT_WS_URL": self.url, "BYBIT_REST_URL": self.http.url}


# --- Gate.io ----------------------------------------------------------------------------------------

class GateioRecordedServer(RecordedBookServer):
    """Gate.io ``spot.order_book_update``: one subscribe per pair, acks, ``spot.ping`` pongs, and
    ``/api/v4/spot/order_book`` snapshots. ``snapshots`` maps ``"BTC_USDT"`` to the recorded REST
    body."""

    def book_frame(self, line: str) -> str | None:
        message = json.loads(line)
        if message.get("channel") == "spot.order_book_update" and message.get("event") == "update":
            return message["result"]["s"]
        return None

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        channel = request.get("channel")
        if channel == "spot.ping":
            return set(), [json.dumps({"time": request.get("time"), "channel": "spot.pong",
                                       "event": "", "error": None, "result": None})]
        if channel != "spot.order_book_update" or request.get("event") != "subscribe":
            return set(), []
        reply = json.dumps({"time": request.get("time"), "channel": channel, "event": "subscribe",
                            "result": {"status": "success"}})
        return {request["payload"][0]}, [reply]

    snapshot_id_key = "id"

    def advance(self, truth: TruthBook, line: str) -> None:
        result = json.loads(line)["result"]
        if result.get("full"):
            truth.bids.clear()
            truth.asks.clear()
        if truth.last is None or result["u"] > truth.last:
            truth.set(result["b"], result["a"])
            truth.last = result["u"]

    def cross_frame(self, name: str, truth: TruthBook) -> str:
        best_ask = min(truth.asks, key=Decimal)
        last = truth.last or 0
        return json.dumps({"time": 1, "channel": "spot.order_book_update", "event": "update",
                           "result": {"t": 1, "e": "depthUpdate", "E": 1, "s": name,
                                      "U": last + 1, "u": last + 1, "a": [],
                                      "b": [[str(Decimal(best_ask) * Decimal("1.01")), "1"]]}})

    def snapshot_name(self, path: str, query: dict[str, list[str]]) -> str | None:
        if path != "/api/v4/spot/order_book":
            return None
        return query.get("currency_pair", [None])[0]

    def snapshot_body(self, name: str, truth: TruthBook) -> str:
        bids, asks = truth.sorted_levels(100)
        return json.dumps({"id": truth.last, "current": 1, "update": 1, "asks": asks, "bids": bids})

    def env(self) -> dict[str, str]:
        return {"GATEIO_WS_URL": self.url, "GATEIO_REST_URL": self.http.url}


# --- KuCoin -----------------------------------------------------------------------------------------

class KucoinRecordedServer(RecordedBookServer):
    """KuCoin: ``POST /api/v1/bullet-public`` hands out a token naming this server, a connection
    is welcomed, ``/market/level2:A,B`` subscribes are acked, pings ponged, and
    ``/api/v1/market/orderbook/level2_100`` answers snapshots. ``snapshots`` maps ``"BTC-USDT"``
    to the recorded REST body; ``tokens`` lists the tokens handed out."""

    def __init__(self, lines: list[str], **kwargs) -> None:
        super().__init__(lines, **kwargs)
        self.tokens: list[str] = []

    def respond_post(self, path: str) -> Reply:
        if path != "/api/v1/bullet-public":
            return super().respond_post(path)
        with self.lock:
            token = f"loopback-token-{len(self.tokens) + 1}"
            self.tokens.append(token)
        body = {"code": "200000", "data": {"token": token, "instanceServers": [
            {"endpoint": self.url, "encrypt": False, "protocol": "websocket",
             "pingInterval": 18000, "pingTimeout": 10000}]}}
        return Reply(200, json.dumps(body).encode())

    def greeting(self) -> list[str]:
        return [json.dumps({"id": "loopback", "type": "welcome"})]

    def book_frame(self, line: str) -> str | None:
        message = json.loads(line)
        return message["data"]["symbol"] if message.get("subject") == "trade.l2update" else None

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        kind = request.get("type")
        if kind == "ping":
            return set(), [json.dumps({"id": request.get("id"), "type": "pong"})]
        if kind != "subscribe":
            return set(), []
        topic, _, names = str(request.get("topic", "")).partition(":")
        ack = [json.dumps({"id": request.get("id"), "type": "ack"})] if request.get("response") else []
        return (set(names.split(",")) if topic == "/market/level2" else set()), ack

    snapshot_id_key = "sequence"

    def recorded_book(self, body: dict) -> dict:
        return body["data"]

    def advance(self, truth: TruthBook, line: str) -> None:
        data = json.loads(line)["data"]
        if truth.last is not None and data["sequenceEnd"] <= truth.last:
            return
        for side, changes in (("bids", data["changes"]["bids"]), ("asks", data["changes"]["asks"])):
            fresh = [c for c in changes if c[0] != "0" and (truth.last is None or int(c[2]) > truth.last)]
            truth.set(fresh if side == "bids" else [], fresh if side == "asks" else [])
        truth.last = data["sequenceEnd"]

    def cross_frame(self, name: str, truth: TruthBook) -> str:
        best_ask = min(truth.asks, key=Decimal)
        last = (truth.last or 0) + 1
        return json.dumps({"type": "message", "topic": f"/market/level2:{name}",
                           "subject": "trade.l2update",
                           "data": {"sequenceStart": last, "sequenceEnd": last, "symbol": name,
                                    "changes": {"asks": [], "bids": [
                                        [str(Decimal(best_ask) * Decimal("1.01")), "1", str(last)]]}}})

    def snapshot_name(self, path: str, query: dict[str, list[str]]) -> str | None:
        if path != "/api/v1/market/orderbook/level2_100":
            return None
        return query.get("symbol", [None])[0]

    def snapshot_body(self, name: str, truth: TruthBook) -> str:
        bids, asks = truth.sorted_levels(100)
        return json.dumps({"code": "200000", "data": {"time": 1, "sequence": str(truth.last),
                                                      "bids": bids, "asks": asks}})

    def env(self) -> dict[str, str]:
        return {"KUCOIN_REST_URL": self.http.url}


# --- Kraken -----------------------------------------------------------------------------------------

class KrakenRecordedServer(RecordedBookServer):
    """Kraken v2 ``book``: subscribe/unsubscribe acks, pongs, heartbeats, and the recorded book
    messages with their prices and quantities spelled to the pair's ``precision`` (price
    decimals, quantity decimals), as Kraken sends them (the recording was re-serialized
    through floats: ``4.0`` where the wire has ``4.00000000``). The truth is cut to ``depth``
    after each message; a pair subscribed again gets a snapshot of it with its checksum.
    ``ticker`` and ``trade`` lines among ``lines`` go to the connections that subscribed them."""

    CHANNELS = ("ticker", "trade")

    def __init__(self, lines: list[str], *, precision: tuple[int, int], depth: int = 10,
                 **kwargs) -> None:
        self.precision = precision
        self.depth = depth
        super().__init__([self._rewire(line) for line in lines], **kwargs)

    def _rewire(self, line: str) -> str:
        message = json.loads(line, parse_float=Decimal)
        if message.get("channel") != "book":
            return line
        for part in message["data"]:
            for side in ("bids", "asks"):
                part[side] = [{"price": self._number(level["price"], 0),
                               "qty": self._number(level["qty"], 1)} for level in part[side]]
        return _unquote_numbers(json.dumps(message, separators=(",", ":")))

    def _number(self, value, which: int) -> str:
        return _NUMBER + f"{Decimal(value):.{self.precision[which]}f}"

    def book_frame(self, line: str) -> str | None:
        message = json.loads(line)
        return message["data"][0]["symbol"] if message.get("channel") == "book" else None

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        request = json.loads(message)
        method = request.get("method")
        if method == "ping":
            return set(), [json.dumps({"method": "pong", "req_id": request.get("req_id")})]
        params = request.get("params", {})
        channel = params.get("channel")
        if method not in ("subscribe", "unsubscribe") or channel not in ("book", *self.CHANNELS):
            return set(), []
        symbols = params.get("symbol", [])
        depth = {"depth": params.get("depth")} if channel == "book" else {}
        replies = [json.dumps({"method": method, "result": {"channel": channel, **depth,
                                                            "symbol": symbol}, "success": True})
                   for symbol in symbols]
        return (set(symbols) if method == "subscribe" and channel == "book" else set()), replies

    def channel_streams(self, message: str) -> set[str]:
        request = json.loads(message)
        params = request.get("params", {})
        if request.get("method") != "subscribe" or params.get("channel") not in self.CHANNELS:
            return set()
        return {f"{params['channel']}:{symbol}" for symbol in params.get("symbol", [])}

    def channel_frame(self, line: str) -> str | None:
        message = json.loads(line)
        if message.get("channel") not in self.CHANNELS:
            return None
        return f"{message['channel']}:{message['data'][0]['symbol']}"

    def advance(self, truth: TruthBook, line: str) -> None:
        message = json.loads(line)
        if message["type"] == "snapshot":
            truth.bids.clear()
            truth.asks.clear()
        raw = json.loads(line, parse_float=str)["data"][0]  # the lexemes
        truth.set([(lv["price"], lv["qty"]) for lv in raw["bids"]],
                  [(lv["price"], lv["qty"]) for lv in raw["asks"]])
        bids, asks = truth.sorted_levels(self.depth)
        truth.bids, truth.asks = dict(map(tuple, bids)), dict(map(tuple, asks))
        truth.last = raw.get("timestamp", truth.last)  # the snapshot frame repeats it

    def cross_frame(self, name: str, truth: TruthBook) -> str:
        best_ask = min(truth.asks, key=Decimal)
        crossing = Decimal(best_ask) + 10 * Decimal(1).scaleb(-self.precision[0])
        return self._frame("update", name, [(f"{crossing:.{self.precision[0]}f}", "1." + "0" * self.precision[1])],
                           [], 1, truth.last)

    def bad_checksum(self, line: str) -> str:
        message = json.loads(line, parse_float=Decimal)
        checksum = message["data"][0]["checksum"]
        return line.replace(f'"checksum":{checksum}', f'"checksum":{(checksum + 1) % (1 << 32)}')

    def snapshot_frame(self, name: str, truth: TruthBook) -> str:
        bids, asks = truth.sorted_levels(self.depth)
        text = "".join(part.replace(".", "").lstrip("0") for level in (*asks[:10], *bids[:10])
                       for part in level)
        return self._frame("snapshot", name, bids, asks, zlib.crc32(text.encode()), truth.last)

    @staticmethod
    def _frame(kind: str, name: str, bids, asks, checksum: int, stamp=None) -> str:
        def spelled(levels):
            return [{"price": _NUMBER + p, "qty": _NUMBER + q} for p, q in levels]
        message = {"channel": "book", "type": kind, "data": [{
            "symbol": name, "bids": spelled(bids), "asks": spelled(asks), "checksum": checksum,
            "timestamp": stamp or "2023-07-30T15:30:00.000000Z"}]}
        return _unquote_numbers(json.dumps(message, separators=(",", ":")))

    def env(self) -> dict[str, str]:
        return {"KRAKEN_WS_URL": self.url, "KRAKEN_REST_URL": self.http.url}


_NUMBER = "#num#"


def _unquote_numbers(text: str) -> str:
    """JSON text with the strings marked ``_NUMBER`` written as bare numbers (as spelled)."""
    return re.sub(f'"{_NUMBER}(-?[0-9.eE+-]+)"', r"\1", text)


# --- BitMEX -----------------------------------------------------------------------------------------

class BitmexRecordedServer(RecordedBookServer):
    """BitMEX ``orderBookL2``: a welcome on connect, per-topic subscribe/unsubscribe acks, text
    ``ping``/``pong``, the recorded table diffs; a symbol subscribed again gets a ``partial`` of
    its truth, with the level ids the recording gave. ``trade`` and ``instrument`` lines among
    ``lines`` go to the connections that subscribed them."""

    CHANNELS = ("instrument", "trade")

    def __init__(self, lines: list[str], **kwargs) -> None:
        super().__init__(lines, **kwargs)
        self.ids: dict[str, dict[int, tuple[str, str]]] = {}  # symbol -> id -> (side, price)

    def greeting(self) -> list[str]:
        return [json.dumps({"info": "Welcome to the BitMEX Realtime API.", "version": "loopback",
                            "limit": {"remaining": 39}})]

    def book_frame(self, line: str) -> str | None:
        message = json.loads(line)
        return message["data"][0]["symbol"] if message.get("table") == "orderBookL2" else None

    def subscribed(self, message: str) -> tuple[set[str], list[str]]:
        if message == "ping":
            return set(), ["pong"]
        request = json.loads(message)
        op = request.get("op")
        if op not in ("subscribe", "unsubscribe"):
            return set(), []
        topics = request.get("args", [])
        replies = [json.dumps({"success": True, op: topic, "request": request}) for topic in topics]
        books = {t.split(":", 1)[1] for t in topics if t.startswith("orderBookL2:")}
        return (books if op == "subscribe" else set()), replies

    def channel_streams(self, message: str) -> set[str]:
        if message == "ping":
            return set()
        request = json.loads(message)
        if request.get("op") != "subscribe":
            return set()
        return {t for t in request.get("args", []) if t.split(":", 1)[0] in self.CHANNELS}

    def channel_frame(self, line: str) -> str | None:
        message = json.loads(line)
        if message.get("table") not in self.CHANNELS:
            return None
        return f"{message['table']}:{message['data'][0]['symbol']}"

    def advance(self, truth: TruthBook, line: str) -> None:
        message = json.loads(line, parse_float=str)
        action = message["action"]
        ids = self.ids.setdefault(message["data"][0]["symbol"], {})
        if action == "partial":
            truth.bids.clear()
            truth.asks.clear()
            ids.clear()
        for row in message["data"]:
            side = "bids" if row["side"] == "Buy" else "asks"
            if action in ("partial", "insert"):
                ids[row["id"]] = (side, str(row["price"]))
            price = ids[row["id"]][1]
            if action == "delete":
                del ids[row["id"]]
                getattr(truth, side).pop(price, None)
            else:
                getattr(truth, side)[price] = str(row["size"])

    def cross_frame(self, name: str, truth: TruthBook) -> str:
        best_ask = min(truth.asks, key=Decimal)
        return json.dumps({"table": "orderBookL2", "action": "insert", "data": [
            {"symbol": name, "id": 1, "side": "Buy", "size": 1,
             "price": float(Decimal(best_ask) * Decimal("1.01"))}]})

    def snapshot_frame(self, name: str, truth: TruthBook) -> str:
        rows = [{"symbol": name, "id": level_id, "side": "Buy" if side == "bids" else "Sell",
                 "size": _NUMBER + getattr(truth, side)[price], "price": _NUMBER + price}
                for level_id, (side, price) in self.ids.get(name, {}).items()]
        message = {"table": "orderBookL2", "action": "partial", "keys": ["symbol", "id", "side"],
                   "filter": {"symbol": name}, "data": rows}
        return _unquote_numbers(json.dumps(message, separators=(",", ":")))

    def env(self) -> dict[str, str]:
        return {"BITMEX_WS_URL": self.url, "BITMEX_REST_URL": self.http.url}
