"""Confidence verifiers and adaptive strategies end to end on the real embedded model, through the
runner into a real SQLite file: token signals on the stored nodes, spent budgets in Result.meta."""
from __future__ import annotations

import math

import pytest
from sqlmodel import select

from thinktrace import runner
from reasoning.config import SearchConfig
from reasoning.problems import load_problems
from reasoning.verifiers import load_verifier
from store import models as m

pytestmark = pytest.mark.slow
PROBLEMS = load_problems("arith:1", limit=2)


def run(lm, store, strategy, cfg, verifier=None):
    request = runner.RunRequest(strategy=strategy, dataset="arith:1", verifier=verifier, config=cfg).validate()
    ver = load_verifier(verifier, lm)
    run_id = runner.create_run(store, request, PROBLEMS, lm, ver)
    assert runner.execute(store, run_id, lm, ver).status == m.DONE
    with store.session() as session:
        results = session.exec(select(m.Result).where(m.Result.run_id == run_id).order_by(m.Result.position)).all()
        nodes = session.exec(select(m.Node).where(m.Node.run_id == run_id)).all()
        return [r.model_dump() for r in results], [n.model_dump() for n in nodes]


def test_backend_returns_top_k_logprobs_of_the_raw_distribution(embedded_lm):
    [[c]] = embedded_lm.complete(["Question: What is 2 + 3?\nAnswer:\n"], n=1, max_new_tokens=6, temperature=0.0)
    assert len(c.token_top_logprobs) == c.n_tokens and all(len(t) == 20 for t in c.token_top_logprobs)
    for lp, top in zip(c.token_logprobs, c.token_top_logprobs):
        assert top == sorted(top, reverse=True) and math.exp(top[0]) <= 1 + 1e-6
        assert lp == pytest.approx(top[0], abs=1e-5)  # greedy: the chosen token is the most likely


def test_adaptive_consistency_with_deepconf_scores_stores_signals_and_spend(embedded_lm, store):
    cfg = SearchConfig(n=4, batch=2, max_new_tokens=32)
    results, nodes = run(embedded_lm, store, "adaptive_consistency", cfg, verifier="deepconf")
    for result in results:
        meta = result["meta"]
        assert meta["samples"] in (2, 4) and meta["stop_reason"] in ("confident", "cap")
        assert (meta["stop_reason"] == "confident") == (meta["posterior"] > cfg.stop_threshold)
        mine = [n for n in nodes if n["problem_id"] == result["problem_id"]]
        assert result["tokens"] == sum(n["tokens"] for n in mine)  # spent = generated, nothing else
        assert len({n["meta"]["sample"] for n in mine if n["parent_seq"] is not None}) == meta["samples"]
    steps = [n for n in nodes if n["parent_seq"] is not None and n["tokens"]]
    assert steps and all(len(n["meta"]["tok_conf"]) == n["tokens"] and n["meta"]["tok_k"] == 20 for n in steps)
    assert all(0.0 <= n["score"] <= 1.0 and n["path_score"] is not None for n in steps)
    assert all(-30 < n["meta"]["tok_lp"] <= 0 and 0 <= n["meta"]["tok_entropy"] <= math.log(20) + 1e-9 for n in steps)


def test_deepconf_online_stores_cut_traces_and_counts_only_generated_tokens(embedded_lm, store):
    # keep_percent 10: the bar is the 90th percentile of the warm-up, so online traces are likely cut.
    cfg = SearchConfig(n=4, warmup=2, keep_percent=10, conf_window=8, chunk_tokens=8, max_new_tokens=32)
    results, nodes = run(embedded_lm, store, "deepconf_online", cfg)
    for result in results:
        meta = result["meta"]
        mine = [n for n in nodes if n["problem_id"] == result["problem_id"]]
        assert result["tokens"] == sum(n["tokens"] for n in mine)
        leaves = [n for n in mine if "conf_lowest" in n["meta"]]
        assert len(leaves) == meta["samples"] == 4 and meta["warmup"] == 2
        cut = [n for n in leaves if n["meta"].get("cut")]
        assert len(cut) == meta["cut"] and all(n["status"] == "pruned" for n in cut)
        for leaf in cut:  # stopped within one chunk of the window that fell, before the cap
            assert leaf["meta"]["cut_at"] <= leaf["meta"]["at_tokens"] < leaf["meta"]["cut_at"] + cfg.chunk_tokens
        assert all(0 <= n["path_score"] <= 1 for n in leaves if n["meta"]["conf_lowest"] is not None)
