"""The pure book synchroniser (controllers.booksync.BookSync): no controller, no thread, no socket."""

from __future__ import annotations

import pytest

from core.errors import MalformedMessage
from core.model import Market
from controllers.book import LocalBook
from controllers.booksync import (MAX_BUFFERED_DELTAS, QUIET_FACTOR, BookSync, Delta, Freshness, Step,
                                  Verdict)

BTC = Market("BTC", "USDT")


class Rules:
    """Binance spot's first/last id rule, a sum-of-sizes checksum, plain level application."""

    def __init__(self) -> None:
        self.bridged: list[tuple[int | None, int | None]] = []

    def check_sequence(self, last, delta, bridging):
        if delta.last <= last:
            return Verdict.SKIP
        return Verdict.GAP if delta.first > last + 1 else Verdict.APPLY

    def bridge(self, delta, last):
        self.bridged.append((delta.first, last))
        return delta

    def checksum(self, book: LocalBook) -> int:
        return int(sum(book.bids.values()) + sum(book.asks.values()))

    def apply_levels(self, book, delta, last):
        for side, levels in (("bid", delta.bids), ("ask", delta.asks)):
            for price, size in levels:
                book.apply(side, float(price), float(size))
        return True


def snapshot(last=100, bids=(("99", "1"),), asks=(("101", "1"),), **kw) -> Delta:
    return Delta(BTC, list(bids), list(asks), snapshot=True, last=last, **kw)


def delta(first, last, bids=(), asks=(), **kw) -> Delta:
    return Delta(BTC, list(bids), list(asks), first=first, last=last, **kw)


def test_rest_snapshot_replays_the_buffered_deltas_through_the_rules():
    rules = Rules()
    sync = BookSync(rules)
    assert sync.on_delta(delta(95, 98, bids=[("98", "5")])) == Step.NOTHING  # buffered
    assert sync.on_delta(delta(99, 102, bids=[("99", "2")])) == Step.NOTHING
    step = sync.on_snapshot(snapshot(100), bridged=False, replay=True)
    assert step.store and rules.bridged == [(99, 100)]
    assert sync.book.top(5) == (((99.0, 2.0),), ((101.0, 1.0),))
    assert (sync.last, sync.pending, sync.requested) == (102, [], False)
    s = sync.stats
    assert (s.snapshots, s.buffered, s.skipped, s.applied) == (1, 2, 1, 1)


def test_ws_snapshot_drops_the_older_buffered_deltas():
    sync = BookSync(Rules())
    sync.on_delta(delta(1, 2, bids=[("50", "1")]))
    assert sync.on_snapshot(snapshot(100), bridged=True, replay=False).store
    assert sync.book.top(5)[0] == ((99.0, 1.0),) and sync.stats.skipped == 1


def test_gap_skip_and_apply():
    sync = BookSync(Rules())
    sync.on_snapshot(snapshot(100), bridged=True, replay=False)
    assert sync.on_delta(delta(90, 100)) == Step.NOTHING and sync.stats.skipped == 1
    assert sync.on_delta(delta(101, 101, asks=[("101", "0"), ("102", "3")], timestamp=7)) == Step(
        store=True, timestamp=7)
    assert sync.book.best() == (99.0, 102.0)
    step = sync.on_delta(delta(105, 106))
    assert step.resync == "sequence gap: book at 101, delta 105..106 (prev None)"
    sync.drop()
    assert (sync.book, sync.last, sync.pending, sync.stats.resyncs) == (None, None, [], 1)


def test_crossed_book_and_checksum_mismatch_ask_for_a_resync():
    sync = BookSync(Rules())
    sync.on_snapshot(snapshot(100, checksum=2), bridged=True, replay=False)
    assert sync.stats.checksums == 1 and sync.stats.checksum_failures == 0
    assert sync.on_delta(delta(101, 101, bids=[("99", "5")], checksum=6)).store
    wrong = sync.on_delta(delta(102, 102, bids=[("99", "6")], checksum=1))
    assert wrong.resync == "checksum mismatch: exchange 1, local book 7"
    assert sync.stats.checksum_failures == 1
    crossed = sync.on_delta(delta(103, 103, bids=[("101.5", "1")]))
    assert crossed.resync == "crossed book: best bid 101.5 >= best ask 101.0"


def test_a_bad_snapshot_leaves_no_half_built_book():
    class Strict(Rules):
        def apply_levels(self, book, delta, last):
            for price, size in delta.bids:
                if float(size) != float(size):
                    raise MalformedMessage("bad level")
                book.apply("bid", float(price), float(size))
            return True

    sync = BookSync(Strict())
    sync.requested = True
    with pytest.raises(MalformedMessage):
        sync.on_snapshot(snapshot(100, bids=[("99", "1"), ("98", "NaN")]), bridged=True,
                         replay=False)
    assert (sync.book, sync.last, sync.requested, sync.stats.snapshots) == (None, None, True, 0)


def test_an_update_before_any_snapshot_asks_to_fall_back_once():
    sync = BookSync(Rules())
    assert sync.on_delta(delta(1, 1), fallback=True) == Step(fallback=True)
    sync.requested = True
    assert sync.on_delta(delta(2, 2), fallback=True) == Step.NOTHING


def test_buffered_deltas_are_bounded():
    sync = BookSync(Rules())
    for i in range(MAX_BUFFERED_DELTAS + 5):
        sync.on_delta(delta(i, i))
    assert len(sync.pending) == MAX_BUFFERED_DELTAS and sync.pending[0].first == 5


def test_restart_keeps_the_counters():
    sync = BookSync(Rules())
    sync.on_snapshot(snapshot(100), bridged=False, replay=True)
    sync.restart()
    assert (sync.book, sync.bridged, sync.requested, sync.stats.snapshots) == (None, True, False, 1)


class OkxLike(Rules):
    """``prev`` chains on the book's id; an update at or below the book's is skipped; a lost
    sequence reset shows as two skipped updates chaining on each other."""

    chained_skips_reset = 2

    def check_sequence(self, last, delta, bridging):
        if delta.prev == last:
            return Verdict.APPLY
        return Verdict.SKIP if delta.last <= last else Verdict.GAP


def test_chained_skips_below_the_book_are_a_lost_sequence_reset():
    sync = BookSync(OkxLike())
    sync.on_snapshot(snapshot(15), bridged=True, replay=False)
    assert sync.on_delta(delta(None, 12, prev=10)) == Step.NOTHING  # a lone old one: skipped
    assert sync.on_delta(delta(None, 16, prev=15, bids=[("98", "1")])).store
    # the reset (16 -> 3) was lost: (3 -> 4) and (4 -> 5) chain below the book
    assert sync.on_delta(delta(None, 4, prev=3)) == Step.NOTHING
    step = sync.on_delta(delta(None, 5, prev=4))
    assert step.resync.startswith("sequence reset: 2 updates chain below the book's id 16")
    assert sync.stats.skipped == 3


def test_skips_that_do_not_chain_or_precede_the_bridge_are_no_reset():
    sync = BookSync(OkxLike())
    sync.on_snapshot(snapshot(15), bridged=True, replay=False)
    for last, prev in ((4, 3), (9, 8), (12, 2)):  # skipped, none chaining on the one before
        assert sync.on_delta(delta(None, last, prev=prev)) == Step.NOTHING
    assert sync.skip_chain == 1
    rest = BookSync(OkxLike())  # a REST snapshot ahead of the stream: the older updates chain
    rest.on_snapshot(snapshot(15), bridged=False, replay=True)
    assert rest.on_delta(delta(None, 4, prev=3)) == rest.on_delta(delta(None, 5, prev=4)) == Step.NOTHING


def test_a_reset_verdict_resyncs_with_its_cause():
    class Restarting(Rules):
        def check_sequence(self, last, delta, bridging):
            return Verdict.RESET if delta.last < last else Verdict.APPLY

    sync = BookSync(Restarting())
    sync.on_snapshot(snapshot(100), bridged=True, replay=False)
    step = sync.on_delta(delta(2, 2))
    assert step.resync == ("sequence reset: book at 100, update 2 went back without the message "
                           "that restarts the book")


def test_freshness_resyncs_on_skipped_updates_and_on_silence_only_much_later():
    fresh = Freshness(0.0)
    assert fresh.verdict(59.0, stall_after=60, data_at=58.0) is None
    fresh.skip(3)
    assert fresh.verdict(59.9, stall_after=60, data_at=59.0) is None
    assert fresh.verdict(60.0, stall_after=60, data_at=None) == (
        "stalled: 3 update(s) skipped and none applied for 60 s (stall timeout 60 s)")
    fresh.progressed(61.0)  # an update applied: the skips are forgotten
    assert fresh.verdict(200.0, stall_after=60, data_at=199.0) is None
    quiet = 61.0 + 60 * QUIET_FACTOR
    # a quiet market: nothing but the long timeout, and only while its connection delivers data
    assert fresh.verdict(quiet, stall_after=60, data_at=50.0) is None
    assert fresh.verdict(quiet - 1, stall_after=60, data_at=quiet - 2) is None
    assert fresh.verdict(quiet, stall_after=60, data_at=quiet - 2).startswith(
        "stalled: no book for 1800 s while its connection delivers data")
    fresh.start(quiet)
    assert fresh.verdict(quiet + 1, stall_after=60, data_at=quiet + 1) is None
