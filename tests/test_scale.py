"""Scale what? (reasoning/scale.py): the FLOPs-matched exchange between a smaller model with test-time
compute and a larger model answering greedily, on hand-made points whose answer is known."""
from __future__ import annotations

import pytest

from reasoning.budget import BudgetPoint
from reasoning.scale import Model, exchange

SMALL = Model("s", params=1e5, train_tokens=1e7, pretrain_flops=6e12)
LARGE = Model("l", params=1e6, train_tokens=1e7, pretrain_flops=6e13)


def point(curve, accuracy, flops, group=5, k=1, tokens=100.0, ci=0.05, upper=False):
    return BudgetPoint(curve=curve, strategy=curve, estimator="direct", k=k, tokens_per_problem=tokens, flops=flops,
                       accuracy=accuracy, ci_low=accuracy - ci, ci_high=accuracy + ci, group=group, n_problems=100,
                       upper_bound=upper, run_id=f"run-{curve}-{k}")


def test_few_questions_leave_the_smaller_model_the_pretraining_difference_to_spend():
    greedy = point("cot", 0.5, flops=2e8)  # the larger model: 2 x 1e6 x 100 tokens
    small = [point("cot", 0.2, 2e7), point("best_of_n", 0.45, 8e8, k=16), point("best_of_n", 0.7, 1e11, k=4096)]
    by_ratio = {e.ratio: e for e in exchange(small, [greedy], SMALL, LARGE, ratios=(0.001, 1.0, 1000.0))}
    # R = 0.001: Q = 0.001 x 1e7 / 100 = 100 questions; allowance = 5.4e13 / 100 + 2e8 = 5.4e11: the 4096 point fits
    few = by_ratio[0.001]
    assert few.queries == pytest.approx(100) and few.allowance == pytest.approx(5.4e11 + 2e8)
    assert few.small.k == 4096 and few.gain == pytest.approx(20.0) and few.significant
    # R = 1000: 1e8 questions; allowance = 5.4e5 + 2e8: only what costs about the larger model's inference fits
    many = by_ratio[1000.0]
    assert many.small.curve == "cot" and many.gain == pytest.approx(-30.0)
    assert "pre-training (larger model) by 30.0 points" in many.sentence()


def test_upper_bounds_never_win_and_nothing_fitting_is_said():
    greedy = point("cot", 0.5, flops=2e8)
    small = [point("pass", 1.0, 1e3, upper=True), point("best_of_n", 0.9, 1e20, k=99)]
    [e] = exchange(small, [greedy], SMALL, LARGE, ratios=(1.0,))
    assert e.small is None and e.gain is None and "no test-time strategy" in e.sentence()


def test_groups_are_matched_and_the_larger_model_must_cost_more():
    greedy = [point("cot", 0.9, 2e8, group=1), point("cot", 0.3, 2e8, group=5)]
    small = [point("cot", 0.8, 2e7, group=1), point("best_of_n", 0.35, 4e8, group=5, k=8)]
    out = exchange(small, greedy, SMALL, LARGE, ratios=(1.0,))
    assert [(e.group, e.small.curve) for e in out] == [(1, "cot"), (5, "best_of_n")]
    with pytest.raises(ValueError, match="must cost more"):
        exchange(small, greedy, LARGE, SMALL)
