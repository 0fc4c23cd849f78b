"""What test-time training buys, from stored ttt runs on the same problems (the Budget page's
"Test-time training" section):

- accuracy against TTT steps: the runs grouped by their `ttt_steps` (0 is the in-context baseline),
  one curve per number of predictions voted over (n = 1: one prediction on the task as given);
- accuracy against augmented predictions: for each run with n > 1, the vote over its first k augmented
  predictions, k = 1..n, recomputed from the stored prediction nodes in the order they were made
  (identity first), with the ttt strategy's rule: most votes, ties to the earlier prediction. At k = n
  it is the run's own answer.

Both with 95% bootstrap intervals over problems (reasoning.estimators.bootstrap_ci)."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from reasoning.errors import UserError
from reasoning.estimators import bootstrap_ci
from reasoning.fewshot import rank
from store import Store
from store.ttt import predictions, shared_outcomes, ttt_runs


@dataclass(frozen=True)
class TTTPoint:
    curve: str
    x: int  # TTT steps, or predictions voted over
    accuracy: float
    ci_low: float
    ci_high: float
    n_problems: int
    runs: tuple[str, ...]


@dataclass
class TTTCurves:
    run_ids: list[str]
    n_problems: int
    by_steps: list[TTTPoint] = field(default_factory=list)
    by_predictions: list[TTTPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def vote_of_first(preds: Sequence[tuple[str | None, bool | None]], k: int) -> bool:
    """Is the vote over the first k predictions (answer, right?) right? The ttt strategy's vote
    (reasoning.fewshot.rank: most votes, ties to the earlier prediction); no answer at all is wrong."""
    first = preds[:k]
    ranked = rank([a for a, _ in first])
    return bool(ranked) and bool(next(c for a, c in first if a == ranked[0]))


def _point(curve: str, x: int, values: Sequence[float], runs: Sequence[str], n_boot: int, seed: int) -> TTTPoint:
    low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
    return TTTPoint(curve, x, float(np.mean(values)), low, high, len(values), tuple(runs))


def load_ttt(store: Store, run_ids: Sequence[str], n_boot: int = 1000, seed: int = 0) -> TTTCurves | None:
    """Both views of the ttt runs among `run_ids` (None when there are none), over the problems every
    one of them finished and graded."""
    runs = ttt_runs(store, run_ids)
    if not runs:
        return None
    outcomes = shared_outcomes(store, [r.id for r in runs])
    problems = sorted(pid for pid in outcomes[runs[0].id] if all(o[pid] is not None for o in outcomes.values()))
    if not problems:
        raise UserError("these test-time training runs share no graded problem: compare ttt runs on the same "
                        "tasks (same dataset, limit and seed)")
    curves = TTTCurves([r.id for r in runs], len(problems))
    models = {r.model_id for r in runs}

    def name(run) -> str:
        return (f"{run.model_name or run.model_id} · " if len(models) > 1 else "")

    # Accuracy against TTT steps: one curve per (model, n), runs of the same steps pooled per problem.
    groups: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        params = run.params or {}
        groups[(run.model_id, int(params.get("n", 1)))][int(params.get("ttt_steps", 0))].append(run)
    for (model, n), by_steps in sorted(groups.items(), key=lambda kv: kv[0][1]):
        label = name(by_steps[min(by_steps)][0]) + ("one prediction" if n == 1 else f"vote over {n} augmented predictions")
        for steps, group in sorted(by_steps.items()):
            values = [np.mean([bool(outcomes[r.id][pid]) for r in group]) for pid in problems]
            curves.by_steps.append(_point(label, steps, values, [r.id for r in group], n_boot, seed))
    if all(len(by_steps) < 2 for by_steps in groups.values()):
        steps = sorted({int((r.params or {}).get("ttt_steps", 0)) for r in runs})
        curves.notes.append(f"All these runs trained for {', '.join(map(str, steps))} steps: add ttt runs with other "
                            "--ttt-steps (0 is the in-context baseline) for a curve against steps.")

    # Accuracy against augmented predictions: the vote over the first k of each run's predictions.
    def label_of(run) -> str:
        steps = int((run.params or {}).get("ttt_steps", 0))
        return name(run) + (f"{steps} TTT steps" if steps else "in context (0 steps)")

    voting = [r for r in runs if int((r.params or {}).get("n", 1)) > 1]  # one prediction: no vote to recount
    repeated = Counter(label_of(r) for r in voting)
    for run in voting:
        label = label_of(run) + (f" · {run.id[:8]}" if repeated[label_of(run)] > 1 else "")
        preds = predictions(store, run.id, problems)
        n = max((len(p) for p in preds.values()), default=0)
        for k in range(1, n + 1):
            values = [float(vote_of_first(preds.get(pid, []), k)) for pid in problems]
            curves.by_predictions.append(_point(label, k, values, [run.id], n_boot, seed))
    return curves
