"""The layering of docs/architecture.md, checked on the source (every import, lazy ones included).

- The engine (`reasoning/`) imports neither the store, nor viz, nor the application, nor typer or
  streamlit: it runs inside a notebook, a server or a test without any of them.
- Pages, viz and app.py never import torch or transformers: the app opens in a second, model work runs
  in the engine (a spawned run, or an engine function behind `st.cache_resource`).
- Only `store/` talks to the database: no sqlalchemy / sqlmodel import and no session anywhere else.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("reasoning", "thinktrace", "store", "viz", "pages", "bench")


def python_files(*folders: str) -> list[Path]:
    files = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    if "app" in folders and (ROOT / "app.py").exists():
        files.append(ROOT / "app.py")
    return sorted(files)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) for every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in files:
        for line, module in imported_modules(path):
            if module.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


def test_the_engine_imports_no_store_viz_application_typer_or_streamlit():
    # reasoning/__main__.py only hands `python -m reasoning` to the CLI (the stable entry point).
    files = [p for p in python_files("reasoning") if p != ROOT / "reasoning" / "__main__.py"]
    assert files, "no engine modules found"
    assert violations(files, ("store", "viz", "thinktrace", "pages", "typer", "streamlit", "sqlmodel",
                              "sqlalchemy")) == []


def test_inside_the_engine_models_and_verifiers_sit_below_strategies_and_training():
    """Backends and verifiers are parts a strategy uses: they know nothing of strategies (which verifier
    a run needs is run policy, in the registry) and nothing of the lab's training code (they may read
    `reasoning.lab`'s folder constants, the weights' location)."""
    found = []
    for path in python_files("reasoning/backends", "reasoning/verifiers", "reasoning/strategies"):
        for line, module in imported_modules(path):
            below = not path.is_relative_to(ROOT / "reasoning" / "strategies")
            if (below and module.startswith("reasoning.strategies")) or module.startswith("reasoning.lab."):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert found == []


def test_pages_and_figures_never_import_torch_or_transformers():
    files = python_files("pages", "viz", "app")
    assert violations(files, ("torch", "transformers", "vllm")) == []


def test_figures_import_only_the_engine():
    assert violations(python_files("viz"), ("store", "thinktrace", "pages", "streamlit", "sqlmodel", "sqlalchemy")) == []


def test_only_the_store_talks_to_the_database():
    files = [p for p in python_files(*PRODUCT, "app") if not p.is_relative_to(ROOT / "store")]
    found = violations(files, ("sqlmodel", "sqlalchemy", "psycopg", "sqlite3"))
    for path in files:
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
                {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        found += [f"{path.relative_to(ROOT)} uses {name}" for name in ("session_scope", "Session") if name in names]
    assert found == []


@pytest.mark.parametrize("rule", [test_the_engine_imports_no_store_viz_application_typer_or_streamlit,
                                  test_only_the_store_talks_to_the_database])
def test_the_rules_catch_a_violation(tmp_path, monkeypatch, rule):
    """The checks are not vacuous: a module that breaks the rule is reported."""
    fake = tmp_path / "reasoning"
    fake.mkdir()
    (fake / "leak.py").write_text("def f():\n    from store.db import session_scope\n    import sqlmodel\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    with pytest.raises(AssertionError):
        rule()
