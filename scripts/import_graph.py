"""Print the import graph of `mlplatform/` (package to package) and fail on any cycle between modules.

    python scripts/import_graph.py            # the graph, then "no cycle" (exit 0) or each cycle (exit 1)

Every import counts, at module level or inside a function: an import moved into a function still makes a cycle.
Importing `a.b.c` also imports the packages `a` and `a.b` (their `__init__`), so those edges count too.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mlplatform"


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(anchor + ([base] if base else []))
        names = {base} | {f"{base}.{alias.name}" for alias in node.names}
    out = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way are imported too
            prefix = ".".join(parts[:i])
            if prefix in known and prefix != PACKAGE:
                out.add(prefix)
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (annotations only: nothing imported at run time)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                pending.extend(child.orelse)
            else:
                pending.append(child)


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    edges: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        targets = set()
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets |= _targets(node, module, is_package, set(known))
        # A package's own submodules are not its dependencies when a submodule imports its package.
        edges[module] = {t for t in targets if t != module and not module.startswith(t + ".")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    edges = graph()
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in edges.items():
        for target in targets:
            if package_of(target) != package_of(module):
                packages[package_of(module)].add(package_of(target))
    for package in sorted({package_of(m) for m in edges}):
        print(f"{package} -> {', '.join(sorted(packages[package])) or '(nothing)'}")
    found = cycles(edges)
    for component in found:
        inside = set(component)
        print("cycle among: " + ", ".join(component))
        for module in component:
            print(f"  {module} -> {', '.join(sorted(edges[module] & inside))}")
    verdict = "no cycle" if not found else f"{len(found)} cycle(s)"
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports between them: {verdict}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
