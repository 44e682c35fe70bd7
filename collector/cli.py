"""``python run_controller.py``: the collector's command line.

Options come from the command line, then the environment (and ``.env``, read with python-dotenv
when ``main`` runs — never at import), then defaults. Bad input ends with one line on stderr and
exit status 2; no traceback. The exit status of a run says how it went (0 ok, 3 a controller
failed for good, 4 nothing stored, 5 records dropped, lost or rejected:
:meth:`collector.app.Collector.exit_status`), and the last log line says why.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from dotenv import load_dotenv

from collector.app import EXIT_CONFIG, Collector, CollectorConfig
from core import __version__, program_name
from core.errors import CollectorError, ConfigError
from core.logs import close_logging, setup_logging
from core.model import CHANNELS, Market, checked_channels
from analytics.signals import DEFAULT_NOTIONALS, parse_fees, read_rate
from controllers import CONTROLLERS, KOREAN
from storage.schema import open_database
from storage.writer import dated_path

_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}$")
PROG = program_name("run_controller.py", script="orderbook-collector")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _non_negative(text: str) -> float:
    """argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive(kind: type):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Collect order books from crypto exchanges into one SQLite file.",
        epilog="Endpoints can be overridden with <EXCHANGE>_WS_URL / <EXCHANGE>_REST_URL "
               "(e.g. UPBIT_WS_URL, BITHUMB_REST_URL). Stop with Ctrl-C or SIGTERM: every book "
               "received is stored or counted as lost before exit. Exit status: 0 ok, 2 bad "
               "configuration, 3 a controller failed for good, 4 nothing stored, 5 records "
               "dropped, lost or rejected.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--exchanges", default=",".join(KOREAN),
                        help=f"comma-separated exchanges (default: the Korean ones, "
                             f"{','.join(KOREAN)}; also: "
                             f"{','.join(n for n in CONTROLLERS if n not in KOREAN)})")
    parser.add_argument("--symbols", default=None,
                        help="comma-separated base currencies, e.g. BTC,ETH, or ALL for every "
                             "market each exchange lists in --currency (default: BTC; ALL with "
                             "--top)")
    parser.add_argument("--markets", default=None, metavar="EX:BASE/QUOTE,...",
                        help="exact markets for some exchanges, e.g. "
                             "kraken:BTC/USD,bitmex:BTC/USD,kucoin:SNX/BTC; an exchange named "
                             "here collects these instead of --symbols/--currency")
    parser.add_argument("--top", type=_positive(int), default=None, metavar="N",
                        help="per exchange, only the N markets (of --symbols) with the largest "
                             "24-hour traded value, from the exchange's tickers")
    parser.add_argument("--currency", default=None,
                        help="quote currency (default: KRW on the Korean exchanges, USDT on the "
                             "global ones)")
    parser.add_argument("--depth", type=_positive(int), default=15,
                        help="levels stored per side (default: 15)")
    parser.add_argument("--poll-interval", type=_positive(float), default=0.1, metavar="S",
                        help="seconds between REST polls (Bithumb; default: 0.1)")
    parser.add_argument("--duration", type=_positive(float), default=None, metavar="S",
                        help="stop cleanly after S seconds (default: run until Ctrl-C/SIGTERM)")
    parser.add_argument("--db", type=Path, default=None, metavar="PATH",
                        help="SQLite file (default: $DB_PATH, else data/orderbook.db); strftime "
                             "fields rotate it, e.g. data/orderbook-%%Y%%m%%d.db: a new file each "
                             "UTC day")
    parser.add_argument("--keep", type=_positive(int), default=None, metavar="N",
                        help="with a rotating --db: keep the newest N files, delete older ones "
                             "(default: keep all)")
    parser.add_argument("--log-dir", type=Path, default=None, metavar="DIR",
                        help="log folder (default: $LOG_PATH, else logs)")
    parser.add_argument("--log-max-bytes", type=_positive(int), default=None, metavar="N",
                        help="rotate a log file at N bytes (default: $LOG_MAX_BYTES, else 10485760)")
    parser.add_argument("--log-backups", type=int, default=None, metavar="N",
                        help="rotated files kept per log (default: $LOG_BACKUP_COUNT, else 5)")
    parser.add_argument("--log-per-market", action="store_true",
                        help="also write one log file per market (at most 64 open at once; "
                             "default: one file per exchange)")
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="default: $LOG_LEVEL, else INFO")
    parser.add_argument("--stats-interval", type=_positive(float), default=60.0, metavar="S",
                        help="seconds between stats lines (default: 60)")
    parser.add_argument("--status-interval", type=_positive(float), default=5.0, metavar="S",
                        help="seconds between refreshes of the feed_status table (default: 5)")
    parser.add_argument("--idle-timeout", type=_positive(float), default=None, metavar="S",
                        help="reopen a WebSocket connection that delivered no book for S seconds "
                             "(heartbeats do not count; default: 60)")
    parser.add_argument("--stall-timeout", type=_positive(float), default=None, metavar="S",
                        help="resync a market whose updates come but are skipped, or that is "
                             "missing from the polls, for S seconds (default: 60)")
    parser.add_argument("--record", type=Path, default=None, metavar="DIR",
                        help="also record every raw frame and HTTP body to gzip NDJSON files in "
                             "DIR (replay them with python -m collector.replay)")
    parser.add_argument("--queue-size", type=_positive(int), default=10_000, metavar="N",
                        help="books that may wait for the writer before new ones are dropped "
                             "(default: 10000)")
    parser.add_argument("--book-interval", type=_non_negative, default=0.0, metavar="S",
                        help="snapshot + delta exchanges: least seconds between two stored books "
                             "of one market (default: 0, a book after every update)")
    parser.add_argument("--channels", default="orderbook", metavar="LIST",
                        help="what to collect: orderbook (always), ticker, trade, e.g. "
                             "orderbook,ticker,trade (default: orderbook)")
    parser.add_argument("--signal-interval", type=_non_negative, default=60.0, metavar="S",
                        help="seconds between computations of the kimchi premium and arbitrage "
                             "rows (default: 60; 0: none)")
    parser.add_argument("--signal-max-age", type=_positive(float), default=10.0, metavar="S",
                        help="a book not seen for S seconds yields no premium or arbitrage "
                             "number (default: 10)")
    parser.add_argument("--arb-sizes", default=None, metavar="KRW,...",
                        help="arbitrage notional sizes in KRW (default: 1000000,10000000,50000000)")
    parser.add_argument("--fees", default=None, metavar="EX=RATE,...",
                        help="taker fees as fractions, overriding the defaults, e.g. "
                             "upbit=0.0004,binance=0.00075 (default: $FEES, else the fee table of docs/signals.md)")
    parser.add_argument("--usd-krw", type=_positive(float), default=None, metavar="RATE",
                        help="USD/KRW reference rate of the second kimchi premium "
                             "(default: $USD_KRW; none: that premium stays empty)")
    parser.add_argument("--stop-timeout", type=_positive(float), default=15.0, metavar="S",
                        help="seconds a stop may take in all; what the database has not taken "
                             "by then is counted as lost (default: 15)")
    parser.add_argument("--restart-limit", type=_positive(int), default=5, metavar="N",
                        help="a controller that failed N times within --restart-window is not "
                             "restarted again (exit status 3; default: 5)")
    parser.add_argument("--restart-window", type=_positive(float), default=600.0, metavar="S",
                        help="seconds over which a controller's failures are counted "
                             "(default: 600)")
    parser.add_argument("--usd-krw-file", type=Path, default=None, metavar="PATH",
                        help="file holding the USD/KRW rate, read again at every computation "
                             "(default: $USD_KRW_FILE); wins over --usd-krw")
    return parser


def _channels(text: str) -> tuple[str, ...]:
    """``--channels`` as a tuple in :data:`core.model.CHANNELS` order, orderbook first.

    Raises:
        ConfigError: an unknown channel.
    """
    asked = checked_channels(part.lower() for part in _split(text))
    return tuple(c for c in CHANNELS if c in asked or c == "orderbook")


def _positive_number(text: str, what: str) -> float:
    """``text`` as a positive number (``_`` and ``,`` digit separators allowed).

    Raises:
        ConfigError: anything else; the message names ``what``.
    """
    try:
        value = float(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"{what} must be a positive number, got {text!r}")
    return value


def _sizes(text: str) -> tuple[float, ...]:
    """``--arb-sizes`` as KRW amounts.

    Raises:
        ConfigError: an entry that is not a positive number, or none.
    """
    sizes = tuple(_positive_number(part, "each --arb-sizes entry") for part in _split(text))
    if not sizes:
        raise ConfigError("--arb-sizes names no size")
    return sizes


def _env_rate(env: dict) -> float | None:
    raw = env.get("USD_KRW")
    return _positive_number(raw, "USD_KRW") if raw else None


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _env_int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


_MARKET = re.compile(r"^([a-z_]+):([A-Z0-9]{1,20})/([A-Z0-9][A-Z0-9-]{0,29})$")


def _markets(text: str, exchanges: list[str]) -> dict[str, list[Market]]:
    """``--markets`` as exchange -> markets (``"kraken:BTC/USD"``; a derivative's quote may carry
    its suffix: ``okx:BTC/USD-SWAP``).

    Raises:
        ConfigError: an entry not of that form, or of an exchange not in ``--exchanges``.
    """
    out: dict[str, list[Market]] = {}
    for entry in _split(text):
        head, _, rest = entry.partition(":")
        match = _MARKET.match(f"{head.lower()}:{rest.upper()}")
        if match is None:
            raise ConfigError(f"bad --markets entry {entry!r}: expected EXCHANGE:BASE/QUOTE, "
                              f"e.g. kraken:BTC/USD")
        name, base, quote = match.groups()
        if name not in exchanges:
            raise ConfigError(f"--markets names {name!r}, which is not in --exchanges")
        out.setdefault(name, [])
        market = Market(base, quote)
        if market not in out[name]:
            out[name].append(market)
    return out


def config_from_args(args: argparse.Namespace, env: dict) -> tuple[CollectorConfig, dict]:
    """The collector config and the logging options from parsed arguments and the environment.

    Raises:
        ConfigError: an unknown exchange, a bad symbol, or a bad environment value.
    """
    exchanges = [name.lower() for name in _split(args.exchanges)]
    unknown = [name for name in exchanges if name not in CONTROLLERS]
    if unknown or not exchanges:
        raise ConfigError(f"unknown exchange {', '.join(map(repr, unknown)) or '(none given)'}; "
                          f"supported: {', '.join(CONTROLLERS)}")
    given = args.symbols if args.symbols is not None else ("ALL" if args.top else "BTC")
    symbols: list[str] | None = [s.upper() for s in _split(given)]
    currency = args.currency.strip().upper() if args.currency is not None else None
    for name in [*symbols, *([currency] if currency else [])]:
        if not _SYMBOL.match(name):
            raise ConfigError(f"bad currency name {name!r}: letters and digits only")
    if not symbols:
        raise ConfigError("no symbols given")
    if "ALL" in symbols:
        if len(symbols) > 1:
            raise ConfigError("--symbols ALL cannot be combined with other symbols")
        symbols = None
    markets = _markets(args.markets, exchanges) if args.markets else {}
    config = CollectorConfig(
        markets=markets,
        exchanges=list(dict.fromkeys(exchanges)),
        symbols=None if symbols is None else list(dict.fromkeys(symbols)),
        currency=currency,
        top=args.top,
        depth=args.depth,
        poll_interval=args.poll_interval,
        duration=args.duration,
        db_path=args.db or Path(env.get("DB_PATH") or "data/orderbook.db"),
        keep=args.keep,
        stats_interval=args.stats_interval,
        status_interval=args.status_interval,
        queue_size=args.queue_size,
        book_interval=args.book_interval,
        idle_timeout=args.idle_timeout,
        stall_timeout=args.stall_timeout,
        record_dir=args.record,
        channels=_channels(args.channels),
        signal_interval=args.signal_interval,
        signal_max_age=args.signal_max_age,
        arb_sizes=_sizes(args.arb_sizes) if args.arb_sizes else DEFAULT_NOTIONALS,
        fees=parse_fees(args.fees if args.fees is not None else env.get("FEES", "")),
        usd_krw=args.usd_krw if args.usd_krw is not None else _env_rate(env),
        usd_krw_file=args.usd_krw_file or (Path(env["USD_KRW_FILE"]) if env.get("USD_KRW_FILE") else None),
        stop_timeout=args.stop_timeout,
        restart_limit=args.restart_limit,
        restart_window=args.restart_window,
    )
    if config.usd_krw_file is not None:
        read_rate(config.usd_krw_file)  # a wrong path is a one-line error now, not a log line later
    logging_options = {
        "log_dir": args.log_dir or Path(env.get("LOG_PATH") or "logs"),
        "max_bytes": args.log_max_bytes or _env_int(env, "LOG_MAX_BYTES", 10 * 1024 * 1024),
        "backup_count": args.log_backups if args.log_backups is not None
        else _env_int(env, "LOG_BACKUP_COUNT", 5),
        "per_market": args.log_per_market,
        "level": getattr(logging, args.log_level or env.get("LOG_LEVEL", "INFO").upper(), None),
    }
    if not isinstance(logging_options["level"], int):
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {env.get('LOG_LEVEL')!r}")
    if config.keep is not None and "%" not in str(config.db_path):
        raise ConfigError(f"--keep needs a rotating --db, a path with strftime fields such as "
                          f"data/orderbook-%Y%m%d.db (got {config.db_path})")
    return config, logging_options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the collector; returns the process exit status: 2 bad input or storage before the
    run, else :meth:`collector.app.Collector.exit_status` (0 ok, 3 a controller failed for good,
    4 nothing stored, 5 records dropped, lost or rejected), logged with its reason."""
    args = build_parser().parse_args(argv)
    load_dotenv()  # the environment wins over .env
    env = dict(os.environ)
    try:
        config, logging_options = config_from_args(args, env)
        # fail now, clearly, if the file is unusable
        open_database(dated_path(config.db_path, time.time())).close()
        try:
            setup_logging(logging_options.pop("log_dir"), **logging_options)
        except OSError as exc:
            raise ConfigError(f"cannot write logs: {exc}") from None
        collector = Collector(config, env)
    except CollectorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        close_logging()
        return EXIT_CONFIG

    def on_signal(signum: int, frame: object) -> None:
        collector.request_stop(f"{signal.Signals(signum).name} received")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        collector.prepare()  # market lists for ALL/--top: may take a few seconds
        summary = collector.run()
        status, reason = collector.exit_status(summary)
        logging.getLogger("collector.main").log(
            logging.INFO if status == 0 else logging.ERROR, "exit status %d: %s", status, reason,
            extra={"tag": "MAIN"})
    except CollectorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        close_logging()
    return status
