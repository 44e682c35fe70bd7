"""SQLite storage: the schema and the one writer thread that owns the database connection."""

from storage.schema import SCHEMA_VERSION, connect, open_database
from storage.writer import SQLiteWriter, WriterStats

__all__ = ["SCHEMA_VERSION", "SQLiteWriter", "WriterStats", "connect", "open_database"]
