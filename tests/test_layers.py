"""The import rules of docs/ARCHITECTURE.md, checked on the source (every import, lazy ones included)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bytelevel", "common", "hypernet", "models", "transplant", "tokenshift")
MAY_IMPORT = {  # docs/ARCHITECTURE.md, "Packages and what each may import"
    "bytelevel": set(),
    "common": {"bytelevel"},
    "hypernet": {"common", "bytelevel"},
    "models": {"common", "bytelevel"},
    "transplant": {"hypernet", "common", "bytelevel"},
    "tokenshift": set(PACKAGES),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts)


def runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (annotations only: never imported at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *runtime_nodes(child)])
            continue
        yield node
        yield from runtime_nodes(node)


def imported_modules(path: Path) -> set[str]:
    """Top-level-folder-relative module names `path` imports (`tokenshift.models.hat` -> `models.hat`)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
                if not node.module:
                    names = [f"{names[0]}.{a.name}" for a in node.names]
            else:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("tokenshift."):  # tokenshift.models.hat -> models.hat; tokenshift.cli stays
                rest = name[len("tokenshift."):]
                name = rest if rest.split(".")[0] in PACKAGES else name
            if name.split(".")[0] in PACKAGES and name != "tokenshift":
                found.add(name)
    return found


def source_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layers(package):
    bad = []
    for path in source_files(package):
        for name in imported_modules(path):
            target = name.split(".")[0]
            if target != package and target not in MAY_IMPORT[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "imports against docs/ARCHITECTURE.md:\n" + "\n".join(sorted(bad))


def test_no_import_cycle_between_modules():
    """No module reaches itself through imports (lazy ones too): each file can be read on its own."""
    files = {module_name(p): p for pkg in PACKAGES if pkg != "tokenshift" for p in source_files(pkg)}
    graph = {}
    for name, path in files.items():
        targets = set()
        for imported in imported_modules(path):
            while imported and imported not in files:  # `from pkg.mod import name` -> pkg.mod
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        # a package's __init__ re-exporting its own modules is not a cycle with them
        graph[name] = {t for t in targets if not (path.name != "__init__.py" and name.startswith(t + "."))}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_architecture_document_names_every_package():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert all(f"{p}/" in text for p in PACKAGES)
