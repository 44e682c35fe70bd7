"""Keeping one market's order book from a snapshot and deltas: pure logic, no threads, no I/O.

:class:`BookSync` is the state machine every snapshot + delta venue shares (the global exchanges
through :class:`controllers.deltabook.DeltaBookController`). It holds one market's
:class:`~controllers.book.LocalBook` and is fed the venue's messages, already decoded into
:class:`Delta` objects; each call returns a :class:`Step` saying what the caller must do:

* a step with ``store`` set: the book changed and passed every check: store its top, stamped
  ``timestamp`` (the exchange time of the message that changed it last; ``None``: none sent);
* ``Step.NOTHING``: nothing to store (a delta buffered before the snapshot, one already in the
  book, one that changed no level);
* a step with ``resync`` set: the book cannot be trusted (a sequence gap, a crossed book, a
  checksum that differs from the exchange's): the caller drops it (:meth:`BookSync.drop`),
  records why, and asks the exchange for a new snapshot;
* a step with ``fallback`` set: an update came before any snapshot on a subscription that should
  have started with one (OKX after the WS snapshot's withdrawal): the venue's snapshots must come
  from REST from now on.

The venue's own rules come from a :class:`SyncRules` object (the controller): the sequence rule
(:meth:`SyncRules.check_sequence`), what of the first delta on a REST snapshot applies
(:meth:`SyncRules.bridge`), the checksum, and how a message's levels are applied.

The rules in order, for a delta on a book:

1. no book yet: the delta is buffered (at most :data:`MAX_BUFFERED_DELTAS`, oldest dropped);
2. the sequence rule says SKIP (already in the book), GAP (updates are missing: resync), RESET
   (the sequence restarted without the message that restarts the book: resync) or APPLY; a run
   of skipped updates that chain on one another (each one's ``prev`` is the last one's ``last``)
   on a book already bridged is a sequence reset whose first message was lost: after
   :attr:`SyncRules.chained_skips_reset` of them, resync (OKX; ``None``: never);
3. the first delta on a REST snapshot is bridged (:meth:`SyncRules.bridge`);
4. its levels are applied (size 0 deletes); then a crossed book (best bid at or above best ask)
   or a checksum mismatch (where the delta carries a checksum; 0 means none) resyncs.

:class:`Freshness` is the pure part of the per-market watchdog: when a market last made progress,
what was skipped since, and when that is reason to resync it.

A snapshot replaces the book; the deltas that waited for it are replayed through the same rules
after a REST snapshot (or a WS snapshot of a venue whose deltas may predate it, ``replay=True``),
and dropped after a WS snapshot that follows them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from core.model import Market
from controllers.book import LocalBook

MAX_BUFFERED_DELTAS = 10_000
"""Deltas kept per market while its snapshot is awaited; older ones are dropped beyond this."""

TextLevel = tuple[str, str]
"""A level as the exchange spelled it: ``(price, size)`` strings."""


class Verdict(enum.Enum):
    """What the sequence rule says of a delta."""

    APPLY = "apply"
    SKIP = "skip"  # older than the book: already in it
    GAP = "gap"  # updates are missing between the book and the delta: resync
    RESET = "reset"  # the sequence went back: a restart whose snapshot was lost: resync


@dataclass
class Delta:
    """One market's part of a book message, normalized.

    ``bids``/``asks`` are ``(price, size)`` strings as sent (size ``"0"`` deletes); ``snapshot``
    is ``True`` when the message replaces the book. ``first``/``last`` are the message's first and
    last update ids (Binance ``U``/``u``, OKX ``seqId`` as ``last``, KuCoin
    ``sequenceStart``/``sequenceEnd``), ``prev`` the id it follows where the exchange says it
    (Binance futures ``pu``, OKX ``prevSeqId``). ``timestamp`` is the exchange's time in ms, or
    ``None``. ``checksum`` is the exchange's checksum of the book after the message, or ``None``.
    """

    market: Market
    bids: list[TextLevel]
    asks: list[TextLevel]
    snapshot: bool = False
    first: int | None = None
    last: int | None = None
    prev: int | None = None
    timestamp: int | None = None
    checksum: int | None = None


@dataclass
class SyncStats:
    """Counters of one market's local book (never reset)."""

    snapshots: int = 0
    applied: int = 0
    skipped: int = 0
    buffered: int = 0
    resyncs: int = 0
    checksums: int = 0
    checksum_failures: int = 0


class Step(NamedTuple):
    """What the caller must do after one message (see the module text); ``timestamp`` in ms
    since the epoch (UTC)."""

    store: bool = False
    resync: str | None = None
    fallback: bool = False
    timestamp: int | None = None


Step.NOTHING = Step()  # type: ignore[attr-defined]


class SyncRules(Protocol):
    """A venue's rules (implemented by its controller).

    ``chained_skips_reset``: skipped updates chaining on one another (``prev`` = the previous
    skipped one's ``last``) after which the book is taken to have missed a sequence reset
    (``None``: never; the attribute may be absent).
    """

    chained_skips_reset: int | None

    def check_sequence(self, last: int | None, delta: Delta, bridging: bool) -> Verdict:
        """The sequence rule for ``delta`` on a book at update id ``last``; ``bridging``: the
        first delta on a REST snapshot (whose id is ``last``)."""

    def bridge(self, delta: Delta, last: int | None) -> Delta:
        """The part of ``delta`` to apply as the first delta on a REST snapshot at ``last``."""

    def checksum(self, book: LocalBook) -> int:
        """The exchange's checksum of ``book``."""

    def apply_levels(self, book: LocalBook, delta: Delta, last: int | None) -> bool:
        """Apply ``delta``'s levels to ``book`` (at update id ``last``); ``False`` if no level
        changed. May set ``delta.timestamp`` to the time of what it applied (GOPAX: the newest
        entry applied). Raises :class:`~core.errors.MalformedMessage` for a bad level."""


@dataclass
class BookSync:
    """One market's book kept from a snapshot and deltas (see the module text).

    Attributes:
        book: the local book, ``None`` while a snapshot is awaited.
        last: the update id the book is at (``None``: the venue has none, or no book).
        bridged: ``False`` between a REST snapshot and the first delta applied on it.
        pending: deltas received before the snapshot, oldest first.
        requested: a snapshot has been asked for and not yet loaded.
        stored_at: receive time (ms) of the last book stored (for ``--book-interval``).
        stats: counters.
    """

    rules: SyncRules
    book: LocalBook | None = None
    last: int | None = None
    bridged: bool = True
    pending: list[Delta] = field(default_factory=list)
    requested: bool = False
    stored_at: int = 0
    stats: SyncStats = field(default_factory=SyncStats)
    skip_chain: int = 0
    """Updates skipped in a row, each chaining on the one before (see the module text)."""
    _skip_tail: int | None = None

    def on_snapshot(self, snapshot: Delta, *, bridged: bool, replay: bool) -> Step:
        """Replace the book with ``snapshot``; ``bridged=False``: the next delta must bridge it (a
        REST snapshot). ``replay``: the buffered deltas go through the rules now (else they are
        older than the snapshot and dropped, counted as skipped). Returns the step of the last
        message that changed the book (or asked for a resync).

        Raises:
            MalformedMessage: a bad level (the book is left as it was before).
        """
        book = LocalBook()
        self.rules.apply_levels(book, snapshot, snapshot.last)
        self.book, self.last, self.bridged, self.requested = book, snapshot.last, bridged, False
        self.skip_chain, self._skip_tail = 0, None
        self.stats.snapshots += 1
        step = self._checked(snapshot)
        pending, self.pending = self.pending, []
        if not replay:
            self.stats.skipped += len(pending)
            return step
        for waiting in pending:
            if step.resync is not None:
                return step
            after = self.on_delta(waiting)
            step = after if after.store or after.resync is not None else step
        return step

    def on_delta(self, delta: Delta, *, fallback: bool = False) -> Step:
        """Apply ``delta`` by the rules. ``fallback``: a delta that comes before any snapshot
        means the venue sends none on this subscription (see :class:`Step`).

        Raises:
            MalformedMessage: a delta the sequence rule cannot judge, or a bad level.
        """
        if self.book is None:
            self.stats.buffered += 1
            self.pending.append(delta)
            del self.pending[:-MAX_BUFFERED_DELTAS]
            return Step(fallback=fallback and not self.requested)
        verdict = self.rules.check_sequence(self.last, delta, not self.bridged)
        if verdict is Verdict.SKIP:
            self.stats.skipped += 1
            return self._skipped(delta)
        self.skip_chain, self._skip_tail = 0, None
        if verdict is Verdict.GAP:
            return Step(resync=f"sequence gap: book at {self.last}, delta "
                               f"{delta.first}..{delta.last} (prev {delta.prev})")
        if verdict is Verdict.RESET:
            return Step(resync=f"sequence reset: book at {self.last}, update {delta.last} went "
                               "back without the message that restarts the book")
        if not self.bridged:
            delta = self.rules.bridge(delta, self.last)
        changed = self.rules.apply_levels(self.book, delta, self.last)
        self.bridged = True  # not before: a refused bridging delta leaves the next to bridge
        self.last = delta.last if delta.last is not None else self.last
        self.stats.applied += 1
        return self._checked(delta) if changed else Step.NOTHING

    def _skipped(self, delta: Delta) -> Step:
        """After a skipped ``delta``: a resync once :attr:`SyncRules.chained_skips_reset`
        skipped updates chain on one another on a bridged book (a lost sequence reset), else
        nothing."""
        chained = (self._skip_tail is not None and delta.prev is not None
                   and delta.prev == self._skip_tail)
        self.skip_chain = self.skip_chain + 1 if chained else 1
        self._skip_tail = delta.last
        limit = getattr(self.rules, "chained_skips_reset", None)
        if limit and self.bridged and self.skip_chain >= limit:
            return Step(resync=f"sequence reset: {self.skip_chain} updates chain below the book's "
                               f"id {self.last} (now at {delta.last}): the message that reset "
                               "the sequence was lost")
        return Step.NOTHING

    def _checked(self, message: Delta) -> Step:
        """The step after the book changed: a resync if it is crossed or fails the checksum."""
        book = self.book
        assert book is not None
        if book.crossed():
            bid, ask = book.best()
            return Step(resync=f"crossed book: best bid {bid} >= best ask {ask}")
        if message.checksum:  # 0 or absent: the exchange sends none (OKX since 2026-06)
            self.stats.checksums += 1
            ours = self.rules.checksum(book)
            if ours != message.checksum:
                self.stats.checksum_failures += 1
                return Step(resync=f"checksum mismatch: exchange {message.checksum}, "
                                   f"local book {ours}")
        return Step(store=True, timestamp=message.timestamp)

    def drop(self) -> None:
        """Forget the book, its update id and the buffered deltas (a resync); counted."""
        self.book, self.last, self.pending = None, None, []
        self.skip_chain, self._skip_tail = 0, None
        self.stats.resyncs += 1

    def restart(self) -> None:
        """Start again from nothing (a new connection), keeping the counters."""
        self.book, self.last, self.bridged, self.pending = None, None, True, []
        self.requested, self.stored_at = False, 0
        self.skip_chain, self._skip_tail = 0, None


QUIET_FACTOR = 30
"""A market whose connection delivers data but which itself sends nothing is resynced only after
this many stall timeouts (30 minutes by default): a market nobody trades is quiet, not broken."""


@dataclass
class Freshness:
    """When one market last made progress, for the per-market watchdog; pure: every time is
    ``time.monotonic()`` seconds passed in by the caller.

    Progress is a book stored or an update applied (a snapshot loaded counts). ``skipped``
    counts what came for the market since and did not reach its book: updates judged already in
    it, deltas buffered while no snapshot is on its way, books older than the last one. Skipped
    updates are evidence of a desync (their ids went back: a lost sequence reset); silence is
    not (nobody trades the market).

    Attributes:
        since: when the market last made progress, or its watch (re)started (a connection
            opened, a resync asked for).
        skipped: updates skipped since then.
    """

    since: float = 0.0
    skipped: int = 0

    def start(self, now: float) -> None:
        """Start watching afresh at ``now`` (a new connection, a resync)."""
        self.since, self.skipped = now, 0

    def progressed(self, now: float) -> None:
        """A book stored or an update applied at ``now``."""
        self.since, self.skipped = now, 0

    def skip(self, count: int = 1) -> None:
        """``count`` updates came and did not reach the book."""
        self.skipped += count

    def verdict(self, now: float, *, stall_after: float, data_at: float | None) -> str | None:
        """Why the market must be resynced at ``now``, or ``None``.

        Args:
            stall_after: seconds without progress, with skipped updates, before a resync; silence
                alone waits :data:`QUIET_FACTOR` times as long.
            data_at: when the market's connection last delivered data; silence counts only
                while the connection delivers data (a silent connection is the idle watchdog's);
                ``None``: never, or silence is not to be judged.
        """
        idle = now - self.since
        if self.skipped and idle >= stall_after:
            return (f"stalled: {self.skipped} update(s) skipped and none applied for {idle:.0f} s "
                    f"(stall timeout {stall_after:g} s)")
        quiet_after = stall_after * QUIET_FACTOR
        if idle >= quiet_after and data_at is not None and data_at > self.since:
            return (f"stalled: no book for {idle:.0f} s while its connection delivers data "
                    f"({QUIET_FACTOR} x the stall timeout of {stall_after:g} s)")
        return None
