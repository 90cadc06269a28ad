"""The core's public surface: `core.__all__` is complete; adapters and benches use only it."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import core

ROOT = Path(__file__).resolve().parent.parent
# The CLI is the composition root: it wires the ingest and index modules, which no chat adapter
# touches. Every other module under bots/, and every benchmark, goes through `core` alone.
COMPOSITION_ROOT = {ROOT / "bots" / "cli" / "main.py", ROOT / "bots" / "cli" / "knowledge.py"}
USERS = sorted(
    p for p in [*ROOT.glob("bots/**/*.py"), *ROOT.glob("bench/*.py")] if p not in COMPOSITION_ROOT
)


def test_all_names_exist_and_every_public_name_is_listed() -> None:
    assert all(hasattr(core, name) for name in core.__all__)
    public = {
        name
        for name, value in vars(core).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules, imported or not
        and str(getattr(value, "__module__", "")).startswith("core")
    }
    assert public <= set(core.__all__), public - set(core.__all__)


@pytest.mark.parametrize("path", USERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_adapters_and_benchmarks_import_only_core_public_names(path: Path) -> None:
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "core":
            assert node.module == "core", f"{path.name} imports {node.module}"
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names if a.name.split(".")[0] == "core"]
            assert not modules, f"{path.name} imports {modules}"
    assert set(imported) <= set(core.__all__), set(imported) - set(core.__all__)
