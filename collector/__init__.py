"""Order book collector for Korean (and later global) crypto exchanges.

Each exchange's controller runs in its own thread and hands normalized order book snapshots to
one shared SQLite writer. ``collector.cli`` is the ``run_controller.py`` entry point.
"""

__version__ = "0.1.0"
