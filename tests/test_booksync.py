"""The pure book synchroniser (controllers.booksync.BookSync): no controller, no thread, no socket."""

from __future__ import annotations

import pytest

from core.errors import MalformedMessage
from core.model import Market
from controllers.book import LocalBook
from controllers.booksync import MAX_BUFFERED_DELTAS, BookSync, Delta, Step, Verdict

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
