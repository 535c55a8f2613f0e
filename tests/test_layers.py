"""The package's layers point one way, with no import cycles (DESIGN.md, "Layout").

``cli -> api / video API -> codecs -> (nn, entropy, engine, weights, ...) -> bitstream / util``:
every import in ``src/glocal_codec`` (module level or inside a function) is parsed from the
source and checked against the rank of the part it comes from. A module may import from its
own rank or below, never above; the parts form no cycle (module-level imports, which run at
import time); and nothing imports a private (underscore) name of another part.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import glocal_codec

SRC = Path(glocal_codec.__file__).resolve().parent

#: Rank of every top-level part of the package: a part imports only from its rank or below.
RANKS: dict[str, int] = {
    "util": 0, "bitstream": 0, "errors": 0,
    "entropy": 1, "nn": 1, "engine": 1, "weights": 1, "imageio": 1, "yuv": 1, "datasets": 1,
    "codecs": 2,
    "api": 3, "video": 3,
    "eval": 4, "train": 4,
    "cli": 5, "demo": 5, "__main__": 5,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["glocal_codec", *parts])


def _imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(absolute module, imported names, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    top_level = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            if not node.module:  # "from . import x": x is a module of that package, or a name of its __init__
                for n in names:
                    is_module = (SRC / Path(*f"{target}.{n}".split(".")[1:])).with_suffix(".py").exists() or \
                        (SRC / Path(*f"{target}.{n}".split(".")[1:]) / "__init__.py").exists()
                    out.append((f"{target}.{n}", [], id(node) in top_level) if is_module
                               else (target, [n], id(node) in top_level))
                continue
            out.append((target, names, id(node) in top_level))
        elif isinstance(node, ast.Import):
            for a in node.names:
                out.append((a.name, [], id(node) in top_level))
    return [(t, n, top) for t, n, top in out if t == "glocal_codec" or t.startswith("glocal_codec.")]


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def _graph():
    edges = []
    for path in sorted(SRC.rglob("*.py")):
        mod = _module_name(path)
        for target, names, top in _imports(path):
            edges.append((mod, target, names, top))
    return edges


def test_every_part_has_a_rank() -> None:
    parts = {_part(_module_name(p)) for p in SRC.rglob("*.py")} - {None}
    assert parts <= set(RANKS), f"parts without a rank in this test: {sorted(parts - set(RANKS))}"


def test_no_upward_import() -> None:
    bad = []
    for mod, target, _, _ in _graph():
        src, dst = _part(mod), _part(target)
        if src is None or dst is None:  # glocal_codec/__init__.py is the public face: above everything
            continue
        if RANKS[dst] > RANKS[src]:
            bad.append(f"{mod} imports {target} ({src} rank {RANKS[src]} -> {dst} rank {RANKS[dst]})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_private_name_from_another_part() -> None:
    bad = []
    for mod, target, names, _ in _graph():
        if _part(mod) == _part(target) or _part(mod) is None:
            continue
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        if private or any(p.startswith("_") and p != "__main__" for p in target.split(".")[1:]):
            bad.append(f"{mod}: from {target} import {', '.join(names)}")
    assert not bad, "private names used across parts:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_no_cycle_between_parts() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, target, _, top in _graph():
        src, dst = _part(mod), _part(target)
        if top and src and dst and src != dst:
            edges[src].add(dst)
    assert not _cycles(edges), f"import cycles between parts: {_cycles(edges)}"


def test_no_cycle_between_modules() -> None:
    modules = {_module_name(p) for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, target, names, top in _graph():
        if not top:
            continue
        # "from pkg import name" may name a submodule: count the edge to it
        hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules] or [target]
        for t in hits:
            if t in modules and t != mod and not mod.startswith(t + "."):  # a package's own __init__ is its parent
                edges[mod].add(t)
    # a package __init__ re-exporting its submodules is not a cycle to fix; drop those edges
    for mod in list(edges):
        edges[mod] = {t for t in edges[mod] if not (t.startswith(mod + ".") and (SRC / Path(*mod.split(".")[1:]) / "__init__.py").exists())}
    assert not _cycles(edges), f"import cycles between modules: {_cycles(edges)}"
