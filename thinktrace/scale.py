"""Scale what? from stored runs: a smaller model's sweep against a larger model's greedy run, per
difficulty, at equal total FLOPs for a range of query loads (the exchange itself: reasoning/scale.py).

The smaller model's points are every achievable point of its sweep (or runs), by difficulty, with
FLOPs per question; the larger model's greedy point is its cot run's, by difficulty. Pre-training
compute comes from the models' own files (the lab ladder: reasoning.lab.ladder()); a model without
one cannot be placed on the axis, and says so. Every point names its run (BudgetPoint.run_id).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reasoning.errors import UserError
from reasoning.scale import RATIOS, Exchange, Model, exchange, ladder_model
from store import Store
from thinktrace.curves import CurveSet, load_curves

GREEDY = "cot"


@dataclass
class ScaleWhat:
    small: Model
    large: Model
    exchanges: list[Exchange]
    small_curves: CurveSet
    large_curves: CurveSet
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"small": vars(self.small), "large": vars(self.large),
                "points": [{"group": e.group, "ratio": e.ratio, "queries": e.queries, "allowance_flops": e.allowance,
                            "gain_points": e.gain, "significant": e.significant,
                            "small": e.small.to_json() if e.small else None, "large": e.large.to_json()}
                           for e in self.exchanges],
                "notes": self.notes}


def _model_key(curves: CurveSet, store: Store) -> str:
    from store.runs import get_runs

    keys = {run.params.get("model") or run.model_id for run in get_runs(store, curves.run_ids)}
    if len(keys) != 1:
        raise UserError(f"{curves.source} mixes models ({', '.join(sorted(map(str, keys)))}): choose runs of one model")
    return keys.pop()


def scale_what(store: Store, small_ref: str, large_ref: str, ratios: Sequence[float] = RATIOS) -> ScaleWhat:
    """The smaller model's sweep (`small_ref`: sweep or run id/prefix) against the larger model's greedy
    (cot) run among `large_ref`'s runs, by difficulty."""
    small_curves = load_curves(store, small_ref, by="difficulty")
    large_curves = load_curves(store, large_ref, by="difficulty")
    small, large = ladder_model(_model_key(small_curves, store)), ladder_model(_model_key(large_curves, store))
    if small.pretrain_flops >= large.pretrain_flops:
        small, large, small_curves, large_curves = large, small, large_curves, small_curves
    if small.name == large.name:
        raise UserError(f"both sides are model {small.name}: scale-what compares a smaller model with a larger one")
    greedy = [p for p in large_curves.points if p.strategy == GREEDY]
    if not greedy:
        raise UserError(f"{large_curves.source} ({large.name}) has no cot run: the larger model's side is its greedy "
                        f"answer (sweep with cot among --strategies)")
    if any(p.flops is None for p in small_curves.points + greedy):
        raise UserError("a run's model size is unknown, so its FLOPs are too: scale-what needs FLOPs on both sides")
    notes = small_curves.notes + large_curves.notes
    if set(small_curves.datasets) != set(large_curves.datasets):
        notes.append(f"the two sides ran different problem sets ({', '.join(small_curves.datasets)} vs "
                     f"{', '.join(large_curves.datasets)}): levels are compared, not the same questions")
    exchanges = exchange(small_curves.points, greedy, small, large, ratios)
    capped = sorted({e.ratio for e in exchanges if e.small is not None and e.allowance > 2 * max(
        p.flops for p in small_curves.points if p.group == e.group and not p.upper_bound and p.flops is not None)})
    if capped:
        notes.append(f"at R <= {max(capped):g} the smaller model could afford more than twice its sweep's dearest point: "
                     f"those cells are capped by the sweep's largest budget (a sweep with larger N could change them)")
    return ScaleWhat(small, large, exchanges, small_curves, large_curves, notes)
