import fcntl
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
    with _test_lock(item.get_closest_marker("serial") is not None):
        yield


def pytest_collection_modifyitems(config, items):
    """Serial tests first (each then waits only for the short tests the other workers start
    with, not for a long one), then the slow ones (so that the workers do not end on a long
    test started last); the order of the others is kept."""
    items.sort(key=lambda item: (item.get_closest_marker("serial") is None,
                                 item.get_closest_marker("slow") is None))
