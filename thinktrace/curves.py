"""Accuracy-vs-budget curves from stored runs: the data behind `python -m reasoning curves` and the
Budget page (pure logic, no Streamlit).

Where the points come from:
  - A sampling run (self_consistency / best_of_n with N chains per problem) gives, for every k, the
    estimators of reasoning.estimators over its N terminal leaves: maj@k (self-consistency), naive
    and weighted best-of-k (when the chains carry verifier scores) and pass@k, which is oracle
    coverage: an upper bound, never an achievable accuracy.
  - Any other run (beam_search, dvts, mcts, cot, ...) is one point at k = its `n`: the accuracy of
    the answers the strategy chose ("direct"), with a bootstrap CI over problems.
  - An adaptive run (adaptive_consistency, deepconf_online) is one point at the mean samples and
    tokens it spent per problem, with their spread (thinktrace/adaptive_curves.py).
  - Points use only the problems that every selected run has finished, so all curves average the
    same problems; runs that are not done are reported in `CurveSet.notes`.
  - Runs that differ only in their sampling seed (a sweep's or `run --seeds`' runs, or any chosen
    runs alike but for the seed) are one curve: each point the mean over seeds and problems, its CI
    a bootstrap over both (reasoning.estimators.seed_curve_points). Adaptive runs stay one curve each.
Cost axes: k (samples or beams), generated tokens per problem, wall-clock seconds per problem (a
k-subset of a sampling run: k/N of its seconds), prompt (prefill) tokens per problem (each distinct
prompt of a model call once, as recorded by the runner; a k-subset shares its run's prompt) and
FLOPs = 2 x params x tokens (the usual forward-pass estimate) for the policy plus 2 x verifier
params x scored tokens for the verifier, kept in its own column. Scored tokens are approximated by the generated tokens of the
paths scored; self_eval re-reads each path prefix per step, so its share is a lower bound there.
self_eval's verifier is the policy model itself, so it counts the policy's parameters; the oracle
counts none.
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from thinktrace.adaptive_curves import Spread, adaptive_points, adaptive_results
from reasoning.budget import ESTIMATOR_INFO, BudgetPoint, flops
from reasoning.errors import UserError
from reasoning.strategies import SAMPLES, lookup, names
from reasoning.estimators import default_ks, pass1_difficulty_bins, seed_bootstrap_ci, seed_curve_points
from store import Store
from store import models as m
from store.curves import common_problems, problem_results, problems_by_id, run_samples
from store.liveness import effective_status
from store.runs import get_run, get_runs
from store.sweeps import get_sweep, resolve_ref, sweep_runs

FACETS = (None, "difficulty", "pass1")

@dataclass
class CurveSet:
    """Points plus what a reader must know to trust them."""

    points: list[BudgetPoint]
    title: str
    source: str  # "sweep <id>" or "runs <id>, <id>"
    run_ids: list[str]
    models: list[str]
    verifiers: list[str]
    datasets: list[str]
    seeds: list[int]
    n_problems: int
    by: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def estimators(self) -> list[str]:
        return sorted({p.estimator for p in self.points}, key=list(ESTIMATOR_INFO).index)

    @property
    def seed_averaged(self) -> bool:
        return any(p.n_seeds > 1 for p in self.points)

    def caption(self) -> str:
        """One line saying what the curves are: model, verifier, problems, seeds, estimators."""
        verifiers = ", ".join(self.verifiers) or "none"
        over = "problems and seeds (curves averaged over seeds)" if self.seed_averaged else "problems"
        return (f"model: {', '.join(self.models)} · verifier: {verifiers} · problems: {self.n_problems} "
                f"({', '.join(self.datasets)}) · seed: {', '.join(map(str, self.seeds))} · "
                f"estimators: {', '.join(self.estimators)} · 95% bootstrap CIs over {over}")

    def legend(self) -> list[str]:
        """What each estimator in the set means, one line each."""
        lines = [f"{e}: {ESTIMATOR_INFO[e][2]}" for e in self.estimators]
        if any(p.upper_bound and p.estimator != "pass" for p in self.points):
            lines.append("curves marked (upper bound) used a verifier that saw the gold answers")
        return lines


# ---------------------------------------------------------------------------------------------
# Loading


def points_csv(points: Sequence[BudgetPoint]) -> str:
    """The points as CSV, one row each, columns as in `BudgetPoint` (for spreadsheets)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(BudgetPoint)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(p.to_json() for p in points)
    return out.getvalue()


def load_curves(store: Store, ref: str | None = None, *, sweep_id: str | None = None,
                run_ids: Sequence[str] | None = None, by: str | None = None, n_bins: int = 5,
                n_draws: int = 200, n_boot: int = 1000, seed: int = 0) -> CurveSet:
    """Curve points of a sweep, a run or several runs (`ref` is an id or prefix of either).
    `by` facets them: None, "difficulty" (the problem set's levels) or "pass1" (bins of the
    model's own pass@1 from the sampling run, Snell et al. 2024)."""
    if by not in FACETS:
        raise UserError(f"unknown facet {by!r}: choose difficulty or pass1")
    if ref is not None:
        kind, found = resolve_ref(store, ref)
        sweep_id, run_ids = (found, None) if kind == "sweep" else (None, [found])
    runs, ks, title, source = _select_runs(store, sweep_id, run_ids)
    notes = [f"run {r.id[:8]} ({r.strategy} n={r.params.get('n')}) is {effective_status(r)}" for r in runs
             if effective_status(r) != m.DONE]
    sampling, adaptive_ones = names(kind=SAMPLES), names(adaptive=True)  # as the strategies declare
    problem_ids = common_problems(store, [r.id for r in runs])
    if not problem_ids:
        raise UserError(f"{source}: no problem is finished in every run yet")
    problems = problems_by_id(store, problem_ids)
    samples = {r.id: run_samples(store, r.id, problem_ids) for r in runs if r.strategy in sampling}
    finished = {r.id: problem_results(store, r.id, problem_ids) for r in runs}
    adaptive = {r.id: adaptive_results(r, finished[r.id]) for r in runs if r.strategy in adaptive_ones}
    if notes:
        notes.append(f"the curves use the {len(problem_ids)} problems every run has finished")
    group_of = _groups(by, problems, samples, n_bins)
    seed_groups = _seed_groups(runs, adaptive_ones)
    labels = _labels(seed_groups)
    points: list[BudgetPoint] = []
    for group in seed_groups:
        run, label = group[0], labels[group[0].id]
        if run.id in samples:
            points += _sampling_points(group, [samples[r.id] for r in group], [finished[r.id] for r in group], ks,
                                       group_of, label, n_draws, n_boot, seed)
        elif run.id in adaptive:
            found, spreads = adaptive_points(run, adaptive[run.id], group_of, label, n_boot, seed)
            points, notes = points + found, notes + [s.note() for s in spreads]
        else:
            points += _direct_points(group, [finished[r.id] for r in group], group_of, label, n_boot, seed)
    return CurveSet(
        points=points, title=title, source=source, run_ids=[r.id for r in runs],
        models=sorted({r.model_name or r.model_id for r in runs}),
        verifiers=sorted({r.verifier for r in runs if r.verifier}),
        datasets=sorted({r.dataset for r in runs}), seeds=sorted({r.seed for r in runs}),
        n_problems=len(problem_ids), by=by, notes=notes,
    )


def load_spreads(store: Store, run_id: str) -> list[Spread]:
    """The spend of one adaptive run over all its finished problems (for error bars on a page)."""
    run = get_run(store, run_id)
    if run is None:
        raise UserError(f"no run with id {run_id!r} in this database")
    spends = adaptive_results(run, problem_results(store, run_id))
    return adaptive_points(run, spends, {str(p): None for p in spends}, "", 1, 0)[1]


def _select_runs(store: Store, sweep_id, run_ids):
    if sweep_id is not None:
        sweep = get_sweep(store, sweep_id)
        if sweep is None:
            raise UserError(f"no sweep with id {sweep_id!r} in this database")
        runs = sweep_runs(store, sweep_id)
        if not runs:
            raise UserError(f"sweep {sweep_id} has no runs yet: `python -m reasoning sweep --resume {sweep_id}`")
        budgets = None if sweep.params.get("repeat") else sweep.params.get("budgets")  # `run --seeds`: every k
        return runs, budgets, sweep.name or f"sweep {sweep_id[:8]}", f"sweep {sweep_id}"
    if not run_ids:
        raise UserError("no runs selected")
    runs = get_runs(store, list(run_ids))
    missing = set(run_ids) - {r.id for r in runs}
    if missing:
        raise UserError(f"no run with id {sorted(missing)[0]!r} in this database")
    runs = sorted(runs, key=lambda r: list(run_ids).index(r.id))
    title = runs[0].name if len(runs) == 1 else f"{len(runs)} runs"
    return runs, None, title, "runs " + ", ".join(r.id for r in runs)


def _groups(by, problems, samples, n_bins) -> dict[str, Hashable | None]:
    """Problem id (as str) -> facet value."""
    if by is None:
        return {str(pid): None for pid in problems}
    if by == "difficulty":
        return {str(pid): p.difficulty for pid, p in problems.items()}
    if not samples:
        raise UserError("pass@1 bins need a sampling run (self_consistency or best_of_n) among the runs")
    widest = max(samples.values(), key=lambda run: len(run[0].samples) if run else 0)
    bins = pass1_difficulty_bins(widest, n_bins=n_bins)
    return {str(pid): bins.get(str(pid)) for pid in problems}


def _seed_groups(runs: list[m.Run], adaptive: Sequence[str] = ()) -> list[list[m.Run]]:
    """The runs as curves: runs alike in everything (strategy, model, verifier, dataset, every stored
    setting, their problems' seed) but their sampling seed are one group, averaged into one curve; a
    run alone, an adaptive run, or runs that share a seed (repeats) are groups of one. In the order of
    each group's first run."""
    groups: dict[tuple, list[m.Run]] = {}
    for run in runs:
        settings = json.dumps(run.params, sort_keys=True, default=str)
        key = (run.strategy, run.model_id, run.model_name, run.verifier, run.dataset, settings)
        groups.setdefault(key if run.strategy not in adaptive else (run.id,), []).append(run)
    out: list[list[m.Run]] = []
    for members in groups.values():
        distinct = len({r.seed for r in members}) == len(members)
        out += [members] if distinct else [[r] for r in members]
    return out


def _seeds(group: list[m.Run]) -> str:
    return f"seed {group[0].seed}" if len(group) == 1 else f"seeds {','.join(str(r.seed) for r in group)}"


def _labels(groups: list[list[m.Run]]) -> dict[str, str]:
    """Suffix for curve labels (keyed by each group's first run) when the groups differ in model,
    verifier, dataset or seeds (so two strategies' curves never merge silently), else nothing."""
    configs = {(g[0].model_name or g[0].model_id, g[0].verifier, g[0].dataset, _seeds(g)) for g in groups}
    shared = names(kind=SAMPLES)
    sampling = [g for g in groups if g[0].strategy in shared]
    labels = {}
    for g in groups:
        r, parts = g[0], []
        if len(configs) > 1:
            parts.append(f"{r.model_name or r.model_id}, {r.verifier or 'no verifier'}, {r.dataset}, {_seeds(g)}")
        if r.strategy in shared and len(sampling) > 1:
            parts.append(f"run {r.id[:8]}")
        labels[r.id] = f" [{'; '.join(parts)}]" if parts else ""
    return labels


def _flops(run: m.Run, policy_tokens: float, scored_tokens: float, train_tokens: float = 0.0
           ) -> tuple[float | None, float | None]:
    """(total FLOPs, verifier FLOPs) per problem of a stored run (reasoning.budget.flops)."""
    return flops(run.model_params, policy_tokens, run.verifier, run.verifier_params, scored_tokens, train_tokens)


def _sampling_points(group, problems, results, ks, group_of, suffix, n_draws, n_boot, seed) -> list[BudgetPoint]:
    """The estimators' points of one sampling run, or of its seeds' runs averaged."""
    run = group[0]
    n = len(problems[0][0].samples)
    ks = default_ks(n) if ks is None else [k for k in ks if k <= n]
    try:
        points = seed_curve_points(problems, ks=ks, n_draws=n_draws, n_boot=n_boot, seed=seed,
                                   by=lambda p: group_of[p.key])
    except ValueError as exc:
        raise UserError(f"run {run.id[:8]}: {exc}") from None
    return run_points(run, points, suffix, _costs(results, group_of), n_runs=len(group))


def _costs(results: list[dict], group_of) -> dict:
    """Facet group -> (wall seconds, prompt tokens, tokens trained on at test time) per problem, mean
    over problems and runs (prompt tokens None where a problem has none recorded)."""
    by_group = defaultdict(list)
    for rows in results:
        for pid, row in rows.items():
            by_group[group_of[str(pid)]].append(row)
    costs = {}
    for group, rows in by_group.items():
        prompts = [row.meta.get("prompt_tokens") for row in rows]
        costs[group] = (float(np.mean([row.wall_seconds for row in rows])),
                        None if any(t is None for t in prompts) else float(np.mean(prompts)),
                        float(np.mean([row.meta.get("train_tokens") or 0 for row in rows])))
    return costs


def run_points(run: m.Run, points: Sequence[BudgetPoint], suffix: str = "", costs: dict | None = None,
               n_runs: int = 1) -> list[BudgetPoint]:
    """The estimators' points of one sampling run (or of `n_runs` runs of its seeds, averaged) with
    what the run adds: the cost in FLOPs (the verifier's share only where an estimator reads its
    scores), seconds and prompt tokens (`costs`: facet group -> their means per problem of the whole
    run; a k-subset takes k/N of the seconds and the run's one prompt), the model, dataset, seed (none
    for several) and run, and "(upper bound)" on a verifier that saw the gold answers. `suffix` tells
    runs apart in a legend."""
    n = int(run.params.get("n") or 1)
    out = []
    trains = run.strategy in names() and lookup(run.strategy).trains
    for p in points:
        seconds, prompt_tokens, train_tokens = (costs or {}).get(p.group, (None, None, 0.0))
        uses_verifier = p.estimator in ("bon", "wbon")
        oracle = uses_verifier and run.evaluation_only
        # test-time training is paid once per problem, whatever k of its predictions are voted on
        total, verifier = _flops(run, p.tokens_per_problem, p.tokens_per_problem if uses_verifier else 0.0,
                                 train_tokens)
        if trains and p.estimator == "maj":  # the vote over a ttt run's augmented predictions
            p = replace(p, curve=f"{run.strategy} ({run.params.get('ttt_steps', '?')} steps): vote of k augmented "
                                 "predictions", strategy=run.strategy)
        if not uses_verifier and verifier is not None:
            verifier = 0.0
        out.append(replace(
            p, curve=p.curve + (" (upper bound)" if oracle else "") + suffix, flops=total, verifier_flops=verifier,
            upper_bound=p.upper_bound or oracle, model=run.model_name or run.model_id,
            verifier=run.verifier if uses_verifier else None, dataset=run.dataset,
            seed=run.seed if n_runs == 1 else None, run_id=run.id,
            seconds_per_problem=None if seconds is None else seconds * p.k / n, prompt_tokens_per_problem=prompt_tokens,
        ))
    return out


def _direct_points(group, results, group_of, suffix, n_boot, seed) -> list[BudgetPoint]:
    """One point per facet group: the run's own accuracy at its budget, or its seeds' runs' mean (the
    problems every run graded; CI over problems and seeds)."""
    run = group[0]
    graded = [pid for pid, row in results[0].items() if all(rows[pid].correct is not None for rows in results)]
    by_group = defaultdict(list)
    for pid in graded:
        by_group[group_of[str(pid)]].append(pid)
    out = []
    label = run.strategy + (" (upper bound)" if run.evaluation_only else "") + suffix
    for facet in sorted(by_group, key=lambda g: (g is None, g)):
        rows = [[rows[pid] for pid in by_group[facet]] for rows in results]  # [run][problem]
        values = np.array([[float(row.correct) for row in run_rows] for run_rows in rows])
        every = [row for run_rows in rows for row in run_rows]
        tokens = float(np.mean([row.tokens for row in every]))
        thinks = [row.meta.get("think_tokens") for row in every]
        think = float(np.mean(thinks)) if all(k is not None for k in thinks) else None
        prompts = [row.meta.get("prompt_tokens") for row in every]
        low, high = seed_bootstrap_ci(values, n_boot=n_boot, seed=seed)
        total, verifier = _flops(run, tokens, tokens, float(np.mean([row.meta.get("train_tokens") or 0 for row in every])))
        out.append(BudgetPoint(
            curve=label, strategy=run.strategy, estimator="direct", k=int(run.params.get("n") or 1),
            tokens_per_problem=tokens, flops=total, verifier_flops=verifier, accuracy=float(values.mean()),
            ci_low=low, ci_high=high, group=facet, n_problems=values.shape[1], upper_bound=run.evaluation_only,
            model=run.model_name or run.model_id, verifier=run.verifier, dataset=run.dataset,
            seed=run.seed if len(group) == 1 else None, run_id=run.id, think_tokens=think,
            seconds_per_problem=float(np.mean([row.wall_seconds for row in every])),
            prompt_tokens_per_problem=None if any(t is None for t in prompts) else float(np.mean(prompts)),
            n_seeds=len(group),
        ))
    return out
