"""Accuracy-vs-budget curves from one run of N parallel samples per problem.

A curve point answers "had we sampled only k of the N, what accuracy would we expect?", averaged
over every k-subset of the N samples rather than just the first k (Snell et al. 2024, "Scaling
LLM Test-Time Compute Optimally"; HF search-and-learn), with bootstrap confidence intervals over
problems.

Estimators (names as they appear in `BudgetPoint.estimator`, reasoning/budget.py):
  pass  pass@k, the oracle coverage upper bound: some sample of the k is correct. Unbiased closed
        form 1 - C(n-c, k) / C(n, k) (Chen et al. 2021, "Evaluating Large Language Models Trained
        on Code"), computed as a product so it never overflows.
  maj   maj@k, self-consistency (Wang et al. 2022): the most frequent answer of the k is picked.
  bon   naive best-of-k: the sample with the highest verifier score is picked. Exact closed form
        from order statistics.
  wbon  weighted best-of-k (Li et al. 2023; search-and-learn): scores are summed per answer and
        the answer with the largest sum is picked.
maj and wbon are averaged over all k-subsets when there are at most `n_draws` of them, else over
`n_draws` uniformly random k-subsets per problem (seeded). A draw is a random ordering of the N
samples whose first k serve every k, so curves are smooth in k and a point does not depend on which
other ks were asked for; maj and wbon see the same subsets, so their gap is the method's, not the
draw's.

Rules every estimator follows:
  - No answer: a sample whose answer is None never votes and is wrong when picked; a subset
    without any answer is wrong.
  - Ties: credit is split evenly among the tied candidates, i.e. the expected accuracy of breaking
    ties uniformly at random (maj: 1 / number of tied top answers if the correct one is among them).
    Score ties (bon) mean equal scores; weighted sums (wbon) tie within 1e-9 relative, so the order
    of floating-point summation cannot decide a winner.
  - Unknown correctness: a problem is graded when every sample that gave an answer has `correct`
    set. Ungraded problems (e.g. no gold answer) are left out of accuracy, tokens and n_problems.
  - Same N: curves need every problem to have the same number of samples, so that each point
    averages the same problems; a run with uneven N raises ValueError.
  - Scores: bon and wbon need a score on every sample of every problem; `curve_points` skips them
    (no error) when any score is missing, e.g. a run without a verifier.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from reasoning.budget import ESTIMATOR_INFO, BudgetPoint

ESTIMATORS = ("pass", "maj", "bon", "wbon")
NEEDS_SCORES = frozenset({"bon", "wbon"})
# Relative tolerance under which two weighted vote sums count as a tie (see the module docstring).
TIE_RTOL = 1e-9


@dataclass(frozen=True)
class Sample:
    answer: str | None  # canonical answer key: equivalent answers share it; None = no answer
    correct: bool | None  # answer matches gold; None = unknown
    score: float | None  # verifier's aggregated path score; None without a verifier
    tokens: int  # generated tokens


@dataclass(frozen=True)
class ProblemSamples:
    key: str
    samples: list[Sample]
    difficulty: int | None = None


# ---------------------------------------------------------------------------------------------
# Per-problem estimators


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn without replacement from n (c correct) is
    correct: 1 - C(n-c, k) / C(n, k), the unbiased estimator of Chen et al. 2021."""
    _check_k(n, k)
    if not 0 <= c <= n:
        raise ValueError(f"c must be between 0 and n ({n}); got {c}")
    return 1.0 - float(_comb_ratios(n, k)[n - c])


def maj_at_k(
    answers: Sequence[str | None],
    correct_map: Mapping[str, bool],
    k: int,
    n_draws: int = 200,
    seed: int = 0,
) -> float:
    """Expected accuracy of a majority vote over a random k-subset of `answers`.
    `correct_map` grades every answer key that occurs."""
    answer_ids, answer_correct = _encode_answers(answers, correct_map)
    n = len(answers)
    subsets = _subsets(n, k, n_draws, _permutations(1, n, n_draws, [k], seed))
    return float(_vote_accuracy(answer_ids[None], answer_correct[None], None, subsets)[0])


def bon_at_k(scores: Sequence[float], correct: Sequence[bool], k: int) -> float:
    """Expected accuracy of picking the top-scored sample of a random k-subset, exactly.
    `correct[i]` is False for a sample without an answer."""
    _check_k(len(scores), k)
    below, at_or_below = _score_ranks(np.asarray(scores, dtype=float)[None])
    return float(_best_of_k(below, at_or_below, np.asarray(correct, dtype=bool)[None], k)[0])


def wbon_at_k(
    answers: Sequence[str | None],
    scores: Sequence[float],
    correct_map: Mapping[str, bool],
    k: int,
    n_draws: int = 200,
    seed: int = 0,
) -> float:
    """Expected accuracy of picking the answer with the largest summed score in a random
    k-subset. `correct_map` grades every answer key that occurs."""
    answer_ids, answer_correct = _encode_answers(answers, correct_map)
    scores_row = np.asarray(scores, dtype=float)[None]
    n = len(answers)
    subsets = _subsets(n, k, n_draws, _permutations(1, n, n_draws, [k], seed))
    return float(_vote_accuracy(answer_ids[None], answer_correct[None], scores_row, subsets)[0])


# ---------------------------------------------------------------------------------------------
# Whole runs


def default_ks(n: int) -> list[int]:
    """Powers of two up to n, plus n itself."""
    return sorted({2**i for i in range(n.bit_length())} | {n})


def per_problem_accuracy(
    problems: Sequence[ProblemSamples],
    ks: Sequence[int] | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    n_draws: int = 200,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Expected accuracy of each problem at each k: estimator -> array [problem][k] in the order
    of `problems` and sorted `ks`. Rows of ungraded problems are NaN. Estimators needing scores
    are absent when scores are missing. Facet this matrix instead of recomputing per group."""
    run = _Run.encode(problems)
    return _accuracy_matrices(run, _resolve_ks(ks, run.n), estimators, n_draws, seed)


def curve_points(
    problems: Sequence[ProblemSamples],
    ks: Sequence[int] | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    n_draws: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    by: Callable[[ProblemSamples], Hashable] | None = None,
) -> list[BudgetPoint]:
    """Accuracy-vs-budget points for every estimator and k (default: powers of two up to N,
    plus N), with percentile bootstrap CIs over problems. `by` facets the curves, e.g.
    `by=lambda p: p.difficulty`: one set of points per group value (sorted, None last), sharing
    one computation of the per-problem accuracies. Points carry their estimator's label and pass@k
    is marked as an upper bound; a stored run adds its cost and provenance (thinktrace.curves)."""
    return seed_curve_points([problems], ks, estimators, n_draws, n_boot, seed, by)


def seed_curve_points(
    runs: Sequence[Sequence[ProblemSamples]],
    ks: Sequence[int] | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    n_draws: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    by: Callable[[ProblemSamples], Hashable] | None = None,
) -> list[BudgetPoint]:
    """curve_points of several runs that differ only in their sampling seed, on the same problems in
    the same order (each the same N): a point is the mean over seeds and problems, and its CI
    resamples both (seed_bootstrap_ci), so it holds the seed-to-seed spread as well as the problems'.
    One run gives exactly curve_points' points. bon and wbon need scores in every run."""
    if not runs:
        raise ValueError("no runs given")
    encoded = [_Run.encode(problems) for problems in runs]
    keys = [p.key for p in runs[0]]
    if any([p.key for p in problems] != keys for problems in runs[1:]):
        raise ValueError("the runs of one curve must hold the same problems in the same order")
    if len({run.n for run in encoded}) != 1:
        raise ValueError(f"the runs of one curve need the same N; got N in {sorted({run.n for run in encoded})}")
    graded = np.logical_and.reduce([run.graded for run in encoded])
    if not graded.any():
        raise ValueError("no problem has known correctness: accuracy curves need gold answers")
    ks = _resolve_ks(ks, encoded[0].n)
    matrices = [_accuracy_matrices(run, ks, estimators, n_draws, seed) for run in encoded]
    names = [name for name in matrices[0] if all(name in m for m in matrices)]
    mean_tokens = np.mean([run.tokens.mean(axis=1) for run in encoded], axis=0)

    groups = [by(problem) if by else None for problem in runs[0]]
    points = []
    for group in sorted(set(groups), key=lambda g: (g is None, g)):
        rows = np.array([g == group for g in groups]) & graded
        if not rows.any():
            continue
        for name in names:
            for column, k in enumerate(ks):
                values = np.stack([m[name][rows, column] for m in matrices])
                low, high = seed_bootstrap_ci(values, n_boot=n_boot, seed=seed)
                strategy, label, _ = ESTIMATOR_INFO[name]
                points.append(
                    BudgetPoint(
                        curve=label,
                        strategy=strategy,
                        estimator=name,
                        k=k,
                        accuracy=float(values.mean()),
                        ci_low=low,
                        ci_high=high,
                        tokens_per_problem=float(k * mean_tokens[rows].mean()),
                        n_problems=int(rows.sum()),
                        group=group,
                        upper_bound=name == "pass",
                        n_seeds=len(runs),
                    )
                )
    return points


def seed_bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values[seed][problem]`: each draw resamples the seeds
    and, independently, the problems, with replacement (a two-way bootstrap), so the interval holds
    the spread between seeds (a sampling seed can move best-of-N by points) as well as between
    problems. One seed is bootstrap_ci over its problems, exactly."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1 or values.shape[0] == 1:
        return bootstrap_ci(values.reshape(-1), n_boot=n_boot, level=level, seed=seed)
    if values.size == 0:
        raise ValueError("seed_bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    n_seeds, n_problems = values.shape
    seeds = rng.integers(0, n_seeds, (n_boot, n_seeds))
    problems = rng.integers(0, n_problems, (n_boot, n_problems))
    resampled_means = values[seeds[:, :, None], problems[:, None, :]].mean(axis=(1, 2))
    low, high = np.quantile(resampled_means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean: resample problems with replacement `n_boot` times.
    Problems are the unit of resampling because they, not samples, are the independent draws."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    resampled_means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    low, high = np.quantile(resampled_means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedTest:
    """Two runs on the same problems: is the accuracy difference real? Exact McNemar (two-sided binomial
    test on the discordant problems) and a paired bootstrap CI of the difference (resampling problems)."""

    n: int  # problems graded in both
    a_only: int  # right in A, wrong in B
    b_only: int
    difference: float  # accuracy of A minus B
    ci_low: float
    ci_high: float
    p_value: float  # exact McNemar

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05

    def sentence(self, a: str = "A", b: str = "B") -> str:
        verdict = "significant" if self.significant else "not significant"
        return (f"{a} - {b} = {100 * self.difference:+.1f} points [95% CI {100 * self.ci_low:+.1f}, "
                f"{100 * self.ci_high:+.1f}] on {self.n} shared problems; {self.a_only} solved by {a} only, "
                f"{self.b_only} by {b} only; exact McNemar p = {self.p_value:.3g}: {verdict} at 0.05")


def paired_test(a: Sequence[bool], b: Sequence[bool], n_boot: int = 2000, seed: int = 0) -> PairedTest:
    """The paired comparison of two runs' correctness on the same problems, in the same order."""
    from math import comb

    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("paired_test needs two equal, non-empty lists of outcomes")
    a_only, b_only = int((x & ~y).sum()), int((~x & y).sum())
    discordant = a_only + b_only
    tail = sum(comb(discordant, k) for k in range(min(a_only, b_only) + 1)) / 2 ** discordant if discordant else 1.0
    low, high = bootstrap_ci(x.astype(float) - y.astype(float), n_boot=n_boot, seed=seed)
    return PairedTest(int(x.size), a_only, b_only, float(x.mean() - y.mean()), low, high, min(1.0, 2 * tail))


def scored_outcomes(scores: Sequence[float | None], labels: Sequence[bool | None]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) as arrays without the pairs that lack a score or a known outcome."""
    s = np.array([np.nan if v is None else float(v) for v in scores], dtype=float)
    y = np.array([np.nan if v is None else float(bool(v)) for v in labels], dtype=float)
    keep = np.isfinite(s) & np.isfinite(y)
    return s[keep], y[keep].astype(bool)


def roc_auc(scores: Sequence[float | None], labels: Sequence[bool | None]) -> float | None:
    """ROC AUC of a verifier's scores against right/wrong labels: P(a right item outscores a wrong
    one), ties counting one half (the Mann-Whitney statistic from average ranks). Pairs without a
    score or a label are left out. None when only one class is present: AUC is undefined there, not
    0.5 (shown as "n/a")."""
    s, y = scored_outcomes(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    values, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # tied scores share their mean rank
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pass1_difficulty_bins(problems: Sequence[ProblemSamples], n_bins: int = 5) -> dict[str, int]:
    """Problem key -> difficulty bin 1..n_bins (1 = easiest), from quantiles of the model's own
    pass@1 (fraction of its samples that are correct), as Snell et al. 2024 bin questions.
    Problems with equal pass@1 share a bin, so bins are uneven (or empty) when many tie, e.g. at
    0 or 1. Ungraded problems get no bin. Problems may differ in N here."""
    graded = [p for p in problems if _is_graded(p.samples)]
    if not graded:
        return {}
    pass1 = np.array(
        [np.mean([s.answer is not None and bool(s.correct) for s in p.samples]) for p in graded]
    )
    failure_rate = 1.0 - pass1
    inner_edges = np.quantile(failure_rate, np.arange(1, n_bins) / n_bins)
    bins = 1 + np.searchsorted(inner_edges, failure_rate, side="left")
    return {p.key: int(b) for p, b in zip(graded, bins)}


# ---------------------------------------------------------------------------------------------
# Helpers


@dataclass(frozen=True)
class _Run:
    """A run's samples as [problem][sample] arrays. Answer ids index the problem's distinct
    answer keys (-1 = no answer); `answer_correct[p, a]` grades answer id a of problem p."""

    n: int
    answer_ids: np.ndarray  # int, [problem][sample]
    answer_correct: np.ndarray  # bool, [problem][answer id], padded with False
    sample_correct: np.ndarray  # bool, [problem][sample]; no answer is False
    scores: np.ndarray | None  # float, [problem][sample]; None when any score is missing
    tokens: np.ndarray  # int, [problem][sample]
    graded: np.ndarray  # bool, [problem]: every answered sample has `correct` set

    @classmethod
    def encode(cls, problems: Sequence[ProblemSamples]) -> _Run:
        if not problems:
            raise ValueError("no problems given")
        sizes = {len(p.samples) for p in problems}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(
                f"every problem needs the same number of samples N > 0 for a budget curve; "
                f"got N in {sorted(sizes)}"
            )
        graded = np.array([_is_graded(p.samples) for p in problems])
        encoded = [
            _encode_answers(
                [s.answer for s in p.samples], _correct_map(p) if is_graded else {}, strict=False
            )
            for p, is_graded in zip(problems, graded)
        ]
        answer_ids = np.array([ids for ids, _ in encoded])
        answer_correct = np.zeros((len(problems), max(1, max(len(c) for _, c in encoded))), bool)
        for row, (_, correct) in enumerate(encoded):
            answer_correct[row, : len(correct)] = correct
        sample_correct = np.where(
            answer_ids >= 0, np.take_along_axis(answer_correct, np.maximum(answer_ids, 0), 1), False
        )
        scores = [[s.score for s in p.samples] for p in problems]
        has_scores = all(score is not None for row in scores for score in row)
        return cls(
            n=sizes.pop(),
            answer_ids=answer_ids,
            answer_correct=answer_correct,
            sample_correct=sample_correct,
            scores=np.array(scores, dtype=float) if has_scores else None,
            tokens=np.array([[s.tokens for s in p.samples] for p in problems]),
            graded=graded,
        )


def _accuracy_matrices(
    run: _Run, ks: list[int], estimators: Sequence[str], n_draws: int, seed: int
) -> dict[str, np.ndarray]:
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown:
        raise ValueError(f"unknown estimators {sorted(unknown)}; choose from {ESTIMATORS}")
    vote_weights = {"maj": None, "wbon": run.scores}
    wanted = [e for e in estimators if e not in NEEDS_SCORES or run.scores is not None]
    n_problems = len(run.answer_ids)
    accuracy = {name: np.empty((n_problems, len(ks))) for name in wanted}

    n_correct = run.sample_correct.sum(axis=1)
    if "bon" in accuracy:
        below, at_or_below = _score_ranks(run.scores)
    if vote_weights.keys() & accuracy.keys():
        permutations = _permutations(n_problems, run.n, n_draws, ks, seed)
    for column, k in enumerate(ks):
        for name, matrix in accuracy.items():
            if name == "pass":
                matrix[:, column] = 1.0 - _comb_ratios(run.n, k)[run.n - n_correct]
            elif name == "bon":
                matrix[:, column] = _best_of_k(below, at_or_below, run.sample_correct, k)
            else:
                subsets = _subsets(run.n, k, n_draws, permutations)
                matrix[:, column] = _vote_accuracy(
                    run.answer_ids, run.answer_correct, vote_weights[name], subsets
                )
    for matrix in accuracy.values():
        matrix[~run.graded] = np.nan
    return accuracy


def _is_graded(samples: Sequence[Sample]) -> bool:
    return all(s.correct is not None for s in samples if s.answer is not None)


def _correct_map(problem: ProblemSamples) -> dict[str, bool]:
    """Answer key -> correct; equivalent answers share a key, so they must share a grade."""
    grades: dict[str, bool] = {}
    for s in problem.samples:
        if s.answer is not None and grades.setdefault(s.answer, bool(s.correct)) != s.correct:
            raise ValueError(f"problem {problem.key!r}: answer {s.answer!r} is graded both ways")
    return grades


def _encode_answers(
    answers: Sequence[str | None], correct_map: Mapping[str, bool], strict: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Answer ids per sample (-1 = no answer) and whether each id is correct. Unless `strict`,
    keys missing from `correct_map` count as wrong (used for ungraded problems, masked later)."""
    keys = list(dict.fromkeys(a for a in answers if a is not None))
    id_of = {key: i for i, key in enumerate(keys)}
    answer_ids = np.array([-1 if a is None else id_of[a] for a in answers], dtype=np.int64)
    grades = [correct_map[key] if strict else correct_map.get(key, False) for key in keys]
    return answer_ids, np.array(grades, dtype=bool)


def _check_k(n: int, k: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of samples ({n}); got {k}")


def _resolve_ks(ks: Sequence[int] | None, n: int) -> list[int]:
    ks = default_ks(n) if ks is None else sorted(set(ks))
    for k in ks:
        _check_k(n, k)
    return ks


def _comb_ratios(n: int, k: int) -> np.ndarray:
    """C(m, k) / C(n, k) for m = 0..n, as products of (j - k) / j for j = m+1..n: no factorials,
    so no overflow (the stable form of Chen et al. 2021). Zero for m < k."""
    j = np.arange(1, n + 1)
    tail_products = np.cumprod(((j - k) / j)[::-1])[::-1]
    return np.append(tail_products, 1.0)


def _score_ranks(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, how many samples of its problem score strictly below it and at or below it."""
    pairs = list(zip(np.sort(scores, axis=1), scores))
    below = np.array([np.searchsorted(ranked, row, "left") for ranked, row in pairs])
    at_or_below = np.array([np.searchsorted(ranked, row, "right") for ranked, row in pairs])
    return below, at_or_below


def _best_of_k(
    below: np.ndarray, at_or_below: np.ndarray, sample_correct: np.ndarray, k: int
) -> np.ndarray:
    """Exact best-of-k per problem. The top score of a random k-subset falls in the tie group of
    sample i with chance [C(at_or_below, k) - C(below, k)] / C(n, k) (all k drawn at or below it,
    not all strictly below); by symmetry each member of the group is then picked equally often."""
    ratios = _comb_ratios(below.shape[1], k)
    pick_chance = (ratios[at_or_below] - ratios[below]) / (at_or_below - below)
    return (pick_chance * sample_correct).sum(axis=1)


def _permutations(
    n_problems: int, n: int, n_draws: int, ks: Sequence[int], seed: int
) -> np.ndarray | None:
    """[problem][draw][sample] random orderings: the first k of each is a uniform k-subset, so one
    draw serves every k. None when every k in ks is enumerated instead (see `_subsets`)."""
    if all(math.comb(n, k) <= n_draws for k in ks):
        return None
    rng = np.random.default_rng(seed)
    return rng.random((n_problems, n_draws, n)).argsort(axis=2)


def _subsets(n: int, k: int, n_draws: int, permutations: np.ndarray | None) -> np.ndarray:
    """Sample indices of the k-subsets to average over: [1][subset][k] listing every k-subset when
    there are at most n_draws of them (exact), else [problem][draw][k] random ones."""
    _check_k(n, k)
    if math.comb(n, k) <= n_draws:
        return np.array(list(combinations(range(n), k)))[None]
    return permutations[:, :, :k]


def _vote_accuracy(
    answer_ids: np.ndarray,
    answer_correct: np.ndarray,
    weights: np.ndarray | None,
    subsets: np.ndarray,
) -> np.ndarray:
    """Mean credit per problem of voting within each subset: each sample adds its weight (1 for
    maj, its score for wbon) to its answer; the top answer wins, ties split the credit."""
    n_problems, n_answers = answer_correct.shape
    n_subsets = subsets.shape[1]
    rows = np.arange(n_problems)[:, None, None]
    picked_ids = answer_ids[rows, subsets]  # [problem][subset][k]
    # One bincount for all subsets: bucket (problem, subset, answer), no-answer in an extra bucket.
    buckets = np.where(picked_ids >= 0, picked_ids, n_answers)
    buckets = buckets + (n_answers + 1) * np.arange(n_problems * n_subsets).reshape(
        n_problems, n_subsets, 1
    )
    size = n_problems * n_subsets * (n_answers + 1)
    shape = (n_problems, n_subsets, n_answers + 1)
    votes = np.bincount(buckets.ravel(), minlength=size).reshape(shape)[..., :n_answers]
    if weights is None:
        tallies = votes
    else:
        picked_weights = weights[rows, subsets].ravel()
        tallies = np.bincount(buckets.ravel(), picked_weights, size).reshape(shape)[..., :n_answers]
    present = votes > 0
    totals = np.where(present, tallies, -np.inf)
    top = totals.max(axis=2, keepdims=True, initial=-np.inf)
    winners = present & (totals >= top - TIE_RTOL * np.abs(top))
    correct_winners = (winners & answer_correct[:, None, :]).sum(axis=2)
    credit = correct_winners / np.maximum(winners.sum(axis=2), 1)  # no answers at all: 0
    return credit.mean(axis=1)
