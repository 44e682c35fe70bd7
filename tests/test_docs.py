"""The docs agree with the code: every option of every command line is documented, ``--help`` and
``--version`` work, every environment variable the code reads is in ``.env.sample`` and the docs,
every venue has its row, the fee table is the code's, links and named modules exist, and the
README stays a front page."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import unicodedata
from importlib import metadata
from pathlib import Path

import pytest

import core
from controllers import CONTROLLERS, VENUES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 200

# Each command line: its main(), the name it reports, the page that documents its options.
COMMANDS = {
    "collector": ("collector.cli", "run_controller.py", "operations.md"),
    "exporter": ("exporter.cli", "python -m exporter", "export.md"),
    "replay": ("collector.replay", "python -m collector.replay", "record-replay.md"),
    "simulator": ("collector.simulator.__main__", "python -m collector.simulator", "simulator.md"),
}


def _pages() -> dict[Path, str]:
    """README and every docs page, by path."""
    return {path: path.read_text(encoding="utf-8") for path in [README, *sorted(DOCS.glob("*.md"))]}


def _all_docs() -> str:
    return "\n".join(_pages().values())


def _mentions(text: str, name: str) -> bool:
    """``name`` (an option or a variable) stands on its own somewhere in ``text``."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)


class _Grabbed(Exception):
    pass


def _parser(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser ``module.main`` builds, taken from its ``parse_args`` call (nothing runs)."""
    grabbed: list[argparse.ArgumentParser] = []

    def grab(self, args=None, namespace=None):
        grabbed.append(self)
        raise _Grabbed

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", grab)
        with pytest.raises(_Grabbed):
            importlib.import_module(module).main([])
    return grabbed[0]


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"]


def _run(module: str, argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(argv)
    return exit_.value.code, capsys.readouterr().out


# ------------------------------------------------------------------------------ command lines

@pytest.mark.parametrize("command", COMMANDS)
def test_every_long_option_is_on_the_commands_page(command, monkeypatch):
    module, _, page = COMMANDS[command]
    options = _long_options(_parser(module, monkeypatch))
    assert "--version" in options and len(options) >= 3
    text = (DOCS / page).read_text(encoding="utf-8")
    missing = [option for option in options if not _mentions(text, option)]
    assert not missing, f"options of {module} not described in docs/{page}: {missing}"


@pytest.mark.parametrize("command", COMMANDS)
def test_version_prints_the_program_name_and_version(command, capsys):
    module, prog, _ = COMMANDS[command]
    code, out = _run(module, ["--version"], capsys)
    assert code == 0
    assert out == f"{prog} {core.__version__}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_the_program_and_its_options(command, capsys, monkeypatch):
    module, prog, _ = COMMANDS[command]
    options = _long_options(_parser(module, monkeypatch))
    code, out = _run(module, ["--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: {prog} ")
    assert all(_mentions(out, option) for option in options)


def test_the_version_is_the_packages_or_pyprojects(monkeypatch):
    assert re.fullmatch(r"\d+(\.\d+)+\S*", core.__version__)
    try:
        assert core.__version__ == metadata.version(core.DISTRIBUTION)
    except metadata.PackageNotFoundError:
        assert core.__version__ == _pyproject_version()

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(core.metadata, "version", missing)
    assert core.package_version() == _pyproject_version()


def _scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: console script -> module."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.]+):main"', section, re.MULTILINE))


def test_console_scripts_report_their_own_name():
    scripts = _scripts()
    assert set(scripts) == {"orderbook-collector", "orderbook-export"}
    for script, module in scripts.items():
        code = (f"import sys; sys.argv[0] = '/venv/bin/{script}'; from {module} import main; "
                f"main(['--version'])")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{script} {core.__version__}\n"


def test_program_name_is_the_default_unless_started_by_the_script(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/orderbook-export"])
    assert core.program_name("python -m exporter", script="orderbook-export") == "orderbook-export"
    monkeypatch.setattr(sys, "argv", ["run_controller.py"])
    assert core.program_name("run_controller.py", script="orderbook-collector") == "run_controller.py"


# ------------------------------------------------------------------------------ environment

PRODUCT = ("core", "controllers", "storage", "analytics", "exporter", "collector")
_NAME = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,}"
_READS = [
    # env.get("X"), env["X"], os.environ.get("X"), os.environ["X"], os.getenv("X")
    re.compile(rf"""\b(?:env|environ)(?:\.get\(|\[)\s*["']({_NAME})["']"""),
    re.compile(rf"""\bgetenv\(\s*["']({_NAME})["']"""),
    # helpers that take the environment first: _env_int(env, "X", ...)
    re.compile(rf"""\w+\(\s*env\s*,\s*["']({_NAME})["']"""),
    # controller declarations: ws_url_env = "X", rest_url_env = "X", snapshots_env = "X"
    re.compile(rf"""\b\w+_env\s*(?::[^=\n]+)?=\s*["']({_NAME})["']"""),
    # any literal named like a setting
    re.compile(r"""["']([A-Z][A-Z0-9_]*_(?:URL|KEY|SECRET|PATH|DIR|FILE|LEVEL|BYTES|COUNT|SNAPSHOTS))["']"""),
]


def _variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pattern in _READS:
                names.update(pattern.findall(text))
    return names


def _env_sample() -> list[str]:
    text = (ROOT / ".env.sample").read_text(encoding="utf-8")
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)


def test_every_variable_the_code_reads_is_in_env_sample():
    read = _variables_read_by_the_code()
    assert {"DB_PATH", "LOG_PATH", "LOG_MAX_BYTES", "LOG_BACKUP_COUNT", "LOG_LEVEL", "FEES",
            "USD_KRW", "USD_KRW_FILE", "GOPAX_API_KEY", "GOPAX_SECRET_KEY", "OKX_SNAPSHOTS"} <= read
    for venue in VENUES.values():  # the endpoint variables, derived from the declarations
        read.update(venue.env_vars)
    assert {"UPBIT_WS_URL", "BITHUMB_REST_URL", "BINANCE_FUTURES_MARKET_WS_URL"} <= read
    sample = set(_env_sample())
    assert not read - sample, f"read by the code but not in .env.sample: {sorted(read - sample)}"
    assert not sample - read, f"in .env.sample but read nowhere: {sorted(sample - read)}"


def test_every_env_sample_variable_is_documented():
    sample = _env_sample()
    assert len(sample) > 20 and len(set(sample)) == len(sample)
    docs = _all_docs()
    missing = [name for name in sample if not _mentions(docs, name)]
    assert not missing, f".env.sample variables the docs never mention: {missing}"


# ------------------------------------------------------------------------------ venues and fees

def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2:]
    end = re.search(r"^## ", rest, re.MULTILINE)
    return rest[:end.start()] if end else rest


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``text``, as stripped cells."""
    lines = text[text.index("\n|") + 1:].splitlines()
    table = lines[:next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table[2:]]


def _venue_names(text: str) -> list[str]:
    header = [cell.strip() for cell in next(line for line in text.splitlines()
                                            if line.startswith("|")).strip("|").split("|")]
    column = header.index("`--exchanges`")
    return [row[column].strip("`") for row in _table_rows(text)]


def test_every_exchange_has_a_row_in_the_venue_tables():
    exchanges = (DOCS / "exchanges.md").read_text(encoding="utf-8")
    for where, text in (("docs/exchanges.md", _section(exchanges, "## Venues")),
                        ("README.md", README.read_text(encoding="utf-8"))):
        names = _venue_names(text)
        assert sorted(names) == sorted(CONTROLLERS), f"venue table of {where}: {names}"


def test_the_fee_table_is_the_declarations():
    rows = _table_rows(_section((DOCS / "signals.md").read_text(encoding="utf-8"), "## Fees"))
    documented = {name: float(fee.rstrip(" %")) / 100 for name, fee, _ in rows}
    assert documented.keys() == {venue.label for venue in VENUES.values()}
    for venue in VENUES.values():
        assert documented[venue.label] == pytest.approx(venue.taker_fee), venue.name


# ------------------------------------------------------------------------------ links and names

def _prose(text: str) -> str:
    """``text`` without fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _slugs(text: str) -> set[str]:
    """Heading anchors as GitHub and mkdocs (Python-Markdown's toc) make them."""
    slugs = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(text), re.MULTILINE):
        plain = unicodedata.normalize("NFKD", heading.replace("`", "")).strip()
        slugs.add(re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-"))
        slugs.add(re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", plain).strip().lower()))
    return slugs


def test_every_relative_link_points_to_an_existing_file_and_heading():
    checked, broken = 0, []
    for path, text in _pages().items():
        prose = re.sub(r"`[^`\n]*`", "", _prose(text))
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            checked += 1
            if not linked.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _slugs(linked.read_text(encoding="utf-8")):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert checked > 30
    assert not broken, broken


def test_named_modules_and_paths_exist():
    text = _all_docs()
    missing = []
    for name in set(re.findall(r"(?<![\w./-])((?:" + "|".join(PRODUCT) + r")(?:\.\w+)+)", text)):
        if re.search(r"\.(log|md|py|json|db|gz)$", name):
            continue
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        if obj is None:
            missing.append(name)
    for path in set(re.findall(r"(?<![\w./-])((?:" + "|".join(PRODUCT) + r"|tests|benchmarks|docs)/[\w./<>*-]*)", text)):
        if not re.search(r"[<*]", path) and not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"named in the docs but not in the code: {sorted(missing)}"


def test_mkdocs_nav_lists_every_page():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.findall(r"^\s+- [^:\n]+: ([\w-]+\.md)$", config, re.MULTILINE)
    assert nav[0] == "index.md"
    assert sorted(nav) == sorted(path.name for path in DOCS.glob("*.md"))


# ------------------------------------------------------------------------------ the README

def test_readme_is_a_front_page_with_the_ci_test_command():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci == "python -m pytest"
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert any(ci in block.splitlines() for block in blocks)
