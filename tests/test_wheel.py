"""The simulator works from an installed wheel: built from the project's files, installed into a
fresh virtual environment, run from a folder that is not the checkout, it needs nothing from
``tests/`` and writes under the folder it runs in."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPENDENCIES = ("websocket", "requests", "dotenv", "msgspec", "websockets")
"""The modules of the runtime dependencies and of the ``sim`` extra."""


def _can_build_offline() -> bool:
    """setuptools can make a wheel without fetching anything: it has ``bdist_wheel`` itself
    (70.1 and later) or the ``wheel`` package is there."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _clean_env() -> dict[str, str]:
    """The environment without anything that would import the checkout instead of the wheel."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    for name in list(env):
        if name.endswith(("_WS_URL", "_REST_URL")) or name in ("DB_PATH", "LOG_PATH"):
            del env[name]
    return env


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel built, offline, from a copy of the project's files (the checkout stays clean)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "tests", "docs", "benchmarks", "data", "logs", "export", "build",
        "*.egg-info", ".pytest_cache", "__pycache__", "*.pyc", "*.db"))
    wheels = tmp_path / "wheels"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", "-w", str(wheels)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = wheels.glob("kr_orderbook_collector-*.whl")
    return wheel


def _venv_with(wheel: Path, tmp_path: Path) -> Path:
    """A new virtual environment with ``wheel`` installed; returns its python. The dependencies
    come from the running interpreter's site folders (no index is reached): the new environment
    sees the base interpreter's packages, and a ``.pth`` line adds the folders that hold the
    dependencies here when the base lacks them (a path line, so nothing else of this
    environment, such as an editable install of the checkout, comes along)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    missing = subprocess.run([str(python), "-c", "import importlib.util, sys; print(' '.join("
                              f"m for m in {DEPENDENCIES!r} if importlib.util.find_spec(m) is None))"],
                             capture_output=True, text=True, env=_clean_env(), cwd=tmp_path, check=True)
    folders = {str(Path(importlib.util.find_spec(name).origin).parent.parent)
               for name in missing.stdout.split()}
    if folders:
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        (Path(site) / "simulator_test_dependencies.pth").write_text("\n".join(sorted(folders)) + "\n")
    return python


@pytest.mark.slow
def test_the_simulator_runs_from_an_installed_wheel_and_writes_under_the_working_folder(tmp_path):
    if not _can_build_offline():
        pytest.skip("setuptools older than 70.1 without the wheel package: no offline wheel build")
    if any(importlib.util.find_spec(name) is None for name in DEPENDENCIES):
        pytest.skip("the runtime dependencies and websockets are needed to run the wheel")
    python = _venv_with(_build_wheel(tmp_path), tmp_path)
    work = tmp_path / "somewhere"
    work.mkdir()
    env = _clean_env()
    where = subprocess.run([str(python), "-c", "import collector, run_controller; "
                            "print(collector.__file__); print(run_controller.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to((tmp_path / "venv").resolve()), line

    demo = subprocess.run([str(python), "-m", "collector.simulator", "--demo", "5"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "export UPBIT_WS_URL=ws://127.0.0.1:" in demo.stdout
    db = work / "data" / "simulated.db"
    assert db.is_file() and (work / "logs").is_dir()
    conn = sqlite3.connect(db)
    books = dict(conn.execute("SELECT m.exchange, COUNT(*) FROM book b JOIN market m USING (market_id) "
                              "GROUP BY m.exchange"))
    errors = conn.execute("SELECT SUM(errors) FROM feed_status").fetchone()[0]
    conn.close()
    assert len(books) == 13 and min(books.values()) > 0 and errors == 0, (books, errors)

    sample = subprocess.run([str(python), "-m", "collector.simulator", "--sample", "--demo", "3",
                             "--interval", "0.005", "--db", "sample.db"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert sample.returncode == 0, sample.stdout + sample.stderr
    conn = sqlite3.connect(work / "sample.db")
    assert conn.execute("SELECT COUNT(DISTINCT market_id) FROM book").fetchone()[0] == 2
    assert conn.execute("SELECT COUNT(*) FROM book").fetchone()[0] > 100
    conn.close()
