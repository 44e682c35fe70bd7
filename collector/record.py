"""Recording what the exchanges sent: ``run_controller.py --record DIR``.

Every raw frame received and sent, every HTTP response body, and every connection open and
close goes, with its local time, to gzip-compressed NDJSON files in ``DIR``:
``rec-<YYYYmmdd-HHMMSS>-<nnnn>.ndjson.gz`` (their names sort in recording order), a new file when the current one has taken ``max_bytes``
of uncompressed lines or when the UTC hour changes. One JSON object per line::

    {"t": 1790139005374, "ex": "UPBIT", "c": 1, "d": "in", "p": "{\\"type\\":\\"orderbook\\",…}", "bin": true}

* ``t``: local time, ms since the Unix epoch (UTC); for ``in`` the ``received_at`` the books of the
  frame got;
* ``ex``: exchange; ``c``: connection number (1 = the first of the exchange; 0 for REST polls);
* ``d``: ``meta`` (a controller: ``controller``, ``markets`` as ``[[symbol, currency], …]``,
  ``depth``; written first), ``open`` (``p`` = endpoint without its query), ``in``, ``out``,
  ``close`` (``p`` = the cause);
* ``p``: the payload as text; ``bin: true`` when it came as a binary frame (UTF-8 text);
  ``b64: true`` when it was not UTF-8 and ``p`` is base64; ``status``: the HTTP status of a REST
  body.

**Bounded.** At most ``max_queue`` lines (:data:`MAX_QUEUE`, 50,000) wait for the writing thread;
a controller never waits for the disk. Lines that find the queue full are dropped and counted
(:attr:`Recorder.dropped`, in the summary line), and the recording says where: just before the
next line of that exchange that is queued (or at the end) comes a marker
``{"t": …, "ex": "UPBIT", "c": 0, "d": "dropped", "n": 12}`` (``n`` lines of that exchange were
not recorded), which a replay turns into a ``dropped`` event of the exchange.

Lines are written by one thread in the order they were recorded, which is the order the
controllers handled them: :mod:`collector.replay` feeds them back in that order.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import IO, Sequence

from core.errors import ConfigError
from core.model import Market, now_ms

MAX_QUEUE = 50_000
"""Lines waiting for the writing thread at most (beyond: dropped and counted)."""

log = logging.getLogger("collector.record")
_TAG = {"tag": "RECORD"}


def encode_payload(payload: bytes | str) -> dict:
    """``{"p": text}`` plus ``bin``/``b64`` flags for a raw payload."""
    if isinstance(payload, str):
        return {"p": payload}
    try:
        return {"p": payload.decode("utf-8"), "bin": True}
    except UnicodeDecodeError:
        return {"p": base64.b64encode(payload).decode("ascii"), "bin": True, "b64": True}


def decode_payload(line: dict) -> bytes | str:
    """The raw payload of a recorded line (inverse of :func:`encode_payload`)."""
    text = line.get("p", "")
    if line.get("b64"):
        return base64.b64decode(text)
    return text.encode("utf-8") if line.get("bin") else text


class Recorder:
    """Writes recorded lines from any thread to rotating gzip NDJSON files, from its own thread.

    Args:
        folder: where the files go (created if missing).
        max_bytes: uncompressed bytes per file before a new one is started.
        flush_interval: seconds between flushes of the compressed stream to disk.
        max_queue: lines waiting to be written at most; more are dropped and counted.

    Raises:
        ConfigError: the folder cannot be created.
    """

    def __init__(self, folder: Path, *, max_bytes: int = 256 * 1024 * 1024,
                 flush_interval: float = 1.0, max_queue: int = MAX_QUEUE) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create record folder {folder}: {exc.strerror or exc}") from None
        self.max_bytes = max_bytes
        self.flush_interval = flush_interval
        self.lines = 0
        self.dropped = 0
        """Lines dropped because the queue was full."""
        self.files: list[Path] = []
        self._queue: queue.Queue[dict | None] = queue.Queue(max_queue)
        self._drops: dict[str, int] = {}  # exchange -> lines dropped since its last marker
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- called from controller threads -------------------------------------------------------

    def meta(self, controller: str, exchange: str, markets: Sequence[Market], depth: int) -> None:
        """Describe a controller, so that a replay can build the same one (waits for room:
        called before :meth:`start`, never dropped)."""
        self._queue.put({"t": now_ms(), "ex": exchange, "c": 0, "d": "meta", "controller": controller,
                         "markets": [[m.base, m.quote] for m in markets], "depth": depth})

    def record(self, exchange: str, connection: int, direction: str, payload: bytes | str,
               at: int | None = None, **extra: object) -> None:
        """Queue one line (``direction``: ``open``, ``in``, ``out`` or ``close``); never blocks:
        with the queue full the line is dropped and counted (see the module text)."""
        line = {"t": now_ms() if at is None else at, "ex": exchange, "c": connection,
                "d": direction, **encode_payload(payload), **extra}
        with self._lock:  # one at a time: a marker goes in just before the line after a gap
            owed = self._drops.get(exchange, 0)
            try:
                if owed:
                    self._queue.put_nowait(self._marker(exchange, owed))
                    del self._drops[exchange]
                self._queue.put_nowait(line)
            except queue.Full:
                self.dropped += 1
                self._drops[exchange] = self._drops.get(exchange, 0) + 1

    @staticmethod
    def _marker(exchange: str, count: int) -> dict:
        return {"t": now_ms(), "ex": exchange, "c": 0, "d": "dropped", "n": count}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write everything queued (and a marker for every exchange with dropped lines not yet
        marked) and close the file."""
        if self._thread is None or not self._thread.is_alive():
            return  # never started, or failed (logged): nobody takes from the queue
        try:
            self._queue.put(None, timeout=30)
        except queue.Full:
            log.error("recording did not drain in 30 s; %d lines written", self.lines, extra=_TAG)
            return
        self._thread.join(30)

    def _open(self) -> tuple[IO[str], int]:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = self.folder / f"rec-{stamp}-{len(self.files) + 1:04d}.ndjson.gz"
        self.files.append(path)
        log.info("recording to %s", path, extra=_TAG)
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=6), time.gmtime().tm_hour

    def _run(self) -> None:
        out, hour = self._open()
        written = 0
        flushed_at = time.monotonic()
        try:
            while True:
                try:
                    line = self._queue.get(timeout=self.flush_interval)
                except queue.Empty:
                    line = {}  # nothing came in a flush interval: only flush
                if line is None:  # stop: the markers of gaps no later line closed
                    with self._lock:
                        lines = [self._marker(ex, n) for ex, n in self._drops.items()]
                        self._drops.clear()
                else:
                    lines = [line] if line else []
                for line_ in lines:
                    text = json.dumps(line_, ensure_ascii=False, separators=(",", ":")) + "\n"
                    if written and (written + len(text) > self.max_bytes
                                    or time.gmtime().tm_hour != hour):
                        out.close()
                        out, hour = self._open()
                        written = 0
                    out.write(text)
                    written += len(text)
                    self.lines += 1
                if line is None:
                    break
                if time.monotonic() - flushed_at >= self.flush_interval:
                    out.flush()
                    flushed_at = time.monotonic()
        except Exception:  # a full disk here must not stop the collection, but must be loud
            log.exception("recording failed after %d lines; collection goes on", self.lines,
                          extra=_TAG)
        finally:
            out.close()


def read_lines(paths: Sequence[Path]):
    """Every recorded line of ``paths`` (``.ndjson.gz`` or ``.ndjson``), file by file in the
    order given, as dicts.

    Raises:
        ConfigError: a file is missing or not a recording (the message names the file and line).
    """
    for path in paths:
        opener = gzip.open if str(path).endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8") as lines:
                for number, text in enumerate(lines, 1):
                    if not text.strip():
                        continue
                    try:
                        line = json.loads(text)
                    except ValueError:
                        raise ConfigError(f"{path}:{number}: not a JSON line") from None
                    if not isinstance(line, dict) or "d" not in line or "ex" not in line:
                        raise ConfigError(f"{path}:{number}: not a recorded line")
                    yield line
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        except EOFError:  # a file cut short (the process was killed): keep what is there
            log.warning("%s ends early (cut short?); its complete lines were read", path, extra=_TAG)
