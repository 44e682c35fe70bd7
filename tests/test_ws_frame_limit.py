"""A WebSocket frame larger than the venue's limit is refused from its header, before its payload
is read: logged with the exchange, counted, the connection closed and opened again. The server is
a raw loopback socket speaking the WebSocket handshake and framing itself, so it can announce a
50 MB frame and count how much of it went out before the collector hung up."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
import time

import pytest

from controllers import UpbitController
from controllers.ws import BoundedFrameBuffer, FrameTooLarge
from core.model import Market
from tests.sim_oracles import fixture_text

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BIG = 50 * 1000 * 1000


def handshake(conn: socket.socket) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def header(opcode: int, length: int, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, length])
    if length < 65536:
        return bytes([first, 126]) + struct.pack("!H", length)
    return bytes([first, 127]) + struct.pack("!Q", length)


class HugeFrameServer:
    """First connection: a binary frame announcing ``BIG`` bytes, its payload sent 64 KiB at a
    time until the client hangs up (``sent`` counts it). Later connections: ``book`` as a binary
    frame every 50 ms."""

    def __init__(self, book: bytes) -> None:
        self.book = book
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.sent = 0
        self.hung_up = threading.Event()
        self.stop = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while not self.stop.is_set():
            conn, _ = self.listener.accept()
            self.connections += 1
            threading.Thread(target=self.huge if self.connections == 1 else self.books,
                             args=(conn,), daemon=True).start()

    def huge(self, conn: socket.socket) -> None:
        with conn:
            handshake(conn)
            conn.sendall(header(0x2, BIG))
            piece = b"x" * 65536
            try:
                while self.sent < BIG:
                    conn.sendall(piece)
                    self.sent += len(piece)
            except OSError:  # the client closed the connection
                self.hung_up.set()

    def books(self, conn: socket.socket) -> None:
        with conn:
            handshake(conn)
            try:
                while not self.stop.wait(0.05):
                    conn.sendall(header(0x2, len(self.book)) + self.book)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def test_a_50_mb_frame_is_refused_before_it_is_read_and_the_connection_reopened(caplog,
                                                                                 quick_retries):
    caplog.set_level("WARNING", "collector")
    book = fixture_text("upbit/ws_orderbook_default_docs.json").encode()
    server = HugeFrameServer(book)
    stored = []
    controller = UpbitController([Market("BTC", "KRW")], env={"UPBIT_WS_URL": server.url},
                                 sink=lambda record: stored.append(record) or True)
    controller.start()
    try:
        assert server.hung_up.wait(20), "the client read the whole frame"
        deadline = time.monotonic() + 20
        while not stored and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        controller.stop()
        assert controller.join(10)
        server.close()
    assert server.sent < BIG // 2  # far from the 50 MB: the socket buffers, not the payload
    assert server.connections >= 2 and stored, "no book after reconnecting"
    assert controller.stats.errors >= 1 and controller.stats.reconnects >= 1
    refused = [r for r in caplog.records if "exceeds the limit of 16777216 bytes" in r.getMessage()]
    assert refused and refused[0].tag == "UPBIT" and "50000000 bytes" in refused[0].getMessage()


def frames(*parts: bytes):
    """A recv function over ``parts`` (the socket's bytes, in order)."""
    data = bytearray(b"".join(parts))

    def recv(n: int) -> bytes:
        taken = bytes(data[:n])
        del data[:n]
        return taken
    return recv


def test_the_limit_counts_a_fragmented_message_and_resets_after_it():
    ok = frames(header(0x1, 6, fin=False), b"abcdef", header(0x0, 4), b"ghij",
                header(0x1, 10), b"0123456789")
    reader = BoundedFrameBuffer(ok, True, limit=10)
    assert [reader.recv_frame().data for _ in range(3)] == [b"abcdef", b"ghij", b"0123456789"]
    too_long = frames(header(0x1, 6, fin=False), b"abcdef", header(0x0, 5), b"ghijk")
    reader = BoundedFrameBuffer(too_long, True, limit=10)
    reader.recv_frame()
    with pytest.raises(FrameTooLarge, match="frame of 5 bytes \\(11 in the message\\) exceeds the limit of 10"):
        reader.recv_frame()
