"""The layers of docs/ARCHITECTURE.md hold: no module imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first; a module may import from its own layer and the ones before it.
# The first prefix that matches a module names its layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("soak.core", "soak_model_server")),
    ("configuration", ("soak.config",)),
    ("run store", ("soak.store",)),
    ("targets", ("soak.targets",)),
    ("samplers", ("soak.samplers",)),
    ("driver", ("soak.driver",)),
    ("analysis", ("soak.analysis",)),
    ("history", ("soak.history",)),
    ("report", ("soak.report",)),
    ("gate", ("soak.gate",)),
    ("kubernetes", ("soak.k8s",)),
    ("front", ("soak.cli", "soak.plugin")),
]
ROOT_PACKAGE = "soak"  # its __init__ only holds the version


def layer_of(module: str) -> int:
    if module == ROOT_PACKAGE:
        return 0
    if module == ROOT_PACKAGE + ".__main__":  # `python -m soak`: the CLI
        return len(LAYERS) - 1
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and the docs")


def imports(path: Path) -> set[str]:
    """Modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def soak_imports(path: Path) -> set[str]:
    """Modules of this project that a file imports."""
    return {m for m in imports(path) if m.split(".")[0] in ("soak", "soak_model_server")}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_no_import_reaches_up_a_layer():
    upward = []
    for path in sorted((ROOT / "soak").rglob("*.py")):
        module = module_name(path)
        for imported in sorted(soak_imports(path)):
            if layer_of(imported) > layer_of(module):
                upward.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports "
                    f"{imported} ({LAYERS[layer_of(imported)][0]})"
                )
    assert not upward, "\n".join(upward)


def test_configuration_is_pure():
    """Resolving a config needs no server, no Docker, no target."""
    for path in (ROOT / "soak" / "config").glob("*.py"):
        imported = imports(path)
        ours = {m for m in imported if m.startswith("soak")}
        assert all(m.startswith(("soak.core.", "soak.config")) for m in ours), path
        roots = {m.split(".")[0] for m in imported}
        assert not roots & {"shutil", "docker", "subprocess", "psutil", "socket"}, path


def test_the_stand_in_server_imports_nothing_of_soak():
    for path in (ROOT / "soak_model_server").rglob("*.py"):
        assert not any(m.split(".")[0] == "soak" for m in soak_imports(path)), path
