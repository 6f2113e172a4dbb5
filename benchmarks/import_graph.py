"""The import graph of the kbuild package: module-level and function-level imports alike.

Prints the number of internal modules and arrows, the modules that sit in import cycles (strongly
connected components of more than one module), and the arrows that go up the layers of
`.importlinter`'s layers contract (docs/architecture.md explains them). Static (AST) analysis:
nothing is imported, so it runs without TensorFlow.

    python benchmarks/import_graph.py            # summary
    python benchmarks/import_graph.py --verbose  # every cycle member and upward arrow
    python benchmarks/import_graph.py --runtime  # imports that run (not `if TYPE_CHECKING:` ones)
"""

from __future__ import annotations

import argparse
import ast
import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "kbuild"

CONTRACTS = ROOT.parent / ".importlinter"


def read_layers(path: Path = CONTRACTS) -> list[tuple[str, ...]]:
    """The layers of `.importlinter`'s layers contract, lowest first, each as its modules' full
    names (`kbuild.names`, ...): the same order `lint-imports` checks, never a copy of it. A
    module may import its own layer or any lower one; the first matching prefix wins."""
    config = configparser.ConfigParser()
    config.read(path, encoding="utf-8")
    contract = next(config[name] for name in config.sections() if config[name].get("type") == "layers")
    container = contract["containers"].split()[0]
    rows = [row.strip() for row in contract["layers"].splitlines() if row.strip()]
    return [tuple(f"{container}.{name.strip()}" for name in re.split(r"[:|]", row)) for row in reversed(rows)]


LAYERS = read_layers()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks (imports for annotations only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return inside


def imports_of(path: Path, name: str, modules: set[str], runtime_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree) if runtime_only else set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from a import b`: the module a.b when it is one, else (a name in a) the module a.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            # The longest known module that the target names (from a.b import c: a.b.c or a.b).
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("kbuild"):
                found.add(target)
    return found


def graph(runtime_only: bool = False) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, name, modules, runtime_only) for name, path in paths.items()}


def layer_of(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Arrows from a module to one in a higher layer (a package's __init__ importing its own modules is fine)."""
    bad = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            s, t = layer_of(source), layer_of(target)
            if s is not None and t is not None and t > s:
                bad.append((source, target))
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--runtime", action="store_true", help="skip `if TYPE_CHECKING:` imports (annotations only)")
    args = parser.parse_args()
    edges = graph(args.runtime)
    found = cycles(edges)
    up = upward(edges)
    in_cycles = sum(len(c) for c in found)
    print(f"modules: {len(edges)}  arrows: {sum(len(t) for t in edges.values())}")
    print(f"modules in import cycles: {in_cycles} ({len(found)} cycles: sizes {[len(c) for c in found]})")
    print(f"arrows that go up the layers: {len(up)}")
    unplaced = sorted(m for m in edges if layer_of(m) is None)
    if unplaced:
        print(f"modules in no layer: {', '.join(unplaced)}")
    if args.verbose:
        for component in found:
            print("cycle:", " ".join(component))
        for source, target in up:
            print(f"up: {source} -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
