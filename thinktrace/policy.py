"""Compute-optimal policies from stored sweeps: what `policy build|list|show|eval`, the Budget page and
`--strategy compute_optimal --policy ID --budget TOKENS` use (the fitting itself is reasoning/policy.py).

A sweep gives a policy what it needs when it holds a cot run scored by a verifier (the probe: the
greedy chain's score) and the strategies to choose from. Every arm is read per problem, on the
problems every run of the sweep finished:
  - the shared sampling run (best_of_n / self_consistency with N chains): for each budget k, the
    expected correctness of maj@k, naive and weighted best-of-k over k-subsets, at k x the problem's
    mean tokens per chain (what a run with n = k spends on average);
  - every other run: its own per-problem correctness and tokens (beam search, DVTS, MCTS, adaptive
    strategies, ... at each budget), its knobs as stored;
  - cot: the probe's own answer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.estimators import per_problem_accuracy
from reasoning.policy import ORACLE, PROBE, PROBE_ARM, Arm, Outcomes, Point, Policy, fit, tokens_to_reach
from reasoning.strategies import SAMPLES, lookup, names
from store import Store
from store import models as m
from store.curves import common_problems, problem_results, run_samples
from store.policies import create_policy, get_policy, list_policies, resolve_policy_id
from store.sweeps import get_sweep, resolve_sweep_id, sweep_runs

STRATEGY = "compute_optimal"
# Sampling-run estimators as the runs they stand for: estimator -> (strategy, select)
SAMPLED_ARMS = {"maj": ("self_consistency", None), "bon": ("best_of_n", "naive"), "wbon": ("best_of_n", "weighted")}
DEFAULT_BINS = 4


def sweep_outcomes(store: Store, sweep_id: str, probe: str = PROBE) -> tuple[Outcomes, dict]:
    """Per-problem outcomes of every arm of a sweep and what the policy should remember of it (model,
    verifier, dataset, seed). `probe` = ORACLE bins by the sampling run's pass@1 (gold answers)."""
    sweep = get_sweep(store, sweep_id)
    if sweep is None:
        raise UserError(f"no sweep with id {sweep_id!r} in this database")
    if len(sweep.params.get("seeds") or []) > 1:
        raise UserError(f"sweep {sweep_id[:8]} has several seeds ({','.join(map(str, sweep.params['seeds']))}): "
                        f"a policy's arms are runs, so build it from a sweep of one seed")
    runs = [r for r in sweep_runs(store, sweep_id) if r.strategy != STRATEGY]
    probes = [r for r in runs if r.strategy == PROBE_ARM]
    if not probes:
        raise UserError(f"sweep {sweep_id[:8]} has no cot run: a policy's probe is the greedy chain's verifier score "
                        f"(sweep with cot among --strategies)")
    problem_ids = common_problems(store, [r.id for r in runs])
    if not problem_ids:
        raise UserError(f"sweep {sweep_id[:8]}: no problem is finished in every run yet")
    cot = probes[0]
    cot_samples = run_samples(store, cot.id, problem_ids)
    scores = [s.samples[0].score if s.samples else None for s in cot_samples]
    if probe == PROBE and any(v is None for v in scores):
        raise UserError(f"sweep {sweep_id[:8]}: its cot run has no verifier scores; sweep with --verifier "
                        f"(e.g. prm:lab) so the probe can score the greedy chain")
    sampling = names(kind=SAMPLES)
    arms: list[Arm] = []
    columns: list[tuple[np.ndarray, np.ndarray]] = []
    probe_results = problem_results(store, cot.id, problem_ids)
    probe_tokens = np.array([probe_results[pid].tokens for pid in problem_ids], dtype=float)
    probe_correct = np.array([float(bool(probe_results[pid].correct)) for pid in problem_ids])
    arms.append(Arm(PROBE_ARM, _knobs(cot), "cot (the probe's answer)"))
    columns.append((probe_correct, probe_tokens))
    pass1 = None
    for run in runs:
        if run.strategy == PROBE_ARM:
            continue
        if run.strategy in sampling:
            samples = run_samples(store, run.id, problem_ids)
            n = len(samples[0].samples)
            ks = [k for k in sweep.params.get("budgets", [n]) if k <= n]
            matrices = per_problem_accuracy(samples, ks, estimators=tuple(SAMPLED_ARMS))
            mean_tokens = np.array([np.mean([s.tokens for s in p.samples]) for p in samples], dtype=float)
            for estimator, (strategy, select) in SAMPLED_ARMS.items():
                if estimator not in matrices:
                    continue
                for column, k in enumerate(ks):
                    knobs = {**_knobs(run, strategy), "n": k, **({"select": select} if select else {})}
                    arms.append(Arm(strategy, knobs, _label(strategy, knobs)))
                    columns.append((np.nan_to_num(matrices[estimator][:, column]), k * mean_tokens))
            if pass1 is None:
                pass1 = {s.key: float(np.mean([bool(x.correct) for x in s.samples])) for s in samples}
        else:
            results = problem_results(store, run.id, problem_ids)
            knobs = _knobs(run)
            arms.append(Arm(run.strategy, knobs, _label(run.strategy, knobs)))
            columns.append((np.array([float(bool(results[pid].correct)) for pid in problem_ids]),
                            np.array([results[pid].tokens for pid in problem_ids], dtype=float)))
    if probe == ORACLE:
        if pass1 is None:
            raise UserError(f"sweep {sweep_id[:8]}: the oracle bins by pass@1, which needs a sampling run "
                            f"(best_of_n or self_consistency among --strategies)")
        values = np.array([pass1[str(pid)] for pid in problem_ids])
    else:
        values = np.array(scores, dtype=float)
    order = _arm_order(arms, columns)
    outcomes = Outcomes(keys=[str(pid) for pid in problem_ids], arms=[arms[i] for i in order], probe=values,
                        probe_tokens=probe_tokens, correct=np.stack([columns[i][0] for i in order], axis=1),
                        tokens=np.stack([columns[i][1] for i in order], axis=1))
    meta = {"sweep_id": sweep_id, "model": cot.model_name or cot.model_id, "model_key": cot.params.get("model"),
            "verifier": cot.verifier, "aggregate": cot.aggregate, "dataset": cot.dataset, "seed": cot.seed,
            "n_problems": len(problem_ids)}
    return outcomes, meta


def _arm_order(arms: list[Arm], columns) -> list[int]:
    """Cheapest first (mean tokens), then as the sweep listed them: the documented tie-break."""
    return sorted(range(len(arms)), key=lambda i: (not arms[i].is_probe, float(np.mean(columns[i][1])), i))


def _knobs(run: m.Run, strategy: str | None = None) -> dict:
    """The knobs a run of `strategy` (default: the run's own) takes, as this run stored them."""
    stored = SearchConfig.from_dict(run.params, run.strategy).to_dict()
    return {name: stored[name] for name in lookup(strategy or run.strategy).knob_names if name in stored}


def _label(strategy: str, knobs: dict) -> str:
    select = f" {knobs['select']}" if strategy == "best_of_n" and "select" in knobs else ""
    budget = [f"{name}={knobs[name]}" for name in lookup(strategy).budget if name in knobs]
    return f"{strategy}{select}{' ' + ' '.join(budget) if budget else ''}"


# ---------------------------------------------------------------------------------------------
# Build, find, show


def build_policy(store: Store, sweep_ref: str, name: str = "", n_bins: int = DEFAULT_BINS,
                 oracle: bool = False) -> tuple[str, Policy, float]:
    """Fit and store a policy on a sweep; returns (policy id, policy, seconds it took)."""
    if not 1 <= n_bins <= 20:
        raise UserError(f"--bins must be between 1 and 20 (got {n_bins})")
    sweep_id = resolve_sweep_id(store, sweep_ref)
    started = time.perf_counter()
    outcomes, meta = sweep_outcomes(store, sweep_id, ORACLE if oracle else PROBE)
    policy = fit(outcomes, n_bins=n_bins, probe=ORACLE if oracle else PROBE, meta=meta)
    seconds = time.perf_counter() - started
    label = name or f"{'oracle ' if oracle else ''}policy on {meta['dataset']} ({n_bins} bins)"
    policy_id = create_policy(store, label, sweep_id, policy.to_json(), oracle=oracle)
    return policy_id, policy, seconds


def load_policy(store: Store, ref: str) -> tuple[m.Policy, Policy]:
    row = get_policy(store, resolve_policy_id(store, ref))
    return row, Policy.from_json(row.body)


def policy_summary(row: m.Policy) -> dict:
    policy = Policy.from_json(row.body)
    return {"id": row.id, "name": row.name, "created_at": row.created_at.isoformat(), "sweep_id": row.sweep_id,
            "oracle": row.oracle, "bins": policy.n_bins, "arms": len(policy.arms), "n_problems": policy.n_problems,
            "model": policy.meta.get("model"), "verifier": policy.meta.get("verifier"),
            "dataset": policy.meta.get("dataset")}


def policy_detail(row: m.Policy, budgets: list[float] | None = None) -> dict:
    """A policy with its plan at each budget (default: every plan on its frontier)."""
    policy = Policy.from_json(row.body)
    plans = [policy.plan(b) for b in budgets] if budgets else policy.frontier()
    return {**policy_summary(row), "edges": policy.edges, "shares": policy.shares,
            "plans": [{"budget": p.budget, "expected_accuracy": p.accuracy, "expected_tokens": p.tokens,
                       "within_budget": p.within_budget, "bins": policy.describe(p)} for p in plans]}


def policies(store: Store) -> list[dict]:
    return [policy_summary(row) for row in list_policies(store)]


# ---------------------------------------------------------------------------------------------
# Run one: the plan stored with a compute_optimal run


def attach_plan(store: Store, request) -> None:
    """Resolve `--policy` into the plan a compute_optimal run stores (config.plan), checking that the
    run can use it: a runnable (not oracle) policy, the same model and verifier as its sweep."""
    cfg = request.config
    if not cfg.policy:
        raise UserError("compute_optimal needs --policy ID (make one with `python -m reasoning policy build SWEEP_ID`)")
    row, policy = load_policy(store, cfg.policy)
    if row.oracle:
        raise UserError(f"policy {row.id[:8]} bins by the gold answers (an oracle upper bound): it cannot run; "
                        f"build one without --oracle")
    if policy.meta.get("model_key") and request.model != policy.meta["model_key"]:
        raise UserError(f"policy {row.id[:8]} was fitted on model {policy.meta['model_key']}: run it with "
                        f"--model {policy.meta['model_key']} (got {request.model})")
    if request.verifier in (None, ""):
        request.verifier = policy.meta.get("verifier")
    if request.verifier != policy.meta.get("verifier"):
        raise UserError(f"policy {row.id[:8]} probes with verifier {policy.meta.get('verifier')}: run it with "
                        f"--verifier {policy.meta.get('verifier')} (got {request.verifier})")
    request.config = cfg.replace(policy=row.id, plan=policy.run_plan(float(cfg.budget)))


# ---------------------------------------------------------------------------------------------
# Evaluate on held-out problems


@dataclass
class Comparison:
    """A policy against every fixed arm on a held-out sweep (the same probe, other problems)."""

    policy_points: list[tuple[Point, list[dict]]]  # per budget: the point and which bin got what
    curve: list[Point]  # the policy at every plan of its frontier (its accuracy-vs-tokens curve)
    fixed: list[Point]  # each arm for every question
    best_fixed: list[tuple[Point, Point | None]]  # per policy point: the best fixed arm within its tokens
    reference: Point | None  # weighted best-of-N's most accurate point
    reach_tokens: float | None  # the policy's fewest tokens that reach the reference's accuracy
    sweep_id: str
    oracle: bool


def compare(store: Store, policy_ref: str, sweep_ref: str, budgets: list[float] | None = None,
            n_boot: int = 1000, seed: int = 0) -> Comparison:
    """The policy on another sweep's problems at each budget (default: the fixed arms' mean tokens)."""
    row, policy = load_policy(store, policy_ref)
    sweep_id = resolve_sweep_id(store, sweep_ref)
    outcomes, _ = sweep_outcomes(store, sweep_id, policy.probe)
    fixed = [outcomes.fixed(a, n_boot, seed) for a in range(len(outcomes.arms))]
    if not budgets:
        budgets = sorted({round(p.tokens, 1) for p in fixed})
    points, seen = [], set()
    for budget in budgets:
        try:
            point, plan = policy.evaluate(outcomes, budget, n_boot, seed,
                                          label=f"{'oracle ' if row.oracle else ''}policy @ {budget:g}")
        except ValueError as exc:
            raise UserError(f"sweep {sweep_id[:8]} cannot test policy {row.id[:8]}: {exc}") from None
        if tuple(plan.arms) in seen:  # a budget whose plan an earlier budget already has: one row is enough
            continue
        seen.add(tuple(plan.arms))
        points.append((point, policy.describe(plan)))
    best = []
    for point, _ in points:
        within = [f for f in fixed if f.tokens <= point.tokens + 1e-9]
        best.append((point, max(within, key=lambda f: (f.accuracy, -f.tokens)) if within else None))
    weighted = [f for f, arm in zip(fixed, outcomes.arms) if arm.strategy == "best_of_n" and arm.knobs.get("select") == "weighted"]
    reference = max(weighted, key=lambda f: (f.accuracy, -f.tokens)) if weighted else None
    frontier = policy.frontier()
    if len(frontier) > 80:  # thin a long frontier evenly: the curve needs its shape, not every plan
        frontier = [frontier[i] for i in sorted(set(np.linspace(0, len(frontier) - 1, 80).round().astype(int)))]
    curve = [policy.evaluate_plan(outcomes, plan, 200, seed) for plan in frontier]
    reach = tokens_to_reach(curve, reference.accuracy) if reference else None
    return Comparison(points, curve, fixed, best, reference, reach, sweep_id, row.oracle)
