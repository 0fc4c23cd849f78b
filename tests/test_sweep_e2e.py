"""A tiny sweep on the real embedded model: the runs land grouped under the sweep, and the curve
data is consistent with what the runs stored."""
from __future__ import annotations

import pytest

from reasoning.config import SearchConfig
from thinktrace.curves import load_curves
from reasoning.strategies import names
from thinktrace.sweep import run_sweep, sweep_state
from reasoning.verifiers import load_verifier
from store.runs import run_results
from store.sweeps import sweep_runs

pytestmark = pytest.mark.slow


def test_a_tiny_sweep_on_the_embedded_model(embedded_lm, store):
    strategies = ["self_consistency", "best_of_n"]
    tree = "beam_search" in names()
    if tree:
        strategies.append("beam_search")
    verifier = load_verifier("self_eval", embedded_lm)
    cfg = SearchConfig(max_new_tokens=32, max_steps=3, max_step_tokens=16)  # tiny: beam search stays short
    sid = run_sweep(store, strategies, [1, 2], "arith:1", limit=2, verifier="self_eval", model="smollm2", cfg=cfg,
                    lm=embedded_lm, verifier_obj=verifier, progress=False)

    runs = sweep_runs(store, sid)
    planned = sorted((r.strategy, r.params["n"]) for r in runs)
    expected = [("best_of_n", 2)] + ([("beam_search", 1), ("beam_search", 2)] if tree else [])
    assert planned == sorted(expected)
    assert all(r.status == "done" and r.n_problems == 2 and r.model_params > 100_000_000 for r in runs)
    assert all(s.status == "done" for s in sweep_state(store, sid))

    curves = load_curves(store, sid)
    assert curves.n_problems == 2 and curves.verifiers == ["self_eval"]
    sampling = next(r for r in runs if r.strategy == "best_of_n")
    by_estimator = {(p.estimator, p.k): p for p in curves.points if p.run_id == sampling.id}
    assert set(by_estimator) == {(e, k) for e in ("pass", "maj", "bon", "wbon") for k in (1, 2)}
    for (estimator, k), p in by_estimator.items():
        assert 0.0 <= p.ci_low <= p.accuracy <= p.ci_high <= 1.0
        assert (p.upper_bound, p.verifier is not None) == (estimator == "pass", estimator in ("bon", "wbon"))
    # with every chain of every problem in, the k = N estimates are plain statistics of the stored run
    assert by_estimator["maj", 2].tokens_per_problem == pytest.approx(sampling.tokens / 2)
    assert by_estimator["pass", 1].accuracy <= by_estimator["pass", 2].accuracy
    assert by_estimator["maj", 1].accuracy == pytest.approx(by_estimator["bon", 1].accuracy)  # one sample: no choice
    flops = by_estimator["bon", 2]
    assert flops.flops == pytest.approx(2 * sampling.model_params * flops.tokens_per_problem * 2)
    if tree:
        beam_points = [p for p in curves.points if p.strategy == "beam_search"]
        assert sorted(p.k for p in beam_points) == [1, 2]
        for p in beam_points:
            run = next(r for r in runs if r.id == p.run_id)
            results = run_results(store, run.id)
            assert p.accuracy == pytest.approx(sum(bool(r.correct) for r in results) / len(results))
            assert p.tokens_per_problem == pytest.approx(sum(r.tokens for r in results) / len(results))
