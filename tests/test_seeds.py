"""Seeds: `sweep --seeds` and `run --seeds` make one run per sampling seed on the same problems, and
curves average them with a CI over problems and seeds."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from sqlmodel import select

from reasoning.backends.scripted import ScriptedLM
from reasoning.errors import UserError
from reasoning.estimators import bootstrap_ci, seed_bootstrap_ci
from reasoning.verifiers import load_verifier
from store import models as m
from tests.helpers_cli import run_cli
from thinktrace.curves import load_curves
from thinktrace.sweep import run_sweep, sweep_state


class SeededLM(ScriptedLM):
    """Right or wrong by the call's seed, so runs of different seeds differ (as real sampling does)."""

    def complete(self, prompts, n, max_new_tokens, temperature, stop=None, seed=None, top_p=1.0):
        self.seed = seed or 0
        return super().complete(prompts, n, max_new_tokens, temperature, stop=stop, seed=seed, top_p=top_p)


def answer(lm: SeededLM):
    def script(prompt: str, sample: int, call: int) -> str:
        gold = int(prompt.rsplit("Answer:", 1)[0].count(" ") % 7)  # any function of the question
        wrong = zlib.crc32(f"{lm.seed}:{sample}".encode()) % 3 == 0
        return f"{'Sure.' if sample % 2 else 'Hmm.'}\n\nThe answer is {gold + wrong}."
    return script


def seeded_lm() -> SeededLM:
    lm = SeededLM(lambda prompt, sample, call: "", judge=lambda prompt: 0.8 if "Sure." in prompt else 0.3)
    lm.script = answer(lm)
    return lm


def sweep(store, strategies, budgets, seeds, **kw):
    lm = seeded_lm()
    return run_sweep(store, strategies, budgets, "arith:1", limit=6, model="scripted", verifier="self_eval",
                     lm=lm, verifier_obj=load_verifier("self_eval", lm), progress=False, seeds=seeds, **kw)


def test_a_sweep_with_seeds_runs_its_plan_once_per_seed_on_the_problems_of_its_seed(store):
    sid = sweep(store, ["self_consistency", "beam_search"], [1, 2], [0, 1, 2], seed=5)
    with store.session() as session:
        runs = session.exec(select(m.Run).where(m.Run.sweep_id == sid)).all()
        problems = {r.id: session.exec(select(m.RunProblem.problem_id).where(m.RunProblem.run_id == r.id)
                                       .order_by(m.RunProblem.position)).all() for r in runs}
        params = session.get(m.Sweep, sid).params
    assert params["seeds"] == [0, 1, 2] and params["seed"] == 5
    assert sorted((r.strategy, r.params["n"], r.seed) for r in runs) == sorted(
        (s, n, seed) for seed in (0, 1, 2) for s, n in [("self_consistency", 2), ("beam_search", 1), ("beam_search", 2)])
    assert {r.params["problem_seed"] for r in runs} == {5}  # every seed solves the problems of --seed
    assert len(set(map(tuple, problems.values()))) == 1
    assert all(s.status == "done" for s in sweep_state(store, sid))
    assert all(r.name.endswith(f" seed {r.seed}") for r in runs)


def test_curves_average_the_seeds_and_their_ci_holds_the_seed_spread(store):
    sid = sweep(store, ["best_of_n", "beam_search"], [2], [0, 1, 2, 3])
    curves = load_curves(store, sid)
    assert {p.n_seeds for p in curves.points} == {4} and {p.seed for p in curves.points} == {None}
    assert "CIs over problems and seeds" in curves.caption()
    with store.session() as session:
        runs = session.exec(select(m.Run).where(m.Run.sweep_id == sid)).all()
    for strategy, estimator in (("beam_search", "direct"), ("best_of_n", "wbon")):
        [averaged] = [p for p in curves.points if p.estimator == estimator and p.k == 2]
        alone = [next(p for p in load_curves(store, run_ids=[r.id]).points if p.estimator == estimator and p.k == 2)
                 for r in runs if r.strategy == strategy]
        assert len(alone) == 4 and {p.n_seeds for p in alone} == {1}
        assert averaged.accuracy == pytest.approx(np.mean([p.accuracy for p in alone]))
        assert averaged.tokens_per_problem == pytest.approx(np.mean([p.tokens_per_problem for p in alone]))
        assert averaged.ci_low <= averaged.accuracy <= averaged.ci_high
    assert not any("seed" in p.curve for p in curves.points)  # one curve per strategy, not per seed


def test_runs_chosen_by_hand_that_differ_only_in_seed_are_averaged_and_others_are_not(store):
    sid = sweep(store, ["beam_search"], [2], [0, 1])
    with store.session() as session:
        ids = [r.id for r in session.exec(select(m.Run).where(m.Run.sweep_id == sid)).all()]
    other = sweep(store, ["beam_search"], [2], [0, 1], name="other", cfg=None, seed=3)  # other problems
    with store.session() as session:
        others = [r.id for r in session.exec(select(m.Run).where(m.Run.sweep_id == other)).all()]
    [point] = load_curves(store, run_ids=ids).points
    assert point.n_seeds == 2
    with pytest.raises(UserError, match="no problem is finished in every run"):
        load_curves(store, run_ids=ids + others)  # different problems never merge


def test_the_seed_bootstrap_widens_the_interval_by_the_spread_between_seeds():
    values = np.array([[1.0] * 20, [0.0] * 20])  # every problem right under one seed, wrong under the other
    assert bootstrap_ci(values[0]) == (1.0, 1.0) and bootstrap_ci(values[1]) == (0.0, 0.0)
    low, high = seed_bootstrap_ci(values, n_boot=2000)
    assert low == 0.0 and high == 1.0  # resampling seeds: all-one, all-zero and mixed draws
    one = np.array([[1.0, 0.0, 1.0, 1.0, 0.0]])
    assert seed_bootstrap_ci(one, seed=3) == bootstrap_ci(one[0], seed=3)  # one seed: the problem bootstrap


@pytest.mark.parametrize("seeds, message", [("0,0", "names a seed twice"), ("0,x", "--seeds must be whole numbers"),
                                            (",", "--seeds is empty")])
def test_bad_seeds_are_one_line_exit_2_and_nothing_written(tmp_path, seeds, message):
    for command in (["run", "--strategy", "cot"], ["sweep", "--strategies", "cot", "--budgets", "1"]):
        result = run_cli(*command, "--dataset", "arith:1", "--limit", "1", "--seeds", seeds, db=tmp_path / "x.db")
        assert result.code == 2 and len(result.lines) == 1 and message in result.lines[0]
        assert not (tmp_path / "x.db").exists()


def test_run_seeds_makes_one_run_per_seed_grouped_and_curves_average_them(tmp_path):
    db = tmp_path / "x.db"
    result = run_cli("run", "--strategy", "self_consistency", "--n", "2", "--dataset", "arith:2", "--limit", "3",
                     "--seeds", "0,1", "--json", db=db)
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["seed"] for r in out["runs"]] == [0, 1] and {r["problems_done"] for r in out["runs"]} == {3}
    curves = run_cli("curves", out["sweep"][:8], "--json", db=db)
    assert curves.code == 0, curves.stderr
    points = json.loads(curves.stdout)
    assert {p["n_seeds"] for p in points} == {2} and {p["k"] for p in points} == {1, 2}
    assert {p["estimator"] for p in points} == {"maj", "pass"}


def test_a_policy_is_not_built_from_a_sweep_of_several_seeds(store):
    from thinktrace.policy import sweep_outcomes

    sid = sweep(store, ["cot", "best_of_n"], [2], [0, 1])
    with pytest.raises(UserError, match="several seeds"):
        sweep_outcomes(store, sid)
