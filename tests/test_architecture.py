"""The package's layers (docs/architecture.md): every import of a harness module points down, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).parent
# Lowest first. A module may import its own layer and the layers before it.
LAYERS = [
    {"errors"},
    {"model"},
    {"wireguard", "data"},
    {"system"},
    {"vm"},
    {"runtime"},
    {"backends"},
    {"measure"},
    {"reporting"},
    {"options"},
    {"cli", "plugin", "__init__", "__main__"},
]
STANDALONE = {"agents"}  # run inside hosts by file or module name: no harness imports at all


def layer_of(part: str) -> int:
    for number, names in enumerate(LAYERS):
        if part in names:
            return number
    raise AssertionError(f"harness.{part} is in no layer of this test (and of docs/architecture.md)")


def harness_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "harness":
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("harness."))
    return found


def test_imports_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        top = relative.parts[0].removesuffix(".py")
        imports = harness_imports(path)
        if top in STANDALONE:
            wrong += [f"{relative} imports harness.{name} (agents must stand alone)" for name in imports]
            continue
        mine = layer_of(top)
        wrong += [f"{relative} imports harness.{name}, a higher layer" for name in imports if layer_of(name) > mine]
    assert not wrong, "\n".join(wrong)


def test_every_module_is_described_in_the_architecture_document():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py" and f"`{path.relative_to(PACKAGE)}`" not in text
    ]
    assert not missing, f"docs/architecture.md has no line for: {missing}"


def test_no_test_module_name_is_used_twice():
    """tests/ and scenarios/ have no __init__.py: a basename in both stops pytest's collection."""
    root = PACKAGE.parent
    names = [path.name for folder in ("tests", "scenarios") for path in (root / folder).glob("test_*.py")]
    assert len(names) == len(set(names)), sorted(name for name in names if names.count(name) > 1)


def module_name(path: Path) -> str:
    return ".".join(("harness", *path.relative_to(PACKAGE).with_suffix("").parts))


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The harness modules `path` imports anywhere (at the top, in functions, under TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "harness":
            for alias in node.names:  # `from harness.runtime import accounting` names a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("harness."))
    return {name for name in found if name in known}


def test_no_module_imports_itself_in_a_circle():
    """Layers say nothing inside one package: runtime/network -> configure -> accounting -> network was one."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    graph = {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}
    circles, state = [], {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "\n".join(circles)
