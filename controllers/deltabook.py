"""The base of the controllers whose books come as a snapshot plus deltas (the global exchanges).

A subclass turns each frame into :class:`Delta` objects (:meth:`DeltaBookController.decode`) and
states its exchange's sequence rule (:meth:`DeltaBookController.check_sequence`); this base keeps
one :class:`~controllers.booksync.BookSync` per market (the pure state machine: book, buffered
deltas, the rules) and does the I/O around it:

* a snapshot (a WS snapshot, or a REST snapshot for exchanges that send only deltas) replaces the
  book; deltas set levels, size 0 deletes;
* deltas that come before the book has a snapshot are buffered (at most
  :data:`MAX_BUFFERED_DELTAS` per market) and replayed through the sequence rule once it comes;
* every delta is checked against the sequence rule: an old one is skipped, one that leaves a gap
  is a **desync**; so is a crossed book (best bid at or above best ask) after a delta, and a
  checksum that differs from the exchange's (where it sends one; a checksum of 0 means "none");
* a desync **resyncs that one market**: its book is dropped, a ``resync`` event is recorded with
  the cause, and a new snapshot is asked for: from REST (``rest_snapshots = True``) or by
  subscribing the market again on its connection. Snapshot requests of one controller go
  through one worker thread, at most one per ``snapshot_interval`` seconds (the exchange's rate
  limit), never from a receiving thread; a failed REST snapshot is asked again after what the
  retry policy says (:class:`controllers.http.RetryPolicy`: after HTTP 429/418 not before
  ``Retry-After`` has passed, else the backoff);
* after each applied snapshot or delta the top ``depth`` book is stored (not more often than
  ``book_interval`` seconds per market when that is set: the run's ``--book-interval``);
* a reconnect drops the connection's books (``resync`` event) and starts them again from a
  snapshot;
* a snapshot whose levels cannot be applied is rejected whole (never a half-built book): the
  market's book is dropped and its snapshot asked again (a ``resync`` event), the frame counted as
  a parse error; the market watchdog (:class:`~controllers.booksync.Freshness`) resyncs a
  market whose updates are skipped without progress for ``stall_timeout`` seconds, or that is
  silent much longer while its connection delivers data (:meth:`recover_market`).

Per market counters are in :attr:`DeltaBookController.sync`: snapshots, applied, skipped and
buffered deltas, resyncs, checksums checked and failed.
"""

from __future__ import annotations

import abc
import queue
import threading
import time
from typing import Any, ClassVar, Sequence

from core.errors import MalformedMessage, MessageError
from core.model import Market, OrderBookSnapshot, Ticker, Trade, level_kept, now_ms
from controllers.base import Record
from controllers.book import LocalBook
from controllers.booksync import (MAX_BUFFERED_DELTAS, BookSync, Delta, Step, SyncStats, TextLevel,
                                  Verdict)
from controllers.ws import Pacer, WSConnection, WSController

__all__ = ["MAX_BUFFERED_DELTAS", "Delta", "DeltaBookController", "SyncStats", "TextLevel",
           "Verdict", "text_levels"]


class DeltaBookController(WSController):
    """Base of the snapshot + delta controllers (see the module text).

    Class attributes a subclass sets, besides :class:`~controllers.ws.WSController`'s:
        rest_snapshots: ``True``: snapshots come from :meth:`fetch_snapshot` (REST); ``False``:
            from the WS stream, asked for again with :meth:`resubscribe_messages`.
        replay_after_ws_snapshot: the deltas buffered before a WS snapshot may be newer than it
            and go through the rules after it (GOPAX); ``False``: they are older and dropped.
        resync_by_reconnect: the exchange cannot send one market's snapshot again on a live
            connection (GOPAX answers a second subscribe with 10325 "already subscribed"): a
            resync reopens the market's connection, whose subscribes bring each of its books
            again.
        rest_fallback: with WS snapshots, an update that comes first on a new subscription
            means the exchange sends no WS snapshot any more: the controller switches to REST
            snapshots (OKX, which announced the WS snapshot's withdrawal for 2026-08).
        snapshot_interval: least seconds between two snapshot requests of this controller.
        keep_text: keep levels as spelled (for a checksum over the strings).
        name_separator: between base and quote in the exchange's market name (``"BTCUSDT"``:
            ``""``; ``"BTC-USDT"``: ``"-"``).
        chained_skips_reset: skipped updates chaining on one another after which the book is
            taken to have missed a sequence reset and is resynced (OKX: 2; ``None``: never).
        book_depth: levels a side the exchange keeps the subscriber's book to; deeper levels
            are dropped after each message (Kraken), ``None``: the book is not cut.

    Args (besides the base's): ``book_interval``: least seconds between two stored books of one
    market (0: every update).
    """

    rest_snapshots: bool = False
    replay_after_ws_snapshot: ClassVar[bool] = False
    resync_by_reconnect: ClassVar[bool] = False
    rest_fallback: ClassVar[bool] = False
    chained_skips_reset: ClassVar[int | None] = None
    resync_quiet: ClassVar[bool] = True  # a resync is one market's snapshot: cheap
    snapshot_interval: ClassVar[float] = 0.5
    keep_text: ClassVar[bool] = False
    name_separator: ClassVar[str] = ""
    book_depth: int | None = None

    def __init__(self, *args: Any, book_interval: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.book_interval = book_interval
        self.received_at = 0
        """Receive time (ms since the epoch) of the frame being decoded."""
        self._sync: dict[Market, BookSync] = {m: BookSync(self) for m in self.markets}
        self._connection_of = {m: c for c in self.connections for m in c.markets}
        self._snapshot_requests: queue.Queue[Market | None] = queue.Queue()
        self.snapshot_pacer = Pacer(self.snapshot_interval)
        self._names = {self.market_name(m): m for m in self.markets}

    @property
    def sync(self) -> dict[Market, SyncStats]:
        """Per market, the local book's counters."""
        return {m: s.stats for m, s in self._sync.items()}

    def has_book(self, market: Market) -> bool:
        """Whether ``market`` has a local book (``False`` while its snapshot is awaited)."""
        with self._lock:
            return self._sync[market].book is not None

    def levels_held(self, market: Market) -> tuple[int, int]:
        """``(bids, asks)``: how many levels ``market``'s local book holds (0, 0 without one)."""
        with self._lock:
            book = self._sync[market].book
            return (len(book.bids), len(book.asks)) if book is not None else (0, 0)

    # --- protocol hooks -----------------------------------------------------------------------

    @abc.abstractmethod
    def decode(self, payload: bytes | str) -> list[Delta | Ticker | Trade]:
        """The book messages in one frame; ``[]`` for acks, pongs and other non-book frames.
        Tickers and trades of the other channels come as :class:`~core.model.Ticker` /
        :class:`~core.model.Trade`, built with :attr:`received_at` (the frame's receive
        time) and passed on as they are.

        Raises:
            ExchangeError: an error reply (with the market, when it names one).
            MalformedMessage: a frame that is neither.
        """

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        """The exchange's sequence rule for ``delta`` on a book at update id ``last``;
        ``bridging``: the first delta on a REST snapshot (whose id is ``last``).

        By default the first/last id rule of Binance spot, Gate.io and KuCoin: a delta whose
        last id is at or below the book's is already in it (SKIP); one whose first id is past
        the book's + 1 leaves a gap (GAP); any other overlaps or continues the book (APPLY),
        which makes the first delta on a snapshot the one with ``first <= id + 1 <= last``.
        """
        if last is None or delta.first is None or delta.last is None:
            raise MalformedMessage("an update without first/last ids",
                                   delta.market.tag(self.exchange))
        if delta.last <= last:
            return Verdict.SKIP
        if delta.first > last + 1:
            return Verdict.GAP
        return Verdict.APPLY

    def bridge(self, delta: Delta, last: int | None) -> Delta:
        """The part of ``delta`` to apply as the first delta on a REST snapshot at update id
        ``last`` (it overlaps the snapshot); by default all of it (levels are absolute sizes, so
        setting a level again is harmless). KuCoin drops the changes the snapshot has."""
        return delta

    def checksum(self, book: LocalBook) -> int:
        """The exchange's checksum of ``book`` (only called when a delta carries one)."""
        raise NotImplementedError

    def fetch_snapshot(self, market: Market) -> Delta:
        """A REST snapshot of ``market`` (``snapshot=True``, ``last`` = its update id), requested
        on :attr:`~controllers.base.Controller.rest_client` (one attempt).

        Raises:
            TransportError, ExchangeError, MalformedMessage: the request failed (asked again
                after the retry policy's delay).
        """
        raise NotImplementedError

    def snapshot_delta(self, market: Market, book: object, id_key: str,
                       time_keys: tuple[str, ...]) -> Delta:
        """A REST snapshot's book as a snapshot :class:`Delta`: ``book`` is the object holding
        ``"bids"``, ``"asks"`` (``[["price", "size", …]]``), the update id under ``id_key`` and
        the time in ms under the first of ``time_keys`` present (none: no time).

        Raises:
            MalformedMessage: not an object with an integer update id, or bad levels.
        """
        tag = market.tag(self.exchange)
        if not isinstance(book, dict) or id_key not in book:
            raise MalformedMessage(f"order book snapshot without {id_key}: {str(book)[:200]}", tag)
        try:
            last = int(book[id_key])
            stamp = next((book[key] for key in time_keys if book.get(key)), None)
            timestamp = int(stamp) if stamp is not None else None
        except (TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad snapshot {id_key} or time: {exc!r}", tag) from None
        return Delta(market, text_levels(book.get("bids"), tag), text_levels(book.get("asks"), tag),
                     snapshot=True, last=last, timestamp=timestamp)

    def resubscribe_messages(self, market: Market) -> list[str]:
        """The frames that make the exchange send ``market``'s snapshot again."""
        return self.subscribe_messages([market])

    # --- the data path --------------------------------------------------------------------------

    def parse(self, payload: bytes | str, received_at: int) -> list[Record]:
        """The books to store after the frame's snapshots and deltas (see the module text).

        Raises:
            ExchangeError, MalformedMessage: as :meth:`decode`.
        """
        books: list[Record] = []
        self.received_at = received_at
        for delta in self.decode(payload):
            if not isinstance(delta, Delta):  # a ticker or a trade
                books.append(delta)
                continue
            sync = self._sync[delta.market]  # decode resolved it with market_of
            before = (sync.stats.snapshots + sync.stats.applied, sync.stats.skipped,
                      sync.stats.buffered)
            if delta.snapshot:
                try:
                    step = sync.on_snapshot(delta, bridged=True,
                                            replay=self.replay_after_ws_snapshot)
                except MalformedMessage as exc:  # rejected whole: ask for another one
                    self.resync(delta.market, f"snapshot rejected: {exc}")
                    raise
            else:
                step = sync.on_delta(delta, fallback=not self.rest_snapshots and self.rest_fallback)
            self._note_progress(sync, delta.market, before)
            book = self._act(sync, delta, step, received_at)
            if book is not None:
                books.append(book)
        return books

    def _note_progress(self, sync: BookSync, market: Market, before: tuple[int, int, int]) -> None:
        """Tell the market watchdog what one message did (``before``: the book's counters of
        snapshots + applied, skipped and buffered before it): progress, or skipped updates. A
        delta buffered while a snapshot is on its way is neither."""
        progressed, skipped, buffered = before
        stats = sync.stats
        if stats.snapshots + stats.applied > progressed:
            self.freshness[market].progressed(time.monotonic())
        missed = stats.skipped - skipped + (0 if sync.requested else stats.buffered - buffered)
        if missed > 0:
            self.freshness[market].skip(missed)
        if sync.requested and stats.buffered > buffered:
            # the subscription delivers; the book waits for its paced snapshot, which for
            # hundreds of markets takes longer than the subscribe timeout: not a failed subscribe
            self.forget_awaiting((market,))

    def _act(self, sync: BookSync, delta: Delta, step: Step,
             received_at: int) -> OrderBookSnapshot | None:
        """Carry out ``step`` for ``delta``'s market: resync, fall back to REST snapshots, or the
        book to store (not more often than ``book_interval``)."""
        if step.fallback:
            self._fall_back_to_rest(delta.market)
        if step.resync is not None:
            self.resync(delta.market, step.resync)
            return None
        if not step.store:
            return None
        if self.book_interval and received_at - sync.stored_at < self.book_interval * 1000:
            return None
        sync.stored_at = received_at
        assert sync.book is not None
        bids, asks = sync.book.top(self.depth)
        return self.book(delta.market.base, delta.market.quote,
                         step.timestamp or received_at, bids, asks, received_at)

    def apply_levels(self, book: LocalBook, delta: Delta, last: int | None) -> bool:
        """Set each level of ``delta`` on ``book`` (size 0 deletes), keeping the spelling where
        the checksum needs it; cut the book to ``book_depth``. Always ``True`` (a level set
        again to the same size still counts as an update).

        Raises:
            MalformedMessage: a price or size that is not a number, or a level that is neither
                real nor a deletion (:func:`core.model.level_kept`: NaN, infinite, negative, a
                size at price 0); checked before any level is applied, so ``book`` is unchanged.
        """
        try:
            levels = [(side, float(price), float(size), (price, size))
                      for side, side_levels in (("bid", delta.bids), ("ask", delta.asks))
                      for price, size in side_levels]
            for _, price_, size_, _ in levels:
                level_kept(price_, size_)
        except (TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad level: {type(exc).__name__}: {exc}",
                                   delta.market.tag(self.exchange)) from None
        for side, price_, size_, text in levels:
            book.apply(side, price_, size_, text=text if self.keep_text else None)
        if self.book_depth is not None:
            book.truncate(self.book_depth)
        return True

    # --- resync ---------------------------------------------------------------------------------

    def resync(self, market: Market, reason: str) -> None:
        """Drop ``market``'s book, record a ``resync`` event with ``reason``, and ask for a new
        snapshot (never more than one request in flight per market)."""
        with self._lock:
            sync = self._sync[market]
            sync.drop()
            self.freshness[market].start(time.monotonic())
            self.log.warning("resync: %s", reason, market=market.tag(self.exchange))
            self.record_event("resync", [market], reason)
            if not sync.requested:
                sync.requested = True
                self._snapshot_requests.put(market)

    def recover_market(self, connection: WSConnection, market: Market, cause: str) -> bool:
        """The market watchdog found ``market`` stalled: resync that one market (a request
        still pending from before is taken as lost and asked again); the connection stays."""
        with self._lock:
            self._sync[market].requested = False
        self.resync(market, cause)
        return False

    def _fall_back_to_rest(self, market: Market) -> None:
        """An update came before any snapshot on a fresh subscription: the exchange sends no WS
        snapshot. Every later snapshot of this controller comes from REST; the markets without
        a book ask for one now."""
        self.rest_snapshots = True
        self.log.warning("an update came before any snapshot: the exchange sends no WS "
                         "snapshot; switching to REST snapshots", market=market.tag(self.exchange))
        for other, sync in self._sync.items():
            if sync.book is None and not sync.requested:
                sync.requested = True
                self._snapshot_requests.put(other)

    def on_connect(self, markets: Sequence[Market]) -> None:
        """A new connection starts its books again from snapshots; the markets that had one get
        a ``resync`` event. A feed of the other channels only (Binance USD-M's ``/market``)
        keeps no book and asks for no snapshot."""
        if not self.collects_books:
            return
        with self._lock:
            had_book = [m for m in markets if self._sync[m].book is not None]
            for market in markets:
                self._sync[market].restart()
                if self.rest_snapshots:
                    self._sync[market].requested = True
                    self._snapshot_requests.put(market)
        if had_book:
            self.record_event("resync", had_book,
                              "reconnected: local book dropped, rebuilt from a new snapshot")

    def run(self) -> None:
        self._snapshot_requests = queue.Queue()  # a restart: no sentinel left by the last run
        worker = threading.Thread(target=self.supervised(self._snapshots), daemon=True,
                                  name=f"{self.exchange}-snapshots")
        worker.start()
        try:
            super().run()
        finally:
            self._snapshot_requests.put(None)
            worker.join(2.0)
            if not worker.is_alive() and "rest_client" in self.__dict__:
                self.rest_client.close()

    def _snapshots(self) -> None:
        """The snapshot worker: one request at a time, paced; a failed one is asked again after
        the retry policy's delay (never before a ``Retry-After`` has passed), the other markets
        waiting meanwhile."""
        while not self.stopping:
            market = self._snapshot_requests.get()
            if market is None or self.stopping:
                return
            attempt = 0
            while not self.stopping and self._sync[market].requested:
                if self.snapshot_pacer.wait_turn(self.wait):
                    return
                failure = self._request_snapshot(market)
                if failure is None:
                    break
                attempt += 1
                # persist: the book needs its snapshot, so a refused request is asked again too
                if self.wait(self.retry_policy().delay(failure, attempt, persist=True)):
                    return

    def _request_snapshot(self, market: Market) -> MessageError | None:
        """Ask for ``market``'s snapshot (REST, or subscribing again) and apply a REST one;
        ``None`` when done, else why the REST request failed."""
        tag = market.tag(self.exchange)
        if not self.rest_snapshots:
            connection = self._connection_of[market]
            if self.resync_by_reconnect:
                connection.close_reason = f"reopened to resync {tag}"
                connection.close()
                return None
            try:
                for message in self.resubscribe_messages(market):
                    connection.send(message)
            except Exception as exc:  # not connected: the reconnect subscribes again anyway
                self.log.info("snapshot request not sent (%s); the reconnect will ask", exc,
                              market=tag)
                self._sync[market].requested = False
            return None
        try:
            snapshot = self.fetch_snapshot(market)
        except MessageError as exc:
            self.report_error("snapshot failed", str(exc), market=tag)
            return exc
        with self._lock:
            sync = self._sync[market]
            if not sync.requested:  # a reconnect asked again meanwhile
                return None
            self.log.info("snapshot at update %s, %d buffered delta(s)", snapshot.last,
                          len(sync.pending), market=tag)
            before = (sync.stats.snapshots + sync.stats.applied, sync.stats.skipped,
                      sync.stats.buffered)
            try:
                step = sync.on_snapshot(snapshot, bridged=False, replay=True)
            except MalformedMessage as exc:
                self.report_error("snapshot failed", str(exc), market=tag)
                return exc
            self._note_progress(sync, market, before)
            book = self._act(sync, snapshot, step, now_ms())
        if book is not None:
            self.handle_books([book])
        return None

    # --- helpers for subclasses ---------------------------------------------------------------

    @classmethod
    def market_name(cls, market: Market) -> str:
        """The exchange's name of ``market``: base, ``name_separator``, quote (``"BTCUSDT"``)."""
        return f"{market.base}{cls.name_separator}{market.quote}"

    def market_of(self, name: object) -> Market:
        """The subscribed market an exchange's market name stands for.

        Raises:
            MalformedMessage: a name of no subscribed market.
        """
        market = self._names.get(name) if isinstance(name, str) else None
        if market is None:
            raise MalformedMessage(f"book for a market not subscribed: {name!r}")
        return market


def text_levels(levels: object, tag: str) -> list[TextLevel]:
    """``[(price, size), …]`` strings from a list of ``[price, size, …]`` arrays.

    Raises:
        MalformedMessage: not a list of arrays of at least two strings.
    """
    if not isinstance(levels, list):
        raise MalformedMessage(f"levels are {type(levels).__name__}, not a list", tag)
    try:
        out = [(level[0], level[1]) for level in levels]
    except (TypeError, IndexError, KeyError) as exc:
        raise MalformedMessage(f"bad level: {exc!r}", tag) from None
    for price, size in out:
        if not (isinstance(price, str) and isinstance(size, str)):
            raise MalformedMessage(f"bad level {[price, size]!r}: prices and sizes are strings", tag)
    return out

