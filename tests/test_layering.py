"""The layering of `preflight`, written down as contracts, checked on the source (AST, no import).

Layers, lowest first: base values (errors, model, result_figures, exitcodes, suggest; the
text-safety, atomic output file, Prometheus text-format and time-boxed command helpers safetext,
outfile, promtext, subproc) < sources (host, sources, nvml) <
inventory < registry < checks < runner < execute/output/snapshot/cluster < cli. `bench` is a side
stack: it may read the inventory but never the check machinery. Every import counts, including
ones inside functions (a lazy import is still a dependency) and under `if TYPE_CHECKING:` (a
type-only import is still a dependency of the design, as import-linter counts it).

A violation that needs a real refactor is listed in EXCEPTIONS with the reason and the planned
change; an exception that no longer matches anything fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from preflight.registry import discover

PACKAGE = Path(__file__).resolve().parent.parent / "preflight"


@dataclass(frozen=True)
class Contract:
    name: str
    sources: str  # modules (with their submodules) the contract binds, under preflight.
    forbidden: str  # modules (with their submodules) they must not import, under preflight.
    why: str

    def binds(self, module: str) -> bool:
        return within(module, _names(self.sources))

    def forbids(self, module: str) -> bool:
        return within(module, _names(self.forbidden))


def _names(spaced: str) -> tuple[str, ...]:
    """`"host nvml"` → preflight.host, preflight.nvml; `""` → the whole package."""
    return tuple(f"preflight.{n}" for n in spaced.split()) or ("preflight",)


UPPER = "cli execute snapshot cluster state ack runflags"
CONTRACTS = (
    Contract(
        "checks read facts only",
        "checks",
        f"bench nvml host sources runner output profile slurm {UPPER}",
        "a check judges the inventory; the same code runs on a live node and on a profile",
    ),
    Contract(
        "bench does not know checks",
        "bench",
        f"registry checks runner output {UPPER}",
        "the benchmark is a measurement; a check reads its result",
    ),
    Contract(
        "active tests do not know checks",
        "active",
        f"registry checks runner output {UPPER}",
        "the workers measure and the judges take plain records; the gpu.* checks read them",
    ),
    Contract(
        "profile is a source",
        "profile",
        f"registry checks runner inventory {UPPER}",
        "a profile is a node's files; it knows nothing of what is checked",
    ),
    Contract(
        "inventory is below checks",
        "inventory",
        f"checks registry runner output bench profile {UPPER}",
        "facts are collected once, whatever reads them",
    ),
    Contract(
        "capabilities are worked out from the inventory",
        "capabilities",
        f"checks registry runner output bench profile host sources nvml {UPPER}",
        "what a node offers is read from its facts; the checks declare what they need",
    ),
    Contract(
        "output renders reports",
        "output",
        f"checks registry runner inventory host nvml bench {UPPER}",
        "a renderer takes a Report and nothing else",
    ),
    Contract(
        "sources are below the inventory",
        "host sources nvml",
        f"inventory checks registry runner output bench profile {UPPER}",
        "a source reads the node; it does not interpret it",
    ),
    Contract(
        "base values import nothing above them",
        "errors model result_figures exitcodes suggest safetext outfile promtext subproc",
        f"host sources nvml inventory registry checks runner output bench profile baseline slurm "
        f"drain_guard {UPPER}",
        "everything imports them",
    ),
    Contract(
        "registry and runner are below the front end",
        "registry runner",
        f"host nvml output bench {UPPER}",
        "they declare and run checks for any front end",
    ),
    Contract(
        "only the entry point imports the CLI",
        "",
        "cli",
        "the Typer app is the top; nothing below may depend on it",
    ),
)

# (importer, imported) → why it is still there and what removes it.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("preflight.__main__", "preflight.cli"): "`python -m preflight` is the entry point",
    **{
        ("preflight.checks.bench", f"preflight.bench.{m}"): (
            "bench.* checks read the measurement from the inventory (the collection stage stores "
            "it there) but judge it with bench's own types (SweepResult, Theoretical, "
            "judge_gate); they move below both with the bench/ split and rename (issue 11 item 4)"
        )
        for m in ("expected", "measurement", "metrics", "result")
    },
}

# Lower layers never name a check id; (module, id) → why it still does.
CHECK_ID_EXCEPTIONS: dict[tuple[str, str], str] = {}
LOWER = (
    "preflight.errors",
    "preflight.model",
    "preflight.exitcodes",
    "preflight.host",
    "preflight.sources",
    "preflight.nvml",
    "preflight.inventory",
    "preflight.registry",
    "preflight.runner",
    "preflight.output",
    "preflight.profile",
    "preflight.bench",
)


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, modules: set[str]) -> list[Import]:
    """The preflight modules `path` imports (relative imports resolved, `from pkg import mod`
    counted as the module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, node.lineno, type_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(Import(target, node.lineno, type_only))
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    found.append(Import(f"{target}.{alias.name}", node.lineno, type_only))
        for inner in ast.iter_child_nodes(node):
            visit(inner, type_only)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return [i for i in found if within(i.target, ("preflight",))]


def graph() -> dict[str, list[Import]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


GRAPH = graph()


def test_the_graph_sees_the_package() -> None:
    assert {"preflight.cli", "preflight.checks.gpu", "preflight.inventory.rdma"} <= set(GRAPH)
    assert any(i.target == "preflight.registry" for i in GRAPH["preflight.checks.cpu"])


def test_imports_follow_the_contracts() -> None:
    broken: list[str] = []
    used: set[tuple[str, str]] = set()
    for module, imports in GRAPH.items():
        for contract in CONTRACTS:
            if not contract.binds(module):
                continue
            for imp in imports:
                if not contract.forbids(imp.target):
                    continue
                if (module, imp.target) in EXCEPTIONS:
                    used.add((module, imp.target))
                    continue
                where = " under TYPE_CHECKING" if imp.type_only else ""
                broken.append(
                    f"{module}:{imp.line} imports {imp.target}{where}"
                    f" ({contract.name}: {contract.why})"
                )
    assert not broken, "layering contracts broken:\n" + "\n".join(broken)
    stale = sorted(set(EXCEPTIONS) - used)
    assert not stale, f"exceptions no longer needed, remove them from EXCEPTIONS: {stale}"


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def module_edges() -> dict[str, set[str]]:
    """Imports between modules; a package's `__init__` naming its own parts is no edge."""
    edges: dict[str, set[str]] = {}
    for module, imports in GRAPH.items():
        targets = set()
        for imp in imports:
            if imp.target == module or imp.target not in GRAPH:
                continue
            if imp.target.startswith(module + "."):
                continue
            targets.add(imp.target)
        edges[module] = targets
    return edges


def test_no_import_cycle() -> None:
    assert _strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert not _strongly_connected(module_edges())


FACT_KEYS = "preflight.inventory.facts"
"""The module that names the fact keys: its module-level string constants are fact keys."""


def _check_ids_named(module: str) -> list[tuple[str, int]]:
    """String literals equal to a check id, outside `facts[...]`-style subscripts and the fact
    key names of FACT_KEYS (fact keys share the check ids' dotted spelling but name facts)."""
    ids = {spec.id for spec in discover()}
    path = PACKAGE.parent.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    keys = {id(n.slice) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
    if module == FACT_KEYS:
        keys |= {id(n.value) for n in tree.body if isinstance(n, ast.Assign)}
    return [
        (n.value, n.lineno)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in ids
        if id(n) not in keys
    ]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if within(m, LOWER)))
def test_lower_layers_name_no_check_id(module: str) -> None:
    named = {(module, check_id) for check_id, _ in _check_ids_named(module)}
    unexplained = sorted(named - set(CHECK_ID_EXCEPTIONS))
    assert not unexplained, f"{module} names check ids {unexplained}: declare a capability"
    stale = sorted(k for k in CHECK_ID_EXCEPTIONS if k[0] == module and k not in named)
    assert not stale, f"remove {stale} from CHECK_ID_EXCEPTIONS"
