"""Scale what? Pre-training against test-time compute at equal total FLOPs (Snell et al. 2024, Fig. 9):
a smaller model that searches against a larger model that answers once.

Every model costs its pre-training once (P = 6 x N x D) and inference per question (2 x N per token,
plus the verifier's 2 x N_v per scored token). For an expected load of Q questions the larger model
answering greedily spends P_L + Q x f_L in all, f_L its FLOPs per question. The smaller model gets
exactly that: (P_L - P_S) / Q + f_L per question, spent on the best test-time strategy its sweep
measured within that allowance. Snell's x axis is the ratio R of inference tokens to pre-training
tokens, R = Q x t_L / D_L (t_L the larger model's tokens per question): a small R (few questions)
leaves the smaller model the whole pre-training difference to spend at test time; a large R leaves it
the larger model's own per-question cost. Per difficulty, y is the smaller model's accuracy minus
the larger one's: above 0, test-time compute wins at that load; below, pre-training does.

Pure: the application (thinktrace/scale.py) reads the runs and the models' pre-training FLOPs.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from reasoning.budget import BudgetPoint
from reasoning.errors import UserError

RATIOS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # inference / pre-training tokens


@dataclass(frozen=True)
class Model:
    """What the exchange needs of a model: its name and pre-training compute."""

    name: str
    params: float  # N, as its FLOPs per token count it (2 x N)
    train_tokens: float  # D
    pretrain_flops: float  # 6 x N x D, as recorded with the model


@dataclass(frozen=True)
class Exchange:
    group: Hashable | None  # difficulty
    ratio: float  # R = inference tokens / pre-training tokens (the larger model's)
    queries: float  # Q that R means
    allowance: float  # FLOPs per question the smaller model may spend
    small: BudgetPoint | None  # its most accurate point within the allowance (None: none fits)
    large: BudgetPoint  # the larger model's greedy point

    @property
    def gain(self) -> float | None:
        """Smaller model's accuracy minus the larger's, in points (None when nothing fits)."""
        return None if self.small is None else 100.0 * (self.small.accuracy - self.large.accuracy)

    @property
    def significant(self) -> bool:
        """The two 95% intervals do not overlap (a conservative reading)."""
        return self.small is not None and (self.small.ci_low > self.large.ci_high or self.small.ci_high < self.large.ci_low)

    def sentence(self) -> str:
        where = f"difficulty {self.group}" if self.group is not None else "all questions"
        if self.small is None:
            return f"{where}, R={self.ratio:g}: no test-time strategy of the smaller model fits its allowance"
        winner = "test-time compute (smaller model)" if self.gain > 0 else "pre-training (larger model)" if self.gain < 0 else "neither"
        return (f"{where}, R={self.ratio:g}: {self.small.curve} k={self.small.k} {100 * self.small.accuracy:.1f}% vs "
                f"greedy {100 * self.large.accuracy:.1f}% -> {winner} by {abs(self.gain):.1f} points")


def ladder_model(key: str) -> Model:
    """A lab ladder model's pre-training compute as recorded in its files (reasoning.lab.ladder())."""
    from reasoning.lab import ladder

    rows = ladder()
    for row in rows:
        if row["model"] == key:
            return Model(row["model"], float(row["params"]), float(row["train_tokens"]), float(row["pretrain_flops"]))
    raise UserError(f"pre-training compute of model {key!r} is not recorded: scale-what compares models of the lab "
                    f"ladder ({', '.join(row['model'] for row in rows)})")


def exchange(small_points: Sequence[BudgetPoint], large_greedy: Sequence[BudgetPoint], small: Model, large: Model,
             ratios: Sequence[float] = RATIOS) -> list[Exchange]:
    """Per difficulty group and ratio R, the smaller model's best FLOPs-matched point against the larger
    model's greedy point. `small_points` are the smaller model's achievable points (upper bounds are
    left out) with FLOPs per question; `large_greedy` one greedy point per group with FLOPs."""
    if large.pretrain_flops <= small.pretrain_flops:
        raise ValueError(f"{large.name} must cost more to pre-train than {small.name}")
    achievable = [p for p in small_points if not p.upper_bound and p.flops is not None]
    out = []
    for greedy in sorted(large_greedy, key=lambda p: (p.group is None, p.group)):
        if greedy.flops is None:
            raise ValueError(f"the larger model's FLOPs per question are unknown ({greedy.curve})")
        mine = [p for p in achievable if p.group == greedy.group]
        for ratio in ratios:
            queries = ratio * large.train_tokens / greedy.tokens_per_problem
            allowance = (large.pretrain_flops - small.pretrain_flops) / queries + greedy.flops
            within = [p for p in mine if p.flops <= allowance]
            best = max(within, key=lambda p: (p.accuracy, -p.flops)) if within else None
            out.append(Exchange(greedy.group, ratio, queries, allowance, best, greedy))
    return out
