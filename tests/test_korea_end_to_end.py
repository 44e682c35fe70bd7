"""All five Korean exchanges at once through ``python run_controller.py``, against loopback
servers speaking each protocol: named markets stored exactly and exported, and ``--symbols ALL``
subscribing every market each exchange lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import expected_books, stored_books
from tests.sim_oracles import fixture_json
from collector.simulator.markets import MarketListServer
from tests.sim_servers import Servers
from tests.test_end_to_end import summaries

ROOT = Path(__file__).resolve().parent.parent


def run(tmp_path: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, **env)
    for name in ("DB_PATH", "LOG_PATH", "GOPAX_API_KEY", "GOPAX_SECRET_KEY"):
        full.pop(name, None)
    return subprocess.run(
        [sys.executable, "run_controller.py", "--exchanges", "upbit,bithumb,coinone,korbit,gopax",
         "--db", str(tmp_path / "ob.db"), "--log-dir", str(tmp_path / "logs"), *args],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)


EXCHANGES = ("UPBIT", "BITHUMB", "COINONE", "KORBIT", "GOPAX")


@pytest.mark.slow
def test_five_exchanges_store_every_book_exactly_and_export_five_files(tmp_path):
    named = {name: ["BTC", "ETH"] for name in ("upbit", "bithumb", "coinone", "korbit", "gopax")}
    with Servers(named, 200, interval=0.002) as servers:
        done = run(tmp_path, servers.env(), "--symbols", "BTC,ETH", "--duration", "4",
                   "--stats-interval", "1")
        assert servers.finished(("upbit", "coinone", "korbit", "gopax")), "a server still had books to send"
    assert done.returncode == 0, done.stderr
    db = tmp_path / "ob.db"
    figures = summaries(done.stderr)
    for exchange in EXCHANGES:
        stored = stored_books(db, exchange)
        assert stored == expected_books(servers, exchange), exchange
        f = figures[exchange]
        assert f["stored"] == f["books"] == sum(map(len, stored.values())) > 0, exchange
        assert f["errors"] == f["dropped"] == f["lost"] == 0, exchange
    out = tmp_path / "export"
    exported = subprocess.run([sys.executable, "-m", "exporter", "--db", str(db), "--out", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{e}.json" for e in EXCHANGES)
    for exchange in EXCHANGES:
        books = json.loads((out / f"{exchange}.json").read_text())
        assert len(books) == figures[exchange]["stored"]
        assert {b["symbol"] for b in books} == {"BTC", "ETH"}


@pytest.mark.slow
def test_symbols_all_subscribes_every_listed_krw_market(tmp_path):
    with MarketListServer({}) as lists:
        upbit = lists.listed("upbit")
        symbols = {"upbit": upbit, "bithumb": lists.listed("bithumb"), "coinone": upbit[:30],
                   "korbit": upbit[30:50], "gopax": upbit[:60]}
        lists.symbols = {k: symbols[k] + (["KLAY"] if k == "korbit" else []) for k in ("coinone", "korbit", "gopax")}
        lists.stopped = ("KLAY",)
        with Servers(symbols, 2) as servers:
            env = dict(servers.env(), **{f"{n.upper()}_REST_URL": lists.base(n)
                                         for n in ("upbit", "coinone", "korbit", "gopax")})
            # Bithumb polls and lists on the same base URL: one server answers both
            env["BITHUMB_REST_URL"] = servers.bithumb.url
            servers.bithumb.market_list = fixture_json("bithumb/rest_market_all_recorded_2025-08_trimmed.json")
            done = run(tmp_path, env, "--symbols", "ALL", "--duration", "5")
    assert done.returncode == 0, done.stderr
    [upbit_subscribe] = servers.upbit.subscriptions
    assert upbit_subscribe[1]["codes"] == [f"KRW-{s}" for s in upbit]
    assert set(servers.bithumb.requests[-1][1]["markets"][0].split(",")) == {f"KRW-{s}" for s in symbols["bithumb"]}
    assert [r["topic"]["target_currency"] for r in servers.coinone.subscribes] == symbols["coinone"]
    assert [s for r in servers.korbit.subscriptions for s in r[0]["symbols"]] == [
        f"{s.lower()}_krw" for s in symbols["korbit"]]  # the stopped KLAY left out
    # two connections share one subscribe pacer, so their subscribes interleave
    assert sorted(r["o"]["tradingPairName"] for r in servers.gopax.subscribes) == sorted(
        f"{s}-KRW" for s in symbols["gopax"])
    assert servers.gopax.connections == 2 and not servers.gopax.errors_sent
    db = tmp_path / "ob.db"
    for exchange, name in zip(EXCHANGES, ("upbit", "bithumb", "coinone", "korbit", "gopax")):
        stored = stored_books(db, exchange)
        assert sorted(stored) == sorted(symbols[name]), exchange
        assert stored == expected_books(servers, exchange), exchange
    assert "UPBIT: 117 KRW market(s) to collect" in done.stderr
