"""The import graph of every package under libs/*/src and services/*/src.

Read from the source with the standard library's `ast`, so nothing is imported and a
lazy import inside a function counts like one at the top. An edge A → B means module A
names module B in an `import` or `from ... import` statement (`from pkg import name`
points at `pkg.name` when that is a module, else at `pkg`). The tests fail on:

- any import cycle (the cycle is printed, module by module);
- a wrong-way arrow between the trainer's wings: `data` and `evaluation` never import
  `training`, `api` or the top-level `cli`; `evaluation` never imports `data`;
- one service importing another service's package (services talk over HTTP; the only
  shared code is `medgo_common`, which imports no service).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = sorted([*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")])


def _modules() -> dict[str, Path]:
    """Every project module name → its file (packages as their `__init__.py`)."""
    found: dict[str, Path] = {}
    for src in SOURCE_ROOTS:
        for path in src.rglob("*.py"):
            parts = path.relative_to(src).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """The project modules `name` imports, resolved against `MODULES`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import a.b.c` of a non-module name
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative DFS with colours)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child):], child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(graph.get(child, ()))))
    return None


def test_the_graph_covers_every_package() -> None:
    assert {"medgo_common", "medgo_gateway", "medgo_inference", "medgo_feedback",
            "medgo_trainer"} <= {m.split(".")[0] for m in MODULES}
    assert "medgo_trainer.training.stages.preference" in MODULES


def test_no_import_cycle() -> None:
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_lazy_cycle(tmp_path: Path) -> None:
    """The detector itself: a cycle closed by an import inside a function is found."""
    graph = {"p.a": ["p.b"], "p.b": ["p.c"], "p.c": ["p.a"], "p.d": []}
    assert _find_cycle(graph) == ["p.a", "p.b", "p.c", "p.a"]
    assert _find_cycle({"p.a": ["p.b"], "p.b": []}) is None
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from medgo_trainer.training import recipe\n")
    assert list(_imports("medgo_trainer.data.lazy", lazy)) == ["medgo_trainer.training.recipe"]


#: wing → packages it may not import (the trainer's one-way arrows).
FORBIDDEN = {
    "medgo_trainer.data": ("medgo_trainer.training", "medgo_trainer.api", "medgo_trainer.cli"),
    "medgo_trainer.evaluation": ("medgo_trainer.training", "medgo_trainer.api",
                                 "medgo_trainer.cli", "medgo_trainer.data"),
    "medgo_trainer.training": ("medgo_trainer.api", "medgo_trainer.cli"),
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("wing", sorted(FORBIDDEN))
def test_trainer_wings_import_one_way(wing: str) -> None:
    wrong = [f"{src} imports {dst}" for src, targets in GRAPH.items() if _within(src, wing)
             for dst in targets if any(_within(dst, bad) for bad in FORBIDDEN[wing])]
    assert not wrong, f"{wing} must not import {FORBIDDEN[wing]}:\n" + "\n".join(wrong)


def test_services_share_code_only_through_medgo_common() -> None:
    wrong = [f"{src} imports {dst}" for src, targets in GRAPH.items() for dst in targets
             if src.split(".")[0] != dst.split(".")[0] and dst.split(".")[0] != "medgo_common"]
    assert not wrong, "\n".join(wrong)
