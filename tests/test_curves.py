"""Budget curves from stored runs, sweeps and their frontier: exact numbers on scripted runs,
hand-checked frontier and efficiency tables, and the `sweep` / `curves` command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from thinktrace import runner
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.budget import BudgetPoint, efficiency, frontier
from thinktrace.curves import load_curves
from reasoning.errors import UserError
from reasoning.problems import load_problems
from reasoning.strategies import Strategy, lookup, register, unregister
from thinktrace.sweep import SweepInterrupted, SweepSpec, beam_width_for, resume_sweep, run_sweep, sweep_state
from reasoning.types import Problem
from reasoning.verifiers import load_verifier
from store import Store
from store import models as m

ROOT = Path(__file__).resolve().parents[1]

# Two problems, three chains each. The first step is the chain's "mood", which the scripted judge
# turns into its self_eval score (path score = last step's score = the mood's).
PROBLEMS = [Problem(key="p0", question="What is 2 + 2?", answer="4", dataset="unit"),
            Problem(key="p1", question="What is 3 + 3?", answer="6", dataset="unit")]
CHAINS = {
    "2 + 2": ["Sure.\n\nThe answer is 4.", "Hmm.\n\nThe answer is 4.", "Maybe.\n\nThe answer is 5."],
    "3 + 3": ["Hmm.\n\nThe answer is 6.", "Sure.\n\nThe answer is 7.", "Maybe.\n\nNo idea."],
}
MOOD_SCORE = {"Sure.": 0.8, "Maybe.": 0.6, "Hmm.": 0.2}


def script(prompt: str, sample: int, call: int) -> str:
    return next(chains for question, chains in CHAINS.items() if question in prompt)[sample]


def judge(prompt: str) -> float:
    return next(score for mood, score in MOOD_SCORE.items() if mood in prompt)


def scripted_run(store, strategy, n, verifier="self_eval"):
    lm = ScriptedLM(script, judge=judge, n_params=1000)
    ver = load_verifier(verifier, lm)
    request = runner.RunRequest(strategy=strategy, dataset="unit", model="scripted", verifier=verifier,
                                config=SearchConfig(n=n)).validate()
    run_id = runner.create_run(store, request, PROBLEMS, lm, ver)
    runner.execute(store, run_id, lm, ver)
    return run_id


def curve(points, estimator, group=None):
    return [(p.k, round(p.accuracy, 6)) for p in points if p.estimator == estimator and p.group == group]


def test_a_sampling_run_gives_every_estimator_at_every_k_exactly(store):
    """Hand-computed over all k-subsets. p0: right (0.8), right (0.2), wrong (0.6). p1: right (0.2),
    wrong (0.8), no answer (0.6). E.g. wbon@2 on p1: {6, 7} -> 7, {6, none} -> 6, {7, none} -> 7."""
    run_id = scripted_run(store, "best_of_n", n=3)
    curves = load_curves(store, run_id)
    points = curves.points
    third = 1 / 3
    assert curve(points, "pass") == [(1, 0.5), (2, round(5 / 6, 6)), (3, 1.0)]
    assert curve(points, "maj") == [(1, 0.5), (2, round(7 / 12, 6)), (3, 0.75)]
    assert curve(points, "bon") == [(1, 0.5), (2, round(third, 6)), (3, 0.5)]
    assert curve(points, "wbon") == [(1, 0.5), (2, 0.5), (3, 0.5)]
    # chains are 5 tokens, the no-answer one 3: mean per problem (5 + 13/3) / 2 = 14/3 per sample
    tokens = {p.k: p.tokens_per_problem for p in points if p.estimator == "maj"}
    assert tokens == pytest.approx({1: 14 / 3, 2: 28 / 3, 3: 14.0})
    bon3 = next(p for p in points if p.estimator == "bon" and p.k == 3)
    # FLOPs: 2 x 1000 params x 14 tokens for the policy, as much again for self_eval (same model)
    assert bon3.flops == pytest.approx(2 * 1000 * 14 * 2) and bon3.verifier_flops == pytest.approx(2 * 1000 * 14)
    maj3 = next(p for p in points if p.estimator == "maj" and p.k == 3)
    assert maj3.flops == pytest.approx(2 * 1000 * 14) and maj3.verifier_flops == 0.0 and maj3.verifier is None
    assert all(p.ci_low <= p.accuracy <= p.ci_high and p.n_problems == 2 for p in points)
    assert {p.upper_bound for p in points if p.estimator == "pass"} == {True}
    assert {p.upper_bound for p in points if p.estimator != "pass"} == {False}
    assert curves.n_problems == 2 and curves.models == ["scripted"] and curves.verifiers == ["self_eval"]
    assert "problems: 2" in curves.caption() and "seed: 0" in curves.caption()


def test_a_tree_style_run_is_one_point_at_its_budget_and_shares_the_problems(store):
    sampling = scripted_run(store, "best_of_n", n=3)
    greedy = scripted_run(store, "cot", n=1)
    points = load_curves(store, run_ids=[sampling, greedy]).points
    [cot] = [p for p in points if p.estimator == "direct"]
    # greedy = sample 0: "Sure ... 4" (right) and "Hmm ... 6" (right), 5 tokens each
    assert (cot.curve, cot.k, cot.accuracy, cot.tokens_per_problem) == ("cot", 1, 1.0, 5.0)
    assert (cot.ci_low, cot.ci_high) == (1.0, 1.0)
    assert cot.verifier_flops == pytest.approx(2 * 1000 * 5)


def test_facets_split_problems_by_difficulty_and_by_pass1_bins(store):
    for problem, level in zip(PROBLEMS, (1, 3)):
        problem.difficulty = level
    try:
        run_id = scripted_run(store, "best_of_n", n=3)
    finally:
        for problem in PROBLEMS:
            problem.difficulty = None
    by_level = load_curves(store, run_id, by="difficulty").points
    assert curve(by_level, "maj", 1) == [(1, round(2 / 3, 6)), (2, round(2 / 3, 6)), (3, 1.0)]
    assert curve(by_level, "maj", 3) == [(1, round(1 / 3, 6)), (2, 0.5), (3, 0.5)]
    # pass@1: p0 2/3, p1 1/3 -> p0 falls in an easier bin than p1
    by_pass1 = load_curves(store, run_id, by="pass1").points
    groups = sorted({p.group for p in by_pass1})
    assert len(groups) == 2 and curve(by_pass1, "maj", groups[0]) == curve(by_level, "maj", 1)


def point(curve_name, estimator, k, accuracy, tokens, group=None, upper_bound=False):
    return BudgetPoint(curve=curve_name, strategy=curve_name, estimator=estimator, k=k, tokens_per_problem=tokens,
                       flops=2.0 * tokens, verifier_flops=0.0, accuracy=accuracy, ci_low=accuracy, ci_high=accuracy,
                       group=group, n_problems=10, upper_bound=upper_bound, model="m", verifier="v", dataset="d",
                       seed=0, run_id="r")


# best-of-N weighted reaches 0.6 at N = 16; beam search gets there with 4 beams (cheaper tokens too).
SYNTHETIC = [
    *(point("best-of-N weighted", "wbon", k, acc, 100 * k) for k, acc in [(1, 0.2), (4, 0.4), (16, 0.6)]),
    *(point("beam_search", "direct", k, acc, 80 * k) for k, acc in [(1, 0.3), (4, 0.6), (16, 0.7)]),
    *(point("majority", "maj", k, acc, 100 * k) for k, acc in [(1, 0.2), (4, 0.3), (16, 0.35)]),
    *(point("pass@k", "pass", k, acc, 100 * k, upper_bound=True) for k, acc in [(1, 0.2), (4, 0.8), (16, 0.95)]),
]


def test_the_frontier_picks_the_best_achievable_curve_per_budget():
    winners = frontier(SYNTHETIC, "samples")
    assert [(s.budget, s.point.curve, s.point.k) for s in winners] == [
        (1, "beam_search", 1), (4, "beam_search", 4), (16, "beam_search", 16)]
    # on tokens the envelope keeps only points that no cheaper point beats; pass@k never competes
    envelope = frontier(SYNTHETIC, "tokens")
    assert [(s.budget, s.point.curve) for s in envelope] == [(80, "beam_search"), (320, "beam_search"),
                                                             (1280, "beam_search")]
    tie = [point("a", "maj", 2, 0.5, 200), point("b", "direct", 2, 0.5, 150)]
    assert [s.point.curve for s in frontier(tie)] == ["b"]  # equal accuracy: the cheaper one


def test_the_frontier_never_falls_a_cheaper_point_stays_best_within_a_larger_budget():
    points = [point("cot", "direct", 1, 0.7, 100), point("majority", "maj", 1, 0.5, 100),
              point("majority", "maj", 2, 0.6, 200), point("majority", "maj", 4, 0.8, 400)]
    assert [(s.budget, s.point.curve, s.point.k) for s in frontier(points)] == [
        (1, "cot", 1), (2, "cot", 1), (4, "majority", 4)]


def test_efficiency_is_the_smallest_budget_that_matches_best_of_n_at_its_largest():
    gains = {g.curve: g for g in efficiency(SYNTHETIC)}
    assert "pass@k" not in gains  # an upper bound is not a strategy
    beam = gains["beam_search"]
    assert (beam.reference, beam.reference_k, beam.reference_accuracy) == ("best-of-N weighted", 16, 0.6)
    assert (beam.k, beam.gain_samples, beam.gain_tokens) == (4, 4.0, 1600 / 320)
    assert beam.sentence() == ("beam_search matches best-of-N weighted@16 (60.0%) with 4 samples: "
                               "4x fewer samples, 5x fewer tokens")
    assert gains["best-of-N weighted"].k == 16 and gains["best-of-N weighted"].gain_samples == 1.0
    assert gains["majority"].k is None and "never matches" in gains["majority"].sentence()


def test_efficiency_and_frontier_are_per_facet_group():
    points = [point("best-of-N naive", "bon", 8, 0.5, 800, group=1), point("dvts", "direct", 2, 0.5, 200, group=1),
              point("best-of-N naive", "bon", 8, 0.2, 800, group=2), point("dvts", "direct", 2, 0.1, 200, group=2)]
    gains = {(g.group, g.curve): g.k for g in efficiency(points)}
    assert gains == {(1, "best-of-N naive"): 8, (1, "dvts"): 2, (2, "best-of-N naive"): 8, (2, "dvts"): None}
    assert [(s.point.group, s.budget, s.point.curve) for s in frontier(points)] == [
        (1, 2, "dvts"), (1, 8, "dvts"), (2, 2, "dvts"), (2, 8, "best-of-N naive")]


# --- sweeps ---------------------------------------------------------------------------------------

def arith_lm(limit=2):
    """A scripted model that knows the arith:1 golds: samples 0 and 2 are right, sample 1 is off by one."""
    gold = {p.question: int(p.answer) for p in load_problems("arith:1", limit=limit)}

    def answer(prompt, sample, call):
        value = next(v for q, v in gold.items() if q in prompt) + (sample % 2)
        return f"{'Sure.' if sample % 2 else 'Hmm.'}\n\nThe answer is {value}."

    return ScriptedLM(answer, judge=judge)


def sweep(store, strategies, budgets, lm=None, **kw):
    lm = lm or arith_lm()
    ver = load_verifier("self_eval", lm)
    return run_sweep(store, strategies, budgets, "arith:1", limit=2, verifier="self_eval", model="scripted",
                     lm=lm, verifier_obj=ver, progress=False, **kw)


@pytest.fixture()
def tree_strategy():
    """A registered per-budget strategy: the sweep must treat any registered strategy this way."""
    from reasoning.strategies import self_consistency

    register(Strategy("wide_vote", "test", self_consistency.search, knobs=("n",)))
    yield "wide_vote"
    unregister("wide_vote")


def test_a_sweep_shares_one_sampling_run_and_runs_tree_strategies_per_budget(store, tree_strategy):
    sid = sweep(store, ["self_consistency", "best_of_n", tree_strategy], [4, 1, 2])
    with store.session() as session:
        runs = session.exec(select(m.Run).where(m.Run.sweep_id == sid)).all()
        problems = {r.id: session.exec(select(m.RunProblem.problem_id).where(m.RunProblem.run_id == r.id)
                                       .order_by(m.RunProblem.position)).all() for r in runs}
        assert session.get(m.Sweep, sid).params["budgets"] == [1, 2, 4]
    assert sorted((r.strategy, r.params["n"]) for r in runs) == [
        ("best_of_n", 4), ("wide_vote", 1), ("wide_vote", 2), ("wide_vote", 4)]
    assert {r.status for r in runs} == {"done"} and {r.seed for r in runs} == {0}
    assert len(set(map(tuple, problems.values()))) == 1  # the same problems, in the same order
    points = load_curves(store, sid).points
    assert sorted(p.k for p in points if p.estimator == "wbon") == [1, 2, 4]
    assert [(p.k, p.accuracy) for p in points if p.estimator == "direct"] == [(1, 1.0), (2, 1.0), (4, 1.0)]


def test_an_interrupted_sweep_resumes_to_what_an_uninterrupted_one_gives(store, tmp_path, tree_strategy):
    class Interrupting(ScriptedLM):
        def complete(self, *args, **kwargs):
            if len(self.calls) >= 3:
                raise KeyboardInterrupt
            return super().complete(*args, **kwargs)

    base = arith_lm()
    flaky = Interrupting(base.script, judge=judge)
    with pytest.raises(SweepInterrupted) as stopped:
        sweep(store, ["best_of_n", tree_strategy], [1, 2], lm=flaky, name="s")
    sid = stopped.value.sweep_id
    assert [s.status for s in sweep_state(store, sid)] == ["done", "interrupted", None]
    with pytest.raises(UserError, match="other settings"):
        sweep(store, ["best_of_n"], [1, 2], sweep_id=sid)
    ver = load_verifier("self_eval", base)
    assert resume_sweep(store, sid[:8], lm=base, verifier_obj=ver, progress=False) == sid
    assert [s.status for s in sweep_state(store, sid)] == ["done"] * 3

    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    reference = sweep(other, ["best_of_n", tree_strategy], [1, 2], name="s")
    key = lambda p: (p.curve, p.k, p.accuracy, p.tokens_per_problem)  # noqa: E731
    assert sorted(map(key, load_curves(store, sid).points)) == sorted(map(key, load_curves(other, reference).points))


def test_sweep_refuses_bad_requests_before_creating_anything(store):
    for strategies, budgets, message in [(["nope"], [1, 2], "unknown strategy"),
                                         (["self_consistency"], [0, 2], "at least 1"),
                                         (["self_consistency"], [], "empty"),
                                         ([], [1], "empty")]:
        with pytest.raises(UserError, match=message):
            sweep(store, strategies, budgets)
    with pytest.raises(UserError, match="needs a verifier"):
        run_sweep(store, ["best_of_n"], [1], "arith:1", model="smollm2", verifier=None, lm=arith_lm(), progress=False)
    with store.session() as session:
        assert session.exec(select(m.Sweep)).all() == []


def test_beam_width_divides_every_budget_and_mcts_spends_its_budget_in_expansions():
    assert [beam_width_for(b) for b in (1, 2, 4, 6, 8, 64)] == [1, 2, 4, 3, 4, 4]
    assert beam_width_for(12, cap=8) == 6
    spec = SweepSpec(strategies=["beam_search", "mcts"], budgets=[2, 8], dataset="arith:1", verifier="self_eval")
    plan = {(p.strategy, p.n): p.config for p in spec.validate().plan()}
    assert (plan["beam_search", 2].beam_width, plan["beam_search", 8].beam_width) == (2, 4)
    assert (plan["mcts", 2].expansions, plan["mcts", 8].expansions) == (2, 8)


def test_a_budget_a_strategy_cannot_take_is_refused_before_any_run(store):
    from dataclasses import replace

    def refuse_two(cfg):
        if cfg.n == 2:
            raise UserError("no budget 2")

    beam_search = lookup("beam_search")
    register(replace(beam_search, check=refuse_two), replace=True)
    try:
        with pytest.raises(UserError, match="no budget 2"):
            sweep(store, ["self_consistency", "beam_search"], [1, 2])
    finally:
        register(beam_search, replace=True)
    with store.session() as session:
        assert session.exec(select(m.Run)).all() == []


# --- command line ---------------------------------------------------------------------------------

def cli(*args, db):
    env = {**os.environ, "THINKTRACE_DB": str(db), "THINKTRACE_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_curves_json_is_a_list_of_points_with_stable_keys(store, tmp_path):
    sid = sweep(store, ["self_consistency", "best_of_n"], [1, 2])
    proc = cli("curves", sid[:8], "--json", "--x", "tokens", "--by", "difficulty", db=tmp_path / "thinktrace.db")
    assert proc.returncode == 0, proc.stderr
    points = json.loads(proc.stdout)
    assert {tuple(sorted(p)) for p in points} == {tuple(sorted([
        "curve", "strategy", "estimator", "k", "tokens_per_problem", "flops", "verifier_flops", "accuracy",
        "ci_low", "ci_high", "group", "n_problems", "upper_bound", "model", "verifier", "dataset", "seed",
        "run_id", "think_tokens", "seconds_per_problem", "prompt_tokens_per_problem", "n_seeds", "x",
        "thinking_fit"]))}
    assert {p["estimator"] for p in points} == {"pass", "maj", "bon", "wbon"}
    assert all(p["x"] == p["tokens_per_problem"] and p["group"] == 1 for p in points)
    text = cli("curves", sid, "--html", str(tmp_path / "curve.html"), db=tmp_path / "thinktrace.db")
    assert text.returncode == 0 and "pass@k oracle coverage (upper bound) *" in text.stdout
    assert "plotly" in (tmp_path / "curve.html").read_text()[:100_000].lower()
    assert "compute-optimal frontier" in text.stdout and "model: scripted" in text.stdout


@pytest.mark.parametrize("args, message", [
    (["--strategies", "self_consistency,warp_drive", "--budgets", "1,2"], "unknown strategy 'warp_drive'"),
    (["--strategies", "self_consistency", "--budgets", "1,two"], "--budgets must be whole numbers"),
    (["--strategies", "self_consistency", "--budgets", "0,4"], "at least 1"),
])
def test_sweep_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    proc = cli("sweep", *args, "--dataset", "arith:1", "--limit", "1", db=tmp_path / "x.db")
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists() or "sweep" not in proc.stdout


def test_curves_of_an_unknown_id_is_a_user_error(tmp_path):
    proc = cli("curves", "feedface", db=tmp_path / "x.db")
    assert proc.returncode == 2 and "no run or sweep" in proc.stderr


def test_a_sweep_on_the_default_lab_model_gets_its_prm_where_a_strategy_needs_a_verifier():
    spec = SweepSpec(strategies=["self_consistency", "best_of_n"], budgets=[1, 2], dataset="arith:1").validate()
    assert spec.model == "lab" and spec.verifier == "prm:lab"
    spec = SweepSpec(strategies=["self_consistency"], budgets=[1, 2], dataset="arith:1").validate()
    assert spec.verifier is None  # voting needs no verifier
