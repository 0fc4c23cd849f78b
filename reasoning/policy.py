"""Compute-optimal policies (Snell et al. 2024): per question, the strategy and budget that a sweep
measured best for the question's predicted difficulty, at a mean token budget.

- **Probe.** What the policy can afford to know about a question before it chooses: the greedy
  chain's verifier score (a cot run scored by the sweep's verifier; its tokens count). A low score
  predicts a hard question, Snell's "model-predicted difficulty". The gold answer is never used.
  An *oracle* policy bins by the model's true pass@1 instead (it reads the gold answers): an upper
  bound for what a better probe could buy, never a policy one can run.
- **Bins.** Quantiles of the probe over the sweep's problems, bin 1 the easiest. A question is binned
  by the stored edges, so the same rule applies at run time.
- **Arms.** Every (strategy, knobs) the sweep measured: each budget of each strategy, the sampling
  run's estimators as the strategies they stand for (maj@k = self_consistency, bon = best_of_n naive,
  wbon = best_of_n weighted), and the probe's own answer (cot), which costs nothing more.
- **Plan.** For a mean budget B (tokens per question, the probe's included), one arm per bin that
  maximises the expected accuracy (bins weighted by their share of questions) with mean tokens <= B:
  a multiple-choice knapsack, solved exactly by merging Pareto fronts bin by bin. So compute moves
  to the bins where it pays. Ties go to the cheaper plan, then to the earlier arm (arms are listed
  cheapest first, then in the sweep's order). A budget below the probe alone gives the cheapest plan,
  marked `within_budget=False`.

Pure: thinktrace/policy.py reads the sweep and stores policies; the `compute_optimal` strategy runs one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from reasoning.estimators import bootstrap_ci

PROBE = "verifier_score"  # probe kinds: the greedy chain's verifier score, or the oracle's pass@1
ORACLE = "oracle_pass1"
PROBE_ARM = "cot"  # the arm that answers with the probe's own chain


@dataclass(frozen=True)
class Arm:
    """One way to answer: a strategy and the knobs a run of it takes (n, select, beam_width, ...)."""

    strategy: str
    knobs: dict
    label: str  # "best_of_n weighted n=8"

    @property
    def is_probe(self) -> bool:
        return self.strategy == PROBE_ARM


@dataclass
class Outcomes:
    """What a sweep measured, per problem: the probe and, per arm, the expected correctness and tokens.
    An arm's tokens are its own (the probe arm's are the probe's)."""

    keys: list[str]
    arms: list[Arm]
    probe: np.ndarray  # [problem] the probe's value (higher = easier); NaN when there is none
    probe_tokens: np.ndarray  # [problem]
    correct: np.ndarray  # [problem][arm] in [0, 1]: an expectation for subsampled estimators
    tokens: np.ndarray  # [problem][arm]

    def fixed(self, arm: int, n_boot: int = 1000, seed: int = 0) -> "Point":
        """One arm for every question (a fixed strategy, no probe)."""
        return _point(self.arms[arm].label, self.correct[:, arm], self.tokens[:, arm], n_boot, seed)


@dataclass(frozen=True)
class Point:
    label: str
    accuracy: float
    ci_low: float
    ci_high: float
    tokens: float  # mean per question
    n_problems: int


def _point(label: str, correct: np.ndarray, tokens: np.ndarray, n_boot: int, seed: int) -> Point:
    low, high = bootstrap_ci(correct, n_boot=n_boot, seed=seed)
    return Point(label, float(correct.mean()), low, high, float(tokens.mean()), int(correct.size))


@dataclass
class Plan:
    """The arm each bin gets at one mean budget, with what the fit problems expect of it."""

    budget: float
    arms: list[int]  # per bin, an index into Policy.arms
    accuracy: float  # expected on the fit problems
    tokens: float  # expected mean tokens per question, the probe's included
    within_budget: bool


@dataclass
class Policy:
    arms: list[Arm]
    edges: list[float]  # inner bin edges on the difficulty scale (-probe), ascending
    shares: list[float]  # share of the fit problems per bin
    accuracy: list[list[float]]  # [bin][arm], mean expected correctness of the bin's fit problems
    tokens: list[list[float]]  # [bin][arm], mean tokens, the probe's included
    probe: str = PROBE
    n_problems: int = 0
    meta: dict = field(default_factory=dict)  # where it came from: sweep, model, verifier, ...

    @property
    def n_bins(self) -> int:
        return len(self.shares)

    def bin_of(self, value: float | None) -> int:
        return bin_of(self.edges, value)

    def _front(self) -> list[tuple[float, float, tuple[int, ...]]]:
        """Every plan no other plan beats in both accuracy and tokens: (tokens, accuracy, arm per bin),
        cheapest first; fronts are merged bin by bin (exact, and small: dominated plans are dropped)."""
        front: list[tuple[float, float, tuple[int, ...]]] = [(0.0, 0.0, ())]
        for b, share in enumerate(self.shares):
            options = [(share * self.tokens[b][a], share * self.accuracy[b][a], a) for a in range(len(self.arms))]
            if share == 0:  # an empty bin is never reached: give it the cheapest arm
                options = [min(options, key=lambda o: (o[0], o[2]))]
            merged = [(t + dt, acc + da, chosen + (a,)) for t, acc, chosen in front for dt, da, a in options]
            merged.sort(key=lambda s: (s[0], -s[1], s[2]))
            front = []
            for state in merged:
                if not front or state[1] > front[-1][1] + 1e-12:
                    front.append(state)
        return front

    def plan(self, budget: float) -> Plan:
        """The best arm per bin at mean `budget` tokens per question (the module docstring)."""
        front = self._front()
        within = [s for s in front if s[0] <= budget + 1e-9]
        tokens, accuracy, chosen = within[-1] if within else front[0]  # the front rises: last = most accurate
        return Plan(budget=budget, arms=list(chosen), accuracy=accuracy, tokens=tokens, within_budget=bool(within))

    def frontier(self) -> list[Plan]:
        """Every plan that is best at some budget, cheapest first: the policy's accuracy-vs-tokens curve
        on the problems it was fitted on."""
        return [Plan(budget=t, arms=list(c), accuracy=a, tokens=t, within_budget=True) for t, a, c in self._front()]

    def evaluate(self, outcomes: Outcomes, budget: float, n_boot: int = 1000, seed: int = 0,
                 label: str | None = None) -> tuple[Point, Plan]:
        """The plan at `budget` applied to other problems (a held-out sweep): each question binned by its
        own probe, answered by its bin's arm, charged the probe plus that arm's tokens."""
        plan = self.plan(budget)
        return self.evaluate_plan(outcomes, plan, n_boot, seed, label or f"policy @ {budget:g} tokens"), plan

    def evaluate_plan(self, outcomes: Outcomes, plan: Plan, n_boot: int = 1000, seed: int = 0,
                      label: str = "policy") -> Point:
        index = {(a.strategy, _key(a.knobs)): i for i, a in enumerate(outcomes.arms)}
        columns = []
        for a in plan.arms:
            arm = self.arms[a]
            found = index.get((arm.strategy, _key(arm.knobs)))
            if found is None:
                raise ValueError(f"the held-out sweep did not measure {arm.label}")
            columns.append(found)
        rows = np.arange(len(outcomes.keys))
        bins = np.array([self.bin_of(v) for v in outcomes.probe])
        arm_of = np.array(columns)[bins - 1]
        probe_arm = np.array([self.arms[plan.arms[b - 1]].is_probe for b in bins])
        correct = outcomes.correct[rows, arm_of]
        tokens = outcomes.probe_tokens + np.where(probe_arm, 0.0, outcomes.tokens[rows, arm_of])
        return _point(label, correct, tokens, n_boot, seed)

    def describe(self, plan: Plan) -> list[dict]:
        """Which bin gets what, one row per bin (for tables and pages)."""
        return [{"bin": b + 1, "share": self.shares[b], "arm": self.arms[a].label, "strategy": self.arms[a].strategy,
                 "knobs": self.arms[a].knobs, "accuracy": self.accuracy[b][a], "tokens": self.tokens[b][a],
                 "probe_at_least": None if b >= len(self.edges) else -self.edges[b]}
                for b, a in enumerate(plan.arms)]

    def run_plan(self, budget: float) -> dict:
        """What a compute_optimal run needs (stored with the run, so resume and sharing need no policy table)."""
        plan = self.plan(budget)
        return {"budget": budget, "probe": self.probe, "edges": list(self.edges),
                "arms": [asdict(self.arms[a]) for a in plan.arms], "expected_accuracy": plan.accuracy,
                "expected_tokens": plan.tokens, "within_budget": plan.within_budget,
                "verifier": self.meta.get("verifier"), "aggregate": self.meta.get("aggregate", "last")}

    def to_json(self) -> dict:
        return {"arms": [asdict(a) for a in self.arms], "edges": list(self.edges), "shares": list(self.shares),
                "accuracy": self.accuracy, "tokens": self.tokens, "probe": self.probe, "n_problems": self.n_problems,
                "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict) -> "Policy":
        return cls(arms=[Arm(**a) for a in data["arms"]], edges=[float(e) for e in data["edges"]],
                   shares=[float(s) for s in data["shares"]], accuracy=data["accuracy"], tokens=data["tokens"],
                   probe=data.get("probe", PROBE), n_problems=int(data.get("n_problems", 0)),
                   meta=dict(data.get("meta") or {}))


def bin_of(edges: list[float], value: float | None) -> int:
    """Bin (1 = easiest) of a probe value under a policy's edges; no value (the probe found no score)
    is the hardest bin."""
    if value is None or not math.isfinite(value):
        return len(edges) + 1
    return 1 + int(np.searchsorted(np.asarray(edges), -value, side="left"))


def _key(knobs: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in knobs.items()))


def fit(outcomes: Outcomes, n_bins: int = 4, probe: str = PROBE, meta: dict | None = None) -> Policy:
    """A policy from a sweep's outcomes: bins by quantiles of the probe (bin 1 easiest), and each bin's
    mean accuracy and tokens per arm (the probe's tokens added to every arm but the probe's own)."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    if not outcomes.keys or not outcomes.arms:
        raise ValueError("a policy needs problems and arms")
    difficulty = -np.where(np.isfinite(outcomes.probe), outcomes.probe, -np.inf)
    finite = difficulty[np.isfinite(difficulty)]
    edges = [float(e) for e in np.quantile(finite, np.arange(1, n_bins) / n_bins)] if finite.size else [0.0] * (n_bins - 1)
    policy = Policy(arms=list(outcomes.arms), edges=edges, shares=[], accuracy=[], tokens=[], probe=probe,
                    n_problems=len(outcomes.keys), meta=dict(meta or {}))
    bins = np.array([policy.bin_of(v) for v in outcomes.probe])
    is_probe = np.array([a.is_probe for a in outcomes.arms])
    total = outcomes.tokens + np.where(is_probe, 0.0, outcomes.probe_tokens[:, None])
    for b in range(1, n_bins + 1):
        rows = bins == b
        policy.shares.append(float(rows.mean()))
        if rows.any():
            policy.accuracy.append([float(x) for x in outcomes.correct[rows].mean(axis=0)])
            policy.tokens.append([float(x) for x in total[rows].mean(axis=0)])
        else:
            policy.accuracy.append([0.0] * len(outcomes.arms))
            policy.tokens.append([float(x) for x in total.mean(axis=0)])
    return policy


def tokens_to_reach(points: list[Point], accuracy: float) -> float | None:
    """The fewest mean tokens among `points` that reach `accuracy` (None when none does)."""
    reached = [p.tokens for p in points if p.accuracy >= accuracy - 1e-9]
    return min(reached) if reached else None
