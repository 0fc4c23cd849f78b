"""Budget-curve estimators: each checked against a brute-force average over every k-subset."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest

from reasoning.estimators import (
    ProblemSamples,
    Sample,
    bon_at_k,
    bootstrap_ci,
    curve_points,
    default_ks,
    maj_at_k,
    pass1_difficulty_bins,
    pass_at_k,
    per_problem_accuracy,
    roc_auc,
    wbon_at_k,
)


def problem(key, answers, correct_answer, scores=None, tokens=None, difficulty=None):
    """Samples giving `answers` (None = no answer), graded against `correct_answer`."""
    scores = scores or [None] * len(answers)
    tokens = tokens or [10] * len(answers)
    samples = [
        Sample(a, None if a is None else a == correct_answer, s, t)
        for a, s, t in zip(answers, scores, tokens)
    ]
    return ProblemSamples(key, samples, difficulty)


# The documented rules, written the obvious way for one subset.
def covered(subset):
    return float(any(s.answer is not None and s.correct for s in subset))


def majority(subset):
    votes = Counter(s.answer for s in subset if s.answer is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winners = [a for a, v in votes.items() if v == top]
    correct = {s.answer: s.correct for s in subset}
    return sum(correct[a] for a in winners) / len(winners)


def best(subset):
    top = max(s.score for s in subset)
    tied = [s for s in subset if s.score == top]
    return sum(s.answer is not None and s.correct for s in tied) / len(tied)


def weighted(subset):
    sums = defaultdict(float)
    for s in subset:
        if s.answer is not None:
            sums[s.answer] += s.score
    if not sums:
        return 0.0
    top = max(sums.values())
    winners = [a for a, total in sums.items() if total == top]
    correct = {s.answer: s.correct for s in subset}
    return sum(correct[a] for a in winners) / len(winners)


RULES = {"pass": covered, "maj": majority, "bon": best, "wbon": weighted}


def brute_force(samples, k, rule):
    subsets = list(combinations(samples, k))
    return sum(rule(subset) for subset in subsets) / len(subsets)


# Dyadic scores keep weighted sums exact, so brute force and estimator see the same ties.
TRICKY = [
    # ties in votes, ties in scores, no-answers that score high
    problem("ties", ["A", "B", None, "B", "A", "C", None, "A"], "A",
            [0.5, 0.75, 0.75, 0.25, 0.25, 0.75, 0.5, 0.5]),
    # the correct answer is a minority that the verifier likes
    problem("minority", ["B", "B", "B", "A", "A", None, "B", "C"], "A",
            [0.125, 0.25, 0.25, 1.0, 0.5, 0.0, 0.25, 0.5]),
    # nobody answers
    problem("silent", [None] * 8, "A", [0.5, 0.25, 0.5, 0.0, 1.0, 0.5, 0.5, 0.5]),
    # every score equal, every answer different
    problem("flat", ["A", "B", "C", "D", "E", "F", "G", "H"], "D", [0.5] * 8),
]


@pytest.mark.parametrize("n", range(1, 21))
def test_pass_at_k_matches_the_closed_form(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_stays_exact_where_factorials_overflow_floats():
    exact = 1 - Fraction(math.comb(2000 - 3, 500), math.comb(2000, 500))
    assert pass_at_k(2000, 3, 500) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(2000, 0, 500) == 0.0
    assert pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)


@pytest.mark.parametrize("estimator", ["pass", "maj", "bon", "wbon"])
def test_every_estimator_equals_the_average_over_all_k_subsets(estimator):
    # n = 8 has at most C(8, 4) = 70 subsets <= 200 draws: the exact enumeration path.
    accuracy = per_problem_accuracy(TRICKY, ks=range(1, 9), estimators=[estimator])[estimator]
    for row, p in enumerate(TRICKY):
        expected = [brute_force(p.samples, k, RULES[estimator]) for k in range(1, 9)]
        np.testing.assert_allclose(accuracy[row], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("estimator", ["maj", "wbon"])
def test_monte_carlo_subsets_average_to_the_exact_value(estimator):
    # n = 12, k = 5: C(12, 5) = 792 > 200 subsets, so each copy draws 200 random ones;
    # 300 copies make 60,000 draws, a standard error below 0.002.
    p = problem("p", ["A", "B", "A", None, "B", "C", "A", "B", "B", None, "A", "C"], "A",
                [0.5, 0.75, 0.25, 1.0, 0.5, 0.75, 0.5, 0.25, 0.125, 0.5, 0.75, 0.25])
    accuracy = per_problem_accuracy([p] * 300, ks=[5], estimators=[estimator])[estimator]
    assert accuracy[:, 0].std() > 0  # really the Monte Carlo path
    assert accuracy.mean() == pytest.approx(brute_force(p.samples, 5, RULES[estimator]), abs=0.01)


def test_per_problem_functions_agree_with_brute_force():
    ties = TRICKY[0]
    answers = [s.answer for s in ties.samples]
    scores = [s.score for s in ties.samples]
    grades = {"A": True, "B": False, "C": False}
    correct = [s.answer is not None and s.correct for s in ties.samples]
    for k in range(1, 9):
        assert maj_at_k(answers, grades, k) == pytest.approx(brute_force(ties.samples, k, majority))
        assert bon_at_k(scores, correct, k) == pytest.approx(brute_force(ties.samples, k, best))
        assert wbon_at_k(answers, scores, grades, k) == pytest.approx(
            brute_force(ties.samples, k, weighted)
        )


def test_hand_computed_small_case():
    # A, A, B with A correct. maj@2: {A,A} -> 1, {A,B} twice -> tie, half credit.
    answers, grades = ["A", "A", "B"], {"A": True, "B": False}
    assert [maj_at_k(answers, grades, k) for k in (1, 2, 3)] == pytest.approx([2 / 3, 2 / 3, 1])
    assert [pass_at_k(3, 2, k) for k in (1, 2, 3)] == pytest.approx([2 / 3, 1, 1])
    # Best-of-2 with scores .9, .1, .5: {.9A,.1A} -> A, {.9A,.5B} -> A, {.1A,.5B} -> B.
    correct = [True, True, False]
    assert [bon_at_k([0.9, 0.1, 0.5], correct, k) for k in (1, 2, 3)] == pytest.approx(
        [2 / 3, 2 / 3, 1]
    )
    # Weighted with .3, .3, .5: B beats a lone A (.5 > .3) but not both As (.6 > .5).
    assert [wbon_at_k(answers, [0.3, 0.3, 0.5], grades, k) for k in (1, 2, 3)] == pytest.approx(
        [2 / 3, 1 / 3, 1]
    )


def test_maj_at_n_is_the_plain_majority_vote():
    answers = ["B", "A", "B", None, "A", "B"]
    assert maj_at_k(answers, {"A": False, "B": True}, 6) == 1.0
    assert maj_at_k(answers, {"A": True, "B": False}, 6) == 0.0
    assert maj_at_k(["A", "B", None], {"A": True, "B": False}, 3) == 0.5  # tie: half credit


def test_no_answer_never_wins():
    # The no-answer sample has the top score: best-of picks it and is wrong.
    assert bon_at_k([0.9, 0.1], [False, True], 2) == 0.0
    # It does not vote, so a lone answer beats it.
    assert maj_at_k([None, None, "A"], {"A": True}, 3) == 1.0
    assert wbon_at_k([None, "A"], [0.9, 0.1], {"A": True}, 2) == 1.0
    assert maj_at_k([None, None], {}, 2) == 0.0


def test_curve_points_summarise_problems_with_tokens_and_default_ks():
    problems = [
        problem("right", ["A", "A", "B", "A"], "A", tokens=[10, 20, 30, 40]),
        problem("wrong", ["B", "B", "B", "A"], "A", tokens=[10, 10, 10, 10]),
    ]
    points = curve_points(problems)  # no scores: bon and wbon skipped
    assert {(p.estimator, p.k) for p in points} == {
        (e, k) for e in ("pass", "maj") for k in (1, 2, 4)
    }
    maj4 = next(p for p in points if p.estimator == "maj" and p.k == 4)
    assert maj4.accuracy == 0.5 and maj4.n_problems == 2
    assert (maj4.ci_low, maj4.ci_high) == (0.0, 1.0)
    # Expected tokens of k samples: k x mean tokens, averaged over problems: 2 x (25 + 10) / 2.
    assert next(p for p in points if p.k == 2).tokens_per_problem == 35.0


def test_default_ks_are_powers_of_two_plus_n():
    assert default_ks(12) == [1, 2, 4, 8, 12]
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64]
    assert default_ks(1) == [1]


def test_problems_with_unknown_correctness_are_left_out():
    no_gold = ProblemSamples("no gold", [Sample("A", None, 0.5, 10), Sample(None, None, 0.5, 10)])
    graded = problem("graded", ["A", "B"], "A", [0.5, 0.5])
    accuracy = per_problem_accuracy([no_gold, graded], ks=[1])
    assert np.isnan(accuracy["maj"][0, 0]) and accuracy["maj"][1, 0] == 0.5
    assert all(p.n_problems == 1 for p in curve_points([no_gold, graded]))
    with pytest.raises(ValueError, match="known correctness"):
        curve_points([no_gold])


def test_uneven_sample_counts_and_contradictory_grades_are_rejected():
    with pytest.raises(ValueError, match="same number of samples"):
        curve_points([problem("a", ["A", "B"], "A"), problem("b", ["A"], "A")])
    contradictory = ProblemSamples("p", [Sample("A", True, None, 1), Sample("A", False, None, 1)])
    with pytest.raises(ValueError, match="graded both ways"):
        curve_points([contradictory])
    with pytest.raises(ValueError, match="k must be"):
        curve_points([problem("a", ["A", "B"], "A")], ks=[3])


def test_faceting_by_difficulty_equals_curves_of_each_group():
    rng = np.random.default_rng(1)
    problems = [
        problem(f"p{i}", list(rng.choice(["A", "B", None], 6)), "A",
                list(rng.random(6)), difficulty=i % 3)
        for i in range(30)
    ]
    faceted = curve_points(problems, estimators=["pass", "bon"], by=lambda p: p.difficulty)
    assert [p.group for p in faceted][::8] == [0, 1, 2]
    for difficulty in (0, 1, 2):
        alone = curve_points([p for p in problems if p.difficulty == difficulty],
                             estimators=["pass", "bon"])
        facet = [p for p in faceted if p.group == difficulty]
        np.testing.assert_allclose(
            [(p.accuracy, p.ci_low, p.ci_high) for p in facet],
            [(p.accuracy, p.ci_low, p.ci_high) for p in alone],
        )


def test_curves_are_reproducible_by_seed():
    rng = np.random.default_rng(2)
    problems = [problem(f"p{i}", list(rng.choice(["A", "B", "C"], 16)), "A", list(rng.random(16)))
                for i in range(20)]
    assert curve_points(problems, seed=3) == curve_points(problems, seed=3)
    maj4 = [p for p in curve_points(problems, seed=3) if p.estimator == "maj" and p.k == 4]
    other = [p for p in curve_points(problems, seed=4) if p.estimator == "maj" and p.k == 4]
    assert maj4[0].accuracy != other[0].accuracy  # C(16, 4) > 200: drawn, so the seed matters


def test_bootstrap_ci_covers_the_true_mean_at_its_nominal_rate():
    rng = np.random.default_rng(0)
    true_p, n_datasets, n_problems = 0.3, 200, 100
    covered_count = 0
    for seed in range(n_datasets):
        values = rng.random(n_problems) < true_p
        low, high = bootstrap_ci(values, n_boot=1000, seed=seed)
        covered_count += low <= true_p <= high
    assert 0.90 <= covered_count / n_datasets <= 0.99


def test_bootstrap_ci_of_identical_values_is_a_point():
    assert bootstrap_ci([0.25] * 10) == (0.25, 0.25)
    low, high = bootstrap_ci([0.0, 1.0] * 50)
    assert low < 0.5 < high


def test_pass1_bins_put_the_easiest_problems_in_bin_1():
    # Problem i solves i of its 10 samples: pass@1 0.0 .. 0.9.
    problems = [problem(f"p{i}", ["A"] * i + ["B"] * (10 - i), "A") for i in range(10)]
    bins = pass1_difficulty_bins(problems, n_bins=5)
    assert bins == {f"p{i}": 5 - i // 2 for i in range(10)}
    # Ties share a bin; ungraded problems get none.
    same = [problem(f"q{i}", ["A", "B"], "A") for i in range(4)]
    no_gold = ProblemSamples("x", [Sample("A", None, None, 1)])
    assert pass1_difficulty_bins(same + [no_gold]) == {f"q{i}": 1 for i in range(4)}


def test_roc_auc_is_the_chance_a_right_item_outscores_a_wrong_one_and_undefined_with_one_class():
    """One AUC for the Verifier page and the lab's step AUC: ties count one half, pairs without a
    score or a label are left out, and a single class gives None (shown as n/a), never NaN or 0.5."""
    assert roc_auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert roc_auc([0.1, 0.9], [True, False]) == 0.0
    assert roc_auc([0.5, 0.5, 0.2, 0.7], [True, False, False, True]) == pytest.approx(
        np.mean([a > b or 0.5 * (a == b) for a in (0.5, 0.7) for b in (0.5, 0.2)]))
    assert roc_auc([0.3, None, 0.6], [False, True, None]) is None  # one scored, labelled pair left
    assert roc_auc([0.3, 0.6], [True, True]) is None and roc_auc([], []) is None
