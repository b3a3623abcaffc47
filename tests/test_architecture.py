"""The packages' imports form no cycle and flow one way: engine -> planners -> experiments -> cli, store below the
planners, viz reading only the store, gridsearch on top. Function-local imports count too: an import cycle broken
by a late import is still a cycle in the design."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mdp_prune", "qtable", "gridsearch")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules `name` imports anywhere in its body: a `from P import x` names P.x when that is a module."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    edges = set()
    for target in found:
        if target not in modules:
            continue
        # Importing a.b.c first runs a and a.b, except the packages this module already sits in.
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            step = ".".join(parts[:i])
            if step != name and (step == target or not name.startswith(step + ".")):
                edges.add(step)
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_sees_a_cycle_through_a_function_local_import():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


# Which layer may import which: each layer only what lies below it.
LAYERS = {
    "mdp_prune.errors": set(),
    "mdp_prune.config": {"mdp_prune.errors"},
    "mdp_prune.engine": {"mdp_prune.errors", "mdp_prune.config"},
    "mdp_prune.store": {"mdp_prune.errors", "mdp_prune.config"},
    "mdp_prune.planners": {"mdp_prune.errors", "mdp_prune.config", "mdp_prune.engine", "mdp_prune.store"},
    "mdp_prune.viz": {"mdp_prune.errors", "mdp_prune.config", "mdp_prune.store"},
    "mdp_prune.experiments": {"mdp_prune.errors", "mdp_prune.config", "mdp_prune.engine", "mdp_prune.store",
                              "mdp_prune.planners"},
}


def _layer(module: str) -> str | None:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_data_flows_one_way(layer):
    allowed = LAYERS[layer] | {layer}
    for module, targets in _graph().items():
        if _layer(module) != layer:
            continue
        for target in targets:
            ok = target == "mdp_prune" or target.startswith("qtable") or _layer(target) in allowed
            assert ok, f"{module} imports {target}, above its layer"


def test_qtable_is_a_library_of_its_own():
    graph = _graph()
    assert all(t.startswith("qtable") for m, ts in graph.items() if m.startswith("qtable") for t in ts)
