"""The package tree by role stays layered: no module imports a role above its own, and no
import cycle joins modules.

Read from the source with ``ast`` (nothing is imported), so a violation fails here, naming the
importing module and what it imports, instead of as an import-order bug somewhere else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "sqlalchemy_postgresql_audit"
ROOT = Path(__file__).resolve().parent.parent / "src" / PACKAGE

#: Each role may import its own modules and the roles of a lower rank.  The root's modules are
#: the public entry points that wire the roles together; ``cli`` is loaded by ``__main__`` only.
RANKS = {
    "errors": 0,
    "declare": 1,
    "render": 2,
    "install": 3,
    "context": 3,
    "history": 4,
    "lifecycle": 5,
    "cdc": 5,
    "alembic": 6,
    "": 7,
    "cli": 8,
    "__main__": 9,
}
#: ``render/`` is used by every role, so it may itself use only the plain data it renders.
RENDER_MAY_IMPORT = {"errors", "declare.spec", "declare.naming", "declare.options"}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imports(name: str) -> set[tuple[str, bool]]:
    """The package's modules ``name`` imports, each with whether only under TYPE_CHECKING."""
    path, is_package = MODULES[name]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    here = [part for part in name.split(".") if part]
    package = here if is_package else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == PACKAGE:
                base = []
            else:
                continue
            module = (node.module or "").split(".")
            if not node.level:
                module = module[1:]
            target = ".".join([*base, *[part for part in module if part]])
            for alias in node.names:
                full = f"{target}.{alias.name}" if target else alias.name
                found.add((full if full in MODULES else target, id(node) in typing_only))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.add((".".join(alias.name.split(".")[1:]), id(node) in typing_only))
    found.discard((name, False))
    found.discard((name, True))
    return found


def _role(name: str) -> str:
    """The role package of module ``name``: ``""`` for the root's own modules."""
    first = name.split(".")[0]
    return first if first in RANKS else ""


def test_no_module_imports_a_role_above_its_own() -> None:
    wrong = []
    for name in MODULES:
        for target, _typing_only in _imports(name):
            mine, theirs = _role(name), _role(target)
            if mine == theirs or target == mine:
                continue
            if mine == "render":
                if target not in RENDER_MAY_IMPORT:
                    wrong.append(
                        f"{name} imports {target}: render/ may import only "
                        f"{sorted(RENDER_MAY_IMPORT)}"
                    )
            elif theirs != "render" and RANKS[theirs] >= RANKS[mine]:
                wrong.append(
                    f"{name or PACKAGE} ({mine or 'root'}) imports {target} "
                    f"({theirs or 'root'}), which is not a lower role"
                )
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize("typing_too", [False, True], ids=["runtime", "with-TYPE_CHECKING"])
def test_no_import_cycle_joins_modules_of_different_roles(typing_too: bool) -> None:
    graph = {
        name: {target for target, typing_only in _imports(name) if typing_too or not typing_only}
        for name in MODULES
    }
    cycles = []
    for cycle in _strongly_connected(graph):
        crosses_roles = len({_role(name) for name in cycle}) > 1
        # A package's __init__ re-exporting its own modules is not a cycle.
        reexports = all(name.startswith(min(cycle, key=len)) for name in cycle)
        if (crosses_roles or not typing_too) and not reexports:
            cycles.append(sorted(cycle))
    assert not cycles, cycles


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return groups
