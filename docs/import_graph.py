"""Draw the import graph of the project's top-level packages and check it has no cycle.

``python docs/import_graph.py`` prints the graph as a Mermaid block (``--counts``: with the
number of import lines per edge); ``--write`` puts it into
``docs/architecture.md`` between the ``import-graph`` markers. ``tests/test_architecture.py``
fails when the graph has a cycle or the page is out of date.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "controllers", "storage", "analytics", "exporter", "collector")
"""The product's top-level packages, bottom layer first."""
PAGE = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- import-graph:begin -->", "<!-- import-graph:end -->"


def imports(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """For each package, the other packages it imports and on how many import lines."""
    graph: dict[str, dict[str, int]] = {name: {} for name in PACKAGES}
    for name in PACKAGES:
        for path in sorted((root / name).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    target = module.split(".")[0]
                    if target in graph and target != name:
                        graph[name][target] = graph[name].get(target, 0) + 1
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[tuple[str, ...]]:
    """Every elementary cycle's package names (each found once per starting package)."""
    found: list[tuple[str, ...]] = []

    def walk(path: tuple[str, ...]) -> None:
        for nxt in graph[path[-1]]:
            if nxt == path[0]:
                found.append(path)
            elif nxt not in path and nxt > path[0]:
                walk(path + (nxt,))

    for start in sorted(graph):
        walk((start,))
    return found


def mermaid(graph: dict[str, dict[str, int]]) -> str:
    """The graph as a Mermaid flowchart, an edge per importing package and imported package
    (``--counts`` prints how many import lines each edge stands for)."""
    lines = ["```mermaid", "flowchart BT"]
    for name in PACKAGES:
        for target in sorted(graph[name]):
            lines.append(f"    {name} --> {target}")
    lines.append("```")
    return "\n".join(lines)


def write(page: Path = PAGE) -> None:
    """Replace the block between the markers of ``page`` with the current graph."""
    text = page.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{BEGIN}\n{mermaid(imports())}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    graph = imports()
    if "--write" in sys.argv[1:]:
        write()
    print(mermaid(graph))
    if "--counts" in sys.argv[1:]:
        for name in PACKAGES:
            for target, count in sorted(graph[name].items()):
                print(f"{name} -> {target}: {count} import lines")
    loops = cycles(graph)
    for loop in loops:
        print("cycle:", " -> ".join(loop + loop[:1]), file=sys.stderr)
    sys.exit(1 if loops else 0)
