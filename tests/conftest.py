import logging

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
