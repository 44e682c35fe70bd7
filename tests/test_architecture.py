"""The package layers: no import cycle between top-level packages, and the architecture page
shows the graph as it is."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "docs" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_between_packages():
    graph = _graph_module()
    edges = graph.imports()
    assert graph.cycles(edges) == []
    assert edges["core"] == {}, "the bottom layer imports nothing of ours"
    assert set(edges["exporter"]) <= {"core", "storage"}
    assert set(edges["storage"]) <= {"core"}
    assert set(edges["analytics"]) <= {"core"}


def test_cycle_detection_finds_a_cycle():
    graph = _graph_module()
    edges = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 1}, "d": {"a": 1}}
    assert graph.cycles(edges) == [("a", "b", "c")]


def test_architecture_page_shows_the_current_graph():
    graph = _graph_module()
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert graph.mermaid(graph.imports()) in page, "run: python docs/import_graph.py --write"
