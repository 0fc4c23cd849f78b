"""Confidence verifiers and adaptive strategies on hand-made token distributions (ScriptedLM)."""
from __future__ import annotations

import math

import pytest

from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from thinktrace.runner import MeteredLM
from reasoning.strategies import check_strategy, get_strategy
from reasoning.strategies.adaptive_consistency import beta_leader_probability, leader_posterior
from reasoning.strategies.deepconf_online import warmup_threshold
from reasoning.tree import Tree
from reasoning.types import PRUNED, Problem
from reasoning.verifiers import check_verifier_spec, load_verifier
from reasoning.verifiers.confidence import group_confidences, token_confidence, token_entropy

PROBLEM = Problem(key="p0", question="What is 2 + 3?", answer="5", dataset="test")
LN = math.log
# Top-2 distributions (k = 2): a sure token at 0.9 (0.1 for the runner-up), an unsure one at 0.5 / 0.5.
SURE, UNSURE = [LN(0.9), LN(0.1)], [LN(0.5), LN(0.5)]
C_SURE = -(LN(0.9) + LN(0.1)) / 2  # 1.2039728...
C_UNSURE = LN(2)  # 0.6931471...


def dist(word: str) -> list[float]:
    return UNSURE if word.startswith("hmm") else SURE


def scripted(texts, **kw) -> ScriptedLM:
    return ScriptedLM(texts, token_dist=dist, top_logprobs=2, **kw)


def solve(strategy: str, lm, cfg: SearchConfig, verifier: str | None = None):
    tree = Tree(PROBLEM.question)
    outcome = get_strategy(strategy)(PROBLEM, lm, load_verifier(verifier, lm), cfg, tree)
    return tree, outcome


# --- per-token quantities ------------------------------------------------------------------------

def test_token_confidence_is_minus_the_mean_top_k_logprob():
    assert token_confidence([-1.0, -2.0, -3.0]) == pytest.approx(2.0)


def test_token_entropy_renormalises_the_top_k():
    # 0.5 / 0.25 / 0.25: H = 0.5 ln 2 + 2 * 0.25 ln 4 = 1.5 ln 2
    assert token_entropy([LN(0.5), LN(0.25), LN(0.25)]) == pytest.approx(1.5 * LN(2))
    # 0.4 / 0.1 renormalise to 0.8 / 0.2
    assert token_entropy([LN(0.4), LN(0.1)]) == pytest.approx(-(0.8 * LN(0.8) + 0.2 * LN(0.2)))


def test_groups_are_sliding_windows_and_shrink_to_a_short_path():
    assert group_confidences([4, 4, 1, 1, 4], 2) == [4, 2.5, 1, 2.5]
    assert group_confidences([4, 1], 8) == [2.5]
    assert group_confidences([], 8) == []


# --- the verifiers on a scripted chain ----------------------------------------------------------

CHAIN = "sure sure\n\nhmm hmm\n\nThe answer is 5."  # steps of 2, 2 and 4 tokens


def step_scores(verifier: str) -> list[float]:
    tree, _ = solve("best_of_n", scripted([CHAIN]), SearchConfig(n=1), verifier)
    return [node.score for node in tree.nodes[1:]]


def test_nodes_carry_the_token_signals_of_their_own_step():
    tree, _ = solve("self_consistency", scripted([CHAIN]), SearchConfig(n=1))
    first, second, last = tree.nodes[1:]
    assert first.meta["tok_k"] == 2 and first.meta["tok_conf"] == [round(C_SURE, 4)] * 2
    assert second.meta["tok_conf"] == [round(C_UNSURE, 4)] * 2
    assert first.meta["tok_lp"] == pytest.approx(LN(0.9)) and second.meta["tok_lp"] == pytest.approx(LN(0.5))
    assert second.meta["tok_entropy"] == pytest.approx(LN(2))
    assert len(last.meta["tok_conf"]) == 4 and last.tokens == 4


def test_node_signals_map_stored_meta_to_unit_colours_for_the_tree_page():
    from reasoning.verifiers.confidence import node_signals

    tree, _ = solve("self_consistency", scripted([CHAIN]), SearchConfig(n=1))
    unsure = node_signals(tree.nodes[2].meta)
    assert unsure == pytest.approx({"logprob": 0.5, "entropy": 0.0, "confidence": 0.0}, abs=1e-4)
    assert node_signals(tree.nodes[1].meta)["confidence"] == pytest.approx(1 - LN(2) / C_SURE, abs=1e-4)
    assert node_signals(tree.nodes[0].meta) == {}  # the root holds the question, no tokens


def test_logprob_score_is_the_geometric_mean_token_probability():
    assert step_scores("logprob") == pytest.approx([0.9, 0.5, 0.9])


def test_entropy_score_is_one_minus_entropy_over_log_k():
    h_sure = -(0.9 * LN(0.9) + 0.1 * LN(0.1))  # 0.325083
    assert step_scores("entropy") == pytest.approx([1 - h_sure / LN(2), 0.0, 1 - h_sure / LN(2)])


def test_deepconf_step_score_is_the_lowest_group_confidence_of_the_path_so_far():
    # W = 2. Step 1: one group of two sure tokens -> 1 - ln 2 / C_SURE = 0.424283. Step 2 adds the
    # group of two unsure tokens, C = ln 2 -> 0. Step 3 keeps that lowest group. (Stored token
    # confidences are rounded to 4 decimals, hence the tolerance.)
    scores = step_scores("deepconf:2")
    assert scores == pytest.approx([1 - LN(2) / C_SURE, 0.0, 0.0], abs=1e-4)
    # W = 8 covers the whole 8-token path: one group, mean of 6 sure and 2 unsure confidences.
    whole = (6 * C_SURE + 2 * C_UNSURE) / 8
    assert step_scores("deepconf:8")[-1] == pytest.approx(1 - LN(2) / whole, abs=1e-4)


def test_weighted_best_of_n_prefers_the_confident_chain():
    lm = scripted(["hmm hmm\n\nThe answer is 7.", "sure sure\n\nThe answer is 5."])
    _, outcome = solve("best_of_n", lm, SearchConfig(n=2, select="naive", aggregate="min"), "logprob")
    assert outcome.answer == "5"


def test_a_backend_without_token_logprobs_is_refused_by_name():
    lm = ScriptedLM([CHAIN], top_logprobs=0)
    for spec in ("logprob", "entropy", "deepconf"):
        with pytest.raises(UserError, match="logprob, entropy and deepconf verifiers .* backend scripted"):
            load_verifier(spec, lm)
    with pytest.raises(UserError, match="backend scripted does not return"):
        solve("deepconf_online", lm, SearchConfig(n=2, warmup=1))


def test_confidence_verifier_specs_are_checked_before_a_run():
    check_strategy("beam_search", "deepconf")
    check_strategy("best_of_n", "deepconf:16")
    check_verifier_spec("deepconf:16")
    with pytest.raises(UserError, match="positive integer"):
        check_verifier_spec("deepconf:zero")


# --- adaptive-consistency stopping rule ----------------------------------------------------------

def test_beta_posterior_matches_hand_computed_binomial_sums():
    assert beta_leader_probability(2, 0) == 7 / 8  # 1 - 2^-3
    assert beta_leader_probability(4, 0) == 31 / 32
    assert beta_leader_probability(3, 1) == 26 / 32  # P(Bin(5, 1/2) <= 3) = (1 + 5 + 10 + 10) / 32
    assert beta_leader_probability(2, 2) == 0.5
    assert leader_posterior(["5", "5.0", None, "7"]) == beta_leader_probability(2, 1)


def test_adaptive_consistency_stops_early_when_the_answers_agree():
    lm = scripted(["sure\n\nThe answer is 5."])
    tree, outcome = solve("adaptive_consistency", lm, SearchConfig(n=16, batch=2))
    assert [c["n"] for c in lm.calls] == [2, 2]  # 0.875 after 2, 0.969 > 0.95 after 4
    assert outcome.meta == {"samples": 4, "stop_reason": "confident", "posterior": 31 / 32,
                            "posteriors": [7 / 8, 31 / 32], "batches": 2}
    assert outcome.answer == "5" and len([n for n in tree.nodes if n.answer]) == 4


def test_adaptive_consistency_runs_to_the_cap_on_a_split():
    lm = scripted(["sure\n\nThe answer is 5.", "sure\n\nThe answer is 7."])
    _, outcome = solve("adaptive_consistency", lm, SearchConfig(n=7, batch=2))
    assert [c["n"] for c in lm.calls] == [2, 2, 2, 1]  # the last batch is trimmed to the cap
    assert outcome.meta["samples"] == 7 and outcome.meta["stop_reason"] == "cap"
    assert outcome.meta["posterior"] == beta_leader_probability(4, 3)


def test_adaptive_consistency_stops_once_an_early_outlier_is_outvoted():
    def script(prompt, i, call):
        return "The answer is 7." if (call, i) == (0, 1) else "The answer is 5."
    _, outcome = solve("adaptive_consistency", scripted(script), SearchConfig(n=16, batch=2))
    # 1-1: 0.5, 3-1: 0.8125, 5-1: 0.9375, 7-1: 502/512 = 0.980 -> stop after 8 samples
    assert outcome.meta["posteriors"] == [0.5, 26 / 32, 120 / 128, 502 / 512]
    assert outcome.meta["samples"] == 8 and outcome.answer == "5"


# --- DeepConf online -----------------------------------------------------------------------------

WARM = ["a b c\n\nThe answer is 5."] * 4
ONLINE = ["hmm hmm hmm hmm\n\nThe answer is 7.",  # cut after its first chunk
          "d e f\n\nThe answer is 5.",  # confident all along: finishes and votes
          "x y hmm hmm\n\nThe answer is 7.",  # cut once a window holds an unsure token
          "hmm hmm hmm\n\nThe answer is 7."]


def continuing(prompt: str, i: int, call: int) -> str:
    """Warm-up texts on the first call; then online texts, continued from the text so far."""
    partial = prompt[len(ScriptedLM([]).prompt(PROBLEM.question)):]
    if call == 0:
        return WARM[i]
    if not partial:
        return ONLINE[i]
    full = next(t for t in ONLINE if t.startswith(partial))
    return full[len(partial):]


def test_warmup_threshold_is_the_lower_percentile_for_keep_percent():
    assert warmup_threshold([1.0, 2.0, 3.0, 4.0, 5.0], 90) == pytest.approx(1.4)  # 10th percentile
    assert warmup_threshold([1.0, 2.0, 3.0, 4.0, 5.0], 10) == pytest.approx(4.6)  # 90th percentile
    assert warmup_threshold([None], 90) == float("-inf")


def test_deepconf_online_cuts_low_confidence_traces_for_real_and_votes_with_the_rest():
    lm = scripted(continuing)
    metered = MeteredLM(lm, problem_seed=0)  # counts tokens per call, as the runner does
    cfg = SearchConfig(n=8, warmup=4, keep_percent=90, conf_window=2, chunk_tokens=2)
    tree, outcome = solve("deepconf_online", metered, cfg)
    assert lm.calls[0]["n"] == 4 and lm.calls[0]["max_new_tokens"] == cfg.max_new_tokens  # warm-up in full
    assert all(c["max_new_tokens"] == 2 for c in lm.calls[1:])  # online in chunks
    assert outcome.meta["threshold"] == pytest.approx(C_SURE)  # every warm-up trace is all sure
    leaves = {n.meta["sample"]: n for n in tree.nodes if n.answer is not None or n.meta.get("cut")}
    first, good, late, third = (leaves[s] for s in (4, 5, 6, 7))
    # the first window of two unsure tokens falls below: stopped after 2 generated tokens
    assert first.meta["cut"] and first.meta["at_tokens"] == 2 and first.meta["cut_at"] == 2
    # "x y hmm hmm": the window (y, hmm) ends at token 3, found after the chunk of tokens 3-4
    assert late.meta["cut"] and late.meta["cut_at"] == 3 and late.meta["at_tokens"] == 4
    assert third.meta["cut"] and third.meta["at_tokens"] == 2
    assert {first.status, late.status, third.status} == {PRUNED}
    assert good.meta["kept"] and not good.meta.get("cut") and good.answer == "5"
    assert outcome.meta["cut"] == 3 and outcome.meta["kept"] == 5
    # Tokens spent are the tokens generated: 4 warm-up traces of 7, then 2 + 7 + 4 + 2 online.
    assert metered.tokens == sum(n.tokens for n in tree.nodes[1:]) == 4 * 7 + 2 + 7 + 4 + 2
    # Only kept traces vote, weighted by their lowest group confidence.
    assert outcome.answer == "5" and outcome.votes == {"5": pytest.approx(5 * C_SURE)}


def test_deepconf_online_warmup_cannot_exceed_n():
    from reasoning.strategies import check_config

    with pytest.raises(UserError, match="--warmup"):
        check_config("deepconf_online", SearchConfig(n=2, warmup=4))


# --- adaptive runs on the budget curves ----------------------------------------------------------

CURVE_PROBLEMS = [Problem(key="easy", question="What is 2 + 2?", answer="4", dataset="unit"),
                  Problem(key="split", question="What is 3 + 3?", answer="6", dataset="unit")]


def curve_script(prompt: str, i: int, call: int) -> str:
    if "2 + 2" in prompt:
        return "The answer is 4."  # unanimous: stops after 4 samples
    return "The answer is 6." if i % 2 == 0 else "The answer is 7."  # a split: runs to the cap


def test_an_adaptive_run_is_one_point_at_its_mean_spend_with_its_spread(store, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from thinktrace import runner
    from thinktrace.curves import load_curves, load_spreads

    lm = ScriptedLM(curve_script, n_params=1000)
    ids = []
    for strategy in ("adaptive_consistency", "self_consistency"):
        request = runner.RunRequest(strategy=strategy, dataset="unit", model="scripted",
                                    config=SearchConfig(n=8, batch=2)).validate()
        ids.append(runner.create_run(store, request, CURVE_PROBLEMS, lm, None))
        runner.execute(store, ids[-1], lm, None)
    curves = load_curves(store, run_ids=ids)
    [point] = [p for p in curves.points if p.estimator == "adaptive"]
    # 4 samples of 4 tokens on the easy problem, 8 on the split one
    assert (point.k, point.tokens_per_problem, point.accuracy) == (6.0, 24.0, 1.0)
    assert point.flops == 2 * 1000 * 24.0 and point.verifier_flops == 0.0
    assert max(p.k for p in curves.points if p.estimator == "maj") == 8
    [spread] = load_spreads(store, ids[0])
    assert (spread.samples_mean, spread.samples_std, spread.tokens_std) == (6.0, 2.0, 8.0)
    assert spread.stop_reasons == {"confident": 1, "cap": 1}
    assert any("6.00 ± 2.00 samples (cap 8), 24 ± 8 tokens" in note for note in curves.notes)

    env = {**os.environ, "THINKTRACE_DB": store.sqlite_file}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "reasoning", "curves", ids[0][:8], "--json"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [(p["estimator"], p["k"]) for p in json.loads(proc.stdout)] == [("adaptive", 6.0)]


def test_deepconf_online_finds_a_backend_end_marker_split_across_chunks():
    texts = ["a b c\n\nThe answer is 5.", "x y\nQuestion: what now? more words here"]

    def script(prompt, i, call):
        partial = prompt[len(ScriptedLM([]).prompt(PROBLEM.question)):]
        if call == 0:
            return texts[0]
        full = texts[1]
        return full[len(partial):]

    lm = scripted(script)
    lm.internal_stops = ["\nQuestion:"]  # as the few-shot transformers backend declares
    cfg = SearchConfig(n=2, warmup=1, conf_window=2, chunk_tokens=2, keep_percent=100)
    tree, outcome = solve("deepconf_online", lm, cfg)
    leaf = next(n for n in tree.nodes if n.meta.get("phase") == "online" and "conf_lowest" in n.meta)
    assert leaf.text == "x y" and leaf.finish_reason == "eos"  # stopped at the marker, not at the cap
    assert len(lm.calls) == 3 and outcome.meta["stop_reasons"] == {"eos": 2}


def test_tree_search_with_a_confidence_verifier_scores_every_step_from_its_token_data(store):
    """beam_search stores the token signals on each step node, so logprob/entropy/deepconf can guide it,
    and those verifier calls are counted in the run's budget."""
    from thinktrace import runner
    from reasoning.backends.scripted import ScriptedLM
    from reasoning.config import SearchConfig
    from reasoning.types import Problem
    from reasoning.verifiers import load_verifier
    from store.runs import run_results, tree_nodes

    lm = ScriptedLM(lambda prompt, i, call: "1 + 1 = 2\n\n" if "= 2" not in prompt else "The answer is 2.")
    problems = [Problem(key="q", question="What is 1 + 1?", answer="2", dataset="unit")]
    request = runner.RunRequest(strategy="beam_search", dataset="unit", verifier="entropy",
                                config=SearchConfig(n=4, beam_width=2, max_steps=3)).validate()
    verifier = load_verifier("entropy", lm)
    run_id = runner.create_run(store, request, problems, lm, verifier)
    runner.execute(store, run_id, lm, verifier)
    [result] = run_results(store, run_id)
    steps = [n for n in tree_nodes(store, run_id, result.problem_id) if n.parent_seq is not None]
    assert steps and all(0.0 <= n.score <= 1.0 and "tok_entropy" in n.meta for n in steps)
    assert result.verifier_calls >= 2 and result.answer == "2"
