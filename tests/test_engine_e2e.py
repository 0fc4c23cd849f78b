"""Every chain strategy and both verifiers end to end on the real embedded model, through the runner
into a real SQLite file; and a run killed with SIGKILL resumes to the same result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thinktrace import runner
from reasoning.config import SearchConfig
from reasoning.problems import load_problems
from reasoning.verifiers import load_verifier
from store.runs import run_results, run_summary, tree_nodes
from tree_checks import assert_chain_tree

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = load_problems("arith:1", limit=2)


@pytest.mark.parametrize(
    "strategy,n,verifier,select",
    [
        ("cot", 1, None, "weighted"),
        ("self_consistency", 3, None, "weighted"),
        ("best_of_n", 3, "self_eval", "weighted"),
        ("best_of_n", 2, "oracle", "naive"),
    ],
)
def test_strategy_runs_end_to_end_and_stores_its_tree(embedded_lm, store, strategy, n, verifier, select):
    cfg = SearchConfig(n=n, max_new_tokens=40, select=select)
    request = runner.RunRequest(strategy=strategy, dataset="arith:1", verifier=verifier, config=cfg).validate()
    ver = load_verifier(verifier, embedded_lm)
    run_id = runner.create_run(store, request, PROBLEMS, embedded_lm, ver)
    run = runner.execute(store, run_id, embedded_lm, ver)

    summary = run_summary(store, run_id)
    assert run.status == "done" and summary.problems_done == 2
    assert summary.model == embedded_lm.name
    assert summary.evaluation_only == (verifier == "oracle")
    for result in run_results(store, run_id):
        nodes = tree_nodes(store, run_id, result.problem_id)
        assert nodes[0].text == result.question
        assert_chain_tree(nodes, result, n, scored=verifier is not None)
        if verifier == "oracle":
            leaves = [node for node in nodes if node.answer is not None]
            assert {leaf.path_score for leaf in leaves} <= {0.0, 0.5, 1.0}
        assert result.model_calls == 1
        assert result.verifier_calls == (1 if verifier else 0)


def _cli(*args, db):
    env = {**os.environ, "THINKTRACE_DB": str(db), "THINKTRACE_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _show(run_id, db):
    proc = _cli("show", run_id, "--json", db=db)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)


def test_a_killed_run_resumes_to_what_an_uninterrupted_run_gives(tmp_path):
    args = ["run", "--strategy", "self_consistency", "--n", "2", "--dataset", "arith:1", "--limit", "3",
            "--model", "smollm2", "--max-new-tokens", "24", "--seed", "7", "--concurrency", "1", "--json"]
    # one problem at a time (tests/test_scheduler.py kills a run with 8 in flight)
    killed_db, reference_db = tmp_path / "killed.db", tmp_path / "reference.db"
    proc = _cli(*args, "--run-id", "11111111-2222-3333-4444-555555555555", db=killed_db)
    run_id = "11111111-2222-3333-4444-555555555555"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill -9 as soon as the first problem has committed
        if killed_db.exists() and proc.poll() is None:
            try:
                if _show(run_id, killed_db)["problems_done"] >= 1:
                    break
            except (AssertionError, json.JSONDecodeError):
                pass
        time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _show(run_id, killed_db)
    assert partial["status"] == "interrupted" and 1 <= partial["problems_done"] < 3

    resumed = _cli("resume", run_id[:8], "--json", db=killed_db)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    reference = _cli(*args, db=reference_db)
    ref_out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    after, expected = _show(run_id, killed_db), json.loads(ref_out)
    expected = _show(expected["id"], reference_db)
    assert after["status"] == "done" and after["problems_done"] == 3
    fields = ("key", "answer", "correct", "tokens", "votes")
    assert [{f: r[f] for f in fields} for r in after["results"]] == [{f: r[f] for f in fields} for r in expected["results"]]
    assert after["tokens"] == expected["tokens"]
