"""Compute-optimal policies: fitting on hand-made outcomes (the best arm per bin, ties, the knapsack
over bins), the probe counted in a run's tokens, a policy through a bundle, the CLI's refusals, and
the whole loop on the lab model (sweep -> policy build -> compute_optimal run -> policy eval)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reasoning.policy import Arm, Outcomes, Point, Policy, fit, tokens_to_reach
from helpers_cli import run_cli

PROBE = Arm("cot", {}, "cot")
CHEAP = Arm("self_consistency", {"n": 2}, "sc n=2")
DEAR = Arm("best_of_n", {"n": 8, "select": "weighted"}, "bon n=8")


def hand_made() -> Outcomes:
    """Four easy questions (probe score 0.9: the probe is right) and four hard ones (0.1: only the dear
    arm helps). Probe: 10 tokens; sc n=2: 20 more; bon n=8: 80 more."""
    probe = np.array([0.9] * 4 + [0.1] * 4)
    correct = np.array([[1, 1, 1]] * 4 + [[0, 0, 1]] * 4, dtype=float)
    tokens = np.array([[10, 20, 80]] * 8, dtype=float)
    return Outcomes(keys=[str(i) for i in range(8)], arms=[PROBE, CHEAP, DEAR], probe=probe,
                    probe_tokens=np.full(8, 10.0), correct=correct, tokens=tokens)


def test_bins_are_quantiles_of_the_probe_easiest_first():
    policy = fit(hand_made(), n_bins=2)
    assert policy.shares == [0.5, 0.5]
    assert policy.bin_of(0.95) == 1 and policy.bin_of(0.05) == 2
    assert policy.bin_of(None) == 2 and policy.bin_of(float("nan")) == 2  # no score: the hardest bin
    # the probe's tokens come on top of every arm but the probe's own
    assert policy.tokens[0] == [10.0, 30.0, 90.0]
    assert policy.accuracy[1] == [0.0, 0.0, 1.0]


def test_the_plan_spends_where_it_pays():
    policy = fit(hand_made(), n_bins=2)
    # 50 tokens on average: the probe answers the easy half (10) and the hard half gets bon (90)
    plan = policy.plan(50)
    assert [policy.arms[a].label for a in plan.arms] == ["cot", "bon n=8"]
    assert plan.accuracy == pytest.approx(1.0) and plan.tokens == pytest.approx(50.0) and plan.within_budget
    # 49 tokens: no longer affordable; the probe everywhere is the best plan within it
    plan = policy.plan(49)
    assert [policy.arms[a].label for a in plan.arms] == ["cot", "cot"]
    assert plan.accuracy == pytest.approx(0.5)
    # no single arm for every question does that at 50 tokens: bon everywhere costs 90, sc reaches only 0.5
    fixed = [(policy.tokens[0][a], policy.accuracy[0][a] / 2 + policy.accuracy[1][a] / 2) for a in range(3)]
    assert max(acc for tokens, acc in fixed if tokens <= 50) == pytest.approx(0.5)


def test_ties_go_to_the_cheaper_plan_then_the_earlier_arm():
    out = hand_made()
    out.correct[:, 2] = out.correct[:, 1]  # bon no better than sc: same accuracy, dearer
    out.correct[4:, 1:] = 1.0
    policy = fit(out, n_bins=2)
    plan = policy.plan(1000)
    assert [policy.arms[a].label for a in plan.arms] == ["cot", "sc n=2"]
    twin = Arm("self_consistency", {"n": 2, "temperature": 0.7}, "sc twin")  # equal in accuracy and tokens
    out2 = Outcomes(out.keys, [PROBE, CHEAP, twin], out.probe, out.probe_tokens,
                    out.correct[:, [0, 1, 1]], out.tokens[:, [0, 1, 1]])
    policy2 = fit(out2, n_bins=2)
    assert [policy2.arms[a].label for a in policy2.plan(1000).arms] == ["cot", "sc n=2"]


def test_a_budget_below_the_probe_gives_the_cheapest_plan_marked_over_budget():
    policy = fit(hand_made(), n_bins=2)
    plan = policy.plan(5)
    assert not plan.within_budget and plan.tokens == pytest.approx(10.0)


def test_frontier_rises_and_round_trips_as_json():
    policy = fit(hand_made(), n_bins=2)
    frontier = policy.frontier()
    assert [round(p.tokens) for p in frontier] == sorted(round(p.tokens) for p in frontier)
    assert all(b.accuracy > a.accuracy for a, b in zip(frontier, frontier[1:]))
    again = Policy.from_json(json.loads(json.dumps(policy.to_json())))
    assert again.plan(50).arms == policy.plan(50).arms


def test_evaluate_on_other_problems_charges_probe_plus_arm():
    policy = fit(hand_made(), n_bins=2)
    held_out = hand_made()
    held_out.correct[4:, 2] = 0.5  # bon is worse on the held-out hard questions
    point, plan = policy.evaluate(held_out, 50, n_boot=200)
    assert point.accuracy == pytest.approx(0.75) and point.tokens == pytest.approx(50.0)
    assert point.ci_low <= 0.75 <= point.ci_high
    missing = Outcomes(held_out.keys, [PROBE, CHEAP], held_out.probe, held_out.probe_tokens,
                       held_out.correct[:, :2], held_out.tokens[:, :2])
    with pytest.raises(ValueError, match="did not measure bon n=8"):
        policy.evaluate(missing, 50)


def test_tokens_to_reach():
    points = [Point("a", 0.5, 0.4, 0.6, 100, 10), Point("b", 0.8, 0.7, 0.9, 300, 10), Point("c", 0.9, 0.8, 1, 200, 10)]
    assert tokens_to_reach(points, 0.8) == 200
    assert tokens_to_reach(points, 0.95) is None


# ---------------------------------------------------------------------------------------------
# On the lab model: the whole loop


@pytest.fixture(scope="module")
def lab_sweeps(tmp_path_factory):
    """A fit sweep and a held-out sweep (other seed) on the lab model, with a policy built on the first."""
    from reasoning.backends import load_model
    from reasoning.verifiers import load_verifier
    from store import Store
    from thinktrace.sweep import run_sweep

    db = tmp_path_factory.mktemp("policy") / "t.db"
    store = Store(f"sqlite:///{db}")
    lm = load_model("lab")
    verifier = load_verifier("prm:lab", lm)
    ids = [run_sweep(store, ["cot", "best_of_n", "beam_search"], [1, 2], "arith:1-5", limit=10, seed=seed,
                     model="lab", verifier="prm:lab", lm=lm, verifier_obj=verifier, progress=False)
           for seed in (1, 2)]
    return db, store, ids


@pytest.mark.slow
def test_build_show_run_and_eval_on_the_lab_model(lab_sweeps):
    from store.curves import problem_results
    from store.runs import run_results, tree_nodes

    db, store, (fit_id, test_id) = lab_sweeps
    built = run_cli("policy", "build", fit_id[:8], "--bins", "2", "--json", db=db)
    assert built.code == 0, built.stderr
    policy_id = json.loads(built.stdout)["id"]
    listed = json.loads(run_cli("policy", "list", "--json", db=db).stdout)
    assert [p["id"] for p in listed] == [policy_id] and listed[0]["verifier"] == "prm:lab"
    shown = json.loads(run_cli("policy", "show", policy_id[:8], "--budgets", "150", "--json", db=db).stdout)
    [plan] = shown["plans"]
    assert len(plan["bins"]) == 2
    assert plan["expected_tokens"] <= 150 or not plan["within_budget"]

    ran = run_cli("run", "--strategy", "compute_optimal", "--policy", policy_id[:8], "--budget", "150",
                  "--dataset", "arith:1-5", "--limit", "4", "--seed", "2", "--json", db=db)
    assert ran.code == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    results = problem_results(store, run_id)
    for row in run_results(store, run_id):
        nodes = tree_nodes(store, run_id, row.problem_id)
        root, probe = nodes[0], [n for n in nodes if n.meta.get("probe")]
        assert root.meta["bin"] in (1, 2) and root.meta["choice"] and root.meta["policy"] == policy_id
        assert probe and probe[0].parent_seq == 0  # the probe's chain hangs off the root
        result = results[row.problem_id]
        # every generated token is in the run's count, the probe's included
        assert result.tokens == sum(n.tokens for n in nodes) and result.meta["probe_tokens"] == sum(n.tokens for n in probe)
        assert result.meta["probe_tokens"] > 0

    evaluated = run_cli("policy", "eval", policy_id[:8], "--sweep", test_id[:8], "--json", db=db)
    assert evaluated.code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["fixed"] and report["policy"] and report["reference"]["label"].startswith("best_of_n weighted")
    text = run_cli("policy", "eval", policy_id[:8], "--sweep", test_id[:8], db=db)
    assert "weighted best-of-N's best" in text.stdout


@pytest.mark.slow
def test_a_policy_travels_with_its_sweep_in_a_bundle(lab_sweeps, tmp_path):
    from store import Store
    from store.bundle import dump_bundle, import_bundle
    from store.policies import list_policies
    from store.sweeps import sweep_runs
    from thinktrace.policy import build_policy, load_policy

    _, store, (fit_id, _) = lab_sweeps
    policy_id, policy, _ = build_policy(store, fit_id, name="travels", n_bins=3)
    data = dump_bundle(store, [r.id for r in sweep_runs(store, fit_id)])
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    import_bundle(other, data)
    [row] = [p for p in list_policies(other) if p.id == policy_id]
    assert row.name == "travels" and row.sweep_id == fit_id
    assert load_policy(other, policy_id[:8])[1].plan(200).arms == policy.plan(200).arms


def test_a_malformed_policy_in_a_bundle_is_refused_in_one_line():
    from store.bundle_schema import PolicyIn

    good = fit(hand_made(), n_bins=2).to_json()
    PolicyIn.model_validate({"id": "0b7e7a52-1111-4222-8333-444455556666", "body": good})
    bad = {**good, "shares": [1.0]}  # one share for two bins' rows
    with pytest.raises(Exception, match="not a policy"):
        PolicyIn.model_validate({"id": "0b7e7a52-1111-4222-8333-444455556666", "body": bad})


@pytest.mark.parametrize("args,fragment", [
    (["run", "--strategy", "compute_optimal", "--budget", "100"], "needs --policy"),
    (["run", "--strategy", "compute_optimal", "--policy", "abc"], "needs --budget"),
    (["run", "--strategy", "compute_optimal", "--policy", "abc", "--budget", "100"], "no policy with id 'abc'"),
    (["sweep", "--strategies", "cot,compute_optimal", "--budgets", "2"], "not an arm of one"),
    (["policy", "show", "abc"], "no policy with id 'abc'"),
    (["policy", "build", "abc"], "no sweep with id 'abc'"),
    (["policy", "show", "abc", "--budgets", "x"], "--budgets must be numbers"),
])
def test_policy_refusals_are_one_line(tmp_path, args, fragment):
    db = tmp_path / "t.db"
    result = run_cli(*args, db=db)
    assert result.code == 2, result.stderr
    assert len(result.lines) == 1 and fragment in result.lines[0], result.stderr


def test_a_sweep_without_a_scored_cot_run_cannot_fit_a_policy(tmp_path):
    """The probe is the greedy chain's verifier score: a sweep without cot, or with cot unscored, says so."""
    from store import Store
    from store.sweeps import create_sweep
    from thinktrace.policy import build_policy
    from reasoning.errors import UserError

    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    sweep_id = create_sweep(store, "empty", {"budgets": [1]})
    with pytest.raises(UserError, match="has no cot run"):
        build_policy(store, sweep_id)
    from store.policies import list_policies
    assert list_policies(store) == []  # nothing stored
