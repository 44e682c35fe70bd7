"""Export stored order books as JSON, one file per exchange (``python -m exporter --help``)."""

from exporter.converter import DataConverter, ExportResult, parse_time

__all__ = ["DataConverter", "ExportResult", "parse_time"]
