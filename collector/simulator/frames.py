"""The real exchange messages the loopback servers start from: package data in ``messages/``
(``messages/SOURCES.md`` says where each came from)."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "messages"
"""The real exchange messages the servers start from (package data; ``messages/SOURCES.md`` says
where each came from)."""


def data_text(name: str) -> str:
    """The exact text of ``messages/<name>``, without the final newline the files carry."""
    return (DATA / name).read_text(encoding="utf-8").rstrip("\n")


def data_json(name: str):
    return json.loads(data_text(name))
