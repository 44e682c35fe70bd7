"""``python -m exporter``: export stored order books to ``<out>/<EXCHANGE>.json`` (``--table``:
tickers, trades, quotes, taker volume, premiums or arbitrage to ``<EXCHANGE>.<table>.json``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from dotenv import load_dotenv

from core import __version__, program_name
from core.errors import CollectorError
from exporter.converter import FORMATS, TABLES, DataConverter, parse_time

PROG = program_name("python -m exporter", script="orderbook-export")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Export stored order books as JSON, one file per exchange.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--db", type=Path, default=None, metavar="PATH",
                        help="SQLite file (default: $DB_PATH, else data/orderbook.db)")
    parser.add_argument("--exchange", help="only this exchange, e.g. UPBIT (default: every one)")
    parser.add_argument("--symbol", help="only this base currency, e.g. BTC")
    parser.add_argument("--since", metavar="T", help="from this time: ms since the epoch or ISO-8601")
    parser.add_argument("--until", metavar="T", help="up to this time (inclusive), same forms")
    parser.add_argument("--out", type=Path, default=Path("export"), metavar="DIR",
                        help="output folder (default: export)")
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json: one array per file; ndjson: one book per line")
    parser.add_argument("--table", choices=TABLES, default="book",
                        help="what to export: book (order books, the default), ticker, trade, "
                             "quote, taker_volume, kimchi_premium or arbitrage "
                             "(to <EXCHANGE>.<table>.json)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the export; returns the exit status (0 ok, 2 bad input or unreadable database)."""
    args = build_parser().parse_args(argv)
    load_dotenv()
    db = args.db or Path(os.environ.get("DB_PATH") or "data/orderbook.db")
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        with DataConverter(db) as converter:
            results = converter.export(
                args.out, exchange=args.exchange.upper() if args.exchange else None,
                symbol=args.symbol.upper() if args.symbol else None,
                since=since, until=until, fmt=args.format, table=args.table)
    except (CollectorError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    what = "books" if args.table == "book" else f"{args.table} rows"
    if not results:
        print(f"{PROG}: no {what} in {db}", file=sys.stderr)
    for result in results:
        print(f"{result.exchange}: {result.books} {what} -> {result.path}")
    return 0
