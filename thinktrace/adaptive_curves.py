"""Adaptive runs on the budget curves: one point at the budget they chose to spend.

An adaptive run (adaptive_consistency, deepconf_online) spends a different number of samples and
tokens on every problem, so it is not a curve over k but one point per facet group: x = the MEAN
samples (Result.meta["samples"]) and tokens (Result.tokens, all generated tokens, cut traces included)
per problem, with their standard deviations over problems as the spread (`Spread`: a line in
CurveSet.notes, and curves.load_spreads for error bars); y = the accuracy of its chosen answers with a
bootstrap CI over problems. "Same accuracy for fewer tokens" then reads directly against fixed-N
self-consistency's maj@k curve. thinktrace/curves.py calls this module, never the other way round: what a
point needs from there (its type, the FLOPs rule) is passed in.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from reasoning.budget import BudgetPoint, flops
from reasoning.estimators import bootstrap_ci
from store import models as m
from store.curves import ResultRow


@dataclass(frozen=True)
class Spend:
    """What an adaptive run spent on one problem, and how it ended."""

    correct: bool | None
    tokens: int
    samples: int
    stop_reason: str
    seconds: float = 0.0
    prompt_tokens: int | None = None


def adaptive_results(run: m.Run, results: dict[int, ResultRow]) -> dict[int, Spend]:
    """problem id -> what the run spent on it (a result without `samples` spent the cap, n)."""
    cap = int(run.params.get("n") or 1)
    return {pid: Spend(r.correct, r.tokens, int(r.meta.get("samples", cap)), _reason(r.meta), r.wall_seconds,
                       r.meta.get("prompt_tokens"))
            for pid, r in results.items()}


def _reason(meta: dict) -> str:
    if "stop_reason" in meta:
        return meta["stop_reason"]
    return "some cut" if meta.get("cut") else "none cut"  # deepconf_online: traces stopped early or not


@dataclass(frozen=True)
class Spread:
    """How much an adaptive run spent per problem within one facet group: the x error bars of its
    point, and why it stopped (stop reason -> problems)."""

    run_id: str
    curve: str
    group: object
    cap: int | None
    samples_mean: float
    samples_std: float
    tokens_mean: float
    tokens_std: float
    stop_reasons: dict[str, int]

    def note(self) -> str:
        where = "" if self.group is None else f" [{self.group}]"
        reasons = ", ".join(f"{r} {c}" for r, c in sorted(self.stop_reasons.items()))
        return (f"{self.curve}{where}: {self.samples_mean:.2f} ± {self.samples_std:.2f} samples (cap {self.cap}), "
                f"{self.tokens_mean:.0f} ± {self.tokens_std:.0f} tokens per problem; stopped: {reasons}")


def adaptive_points(run: m.Run, spends: dict[int, Spend], group_of, suffix: str, n_boot: int,
                    seed: int) -> tuple[list[BudgetPoint], list[Spread]]:
    """One BudgetPoint per facet group at the run's mean spend (k = mean samples, rounded to 0.01),
    with its Spread (standard deviations over problems)."""
    by_group = defaultdict(list)
    for pid, spend in spends.items():
        if spend.correct is not None:
            by_group[group_of[str(pid)]].append(spend)
    label = run.strategy + (" (upper bound)" if run.evaluation_only else "") + suffix
    points, spreads = [], []
    for group in sorted(by_group, key=lambda g: (g is None, g)):
        spent = by_group[group]
        values = np.array([float(s.correct) for s in spent])
        samples = np.array([s.samples for s in spent], float)
        tokens = np.array([s.tokens for s in spent], float)
        low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        prompts = [s.prompt_tokens for s in spent]
        total, verifier = flops(run.model_params, float(tokens.mean()), run.verifier, run.verifier_params,
                                float(tokens.mean()))
        points.append(BudgetPoint(
            curve=label, strategy=run.strategy, estimator="adaptive", k=round(float(samples.mean()), 2),
            tokens_per_problem=float(tokens.mean()), flops=total, verifier_flops=verifier,
            accuracy=float(values.mean()), ci_low=low, ci_high=high, group=group, n_problems=len(values),
            upper_bound=run.evaluation_only, model=run.model_name or run.model_id, verifier=run.verifier,
            dataset=run.dataset, seed=run.seed, run_id=run.id,
            seconds_per_problem=float(np.mean([s.seconds for s in spent])),
            prompt_tokens_per_problem=None if None in prompts else float(np.mean(prompts)),
        ))
        spreads.append(Spread(run.id, label, group, run.params.get("n"), float(samples.mean()), float(samples.std()),
                              float(tokens.mean()), float(tokens.std()),
                              dict(Counter(s.stop_reason for s in spent))))
    return points, spreads
