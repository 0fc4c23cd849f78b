"""Databases and bundles written by an earlier ThinkTrace keep working.

The fixtures were written by ThinkTrace 0.1.0 (the code before the engine/store/registry restructuring),
with the lab pair: two runs (best_of_n n=4, beam_search n=4) and a sweep (self_consistency, dvts at
budgets 1, 2), plus a bundle exported from the two runs and what `runs`, `show` and `curves` printed as
JSON then. The current code must open them and print the same JSON: schema, bundle format and `--json`
keys are an interface people script against.
"""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from test_cli import cli

FIXTURES = Path(__file__).parent / "fixtures"
OLD = "thinktrace-0.1.0"
SWEEP = "1e6f0e45-c60b-460a-8038-4fc619e35638"


def expected(name: str):
    return json.loads((FIXTURES / f"{OLD}.{name}.json").read_text())


@pytest.fixture()
def old_db(tmp_path) -> Path:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / f"{OLD}.db", db)
    return db


def run_json(*args, db: Path):
    proc = cli(*args, "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_old_database_lists_shows_and_draws_curves_exactly_as_before(old_db):
    assert run_json("runs", db=old_db) == expected("runs")
    shown = expected("show")
    assert run_json("show", shown["id"][:8], db=old_db) == shown
    # Keys added since (thinking models: think_tokens, thinking_fit; cost axes: seconds_per_problem,
    # prompt_tokens_per_problem; seeds: n_seeds) come on top; every old key keeps its value.
    added = {"think_tokens", "thinking_fit", "seconds_per_problem", "prompt_tokens_per_problem", "n_seeds"}
    now = run_json("curves", SWEEP[:8], db=old_db)
    assert [{k: v for k, v in p.items() if k not in added} for p in now] == expected("curves")
    assert all(p["think_tokens"] is None and p["thinking_fit"] is None for p in now)


def test_an_old_bundle_imports_and_exports_the_same_runs(tmp_path):
    db = tmp_path / "new.db"
    proc = cli("import", str(FIXTURES / f"{OLD}.thinktrace.gz"), db=db)
    assert proc.returncode == 0, proc.stderr
    old_runs = {r["id"]: r for r in expected("runs")}
    imported = run_json("runs", db=db)
    assert len(imported) == 2
    for row in imported:
        assert row == old_runs[row["id"]]

    out = tmp_path / "again.thinktrace.gz"
    proc = cli("export", *[r["id"] for r in imported], "-o", str(out), db=db)
    assert proc.returncode == 0, proc.stderr
    before = json.loads(gzip.decompress((FIXTURES / f"{OLD}.thinktrace.gz").read_bytes()))
    after = json.loads(gzip.decompress(out.read_bytes()))
    for doc in (before, after):
        doc.pop("created_at")  # when the bundle was written
        doc.pop("app_version")
        doc["runs"].sort(key=lambda r: r["id"])
    assert after == before
