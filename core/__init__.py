"""The bottom layer: the record model, market naming, errors, time helpers and logging.

It imports nothing of the project's own: ``controllers``, ``storage``, ``analytics``,
``exporter`` and ``collector`` all build on it (see ``docs/architecture.md``).
"""
