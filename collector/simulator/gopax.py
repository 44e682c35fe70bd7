"""A loopback GOPAX WebSocket server (protocol: see ``controllers/gopax.py``).

Each market is a live book the server keeps (its "truth"), seeded from a real GOPAX snapshot and
changed by generated ``OrderBookEvent`` deltas (new levels, changed sizes, ``volume: 0``
deletions) with one ``entryId`` counter across markets and ``updatedAt`` in seconds, as GOPAX
sends them. On ``SubscribeToOrderBook`` the server sends, in this order, a delta that is newer
than the snapshot (GOPAX: "a delta may arrive before the response"), a stale delta already
contained in the snapshot (``entryId`` ≤ ``maxEntryId``: must be skipped), then the whole-book
snapshot, then the market's remaining deltas. After the snapshot and after each delta the server
calls :meth:`GopaxServer._record_expected` (a subclass may keep the true book: what the
collector must store).

Unknown pairs get the real ``10058`` error, a 51st book on one connection the real ``10321``. The
server sends the real ``"primus::ping::<ms>"`` frame every ``ping_every`` seconds and closes the
connection (code 1000) if the exact pong does not come back within ``pong_timeout``. With
``api_key``/``secret`` set, a connect must carry a valid ``apiKey``/``timestamp``/``signature``
query (else HTTP 401).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from collector.simulator.frames import data_json, data_text
from collector.simulator.ws import LoopbackWSServer


class GopaxTruth:
    """One market's true book: (side, price) -> (volume, entryId, updatedAt)."""

    def __init__(self, pair: str, snapshot: dict, seed: int) -> None:
        self.pair = pair
        self.levels: dict[tuple[str, float], tuple[float, int, float]] = {}
        for side in ("bid", "ask"):
            for e in snapshot["o"][side]:
                self.levels[(side, e["price"])] = (e["volume"], e["entryId"], e["updatedAt"])
        self.rng = random.Random(seed)
        prices = [p for _, p in self.levels]
        self.tick = max(1, round(min(prices) / 10000))

    def top(self, depth: int) -> tuple[tuple, tuple]:
        bids = sorted(((p, v[0]) for (s, p), v in self.levels.items() if s == "bid"), reverse=True)
        asks = sorted((p, v[0]) for (s, p), v in self.levels.items() if s == "ask")
        return tuple(bids[:depth]), tuple(asks[:depth])

    def entries(self, side: str) -> list[dict]:
        return [{"entryId": v[1], "price": p, "volume": v[0], "updatedAt": v[2]}
                for (s, p), v in sorted(self.levels.items()) if s == side]

    def change(self, next_id, clock: float) -> list[tuple[str, dict]]:
        """1-3 random level changes applied to the truth; returns ``[(side, entry), …]``."""
        changes = []
        best_bid = max((p for s, p in self.levels if s == "bid"), default=None)
        best_ask = min((p for s, p in self.levels if s == "ask"), default=None)
        for _ in range(self.rng.randint(1, 3)):
            side = self.rng.choice(("bid", "ask"))
            existing = [p for s, p in self.levels if s == side]
            if len(existing) > 1 and self.rng.random() < 0.3:  # a live book keeps a level a side
                price, volume = self.rng.choice(existing), 0  # delete
            elif existing and self.rng.random() < 0.5:
                price = self.rng.choice(existing)
                volume = round(self.rng.uniform(0.0001, 2.0), 8)
            else:  # a new level on the side's own half of the book
                if side == "bid":
                    anchor = best_bid if best_bid is not None else (best_ask or 1000) - self.tick
                    price = anchor - self.tick * self.rng.randint(0, 20)
                    if best_ask is not None and price >= best_ask:
                        price = best_ask - self.tick
                else:
                    anchor = best_ask if best_ask is not None else (best_bid or 1000) + self.tick
                    price = anchor + self.tick * self.rng.randint(0, 20)
                    if best_bid is not None and price <= best_bid:
                        price = best_bid + self.tick
                volume = round(self.rng.uniform(0.0001, 2.0), 8)
            entry = {"entryId": next_id(), "price": price, "volume": volume,
                     "updatedAt": round(clock, 3)}
            if volume == 0:
                self.levels.pop((side, price), None)
            else:
                self.levels[(side, price)] = (volume, entry["entryId"], entry["updatedAt"])
            changes.append((side, entry))
        return changes


class GopaxServer(LoopbackWSServer):
    """Args:
        events: pair (``"BTC-KRW"``) -> number of deltas to send after its snapshot (over all
            connections).
        interval: seconds between two deltas.
        disconnect_after: drop the TCP connection after this many deltas on one connection.
        ping_every / pong_timeout: the server's text ping (seconds); ``None``: no pings.
        api_key / secret: require a signed connect.
    """

    def __init__(self, events: dict[str, int], *, interval: float = 0.0,
                 disconnect_after: int | None = None, ping_every: float | None = None,
                 pong_timeout: float = 1.0, api_key: str | None = None,
                 secret: str | None = None) -> None:
        super().__init__()
        self.interval = interval
        self.disconnect_after = disconnect_after
        self.ping_every = ping_every
        self.pong_timeout = pong_timeout
        self.api_key = api_key
        self.secret = secret
        self.remaining = dict(events)
        self.sent: dict[str, list[dict]] = {pair: [] for pair in events}
        self.subscribes: list[dict] = []
        self.errors_sent: list[dict] = []
        self.pings_sent = 0
        self.pongs: list[str] = []
        self.unanswered_closes = 0
        self.signed_connects = 0
        self.rejected_connects = 0
        self.finished = threading.Event()
        self.drop_next = False  # set: the next delta sent is the last of its connection
        self._entry_id = 84_563_415
        self._clock = 1_790_139_000.0  # after every updatedAt of the seed snapshots
        wire = data_json("gopax/ws_orderbook_snapshot_wire_2026-09_trimmed.json")
        docs = data_json("gopax/ws_orderbook_snapshot_docs.json")
        self.truth = {}
        for i, pair in enumerate(events):
            seed_book = wire if i % 2 == 0 else docs
            self.truth[pair] = GopaxTruth(pair, seed_book, seed=100 + i)

    # --- helpers -----------------------------------------------------------------------------

    def _next_id(self) -> int:
        self._entry_id += 1
        return self._entry_id

    def _tick_clock(self) -> float:
        self._clock += 0.137
        return self._clock

    def _record_expected(self, pair: str, newest: float) -> None:
        """The truth of ``pair`` changed (``newest``: its latest ``updatedAt``, seconds); called
        under the lock. Nothing here."""

    def _delta(self, pair: str) -> tuple[dict, float]:
        changes = self.truth[pair].change(self._next_id, self._tick_clock())
        body = {"ask": [e for s, e in changes if s == "ask"], "bid": [e for s, e in changes if s == "bid"],
                "tradingPairName": pair}
        return {"i": -1, "n": "OrderBookEvent", "o": body}, max(e["updatedAt"] for _, e in changes)

    def _send(self, connection: ServerConnection, pair: str, messages: list[dict]) -> None:
        """Send outside the lock (a send can block while a connection closes)."""
        with self.lock:
            self.sent[pair].extend(messages)
        for message in messages:
            connection.send(json.dumps(message, separators=(",", ":")))

    # --- auth ----------------------------------------------------------------------------------

    def process_request(self, connection, request):
        if self.secret is None:
            return None
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        try:
            timestamp = int(query["timestamp"])
            key = base64.b64decode(self.secret)
            expected = base64.b64encode(hmac.new(key, f"t{timestamp}".encode(), hashlib.sha512)
                                        .digest()).decode()
            ok = (query["apiKey"] == self.api_key and hmac.compare_digest(query["signature"], expected)
                  and abs(time.time() * 1000 - timestamp) < 5000)
        except (KeyError, ValueError):
            ok = False
        with self.lock:
            if ok:
                self.signed_connects += 1
            else:
                self.rejected_connects += 1
        return None if ok else connection.respond(401, "invalid signature\n")

    # --- one connection ------------------------------------------------------------------------

    def handle(self, connection: ServerConnection) -> None:
        subscribed: list[str] = []
        closed = threading.Event()
        pong_wanted: dict[str, float] = {}
        pinger = threading.Thread(target=self._ping, args=(connection, closed, pong_wanted), daemon=True)
        if self.ping_every:
            pinger.start()
        streamer = threading.Thread(target=self._stream, args=(connection, subscribed, closed), daemon=True)
        streamer.start()
        try:
            for message in connection:
                self.record(message)
                if isinstance(message, str) and message.startswith('"primus::pong::'):
                    with self.lock:
                        self.pongs.append(message)
                        pong_wanted.pop(message, None)
                    continue
                try:
                    request = json.loads(message)
                except ValueError:
                    continue  # GOPAX does not answer non-JSON text
                if isinstance(request, dict) and request.get("n") == "SubscribeToOrderBook":
                    self._subscribe(connection, request, subscribed)
                elif isinstance(request, dict):
                    self.other_request(connection, request, closed)
        except ConnectionClosed:
            pass
        closed.set()
        streamer.join(5)

    def _subscribe(self, connection: ServerConnection, request: dict, subscribed: list[str]) -> None:
        pair = request.get("o", {}).get("tradingPairName")
        with self.lock:
            self.subscribes.append(request)
            if pair not in self.truth:
                error = data_json("gopax/ws_error_10058_invalid_asset_wire_2026-09.json")
                error.update(i=request.get("i"), o=dict(error["o"], errData=str(pair).split("-")[0]))
            elif len(subscribed) >= 50:
                error = data_json("gopax/ws_error_10321_too_many_orderbooks_wire_2026-09.json")
                error["i"] = request.get("i")
            else:
                error = None
            if error is not None:
                self.errors_sent.append(error)
        if error is not None:
            connection.send(json.dumps(error, separators=(",", ":")))
            return
        with self.lock:
            truth = self.truth[pair]
            snapshot = {"i": request.get("i"), "n": "SubscribeToOrderBook",
                        "o": {"ask": truth.entries("ask"), "bid": truth.entries("bid"),
                              "tradingPairName": pair, "maxEntryId": self._entry_id}}
            newest = max([e["updatedAt"] for s in ("ask", "bid") for e in snapshot["o"][s]], default=0.0)
            stale = None
            if snapshot["o"]["bid"]:  # an old, superseded add below the book: must be skipped
                lowest = snapshot["o"]["bid"][0]
                stale = {"i": -1, "n": "OrderBookEvent", "o": {"ask": [], "bid": [{
                    "entryId": self._entry_id - 5, "price": lowest["price"] - truth.tick,
                    "volume": 1.5, "updatedAt": lowest["updatedAt"]}], "tradingPairName": pair}}
            early, early_newest = self._delta(pair)
            self._record_expected(pair, max(newest, early_newest))
        self._send(connection, pair, [early] + ([stale] if stale else []) + [snapshot])
        subscribed.append(pair)

    def other_request(self, connection: ServerConnection, request: dict, closed: threading.Event) -> None:
        """A request other than ``SubscribeToOrderBook`` (``SubscribeToTickers``,
        ``SubscribeToTradingPair``); ``closed`` is set when the connection ends. Ignored here."""

    def _stream(self, connection: ServerConnection, subscribed: list[str], closed: threading.Event) -> None:
        sent_here = 0
        try:
            while not closed.is_set():
                progressed = False
                for pair in list(subscribed):
                    with self.lock:
                        if self.remaining[pair] <= 0:
                            continue
                        self.remaining[pair] -= 1
                        delta, newest = self._delta(pair)
                        self._record_expected(pair, newest)
                    self._send(connection, pair, [delta])
                    progressed = True
                    sent_here += 1
                    with self.lock:
                        drop, self.drop_next = self.drop_next, False
                    if drop or (self.disconnect_after is not None and sent_here >= self.disconnect_after):
                        connection.socket.close()
                        return
                    if self.interval:
                        time.sleep(self.interval)
                if not progressed:
                    if all(n <= 0 for n in self.remaining.values()):
                        self.finished.set()
                    time.sleep(0.01)
        except (ConnectionClosed, OSError):
            return

    def _ping(self, connection: ServerConnection, closed: threading.Event,
              pong_wanted: dict[str, float]) -> None:
        while not closed.wait(self.ping_every):
            ping = data_text("gopax/ws_keepalive_server_ping_frame.txt")
            stamp = str(int(time.time() * 1000))
            ping = ping.replace(ping[len('"primus::ping::'):-1], stamp)
            with self.lock:
                pong_wanted['"primus::pong::' + stamp + '"'] = time.monotonic() + self.pong_timeout
                self.pings_sent += 1
            try:
                connection.send(ping)
            except ConnectionClosed:
                return
            if closed.wait(self.pong_timeout):
                return
            with self.lock:
                late = [p for p, deadline in pong_wanted.items() if time.monotonic() >= deadline]
                if late:
                    self.unanswered_closes += 1
            if late:
                connection.close(1000)
                return
