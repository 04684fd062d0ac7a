"""The project's shape, checked from the source: the two sides stay independent, imports
inside recovery/ and harness/ have no cycles, every package says what it holds, and the
declared dependencies are the ones the code imports.

The import graph is read with :mod:`ast` (nothing is imported), counting imports inside
functions too: a lazy import that closes a cycle is still a cycle.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emulators", "recovery", "harness")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


ALL = {name: path for pkg in PACKAGES for name, path in _modules(pkg).items()}


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (absolute and relative, at any depth)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in ALL:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: _imports(name, path) for name, path in ALL.items()}


def _third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return {m for m in out if m not in sys.stdlib_module_names and m not in PACKAGES}


@pytest.mark.parametrize(
    ("side", "forbidden"),
    [("emulators", {"recovery", "harness"}), ("recovery", {"emulators", "harness"})],
)
def test_the_two_sides_never_import_each_other(side, forbidden):
    bad = sorted(
        f"{mod} imports {dep}"
        for mod, deps in GRAPH.items()
        if mod.split(".")[0] == side
        for dep in deps
        if dep.split(".")[0] in forbidden
    )
    assert not bad, "\n".join(bad)


def _cycles(package: str) -> list[list[str]]:
    nodes = [m for m in GRAPH if m.split(".")[0] == package]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w.split(".")[0] != package:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def _is_package_init(mod: str) -> bool:
    return ALL[mod].name == "__init__.py"


@pytest.mark.parametrize("package", ["recovery", "harness"])
def test_no_import_cycles(package):
    # a package's __init__ re-exporting its modules is not a cycle of logic; none do today
    cycles = [c for c in _cycles(package) if not any(_is_package_init(m) for m in c)]
    assert not cycles, f"import cycles in {package}/: {cycles}"


def test_the_graph_reader_finds_a_cycle_when_there_is_one():
    """The cycle check itself: a two-module loop is found."""
    saved = dict(GRAPH)
    try:
        GRAPH["recovery.errors"] = GRAPH["recovery.errors"] | {"recovery.cli"}
        assert any("recovery.errors" in c for c in _cycles("recovery"))
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


def test_recovery_imports_flow_from_cli_down():
    """A board's driver never imports its operations or cli; operations never import cli."""
    order = {"cli": 3, "operations": 2, "driver": 1}
    bad = []
    for mod, deps in GRAPH.items():
        parts = mod.split(".")
        if parts[0] != "recovery" or len(parts) != 3 or parts[2] not in order:
            continue
        for dep in deps:
            dparts = dep.split(".")
            same_board = dparts[:2] == parts[:2] and len(dparts) == 3
            if same_board and dparts[2] in order and order[dparts[2]] > order[parts[2]]:
                bad.append(f"{mod} imports {dep}")
    assert not bad, bad


def test_every_package_says_what_it_holds():
    missing = []
    for mod, path in ALL.items():
        if path.name != "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if not doc or len(doc) < 20:
            missing.append(mod)
    assert not missing, f"packages without a docstring: {missing}"


# distribution name -> the module it provides; None: a pytest plugin used by name
PROVIDES = {
    "pyserial": "serial",
    "pexpect": "pexpect",
    "tftpy": "tftpy",
    "PyYAML": "yaml",
    "pytest": "pytest",
    "pytest-xdist": None,
    "pytest-timeout": None,
    "labgrid": "labgrid",
    "attrs": "attr",
}


def _declared() -> list[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = []
    # the labgrid extra: harness/labgrid imports it, and nothing imports harness/labgrid
    for req in meta["dependencies"] + meta["optional-dependencies"]["labgrid"]:
        name = req
        for sep in "<>=!~[; ":
            name = name.split(sep)[0]
        names.append(name)
    return names


def test_runtime_dependencies_are_what_the_code_imports():
    imported = set().union(*(_third_party(p) for p in ALL.values()))
    declared = _declared()
    unknown = [d for d in declared if d not in PROVIDES]
    assert not unknown, f"add {unknown} to PROVIDES with the module each provides"
    provided = {PROVIDES[d] for d in declared} - {None}
    assert imported <= provided, f"imported but not declared: {sorted(imported - provided)}"
    assert provided <= imported, f"declared but never imported: {sorted(provided - imported)}"
    plugins = ROOT.joinpath("harness").rglob("*.py")
    text = "\n".join(p.read_text() for p in plugins)
    assert "xdist" in text and '"timeout"' in text  # the plugins are used by name
