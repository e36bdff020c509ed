"""celery_app.py, a module of the composition root outside import-linter's graph, imports nothing of the project
but envconfig: so it can never close an import loop (core loads it; it must not load core back)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_packages() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")} | {path.stem for path in ROOT.glob("*.py")}


def imported_top_levels(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_celery_app_imports_only_envconfig_of_the_project() -> None:
    imported = imported_top_levels((ROOT / "celery_app.py").read_text())
    assert imported & project_packages() == {"envconfig"}


def test_the_check_sees_an_import_of_a_project_package() -> None:
    assert imported_top_levels("import core.settings\nfrom tasks import services\n") & project_packages() == {
        "core",
        "tasks",
    }
