"""Tree search and sequential scaling end to end: the real embedded model, the self-evaluation
verifier, the runner and a real SQLite store, on one easy problem with tiny budgets."""
from __future__ import annotations

import pytest

from thinktrace import runner
from reasoning.config import SearchConfig
from reasoning.problems import load_problems
from reasoning.verifiers import load_verifier
from store.runs import get_run, run_results, tree_nodes
from tree_checks import assert_valid_tree

pytestmark = pytest.mark.slow

CONFIG = dict(n=4, beam_width=2, max_steps=3, max_step_tokens=24, expansions=3, width=2, parallel=2,
              think_tokens=32, max_new_tokens=48)


def solve(store, lm, strategy):
    problems = load_problems("arith:1", limit=1)
    request = runner.RunRequest(strategy=strategy, dataset="arith:1", model="smollm2", verifier="self_eval",
                                limit=1, config=SearchConfig(**CONFIG)).validate()
    verifier = load_verifier("self_eval", lm)
    run_id = runner.create_run(store, request, problems, lm, verifier)
    runner.execute(store, run_id, lm, verifier)
    [result] = run_results(store, run_id)
    run = get_run(store, run_id)
    return run, result, tree_nodes(store, run_id, result.problem_id)


@pytest.mark.parametrize("strategy", ["beam_search", "dvts", "mcts", "revise", "budget_forcing"])
def test_the_stored_tree_is_whole_and_its_budget_adds_up(strategy, embedded_lm, store):
    run, result, nodes = solve(store, embedded_lm, strategy)
    assert run.status == "done"
    assert_valid_tree(nodes, result)
    assert (run.tokens, run.model_calls, run.verifier_calls) == (result.tokens, result.model_calls,
                                                                  result.verifier_calls)
    assert result.tokens > 0 and result.verifier_calls >= 1
    check = globals()[f"check_{strategy}"]
    check(nodes, result)


def check_beam_search(nodes, result):
    steps = nodes[1:]
    iterations = max(n.iteration for n in steps) + 1
    assert iterations <= CONFIG["max_steps"] and all(n.depth <= CONFIG["max_steps"] for n in steps)
    # N candidates per iteration, one model call and one verifier call each
    for i in range(iterations):
        assert sum(n.iteration == i for n in steps) == CONFIG["n"]
    assert result.model_calls == result.verifier_calls == iterations
    assert all(n.score is not None and n.path_score is not None for n in steps)


def check_dvts(nodes, result):
    steps = nodes[1:]
    assert {n.meta["subtree"] for n in steps} == {0, 1}
    for n in steps:  # a subtree never adopts another's nodes
        if n.parent_seq:
            assert nodes[n.parent_seq].meta["subtree"] == n.meta["subtree"]
    iterations = max(n.iteration for n in steps) + 1
    assert result.model_calls == result.verifier_calls == iterations


def check_mcts(nodes, result):
    searched = [n for n in nodes if "visits" in n.meta]
    assert nodes[0].meta["visits"] == len(searched) - 1  # every scored node is one visit of the root
    assert result.verifier_calls == max(n.iteration for n in searched[1:]) + 1 <= CONFIG["expansions"]
    completed = [n for n in nodes if n.meta.get("completion")]
    assert result.model_calls == result.verifier_calls + (1 if completed else 0)


def check_revise(nodes, result):
    leaves = [n for n in nodes if n.status in ("terminal", "selected") and "answer_method" in n.meta]
    assert sorted((n.meta["chain"], n.meta["attempt"]) for n in leaves) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert result.model_calls == 2 and result.verifier_calls == 1  # 2 rounds of 2 chains, 1 scoring call


def check_budget_forcing(nodes, result):
    assert [n.status for n in nodes] == ["selected"] * len(nodes)  # one chain
    waits = [n for n in nodes if n.meta.get("forced")]
    assert all(n.text == "Wait" and n.tokens == 0 and n.meta["at_tokens"] < CONFIG["think_tokens"] for n in waits)
    assert result.model_calls == len(waits) + 1
