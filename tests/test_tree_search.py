"""Step-level tree search and sequential scaling on a scripted model: exact, hand-worked trees.

The scripted model names each step by its place in the tree: the root's samples are "a", "b", "c",
"d"; the children of "ab" are "aba", "abb", ... A step's text is its label, or the label followed
by an answer where a test says so ("ca: The answer is 7."). The verifier scores a step by its label.
"""
from __future__ import annotations

import copy
import math

import pytest

from thinktrace import runner
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.strategies import check_config, get_strategy
from reasoning.strategies.revise import revision_question
from reasoning.tree import Tree
from reasoning.types import Problem
from reasoning.verifiers import load_verifier
from store.runs import run_results, tree_nodes
from tree_checks import assert_valid_tree

PROBLEM = Problem(key="p0", question="What is 2 + 3?", answer="5", dataset="test")


def label(step: str) -> str:
    return step.split(":")[0]


def path_of(prompt: str) -> list[str]:
    """The steps already written in a step-search prompt ("...Answer:\\n" + step + delimiter ...)."""
    return [s for s in prompt.rsplit("Answer:\n", 1)[1].split("\n\n") if s]


def tree_script(texts: dict[str, str]):
    def script(prompt: str, sample: int, call: int) -> str:
        steps = path_of(prompt)
        name = (label(steps[-1]) if steps else "") + "abcd"[sample]
        return texts.get(name, name) + "\n\n"
    return script


class LabelVerifier:
    """Scores each step by its label from a table (unknown labels 0.0); records its calls."""

    name, evaluation_only, n_params = "labels", False, 0

    def __init__(self, scores: dict[str, float]):
        self.scores, self.calls = scores, []

    def score(self, question, paths, gold=None):
        self.calls.append([[label(s) for s in path] for path in paths])
        return [[self.scores.get(label(s), 0.0) for s in path] for path in paths]


def search(strategy, cfg, texts=None, scores=None, script=None):
    lm = ScriptedLM(script or tree_script(texts or {}))
    verifier = LabelVerifier(scores or {})
    snapshots = []
    tree = Tree(PROBLEM.question, emit=lambda node: snapshots.append(copy.deepcopy(node)))
    outcome = get_strategy(strategy)(PROBLEM, lm, verifier, cfg, tree)
    return tree, outcome, lm, verifier, snapshots


def table(tree):
    """label -> (status, iteration) for every step node."""
    return {label(n.text): (n.status, n.iteration) for n in tree.nodes[1:]}


def prompt_of(lm, *steps):
    return lm.prompt(PROBLEM.question) + "".join(s + "\n\n" for s in steps)


# --- beam search ---------------------------------------------------------------------------------

BEAM_TEXTS = {"ca": "ca: The answer is 7.", "aba": "aba: The answer is 5.", "abb": "abb: The answer is 5.",
              "cba": "cba: The answer is 7.", "cbb": "cbb: The answer is 5."}
BEAM_SCORES = {"a": 0.9, "b": 0.2, "c": 0.8, "d": 0.5,
               "aa": 0.3, "ab": 0.6, "ca": 0.95, "cb": 0.7,
               "aba": 0.6, "abb": 0.5, "cba": 0.1, "cbb": 0.99}


def test_beam_search_keeps_the_top_n_over_m_and_prunes_the_rest_each_iteration():
    cfg = SearchConfig(n=4, beam_width=2, max_steps=3, select="weighted", aggregate="last")
    tree, outcome, lm, verifier, _ = search("beam_search", cfg, BEAM_TEXTS, BEAM_SCORES)
    assert table(tree) == {
        # iteration 0: N = 4 first steps from the root; the top N/M = 2 (a, c) survive
        "a": ("selected", 0), "b": ("pruned", 0), "c": ("kept", 0), "d": ("pruned", 0),
        # iteration 1: each survivor gets M = 2 children; ca finished (set aside), top 2 of the rest kept
        "aa": ("pruned", 1), "ab": ("selected", 1), "ca": ("terminal", 1), "cb": ("kept", 1),
        # iteration 2: depth max_steps ends every path
        "aba": ("selected", 2), "abb": ("terminal", 2), "cba": ("terminal", 2), "cbb": ("terminal", 2),
    }
    assert [(c["prompts"], c["n"]) for c in lm.calls] == [
        ([prompt_of(lm)], 4), ([prompt_of(lm, "a"), prompt_of(lm, "c")], 2),
        ([prompt_of(lm, "a", "ab"), prompt_of(lm, "c", "cb")], 2)]
    assert all(c["stop"] == ["\n\n"] and c["max_new_tokens"] == cfg.max_step_tokens for c in lm.calls)
    assert len(verifier.calls) == 3 and verifier.calls[1] == [["a", "aa"], ["a", "ab"], ["c", "ca"], ["c", "cb"]]
    # the vote is over the first N finished beams (ca, aba, abb, cba), as search-and-learn does:
    # 5 has 0.6 + 0.5 against 7's 0.95 + 0.1; cbb (0.99) finished fifth and does not vote
    assert outcome.answer == "5" and outcome.votes == pytest.approx({"7": 1.05, "5": 1.1})
    assert tree.nodes[outcome.node].text == "aba: The answer is 5."
    assert outcome.meta == {"iterations": 3, "finished": 5}


def test_beam_search_spreads_n_children_over_fewer_surviving_beams():
    # b finishes at once; only a survives iteration 0 and gets all N = 4 children (search-and-learn refills)
    cfg = SearchConfig(n=4, beam_width=2, max_steps=2)
    texts = {"b": "b: The answer is 5.", "c": "c: The answer is 5.", "d": "d: The answer is 5."}
    tree, _, lm, _, _ = search("beam_search", cfg, texts, {"a": 0.1})
    assert lm.calls[1]["prompts"] == [prompt_of(lm, "a")] and lm.calls[1]["n"] == 4
    assert [label(n.text) for n in tree.nodes if n.depth == 2] == ["aa", "ab", "ac", "ad"]


@pytest.mark.parametrize("lookahead,survivor", [(0, "a"), (1, "b")])
def test_lookahead_ranks_candidates_by_their_greedy_rollout(lookahead, survivor):
    # a looks better now (0.9 > 0.2) but its greedy next step is bad (aa 0.1 < ba 0.8)
    cfg = SearchConfig(n=2, beam_width=2, max_steps=2, lookahead=lookahead, select="naive")
    scores = {"a": 0.9, "b": 0.2, "aa": 0.1, "ba": 0.8, "ab": 0.3, "bb": 0.3}
    metered = runner.MeteredLM(ScriptedLM(tree_script({})), problem_seed=0)
    tree = Tree(PROBLEM.question)
    get_strategy("beam_search")(PROBLEM, metered, LabelVerifier(scores), cfg, tree)
    first = {label(n.text): n for n in tree.nodes if n.depth == 1}
    assert first[survivor].status == "selected"
    assert {n.status for n in first.values() if n is not first[survivor]} == {"pruned"}
    if lookahead:
        rollout = metered.lm.calls[1]
        assert rollout["temperature"] == 0.0 and rollout["n"] == 1
        assert rollout["prompts"] == [prompt_of(metered.lm, "a"), prompt_of(metered.lm, "b")]
        assert first["a"].meta["lookahead_score"] == 0.1 and first["b"].meta["lookahead_score"] == 0.8
        assert first["a"].path_score == 0.9  # the step's own path score is kept as it is
        assert first["a"].meta["lookahead_tokens"] == 1
        # rolled-out steps are not nodes: root, 2 first steps, 2 children of the survivor
        assert len(tree.nodes) == 5
    # every generated token is either on a node or counted as a lookahead token
    rolled = sum(n.meta.get("lookahead_tokens", 0) for n in tree.nodes)
    assert sum(n.tokens for n in tree.nodes) + rolled == metered.tokens


def test_a_nan_score_counts_as_zero_and_is_recorded_not_raised():
    cfg = SearchConfig(n=2, beam_width=2, max_steps=2)
    tree, outcome, *_ = search("beam_search", cfg, {}, {"a": math.nan, "b": 0.2})
    a, b = tree.nodes[1], tree.nodes[2]
    assert a.score is None and a.path_score == 0.0 and a.meta["nan_score"] is True
    assert a.status == "pruned" and b.status == "selected" and "nan_score" not in b.meta
    assert outcome.node is not None


# --- DVTS ----------------------------------------------------------------------------------------

def test_dvts_subtrees_select_only_among_their_own_children():
    # subtree 0 holds a, b; subtree 1 holds c, d. A global top-2 would keep a and b; DVTS keeps each
    # subtree's best, so subtree 1 grows even though all of its steps score below subtree 0's.
    cfg = SearchConfig(n=4, beam_width=2, max_steps=3, select="weighted")
    texts = {"a": "a: The answer is 3.", "dba": "dba: The answer is 4.", "dbb": "dbb: The answer is 3."}
    scores = {"a": 0.9, "b": 0.8, "c": 0.1, "d": 0.2, "da": 0.3, "db": 0.6, "dba": 0.5, "dbb": 0.7}
    tree, outcome, lm, _, _ = search("dvts", cfg, texts, scores)
    assert table(tree) == {
        "a": ("selected", 0), "b": ("pruned", 0),  # subtree 0: its best step has an answer: it stops
        "c": ("pruned", 0), "d": ("kept", 0),  # subtree 1 keeps its own best
        "da": ("pruned", 1), "db": ("kept", 1),
        "dba": ("terminal", 2), "dbb": ("terminal", 2),  # max_steps: both of the last children finish
    }
    assert {label(n.text): n.meta["subtree"] for n in tree.nodes[1:]} == {
        "a": 0, "b": 0, "c": 1, "d": 1, "da": 1, "db": 1, "dba": 1, "dbb": 1}
    # only growing subtrees are expanded: after iteration 0, subtree 0 costs nothing
    assert [(c["prompts"], c["n"]) for c in lm.calls] == [
        ([prompt_of(lm)], 4), ([prompt_of(lm, "d")], 2), ([prompt_of(lm, "d", "db")], 2)]
    # the union of the subtrees' leaves votes: 3 has 0.9 + 0.7, 4 has 0.5
    assert outcome.answer == "3" and outcome.votes == pytest.approx({"3": 1.6, "4": 0.5})
    assert tree.nodes[outcome.node].text == "a: The answer is 3."


def test_dvts_with_one_subtree_is_a_greedy_beam():
    cfg = SearchConfig(n=2, beam_width=2, max_steps=2)
    tree, *_ = search("dvts", cfg, {}, {"a": 0.1, "b": 0.2, "ba": 0.4, "bb": 0.3})
    assert table(tree) == {"a": ("pruned", 0), "b": ("selected", 0), "ba": ("selected", 1), "bb": ("terminal", 1)}


# --- MCTS ----------------------------------------------------------------------------------------

def stats(tree):
    return {label(n.text) if n.parent is not None else "root": (n.meta["visits"], pytest.approx(n.meta["value"]))
            for n in tree.nodes if "visits" in n.meta}


def test_mcts_visit_counts_and_mean_backup_on_a_hand_checked_tree():
    cfg = SearchConfig(width=2, expansions=3, c_puct=1.0)
    scores = {"a": 0.6, "b": 0.4, "aa": 0.2, "ab": 0.3, "ba": 0.9, "bb": 0.7}
    tree, outcome, lm, _, snapshots = search("mcts", cfg, {"ba": "ba: The answer is 5."}, scores)
    # 1: root -> a (0.6), b (0.4).
    # 2: UCT(a) = 0.6 + sqrt(ln 2 / 1) = 1.43 > UCT(b) = 1.23: expand a -> aa (0.2), ab (0.3);
    #    a: 3 visits, (0.6 + 0.2 + 0.3) / 3; root: 4 visits, 1.5 / 4.
    # 3: UCT(a) = 0.367 + sqrt(ln 4 / 3) = 1.05 < UCT(b) = 0.4 + sqrt(ln 4 / 1) = 1.58: expand b.
    assert [c["prompts"] for c in lm.calls] == [[prompt_of(lm)], [prompt_of(lm, "a")], [prompt_of(lm, "b")]]
    assert all(c["n"] == 2 for c in lm.calls)
    assert stats(tree) == {"root": (6, 3.1 / 6), "a": (3, 1.1 / 3), "b": (3, 2.0 / 3),
                           "aa": (1, 0.2), "ab": (1, 0.3), "ba": (1, 0.9), "bb": (1, 0.7)}
    assert [n.iteration for n in tree.nodes[1:]] == [0, 0, 1, 1, 2, 2]
    # most visited: a and b tie on 3 visits, b has the higher value; then ba (1 visit, 0.9)
    assert outcome.answer == "5" and outcome.meta == {"expansions": 3, "chosen_by": "most_visited"}
    assert [label(n.text) for n in tree.nodes if n.status == "selected"][1:] == ["b", "ba"]
    # the store saw the final statistics: the last event of each node is its final state
    last = {s.seq: s for s in snapshots}
    assert all(last[n.seq].meta == n.meta for n in tree.nodes)


@pytest.mark.parametrize("c_puct,third", [(0.0, "aa"), (1.0, "b")])
def test_mcts_exploration_constant_trades_value_for_unvisited_branches(c_puct, third):
    # after two expansions a has value (0.6 + 0.5 + 0.5) / 3 = 0.533 over 3 visits, b 0.4 over 1:
    # greedy (c = 0) goes back into a (its children tie: the earlier, aa); c = 1 tries b,
    # since 0.4 + sqrt(ln 4 / 1) = 1.58 > 0.533 + sqrt(ln 4 / 3) = 1.21
    cfg = SearchConfig(width=2, expansions=3, c_puct=c_puct)
    tree, _, lm, _, _ = search("mcts", cfg, {}, {"a": 0.6, "b": 0.4, "aa": 0.5, "ab": 0.5})
    expanded = path_of(lm.calls[2]["prompts"][0])
    assert expanded[-1] == third


def test_mcts_never_expands_a_finished_path_and_falls_back_to_the_best_valued_one():
    cfg = SearchConfig(width=2, expansions=3, c_puct=1.0)
    scores = {"a": 0.99, "b": 0.1, "ba": 0.5, "bb": 0.6}
    tree, outcome, lm, _, _ = search("mcts", cfg, {"a": "a: The answer is 1."}, scores)
    # a is terminal: b is expanded although UCT(a) is higher; then b's better child bb
    assert [c["prompts"][0] for c in lm.calls[1:]] == [prompt_of(lm, "b"), prompt_of(lm, "b", "bb")]
    # most visited path: b (5 visits) -> bb (3) -> bba (tie with bbb: earlier), not finished:
    # the best-valued finished node answers instead
    assert outcome.answer == "1" and outcome.meta["chosen_by"] == "best_value"
    assert tree.nodes[outcome.node].text == "a: The answer is 1."


def test_mcts_stops_early_when_every_path_has_ended():
    texts = {"a": "a: The answer is 1.", "b": "b: The answer is 2."}
    _, outcome, lm, _, _ = search("mcts", SearchConfig(width=2, expansions=5), texts, {"a": 0.3, "b": 0.7})
    assert len(lm.calls) == 1 and outcome.meta == {"expansions": 1, "chosen_by": "most_visited"}
    assert outcome.answer == "2"  # equal visits: the higher value


def test_mcts_without_any_finished_path_completes_the_most_visited_one_greedily():
    cfg = SearchConfig(width=1, expansions=2, max_new_tokens=40)
    tree, outcome, lm, _, _ = search("mcts", cfg, {"aaa": "aaa: so the answer is 9."}, {"a": 0.5, "aa": 0.5})
    last = lm.calls[-1]
    assert len(lm.calls) == 3 and last["prompts"] == [prompt_of(lm, "a", "aa")]
    assert last["temperature"] == 0.0 and last["stop"] is None and last["max_new_tokens"] == 40
    leaf = tree.nodes[outcome.node]
    assert leaf.text == "aaa: so the answer is 9." and leaf.meta["completion"] is True
    assert outcome.answer == "9" and outcome.meta["chosen_by"] == "greedy_completion"
    assert [n.status for n in tree.nodes] == ["selected"] * 4


# --- revise ----------------------------------------------------------------------------------------

def revise_script(prompt: str, sample: int, call: int) -> str:
    """First attempts answer 4 or 6 (by sample); a revision answers 5."""
    seen = prompt.count("Previous attempt")
    if seen == 0:
        return f"I guess.\n\nThe answer is {4 + 2 * sample}."
    return f"Checked {seen} attempts.\n\nThe answer is 5."


def test_revise_shows_each_chain_its_own_earlier_attempts():
    lm = ScriptedLM(revise_script)
    tree = Tree(PROBLEM.question)
    outcome = get_strategy("revise")(PROBLEM, lm, None, SearchConfig(n=6, parallel=2), tree)
    assert [c["n"] for c in lm.calls] == [2, 1, 1]  # round 0: one prompt sampled twice
    assert lm.calls[0]["prompts"] == [lm.prompt(PROBLEM.question)]
    assert lm.calls[1]["prompts"][0] == lm.prompt(
        "What is 2 + 3?\n\n"
        "Previous attempt 1:\nI guess.\n\nThe answer is 4.\n\n"
        "Check the previous attempts for mistakes and solve the problem again, correctly.")
    third_round = lm.calls[2]["prompts"]
    assert third_round[1] == lm.prompt(revision_question(
        PROBLEM.question, [["I guess.", "The answer is 6."], ["Checked 1 attempts.", "The answer is 5."]], "\n\n"))
    assert "The answer is 6." not in third_round[0]  # chain 0 never sees chain 1
    leaves = [n for n in tree.nodes if n.answer is not None]
    assert [(n.meta["chain"], n.meta["attempt"], n.answer) for n in leaves] == [
        (0, 0, "4"), (1, 0, "6"), (0, 1, "5"), (1, 1, "5"), (0, 2, "5"), (1, 2, "5")]
    assert all(n.parent == 0 for n in tree.nodes if n.depth == 1)  # each attempt hangs under the root
    assert outcome.answer == "5" and outcome.votes == {"4": 1.0, "6": 1.0, "5": 4.0}  # majority: no verifier


def test_revise_with_a_verifier_picks_by_score():
    lm = ScriptedLM(revise_script, judge=lambda prompt: 0.9 if "answer is 6" in prompt else 0.1)
    tree = Tree(PROBLEM.question)
    cfg = SearchConfig(n=4, parallel=2, select="naive")
    outcome = get_strategy("revise")(PROBLEM, lm, load_verifier("self_eval", lm), cfg, tree)
    assert outcome.answer == "6"


# --- budget forcing ----------------------------------------------------------------------------------

def forcing_script(texts):
    return lambda prompt, sample, call: texts[min(call, len(texts) - 1)]


def test_budget_forcing_appends_wait_until_the_model_has_thought_long_enough():
    texts = ["3 + 4 = 7.\n\nThe answer is 7.", ", no: 3 + 5 = 8.\n\nThe answer is 8."]  # 9 and 11 tokens
    lm = ScriptedLM(forcing_script(texts))
    tree = Tree(PROBLEM.question)
    outcome = get_strategy("budget_forcing")(PROBLEM, lm, None, SearchConfig(think_tokens=20, max_new_tokens=64), tree)
    assert lm.calls[1]["prompts"] == [lm.prompt(PROBLEM.question) + texts[0] + "\n\nWait"]
    assert [c["max_new_tokens"] for c in lm.calls] == [64, 55] and lm.calls[0]["temperature"] == 0.0
    assert [n.text for n in tree.nodes[1:]] == [
        "3 + 4 = 7.", "The answer is 7.", "Wait", ", no: 3 + 5 = 8.", "The answer is 8."]
    wait = tree.nodes[3]
    assert wait.meta == {"forced": True, "at_tokens": 9} and wait.tokens == 0
    assert sum(n.tokens for n in tree.nodes) == 20  # 9 + 11: "Wait" was written by us, not generated
    assert outcome.answer == "8" and outcome.meta == {"extensions": 1, "tokens": 20}  # the last answer wins
    assert [n.status for n in tree.nodes] == ["selected"] * 6


def test_budget_forcing_gives_up_after_four_extensions():
    lm = ScriptedLM(forcing_script(["3 + 4 = 7.\n\nThe answer is 7.", "Done."]))
    tree = Tree(PROBLEM.question)
    outcome = get_strategy("budget_forcing")(PROBLEM, lm, None, SearchConfig(think_tokens=100), tree)
    assert len(lm.calls) == 5
    assert [n.meta["at_tokens"] for n in tree.nodes if n.meta.get("forced")] == [9, 10, 11, 12]
    assert outcome.answer == "7" and outcome.meta["extensions"] == 4


def test_budget_forcing_does_not_extend_a_text_cut_by_the_token_limit():
    lm = ScriptedLM(forcing_script(["3 + 4 = 7.\n\nThe answer is 7."]))
    tree = Tree(PROBLEM.question)
    outcome = get_strategy("budget_forcing")(PROBLEM, lm, None, SearchConfig(think_tokens=100, max_new_tokens=5), tree)
    assert len(lm.calls) == 1 and outcome.meta["extensions"] == 0
    assert tree.nodes[-1].finish_reason == "length"


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy,cfg,message", [
    ("beam_search", SearchConfig(n=4, beam_width=3), "multiple of --beam-width"),
    ("dvts", SearchConfig(n=6, beam_width=4), "multiple of --beam-width"),
    ("beam_search", SearchConfig(n=2, beam_width=4), "cannot exceed --n"),
    ("mcts", SearchConfig(expansions=0), "--expansions must be at least 1"),
    ("mcts", SearchConfig(width=0), "--width must be at least 1"),
    ("revise", SearchConfig(n=4, parallel=3), "multiple of --parallel"),
    ("beam_search", SearchConfig(lookahead=-1), "--lookahead must be >= 0"),
])
def test_bad_settings_are_refused_before_a_run_and_by_the_strategy(strategy, cfg, message):
    with pytest.raises(UserError, match=message):
        check_config(strategy, cfg)
    with pytest.raises(UserError, match=message):
        runner.RunRequest(strategy=strategy, dataset="unit", verifier="self_eval", config=cfg).validate()
    with pytest.raises(UserError, match=message):  # called directly, the strategy checks too
        search(strategy, cfg)


def test_tree_strategies_need_a_verifier_and_sequential_ones_do_not():
    for name in ("beam_search", "dvts", "mcts"):
        with pytest.raises(UserError, match="needs a verifier"):
            runner.RunRequest(strategy=name, dataset="unit", model="smollm2").validate()
        # the default model, the lab reasoner, brings its own PRM
        assert runner.RunRequest(strategy=name, dataset="unit").validate().verifier == "prm:lab"
    for name in ("revise", "budget_forcing"):
        assert runner.RunRequest(strategy=name, dataset="unit").validate().verifier is None


# --- through the runner and the store ----------------------------------------------------------------

def judge_by_label(prompt: str) -> float:
    step = prompt.split("Next step: ")[1].split("\n")[0]
    return {"a": 0.7, "b": 0.4, "ab": 0.8, "ba": 0.9}.get(label(step), 0.3)


@pytest.mark.parametrize("strategy", ["beam_search", "dvts", "mcts", "revise", "budget_forcing"])
def test_stored_trees_are_whole_and_budgets_add_up(strategy, store):
    texts = {name: f"{name}: The answer is {len(name)}." for name in ("aa", "ab", "ba", "bb", "abc")}
    script = tree_script(texts) if strategy in ("beam_search", "dvts", "mcts") else revise_script
    if strategy == "budget_forcing":
        script = forcing_script(["2 + 3 = 5.\n\nThe answer is 5.", "Yes, 5."])
    lm = ScriptedLM(script, judge=judge_by_label)
    cfg = SearchConfig(n=4, beam_width=2, max_steps=3, lookahead=1, expansions=3, width=2, parallel=2,
                       think_tokens=12)
    request = runner.RunRequest(strategy=strategy, dataset="unit", model="scripted", verifier="self_eval",
                                config=cfg).validate()
    verifier = load_verifier("self_eval", lm)
    run_id = runner.create_run(store, request, [PROBLEM], lm, verifier)
    run = runner.execute(store, run_id, lm, verifier)
    [result] = run_results(store, run_id)
    assert_valid_tree(tree_nodes(store, run_id, result.problem_id), result)
    assert run.tokens == result.tokens and run.model_calls == result.model_calls == len(lm.calls)
    assert run.verifier_calls == result.verifier_calls >= 1
