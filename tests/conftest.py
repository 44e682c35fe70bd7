import logging

import pytest

from collector.logs import close_logging


@pytest.fixture(autouse=True)
def _fresh_logging():
    """Each test starts and ends with no collector log handlers (files closed)."""
    close_logging()
    yield
    close_logging()
    logging.getLogger("collector").propagate = True
