"""The bottom layer: the record model, market naming, errors, time helpers and logging.

It imports nothing of the project's own: ``controllers``, ``storage``, ``analytics``,
``exporter`` and ``collector`` all build on it (see ``docs/architecture.md``).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "kr-orderbook-collector"


def package_version() -> str:
    """The installed distribution's version; from ``pyproject.toml`` beside the packages when the
    package metadata is missing (a source tree that was never installed), else ``"unknown"``."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    try:
        text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else "unknown"


def program_name(default: str, script: str) -> str:
    """The name a command line reports: ``script`` when the process was started by that console
    script (``orderbook-collector``), else ``default`` (``run_controller.py``)."""
    return script if Path(sys.argv[0]).stem == script else default


__version__ = package_version()
