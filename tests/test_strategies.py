"""Chain strategies on a scripted model: exact trees, votes and choices."""
from __future__ import annotations

import pytest

from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.strategies import check_strategy, get_strategy
from reasoning.tree import Tree, split_steps
from reasoning.types import Problem
from reasoning.verifiers import aggregate, load_verifier

CHAINS = [
    "A1 step\n\nA2 step\n\nThe answer is 5.",
    "B1 step\n\nThe answer is 7.",
    "C1 step\n\nThe answer is 5.0",
    "I am not sure.",
]
PROBLEM = Problem(key="p0", question="What is 2 + 3?", answer="5", dataset="test")


def judge(prompt: str) -> float:
    """Self-eval scores: chain B looks great to the judge, A and C middling."""
    return 0.9 if "B1 step" in prompt else 0.5


def run(strategy: str, cfg: SearchConfig, verifier: str | None = None):
    lm = ScriptedLM(CHAINS, judge=judge)
    events = []
    tree = Tree(PROBLEM.question, emit=events.append)
    outcome = get_strategy(strategy)(PROBLEM, lm, load_verifier(verifier, lm), cfg, tree)
    return tree, outcome, lm, events


def statuses(tree):
    return [n.status for n in tree.nodes]


def test_cot_is_one_greedy_chain_fully_selected():
    tree, outcome, lm, _ = run("cot", SearchConfig(n=8))
    assert lm.calls[0]["temperature"] == 0.0 and lm.calls[0]["n"] == 1
    assert [n.text for n in tree.nodes] == [PROBLEM.question, "A1 step", "A2 step", "The answer is 5."]
    assert [n.parent for n in tree.nodes] == [None, 0, 1, 2]
    assert statuses(tree) == ["selected"] * 4
    assert outcome.answer == "5" and outcome.node == 3
    assert tree.nodes[3].correct is True and tree.nodes[3].finish_reason == "eos"


def test_self_consistency_stores_every_chain_and_votes_over_equivalent_answers():
    tree, outcome, lm, _ = run("self_consistency", SearchConfig(n=4, temperature=0.7))
    assert len(lm.calls) == 1 and lm.calls[0]["n"] == 4
    # root + chains of 3, 2, 2 and 1 steps
    assert len(tree.nodes) == 1 + 3 + 2 + 2 + 1
    leaves = [n for n in tree.nodes if n.answer is not None or n.meta.get("answer_method") == "none"]
    assert [n.answer for n in leaves] == ["5", "7", "5.0", None]
    assert [n.correct for n in leaves] == [True, False, True, False]
    # "5" and "5.0" are one answer: 2 votes against 1
    assert outcome.answer == "5" and outcome.votes == {"5": 2.0, "7": 1.0}
    selected = [n.seq for n in tree.nodes if n.status == "selected"]
    assert selected == [0, 1, 2, 3]  # root and the first chain carrying the winner
    assert [n.status for n in tree.nodes if n.seq in (5, 7, 8)] == ["terminal"] * 3


def test_best_of_n_naive_picks_the_top_scored_chain():
    tree, outcome, *_ = run("best_of_n", SearchConfig(n=4, select="naive"), verifier="self_eval")
    assert outcome.answer == "7"
    assert tree.nodes[outcome.node].text == "The answer is 7."
    assert tree.nodes[outcome.node].path_score == pytest.approx(0.9)


def test_best_of_n_weighted_sums_scores_per_answer():
    tree, outcome, *_ = run("best_of_n", SearchConfig(n=4, select="weighted"), verifier="self_eval")
    # answer 5: 0.5 + 0.5 = 1.0 beats answer 7: 0.9
    assert outcome.answer == "5" and outcome.votes == pytest.approx({"5": 1.0, "7": 0.9})


def test_best_of_n_majority_ignores_scores():
    _, outcome, *_ = run("best_of_n", SearchConfig(n=2, select="majority"), verifier="self_eval")
    assert outcome.answer == "5"  # 1 vote each: the tie goes to the first-seen answer


def test_every_step_gets_a_score_and_path_scores_aggregate_them():
    tree, *_ = run("best_of_n", SearchConfig(n=4, aggregate="min"), verifier="self_eval")
    steps = [n for n in tree.nodes if n.parent is not None]
    assert all(n.score is not None and n.path_score is not None for n in steps)
    assert tree.nodes[5].path_score == pytest.approx(0.9)  # chain B: min(0.9, 0.9)


def test_oracle_scores_by_gold_answer():
    tree, outcome, *_ = run("best_of_n", SearchConfig(n=4, select="naive"), verifier="oracle")
    assert outcome.answer == "5"
    leaf_scores = {n.answer: n.path_score for n in tree.nodes if n.status in ("terminal", "selected") and n.answer}
    assert leaf_scores == {"5": 1.0, "7": 0.0, "5.0": 1.0}


def test_nodes_are_emitted_as_they_are_created_and_again_when_they_change():
    tree, _, _, events = run("self_consistency", SearchConfig(n=4))
    first_seen = list(dict.fromkeys(e.seq for e in events))
    assert first_seen == list(range(len(tree.nodes)))
    assert len(events) > len(tree.nodes)  # terminal and selected updates are streamed too


def test_best_of_n_without_a_verifier_is_refused():
    with pytest.raises(UserError, match="needs a verifier"):
        check_strategy("best_of_n", None)


def test_unknown_strategy_is_refused_with_the_choices():
    with pytest.raises(UserError, match="choose one of cot, self_consistency, best_of_n"):
        check_strategy("tree_of_thoughts", None)


def test_split_steps_attributes_tokens_to_the_step_they_end_in():
    text = "a b\n\nc\n\n\n\nd e f"
    steps = split_steps(text, "\n\n")
    assert [s.text for s in steps] == ["a b", "c", "d e f"]
    # token ends: "a"|" b\n\n"|"c\n\n\n\n"|"d"|" e"|" f"
    ends = [1, 5, 10, 11, 13, 15]
    steps = split_steps(text, "\n\n", ends, [-1.0] * 6)
    assert [s.tokens for s in steps] == [2, 1, 3]
    assert [s.logprob for s in steps] == [-2.0, -1.0, -3.0]


def test_split_steps_keeps_an_empty_completion_as_one_empty_step():
    assert [s.text for s in split_steps("", "\n\n")] == [""]


@pytest.mark.parametrize("how,expected", [("last", 0.2), ("min", 0.2), ("prod", 0.9 * 0.5 * 0.2),
                                          ("mean", (0.9 + 0.5 + 0.2) / 3)])
def test_aggregate_rules(how, expected):
    assert aggregate([0.9, 0.5, 0.2], how) == pytest.approx(expected)


def test_a_nan_step_score_counts_as_zero():
    assert aggregate([0.9, float("nan")], "last") == 0.0
