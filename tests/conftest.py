import fcntl
import gc
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.logs import close_logging
from controllers import CONTROLLERS


@pytest.fixture(autouse=True)
def _fresh_logging():
    """Each test starts and ends with no collector log handlers (files closed)."""
    close_logging()
    yield
    close_logging()
    logging.getLogger("collector").propagate = True


@pytest.fixture
def quick_retries(monkeypatch):
    """Backoff of 0.05-0.3 s instead of 1-30 s for every registered controller class (runs
    through ``Collector`` build them from the registry), so a test's recovery bound is short."""
    for cls in CONTROLLERS.values():
        monkeypatch.setattr(cls, "backoff_initial", 0.05)
        monkeypatch.setattr(cls, "backoff_cap", 0.3)


# --- tests marked ``serial`` run alone under pytest-xdist -------------------------------------
#
# The suite runs on several xdist workers (``-n`` in pyproject's addopts). A few tests measure
# sub-second spacing on the wire (the connect/subscribe pacing, a Retry-After wait), which a
# busy CPU stretches or bunches. Around each test, every worker takes a shared lock on one file
# of the run; a ``serial`` test takes it exclusively, so it runs while no other test (its
# fixtures included) runs in any worker. A turnstile lock keeps a waiting serial test from being
# starved by the others. Without xdist this does nothing.

def _lock_dir() -> Path | None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    return Path(tempfile.gettempdir()) / f"pytest-serial-{run}" if run else None


@contextmanager
def _test_lock(exclusive: bool):
    folder = _lock_dir()
    if folder is None:
        yield
        return
    folder.mkdir(exist_ok=True)
    with open(folder / "turnstile", "a") as turnstile, open(folder / "running", "a") as running:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(running, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(running, fcntl.LOCK_UN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    serial = item.get_closest_marker("serial") is not None
    with _test_lock(serial), _quiet_heap(serial):
        yield


@contextmanager
def _quiet_heap(serial: bool):
    """For a serial test, the garbage collector leaves alone what earlier tests left in the
    process: after a few dozen tests, one full collection during the GOPAX pacing test took
    ~60 ms and bunched its subscribes (seen in a single process too, without xdist). Collected
    and frozen before the test, the heap is scanned only for what the test itself makes."""
    if not serial:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def pytest_collection_modifyitems(config, items):
    """The slow tests first, so that no worker ends on a long test it picked up last; the serial
    ones last, so that each waits only for the short tests the other workers are running, not
    for a long one (while it waits and runs, the other workers wait too). The order is kept
    otherwise."""
    items.sort(key=lambda item: (item.get_closest_marker("serial") is not None,
                                 item.get_closest_marker("slow") is None))


# --- modules whose tests share one expensive module fixture stay on one worker -------------------
#
# xdist's --dist loadgroup (the xdist_group mark) does nothing with pytest 9.2: it appends the
# group to item._nodeid, which pytest no longer reads (pytest-dev/pytest-xdist#1386). So the
# scheduling is xdist's load scheduling with one change: the tests of these modules form one
# unit of work, and their module fixture runs once instead of once per worker.

SHARED_FIXTURE_MODULES = {"tests/test_signals_end_to_end.py"}  # one 7 s collector run


@pytest.hookimpl(optionalhook=True)  # an xdist hook: no error when xdist is not loaded
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_FIXTURE_MODULES else nodeid

    return ModuleFixtureScheduling(config, log)
